"""One self-contained HTML report per run: story, physics traces, alerts, scores and steps."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from twin.telemetry import PROCESS_COLUMNS, empty, read_table

ROOM, TANK, OUTDOOR = r"room\..+\.temp_c", r"tank\..+\.level_m", "outdoor.temp_c"
AHU = r"ahu\..+\.supply_air(_setpoint)?_c"
PHYSICS = rf"^({ROOM}|{AHU}|{TANK}|outdoor\.temp_c)$"
MAX_POINTS = 4000  # per trace: beyond this the browser slows and the eye sees nothing more
SPOOF_C = 1.0  # a reported-vs-true gap beyond sensor noise (about 0.2 °C)
OUTCOME_COLOUR = dict(succeeded="#d62728", blocked="#2ca02c", failed="#ff7f0e")
OUTCOME_COLOUR["not attempted"] = "#7f7f7f"
SEVERITY_SIZE = {"low": 8, "medium": 11, "high": 14, "critical": 17}
PALETTE = qualitative.D3 + qualitative.Dark2
Steps = Sequence[Mapping[str, Any]]


def step_marks(truth: pd.DataFrame, not_attempted: Steps = ()) -> pd.DataFrame:
    """Every campaign step as (step_id, t0, t1, outcome, detail), also those never attempted."""
    rows = []
    for r in truth.itertuples():
        blocked = str(r.blocked_by or "")
        outcome = "succeeded" if r.succeeded else "blocked" if blocked else "failed"
        rows.append((r.step_id, r.t_start, r.t_end, outcome, blocked or str(r.detail)))
    for s in not_attempted:
        t = float(s.get("t") or 0.0)
        rows.append((s.get("step_id", "?"), t, t, "not attempted", str(s.get("reason", ""))))
    return pd.DataFrame(rows, columns=["step_id", "t0", "t1", "outcome", "detail"])


def _label(signal: str) -> str:
    return signal.split(".", 1)[-1].rsplit(".", 1)[0]  # 'room.server-hall.temp_c' -> 'server-hall'


def _only(process: pd.DataFrame, pattern: str) -> pd.DataFrame:
    # match the few distinct names, not the millions of rows
    names = [s for s in process["signal"].unique() if re.fullmatch(pattern, str(s))]
    return process[process["signal"].isin(names)]


def _pick(proc: pd.DataFrame, warmup_s: float, limit: int, first: Sequence[str] = ()) -> list[str]:
    """The `limit` signals to draw: those in `first`, then the largest excursions from warm-up."""
    if proc.empty:
        return []
    warm = proc[proc["t"] <= warmup_s]
    base = (warm if not warm.empty else proc).groupby("signal")["value"].median()
    excursion = (proc["value"] - proc["signal"].map(base)).abs().groupby(proc["signal"]).max()
    ranked = list(excursion.fillna(0.0).sort_values(ascending=False, kind="stable").index)
    return ([s for s in first if s in ranked] + [s for s in ranked if s not in first])[:limit]


def _wide(proc: pd.DataFrame, signals: Sequence[str], column: str) -> pd.DataFrame:
    """Time x signal for the chosen signals only; the whole table is never pivoted."""
    chosen = proc[proc["signal"].isin(signals)]
    wide = chosen.pivot_table(index="t", columns="signal", values=column, aggfunc="last")
    return wide.iloc[:: max(1, len(wide) // MAX_POINTS)]


def _mark_run(fig: go.Figure, marks: pd.DataFrame, warmup_s: float) -> None:
    """Shade the warm-up and each attack step across every panel, labelled above the plot."""
    band = dict(type="rect", xref="x", yref="paper", y0=0, y1=1, layer="below")
    note = dict(xref="x", yref="paper", yanchor="bottom", showarrow=False)
    top = dict(note, y=1, xanchor="left")
    if warmup_s > 0:
        fig.add_shape(band, x0=0, x1=warmup_s / 3600, fillcolor="#888", opacity=0.12, line_width=0)
        fig.add_annotation(note, x=warmup_s / 7200, y=0, text="warm-up")
    for i, m in enumerate(marks.itertuples()):
        colour, x0, text = OUTCOME_COLOUR[m.outcome], m.t0 / 3600, html.escape(str(m.step_id))
        line = dict(color=colour, width=1.5, dash="dot")
        fig.add_shape(band, x0=x0, x1=m.t1 / 3600, fillcolor=colour, opacity=0.2, line=line)
        # steps are often minutes apart on an hours axis: stagger the labels in four rows
        label = f"<b>{text}</b> {m.outcome}"
        fig.add_annotation(top, x=x0, text=label, font_color=colour, yshift=4 + 16 * (i % 4))


def _alert_traces(alerts: pd.DataFrame, ticks: bool) -> list[go.Scatter]:
    hover = "<b>%{y}</b> %{customdata[0]} at %{x:.3f} h<br>%{customdata[1]}: %{customdata[2]}"
    hover += "<extra></extra>"
    traces = []
    for i, (det, group) in enumerate(alerts.groupby("detector", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        size = group["severity"].map(SEVERITY_SIZE).fillna(9)
        if ticks:
            marker = dict(symbol="line-ns-open", size=14, line_width=2, color=colour)
        else:
            marker = dict(size=size, color=colour, opacity=0.75, line=dict(width=1, color="#333"))
        data = group[["severity", "device", "reason"]]
        xy = dict(x=group["t"] / 3600, y=group["detector"], name=str(det), mode="markers")
        traces.append(go.Scatter(xy, marker=marker, customdata=data, hovertemplate=hover))
    return traces


def physics_figure(
    process: pd.DataFrame,
    truth: pd.DataFrame,
    alerts: pd.DataFrame,
    warmup_s: float = 0.0,
    outside: Mapping[str, float] | None = None,
    not_attempted: Steps = (),
    max_rooms: int = 12,
) -> go.Figure:
    """Rooms, air handlers and tanks over time (hours), with warm-up, attack steps and alerts."""
    outside = outside or {}
    rooms, ahus, tanks = _only(process, ROOM), _only(process, AHU), _only(process, TANK)
    worst = [f"room.{r}.temp_c" for r in sorted(outside, key=lambda r: -outside[r])]
    chosen = _pick(rooms, warmup_s, max_rooms, worst)
    omitted = rooms["signal"].nunique() - len(chosen)
    gap = (rooms["value"] - rooms["reported"]).abs() > SPOOF_C
    lying = set(rooms.loc[gap & rooms["signal"].isin(chosen), "signal"])
    dashed = sorted({s for s in chosen if _label(s) in outside} | lying)
    room_title = "Room temperature (°C" + ("; dashed: as reported)" if dashed else ")")
    if omitted:
        room_title += f": the {len(chosen)} largest excursions, {omitted} rooms omitted"
    panels = {"Alerts": 0.12, room_title: 0.4, "Air handler supply air (°C)": 0.25}
    if not tanks.empty:
        panels["Tank level (m)"] = 0.25
    titles, heights = list(panels), list(panels.values())
    grid = dict(shared_xaxes=True, vertical_spacing=0.05)
    fig = make_subplots(len(panels), 1, subplot_titles=titles, row_heights=heights, **grid)

    def draw(frame: pd.DataFrame, signals: list[str], row: int, dashed: Sequence[str] = ()) -> None:
        value, reported = _wide(frame, signals, "value"), _wide(frame, dashed, "reported")
        for i, s in enumerate(signals):
            colour, name, style = PALETTE[i % len(PALETTE)], _label(s), "solid"
            if s.endswith("setpoint_c"):
                colour, name, style = "#444", f"{name} setpoint", "dashdot"
            common = dict(legendgroup=s, legend=f"legend{row}", row=row, col=1)
            line = dict(color=colour, width=1.8, dash=style)
            fig.add_scatter(x=value.index / 3600, y=value[s], name=name, line=line, **common)
            if s in reported:
                line = dict(color=colour, width=1.2, dash="dash")
                y = reported[s]
                label = f"{name} reported"  # one legend entry per room: the group toggles both
                fig.add_scatter(
                    x=y.index / 3600, y=y, name=label, line=line, showlegend=False, **common
                )

    draw(rooms, chosen, 2, dashed)
    draw(ahus, _pick(ahus, warmup_s, 6), 3)
    if OUTDOOR in set(process["signal"].unique()):
        y = _wide(process, [OUTDOOR], "value")[OUTDOOR]
        where = dict(legend="legend3", row=3, col=1)
        fig.add_scatter(
            x=y.index / 3600, y=y, name="outdoor", line_color="#aaa", line_dash="dot", **where
        )
    if not tanks.empty:
        draw(tanks, _pick(tanks, warmup_s, 6), 4)
    for trace in _alert_traces(alerts, ticks=True):
        fig.add_trace(trace.update(legend="legend1"), row=1, col=1)
    if alerts.empty:
        fig.add_annotation(text="no alerts", xref="x domain", yref="y domain", showarrow=False)
    _mark_run(fig, step_marks(truth, not_attempted), warmup_s)
    for row in range(1, len(panels) + 1):  # one legend beside each panel, not one long list
        top = fig.layout[f"yaxis{row if row > 1 else ''}"].domain[1]
        fig.update_layout(
            {f"legend{row}": dict(y=top, yanchor="top", x=1.01, font_size=11, tracegroupgap=2)}
        )
    fig.update_xaxes(title_text="hours since start", row=len(panels), col=1)
    margin = dict(t=110, r=220, l=60, b=50)
    height = 300 + 260 * (len(panels) - 1)
    return fig.update_layout(height=height, margin=margin, template="plotly_white")


def alert_figure(
    alerts: pd.DataFrame,
    truth: pd.DataFrame,
    not_attempted: Steps = (),
    warmup_s: float = 0.0,
    end_s: float | None = None,
) -> go.Figure:
    """Alerts per detector over time; marker size is severity, hover gives the reason."""
    fig = go.Figure(_alert_traces(alerts, ticks=False))
    if alerts.empty:
        fig.add_annotation(text="no alerts", xref="paper", yref="paper", showarrow=False)
    _mark_run(fig, step_marks(truth, not_attempted), warmup_s)
    if end_s:  # the whole run, so it lines up with the physics above
        fig.update_xaxes(range=[0, end_s / 3600])
    height = 220 + 50 * max(1, alerts["detector"].nunique())
    margin = dict(t=80, r=220, l=60, b=50)
    fig.update_layout(xaxis_title="hours since start", showlegend=False)
    return fig.update_layout(height=height, margin=margin, template="plotly_white")


def _cell(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], empty_text: str) -> str:
    if not rows:
        return f"<p class='muted'>{html.escape(empty_text)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


SCORE_COLUMNS = {  # summary key: (heading, decimals); scored by evidence, late apart
    "recall": ("recall", 2), "late": ("late detections", 0), "precision": ("precision", 2),
    "f1": ("F1", 2), "ttd_median": ("TTD median (s)", 0), "ttd_p95": ("TTD p95 (s)", 0),
    "false_alarms_per_day": ("false alarms/day", 1), "alerts": ("alerts", 0),
    "flow_pr_auc": ("flow PR-AUC", 2), "windowed_recall": ("windowed recall (previous rule)", 2),
    "windowed_precision": ("windowed precision", 2),
}  # fmt: skip


def scores_html(scores: Steps) -> str:
    """The detector score table; a value with nothing to measure shows as a dash."""
    header = ["detector", *(h for h, _ in SCORE_COLUMNS.values()), "steps detected"]
    rows = [
        [f"<b>{_cell(s.get('detector'))}</b>"]
        + [_cell(s.get(k), d) for k, (_, d) in SCORE_COLUMNS.items()]
        + [f"{_cell(s.get('detected'))} / {_cell(s.get('steps'))}"]
        for s in scores
    ]
    return _table(header, rows, "No detector was scored.")


def steps_html(truth: pd.DataFrame, not_attempted: Steps = ()) -> str:
    """The attack steps: what each did, from where to whom, and whether the design stopped it."""
    what = {
        r.step_id: (f"{r.technique} {r.name}", f"{r.attacker} → {r.target}")
        for r in truth.itertuples()
    }
    what |= {
        s.get("step_id"): (f"{s.get('technique', '')} {s.get('name', '')}", "")
        for s in not_attempted
    }
    rows = []
    for m in step_marks(truth, not_attempted).itertuples():
        technique, path = what.get(m.step_id, ("", ""))
        outcome = f"<b style='color:{OUTCOME_COLOUR[m.outcome]}'>{m.outcome}</b>"
        cells = [_cell(technique), f"{m.t0 / 3600:.3f}", _cell(path), outcome, _cell(m.detail)]
        rows.append([f"<b>{_cell(m.step_id)}</b>", *cells])
    header = ["step", "technique", "start (h)", "from → target", "outcome", "detail"]
    return _table(header, rows, "No attack campaign in this scenario.")


def impact_line(impact: Mapping[str, Any]) -> str:
    """One sentence: how far the attacker got and what it cost physically."""
    if not impact:
        return "No impact recorded."
    get = impact.get
    compromised = ", ".join(get("compromised") or []) or "none"
    parts = [
        f"{get('steps_succeeded', 0)} of {get('steps_attempted', 0)} steps succeeded",
        f"{get('steps_blocked', 0)} blocked",
        f"{len(get('steps_not_attempted') or [])} not attempted",
        f"blast radius {get('blast_radius', 0)} ({compromised})",
        f"{get('degree_hours_outside_band', 0):g} °C·h outside band"
        f" in {len(get('rooms_outside_band') or {})} rooms",
    ]
    if get("unsafe_tank_minutes"):
        parts.append(f"{get('unsafe_tank_minutes'):g} unsafe tank-minutes")
    ttpi = get("time_to_physical_impact_s")
    if ttpi is None:
        parts.append("no physical impact")
    else:
        parts.append(f"physical impact {ttpi / 60:.0f} min after the first step")
    ttc = get("time_to_containment_s")
    if ttc is not None:
        parts.append(f"contained {ttc / 60:.0f} min after the first step")
    return " · ".join(parts) + _avoided(get("harm_without_responses"), get("harm_avoided"))


def _avoided(without: Mapping[str, Any] | None, avoided: Mapping[str, Any] | None) -> str:
    """What the responses saved, against the same run (same seed) without them."""
    if not without or not avoided:
        return ""
    units = {
        "degree_hours_outside_band": "°C·h outside band",
        "unsafe_tank_minutes": "unsafe tank-minutes",
        "doors_opened_without_badge": "doors opened without a badge",
    }
    saved = [
        f"{avoided[k]:g} of {without[k]:g} {label}" for k, label in units.items() if without.get(k)
    ]
    return (
        (". Responses avoided " + "; ".join(saved) + " (same run without responses)")
        if saved
        else (". Without responses the harm would have been the same")
    )


CSS = """body{font-family:system-ui,sans-serif;margin:24px 32px;color:#222;max-width:1500px}
table{border-collapse:collapse;margin:8px 0 24px}th{background:#f3f3f3}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left;white-space:nowrap}
td:last-child{white-space:normal}.muted{color:#777}.warn{color:#b00;font-weight:bold}
.impact{background:#f7f7f7;padding:8px 12px;border-left:4px solid #d62728}"""


def render_report(
    summary: Mapping[str, Any], process: pd.DataFrame, truth: pd.DataFrame, alerts: pd.DataFrame
) -> str:
    """The whole report as one HTML page, plotly.js inline: it must work with no network."""
    impact = summary.get("impact") or {}
    skipped, warmup = impact.get("steps_not_attempted") or [], float(summary.get("warmup_s") or 0)
    end = summary.get("simulated_s") or (float(process["t"].max()) if not process.empty else None)
    outside = impact.get("rooms_outside_band")
    physics = physics_figure(process, truth, alerts, warmup, outside, skipped)
    timeline = alert_figure(alerts, truth, skipped, warmup, end)
    status = str(summary.get("status", "unknown"))
    note = ""
    if status != "complete":
        error = html.escape(str(summary.get("error") or "no error recorded"))
        note = (
            f"<p class='warn'>Run {html.escape(status)} ({error}): this is the part that ran.</p>"
        )
    name, design, seed = (summary.get(k, "?") for k in ("scenario", "design", "seed"))
    title = html.escape(f"{name} · {design} · seed {seed}")
    story = html.escape(str(summary.get("story") or "")).strip()

    def div(fig: go.Figure) -> str:
        return fig.to_html(full_html=False, include_plotlyjs=False)

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>twin: {title}</title><style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head><body>
<h1>{title} <small class="muted">status: {html.escape(status)}</small></h1>
{note}<p>{story}</p><p class="impact"><b>Impact:</b> {html.escape(impact_line(impact))}</p>
<h2>Physics</h2>{div(physics)}<h2>Alerts</h2>{div(timeline)}
<h2>Detector scores</h2>{scores_html(summary.get("scores") or [])}
<h2>Attack steps</h2>{steps_html(truth, skipped)}
</body></html>
"""


def _physics_rows(run_dir: Path) -> pd.DataFrame:
    """Only the signals the report draws, filtered while reading: big sites have millions."""
    path = run_dir / "process.parquet"
    if not path.exists():
        return empty(PROCESS_COLUMNS)
    # batch by batch, so memory follows what is kept, not the size of the table
    parts = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=262_144):
        table = pa.Table.from_batches([batch])
        parts.append(table.filter(pc.match_substring_regex(table["signal"], PHYSICS)))
    if not parts:
        return empty(PROCESS_COLUMNS)
    return pa.concat_tables(parts).to_pandas()


def write_report(run_dir: Path) -> Path:
    """Write `run_dir/report.html` from the run's tables and summary; return its path."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    truth, alerts = read_table(run_dir, "truth"), read_table(run_dir, "alerts")
    page = render_report(summary, _physics_rows(run_dir), truth, alerts)
    out, part = run_dir / "report.html", run_dir / "report.html.part"
    part.write_text(page, encoding="utf-8")
    os.replace(part, out)
    return out
