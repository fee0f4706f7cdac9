"""The study's HTML report (plotly): cells, paired differences, ECDFs, ranking, sensitivity."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from twin.study import stats
from twin.study.spec import NUMERIC, Study, numeric_points, problem_of

ECDF_METRICS = (("time_to_detect_s", "time to detect"), ("time_to_contain_s", "time to contain"))


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-", border=0)


def _figures(study: Study, frame: pd.DataFrame) -> list[Any]:
    import plotly.graph_objects as go

    figs = []
    ok = frame[frame["status"] == "ok"]
    for metric in stats.OUTCOMES:
        c = stats.cells(frame, metric)
        if c.empty:
            continue
        label = (
            c.drop(columns=[k for k in c if k not in stats.CELL])
            .astype(str)
            .agg(" | ".join, axis=1)
        )
        fig = go.Figure(go.Bar(
            x=label, y=c["median"],
            error_y={"type": "data", "symmetric": False,
                     "array": (c["ci_high"] - c["median"]).fillna(0),
                     "arrayminus": (c["median"] - c["ci_low"]).fillna(0)},
            name="median (95 % bootstrap CI)",
        ))  # fmt: skip
        fig.add_trace(go.Scatter(x=label, y=c["p90"], mode="markers", name="P90"))
        fig.add_trace(go.Scatter(x=label, y=c["q3"], mode="markers", marker_symbol="line-ew-open",
                                 marker_size=16, name="IQR (Q1..Q3)"))  # fmt: skip
        fig.add_trace(go.Scatter(x=label, y=c["q1"], mode="markers", marker_symbol="line-ew-open",
                                 marker_size=16, showlegend=False))  # fmt: skip
        fig.update_layout(title=f"{metric}: median across seeds per cell", height=420)
        figs.append(fig)
    for metric, title in ECDF_METRICS:
        fig = go.Figure()
        for design, g in ok.groupby("design", sort=True):
            cens = g[metric.removesuffix("_s") + "_censored"]
            att = g[g["attacked"].astype(bool)]
            if att.empty:
                continue
            xs, ys, n_cens = stats.ecdf(att[metric], cens.loc[att.index])
            fig.add_trace(go.Scatter(
                x=xs / 60, y=ys, mode="lines", line_shape="hv",
                name=f"{design} ({n_cens} of {len(att)} censored)",
            ))  # fmt: skip
        fig.update_layout(
            title=f"ECDF of {title} (minutes); censored runs never reach the curve, so it tops "
            "out at the share that happened",
            xaxis_title="minutes",
            yaxis_title="share of attacked runs",
            yaxis_range=[0, 1.02],
            height=380,
        )
        figs.append(fig)
    varying = [n for n in NUMERIC if n in study.spec.lifecycle.model_fields_set]
    cols = {"default_credentials": "default_credentials", "patch_lag_days": "patch_lag_days",
            "analyst_delay": "analyst_delay_s"}  # fmt: skip
    for name in varying:
        col = cols[name]
        if ok[col].nunique() < 2:
            continue
        fig = go.Figure()
        for design, g in ok.groupby("design", sort=True):
            for metric in ("blast_share", "exposure_share"):
                m = g.groupby(col)[metric].median()
                fig.add_trace(go.Scatter(x=m.index, y=m.to_numpy(), mode="lines+markers",
                                         name=f"{design}: {metric}"))  # fmt: skip
        fig.update_layout(title=f"one at a time: median blast and exposure share against {name}", height=360,
                          xaxis_title=name, yaxis_title="share of devices")  # fmt: skip
        figs.append(fig)
    return figs


def write_report(
    study: Study, frame: pd.DataFrame, designs: dict[str, dict[str, Any]], path: Path
) -> None:
    """Write report.html atomically."""
    import plotly.io as pio

    from twin.audit import audit

    spec = study.spec
    ok = frame[frame["status"] == "ok"]
    parts = [
        "<html><head><meta charset='utf-8'>",
        f"<title>twin study {html.escape(spec.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} td,th{padding:2px 8px}</style>",
        "</head><body>",
        f"<h1>Study {html.escape(spec.name)}</h1><p>{html.escape(spec.description)}</p>",
        f"<p>{len(frame)} runs ({len(frame) - len(ok)} failed), designs "
        f"{', '.join(study.designs)}, seeds {', '.join(map(str, spec.seeds))}.</p>",
    ]
    if not ok.empty:
        ranked = stats.ranking(frame)
        parts.append("<h2>Recommendation</h2><ol>")
        parts += [f"<li>{html.escape(r['why'])}</li>" for r in ranked]
        parts.append("</ol>")
        diffs = pd.concat(
            [stats.paired_differences(frame, m, spec.baseline) for m in stats.OUTCOMES],
            ignore_index=True,
        )
        if not diffs.empty:
            parts += [
                f"<h2>Differences against {html.escape(spec.baseline)} (paired on common seeds)</h2>",
                _table(diffs),
            ]
        facility = next(iter(study.scenarios.values())).facility
        assert not isinstance(facility, str)
        joined = stats.audit_join(frame, audit(facility))
        if joined:
            parts.append("<h2>Audit findings and outcomes</h2><ul>")
            parts += [f"<li>{html.escape(s)}</li>" for s in joined]
            parts.append("</ul>")
    parts.append("<h2>Designs (static analysis)</h2>")
    flat = [
        {**{k: v for k, v in d.items() if k not in ("separation", "security_level_gaps")},
         **{f"sep.{k}": v for k, v in d["separation"].items()},
         "sl_gaps": ", ".join(f"{z}+{g}" for z, g in d["security_level_gaps"].items()) or "-"}
        for d in designs.values()
    ]  # fmt: skip
    parts.append(_table(pd.DataFrame(flat)))
    first = True
    for fig in _figures(study, frame) if not ok.empty else []:
        parts.append(
            pio.to_html(fig, include_plotlyjs="inline" if first else False, full_html=False)
        )
        first = False
    if spec.sampling.method in ("morris", "sobol") and not ok.empty:
        _, points = numeric_points(spec)
        for metric in ("blast_share", "exposure_share"):
            sens = stats.sensitivity(frame, problem_of(spec), spec.sampling.method, metric, points)
            if not sens.empty:
                key = "mu_star" if spec.sampling.method == "morris" else "ST"
                sens = sens.sort_values(["design", key], ascending=[True, False])
            parts += [f"<h2>Sensitivity of {metric} ({spec.sampling.method}, ranked per design)</h2>",
                      _table(sens) if not sens.empty else "<p>not every sampled point finished</p>"]  # fmt: skip
    from twin.study import metrics

    parts += [
        "<h2>Definitions</h2>",
        f"<pre style='white-space:pre-wrap'>{html.escape(metrics.__doc__ or '')}</pre>",
    ]
    for metric in stats.OUTCOMES:
        c = stats.cells(frame, metric)
        if not c.empty:
            parts += [f"<h3>{metric} per cell</h3>", _table(c)]
    parts.append("</body></html>")
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
