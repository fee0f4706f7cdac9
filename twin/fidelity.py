"""The fidelity report: how far a modelled run's flows and physics are from an emulated run's."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import ScenarioError, TwinError
from twin.facility import Facility
from twin.telemetry import read_table, write_json_atomic

TINY = 1e-12  # both sides below this: nothing to compare (NaN), not a perfect match
MATCH_KEYS = ("scenario", "facility", "design", "seed")  # what must agree between the two runs
# per-device flow metrics: column -> label; all but fc_mix are compared by relative error
METRICS = {
    "flows_per_min": "flows/min",
    "packets_per_min": "packets/min",
    "bytes_per_min": "bytes/min",
    "bytes_per_packet": "bytes/packet",
    "modbus_reads_per_min": "Modbus reads/min",
    "modbus_writes_per_min": "Modbus writes/min",
    "auth_failures": "auth failures",
    "fc_mix": "Modbus fc mix (TVD)",
}
SIDES = ("modelled", "emulated")
SHORT = ("flows", "pkts", "bytes", "B/pkt", "reads", "writes", "auth", "fc mix")  # text columns
TOP_DEVICES, WORST_SIGNALS = 10, 5


@dataclass
class Fidelity:
    """Per-device flow errors, per-signal physics errors, and the headline gaps."""

    devices: pd.DataFrame
    signals: pd.DataFrame
    overall: dict[str, Any]
    traces: pd.DataFrame = field(default_factory=pd.DataFrame)  # worst signals, both sides

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types; NaN (nothing to compare) becomes null."""
        return _plain(
            {
                "overall": self.overall,
                "devices": self.devices.to_dict("records"),
                "signals": self.signals.to_dict("records"),
            }
        )

    def write(self, out_dir: Path) -> list[Path]:
        """fidelity.json, fidelity-devices.csv, fidelity-signals.csv and fidelity.html."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / n for n in ("fidelity.json", "fidelity-devices.csv")]
        paths += [out_dir / n for n in ("fidelity-signals.csv", "fidelity.html")]
        write_json_atomic(paths[0], self.as_dict())
        self.devices.to_csv(paths[1], index=False)
        self.signals.to_csv(paths[2], index=False)
        part = paths[3].with_name(paths[3].name + ".part")
        part.write_text(self.html(), encoding="utf-8")
        part.replace(paths[3])
        return paths

    def text(self) -> str:
        """A compact terminal summary: headline, per-metric errors, worst devices and signals."""
        o = self.overall
        w, pw = o["window"], o["physics_window"]
        backends = {s: o["runs"][s]["backend"] for s in SIDES}
        lines = [
            f"fidelity: {o['scenario']} · {o['design']} · seed {o['seed']} — modelled "
            f"({backends['modelled']}) vs emulated ({backends['emulated']})",
            f"flow gap {_num(o['flow_gap'])} (device mean {_num(o['flow_gap_device_mean'])})   "
            f"physics gap (median nRMSE) {_num(o['physics_gap'])}",
            f"flows compared over {w['start_s']:g}-{w['end_s']:g} s ({w['minutes']:g} min of "
            f"{w['interval_s']:g} s intervals); physics over {_span(pw)}",
            f"devices {len(self.devices)} (only modelled: {_names(o['only_in_modelled'])}; "
            f"only emulated: {_names(o['only_in_emulated'])})",
            "",
        ]
        metrics = [[label, _num(o["metrics"][m])] for m, label in METRICS.items()]
        lines += _grid(["metric (traffic-weighted)", "error"], metrics)
        top = self.devices.head(TOP_DEVICES)
        cols = ["device", "flow gap", *SHORT]
        rows = [
            [str(r["device"]), _num(r["flow_gap"]), *(_num(r[_err(m)]) for m in METRICS)]
            for _, r in top.iterrows()
        ]
        lines += ["", f"top {len(top)} devices by flow gap (relative error per metric)"]
        lines += _grid(cols, rows) if rows else ["  (no devices)"]
        worst = self.signals.dropna(subset=["nrmse"]).head(WORST_SIGNALS)
        rows = [
            [str(r.signal), _num(r.nrmse), _num(r.rmse, 4), _num(r.max_abs, 4), str(r.matched)]
            for r in worst.itertuples()
        ]
        lines += ["", f"worst {len(worst)} signals"]
        lines += _grid(["signal", "nRMSE", "RMSE", "max |diff|", "matched"], rows) or []
        if not rows:
            lines.append("  (no signal in both runs)")
        return "\n".join(lines)

    def html(self) -> str:
        """One self-contained page (plotly.js inline, like the run report)."""
        from plotly.offline import get_plotlyjs

        from twin.report import CSS

        o = self.overall
        title = html.escape(f"fidelity: {o['scenario']} · {o['design']} · seed {o['seed']}")
        metrics = pd.DataFrame(
            {"metric": list(METRICS.values()), "error": [o["metrics"][m] for m in METRICS]}
        )
        figs = [gap_figure(metrics), device_figure(self.devices), trace_figure(self.traces)]
        divs = "".join(f.to_html(full_html=False, include_plotlyjs=False) for f in figs)
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>twin: {title}</title><style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head><body>
<h1>{title}</h1><pre>{html.escape(self.text())}</pre>{divs}
<h2>Devices</h2>{_frame_html(self.devices)}<h2>Signals</h2>{_frame_html(self.signals)}
<h2>As JSON</h2><pre>{html.escape(json.dumps(_plain(o), indent=1))}</pre>
</body></html>
"""


# -- reading and checking the two runs -------------------------------------------------------


def _summary(run: Path, side: str) -> dict[str, Any]:
    path = Path(run) / "summary.json"
    if not path.exists():
        raise TwinError(f"{side} run {run}: no summary.json, so not a finished run directory")
    summary: dict[str, Any] = json.loads(path.read_text())
    if summary.get("status") != "complete":
        why = f" ({summary['error']})" if summary.get("error") else ""
        raise TwinError(
            f"{side} run {run} is {summary.get('status', 'unknown')!r}{why}, not complete"
        )
    missing = [t for t in ("flows", "process") if not (Path(run) / f"{t}.parquet").exists()]
    if missing:
        raise TwinError(f"{side} run {run} is incomplete: no {' or '.join(missing)}.parquet")
    return summary


def _check_same(mod: dict[str, Any], emu: dict[str, Any]) -> None:
    differ = [
        f"{k}: modelled {mod.get(k)!r}, emulated {emu.get(k)!r}"
        for k in MATCH_KEYS
        if mod.get(k) != emu.get(k)
    ]
    if differ:
        raise TwinError(
            "the two runs are not of the same scenario, facility, design and seed, so they "
            "cannot be compared:\n  " + "\n  ".join(differ)
        )


def _facility(summaries: list[dict[str, Any]]) -> Facility | None:
    """The facility of the scenario file the runs name as their source, if it still loads."""
    from twin.scenario import facility_of, load_scenario

    for s in summaries:
        source = Path(str(s.get("source") or ""))
        if not source.name or not source.is_file():
            continue
        try:
            spec = load_scenario(source)
        except (ScenarioError, OSError):
            continue
        if spec.name == s.get("scenario"):
            return Facility.build(facility_of(spec))
    return None


def _step(*times: pd.Series, default: float = 60.0) -> float:
    """The typical step between distinct times (export boundaries, sample times)."""
    for t in times:
        steps = np.diff(np.unique(t.dropna().to_numpy(dtype=float)))
        steps = steps[steps > 1e-9]
        if steps.size:
            return float(np.median(steps))
    return default


# -- flows ------------------------------------------------------------------------------------


NUMERIC = (
    "packets", "packets_rev", "bytes", "bytes_rev",
    "modbus_reads", "modbus_writes", "auth_failures",
)  # fmt: skip


def _clean_flows(flows: pd.DataFrame) -> pd.DataFrame:
    flows = flows.dropna(subset=["src_ip", "dst_ip", "t_export"]).copy()
    for c in NUMERIC:
        flows[c] = pd.to_numeric(flows[c], errors="coerce").fillna(0.0).astype(float)
    flows["modbus_fc_set"] = flows["modbus_fc_set"].fillna("").astype(str)
    return flows


def _flow_span(flows: pd.DataFrame, simulated: float) -> tuple[float, float]:
    if flows.empty:
        return 0.0, simulated
    return max(0.0, float(flows["t_start"].min())), min(simulated, float(flows["t_export"].max()))


def _per_device(flows: pd.DataFrame, names: dict[str, str] | None, minutes: float) -> pd.DataFrame:
    """Per-IP rates over the window, counting each flow for its source and its destination."""
    # a flow to itself (seen in captures of local traffic) counts once
    to_other = flows[flows["dst_ip"] != flows["src_ip"]]
    ends = [flows.assign(ip=flows["src_ip"]), to_other.assign(ip=to_other["dst_ip"])]
    both = pd.concat(ends, ignore_index=True)
    if names is not None:
        both = both[both["ip"].isin(names)]
    both = both.assign(
        pk=both["packets"] + both["packets_rev"], by=both["bytes"] + both["bytes_rev"]
    )
    g = both.groupby("ip")
    out = pd.DataFrame(
        {
            "flows_per_min": g.size() / minutes,
            "packets_per_min": g["pk"].sum() / minutes,
            "bytes_per_min": g["by"].sum() / minutes,
            "modbus_reads_per_min": g["modbus_reads"].sum() / minutes,
            "modbus_writes_per_min": g["modbus_writes"].sum() / minutes,
            "auth_failures": g["auth_failures"].sum(),
        }
    )
    packets = g["pk"].sum()
    out["bytes_per_packet"] = (g["by"].sum() / packets.where(packets > 0)).fillna(0.0)
    out["fc_mix"] = pd.Series(_fc_mix(both), dtype=object).reindex(out.index)
    return out


def _fc_mix(ends: pd.DataFrame) -> dict[str, dict[int, float]]:
    """Per address: the share of (flow, function code) pairs carrying each code."""
    # few distinct fc sets per address: count those, then split each once
    sets = ends.loc[ends["modbus_fc_set"] != ""].groupby(["ip", "modbus_fc_set"]).size()
    pairs: dict[str, dict[int, float]] = {}
    for (ip, fcs), n in sets.items():
        mix = pairs.setdefault(str(ip), {})
        for fc in str(fcs).split(","):
            if fc.strip():
                mix[int(fc)] = mix.get(int(fc), 0.0) + float(n)
    return {ip: {fc: n / sum(mix.values()) for fc, n in mix.items()} for ip, mix in pairs.items()}


def relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / max(|a|, |b|): symmetric, in [0, 1]; NaN where both are zero."""
    a, b = np.nan_to_num(np.asarray(a, float)), np.nan_to_num(np.asarray(b, float))
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > TINY, np.abs(a - b) / scale, np.nan)


def total_variation(p: dict[int, float] | None, q: dict[int, float] | None) -> float:
    """Half the L1 distance between two fc distributions; 1 if only one side has Modbus."""
    p, q = p or {}, q or {}
    if not p or not q:
        return math.nan if not p and not q else 1.0
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _err(metric: str) -> str:
    return "fc_mix_distance" if metric == "fc_mix" else f"{metric}_error"


def _mix_text(mix: Any) -> str:
    if not isinstance(mix, dict) or not mix:
        return ""
    return ",".join(f"{fc}:{share:.4g}" for fc, share in sorted(mix.items()))


def _devices(
    mod: pd.DataFrame, emu: pd.DataFrame, facility: Facility | None, labels: dict[str, str]
) -> pd.DataFrame:
    ips = sorted(set(mod.index) | set(emu.index))
    rates = [m for m in METRICS if m != "fc_mix"]
    sides = {s: f.reindex(ips) for s, f in zip(SIDES, (mod, emu), strict=True)}
    frame = pd.DataFrame({"ip": ips})
    known = facility.by_ip if facility else {}
    frame.insert(0, "device", [known[ip].name if ip in known else labels.get(ip, ip) for ip in ips])
    frame["kind"] = [known[ip].kind if ip in known else "" for ip in ips]
    frame["zone"] = [known[ip].zone if ip in known else "" for ip in ips]
    for s in SIDES:
        frame[f"in_{s}"] = [ip in (mod if s == "modelled" else emu).index for ip in ips]
    for m in rates:
        a = sides["modelled"][m].fillna(0.0).to_numpy(float)
        b = sides["emulated"][m].fillna(0.0).to_numpy(float)
        frame[f"{m}_modelled"], frame[f"{m}_emulated"] = a, b
        frame[_err(m)] = relative_error(a, b)
    pm, qm = sides["modelled"]["fc_mix"].tolist(), sides["emulated"]["fc_mix"].tolist()
    frame["fc_mix_modelled"] = [_mix_text(x) for x in pm]
    frame["fc_mix_emulated"] = [_mix_text(x) for x in qm]
    frame["fc_mix_distance"] = [
        total_variation(p if isinstance(p, dict) else None, q if isinstance(q, dict) else None)
        for p, q in zip(pm, qm, strict=True)
    ]
    errors = frame[[_err(m) for m in METRICS]]
    frame.insert(6, "flow_gap", errors.mean(axis=1, skipna=True))
    weight = (frame["bytes_per_min_modelled"] + frame["bytes_per_min_emulated"]) / 2
    frame.insert(7, "weight", weight)
    frame = frame.sort_values(["flow_gap", "weight"], ascending=False, na_position="last")
    return frame.reset_index(drop=True)


def weighted_error(devices: pd.DataFrame, column: str) -> float | None:
    """Traffic-weighted mean over the devices where the metric has something to compare."""
    has = devices[column].notna()
    if not has.any():
        return None
    errors, weights = devices.loc[has, column], devices.loc[has, "weight"]
    if weights.sum() <= TINY:
        return float(errors.mean())
    return float((errors * weights).sum() / weights.sum())


def _totals(flows: dict[str, pd.DataFrame]) -> dict[str, dict[str, float | None]]:
    def sums(f: pd.DataFrame) -> dict[str, float]:
        return {
            "flows": float(len(f)),
            "packets": float((f["packets"] + f["packets_rev"]).sum()),
            "bytes": float((f["bytes"] + f["bytes_rev"]).sum()),
            "modbus_reads": float(f["modbus_reads"].sum()),
            "modbus_writes": float(f["modbus_writes"].sum()),
            "auth_failures": float(f["auth_failures"].sum()),
        }

    mod, emu = sums(flows["modelled"]), sums(flows["emulated"])
    out: dict[str, dict[str, float | None]] = {}
    for k in mod:
        err = float(relative_error(np.array([mod[k]]), np.array([emu[k]]))[0])
        out[k] = {"modelled": mod[k], "emulated": emu[k], "error": None if math.isnan(err) else err}
    return out


# -- physics ----------------------------------------------------------------------------------


def _clean_process(process: pd.DataFrame) -> pd.DataFrame:
    process = process.dropna(subset=["t", "signal", "value"])
    return process[["t", "signal", "value"]].astype({"t": float, "signal": str, "value": float})


def _physics(
    mod: pd.DataFrame, emu: pd.DataFrame, sim_end: float, step: float
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Per signal: nearest emulated sample within one sample interval of each modelled one."""
    columns = ["signal", "matched", "unmatched", "rmse", "max_abs", "range_modelled", "nrmse"]
    columns += ["mean_modelled", "mean_emulated"]
    info: dict[str, Any] = {"start_s": None, "end_s": None, "sample_interval_s": step}
    names = {"modelled": set(mod["signal"]), "emulated": set(emu["signal"])}
    info["signals_only_in_modelled"] = sorted(names["modelled"] - names["emulated"])
    info["signals_only_in_emulated"] = sorted(names["emulated"] - names["modelled"])
    if mod.empty or emu.empty:
        return pd.DataFrame(columns=columns), pd.DataFrame(), info
    lo = max(float(mod["t"].min()), float(emu["t"].min()), 0.0)
    hi = min(float(mod["t"].max()), float(emu["t"].max()), sim_end)
    info.update(start_s=lo, end_s=hi)
    left = mod[(mod["t"] >= lo) & (mod["t"] <= hi) & mod["signal"].isin(names["emulated"])]
    right = emu[(emu["t"] >= lo - step) & (emu["t"] <= hi + step)].rename(
        columns={"value": "emulated"}
    )
    joined = pd.merge_asof(
        left.sort_values("t", kind="stable").rename(columns={"value": "modelled"}),
        right.sort_values("t", kind="stable"),
        on="t",
        by="signal",
        direction="nearest",
        tolerance=step * (1 + 1e-9),
    )
    diff = joined["emulated"] - joined["modelled"]
    joined = joined.assign(diff=diff, sq=diff**2, abs=diff.abs())
    g = joined.groupby("signal")
    sig = pd.DataFrame(
        {
            "matched": g["diff"].count(),
            "unmatched": g["diff"].size() - g["diff"].count(),
            "rmse": np.sqrt(g["sq"].mean()),
            "max_abs": g["abs"].max(),
            "range_modelled": g["modelled"].max() - g["modelled"].min(),
            "mean_modelled": g["modelled"].mean(),
            "mean_emulated": g["emulated"].mean(),
        }
    )
    # a constant modelled signal has no range: judge it against its size (at least one unit)
    scale = sig["range_modelled"].where(
        sig["range_modelled"] > TINY, sig["mean_modelled"].abs().clip(lower=1.0)
    )
    sig["nrmse"] = sig["rmse"] / scale
    sig = sig.reset_index().sort_values(["nrmse", "signal"], ascending=[False, True])
    sig = sig.reset_index(drop=True)[columns]
    worst = sig.dropna(subset=["nrmse"]).head(WORST_SIGNALS)["signal"]
    traces = joined.loc[joined["signal"].isin(worst), ["t", "signal", "modelled", "emulated"]]
    return sig, traces.reset_index(drop=True), info


# -- the comparison ---------------------------------------------------------------------------


def compare(modelled: Path, emulated: Path, facility: Facility | None = None) -> Fidelity:
    """Compare a modelled and an emulated run of one scenario, design and seed.

    Devices are the facility's (from the runs' scenario file, or `facility`); without a
    facility every address seen is a device, named from the events table where it can be.
    """
    runs = {"modelled": Path(modelled), "emulated": Path(emulated)}
    summaries = {s: _summary(d, s) for s, d in runs.items()}
    _check_same(summaries["modelled"], summaries["emulated"])
    facility = facility or _facility(list(summaries.values()))
    sim_end = min(float(s.get("simulated_s") or math.inf) for s in summaries.values())

    flows = {s: _clean_flows(read_table(d, "flows")) for s, d in runs.items()}
    given = summaries["modelled"].get("export_interval_s")
    interval = float(given) if given else _step(*(flows[s]["t_export"] for s in SIDES))
    spans = [_flow_span(flows[s], sim_end) for s in SIDES]
    lo, hi = max(a for a, _ in spans), min(b for _, b in spans)
    # whole export intervals only: a partial first or last interval would undercount one side
    first, last = math.ceil(lo / interval - 1e-9), math.floor(hi / interval + 1e-9)
    if last <= first:
        raise TwinError(
            f"the two runs share no whole {interval:g} s export interval "
            f"(modelled flows cover {spans[0][0]:g}-{spans[0][1]:g} s, "
            f"emulated {spans[1][0]:g}-{spans[1][1]:g} s)"
        )
    minutes = (last - first) * interval / 60.0
    for s in SIDES:
        k = np.round(flows[s]["t_export"].to_numpy(float) / interval)
        flows[s] = flows[s][(k > first) & (k <= last)]

    labels: dict[str, str] = {}
    if facility is None:
        for d in runs.values():
            events = read_table(d, "events").dropna(subset=["ip", "device"])
            events = events[events["ip"].astype(str) != ""]
            labels.update(zip(events["ip"].astype(str), events["device"].astype(str), strict=True))
    names = {d.ip: d.name for d in facility.devices} if facility else None
    per = {s: _per_device(flows[s], names, minutes) for s in SIDES}
    devices = _devices(per["modelled"], per["emulated"], facility, labels)

    process = {s: _clean_process(read_table(d, "process")) for s, d in runs.items()}
    step = _step(process["modelled"]["t"], process["emulated"]["t"])
    signals, traces, physics = _physics(process["modelled"], process["emulated"], sim_end, step)

    metrics = {m: weighted_error(devices, _err(m)) for m in METRICS}
    known = [v for v in metrics.values() if v is not None]
    nrmse, gaps = signals["nrmse"].dropna(), devices["flow_gap"].dropna()
    outside = None
    if names is not None:
        ends = {s: pd.concat([flows[s]["src_ip"], flows[s]["dst_ip"]]) for s in SIDES}
        outside = {s: int((~ends[s].isin(names)).sum()) for s in SIDES}
    mod = summaries["modelled"]
    overall: dict[str, Any] = {
        **{k: mod.get(k) for k in MATCH_KEYS},
        "runs": {
            s: {"directory": str(runs[s]), "backend": summaries[s].get("backend")} for s in SIDES
        },
        "flow_gap": float(np.mean(known)) if known else None,
        # unweighted: video streams carry most bytes and would hide the Modbus devices
        "flow_gap_device_mean": float(gaps.mean()) if len(gaps) else None,
        "physics_gap": float(nrmse.median()) if len(nrmse) else None,
        "metrics": metrics,
        "window": {
            "start_s": first * interval,
            "end_s": last * interval,
            "minutes": minutes,
            "interval_s": interval,
        },
        "physics_window": {k: physics[k] for k in ("start_s", "end_s", "sample_interval_s")},
        "devices": len(devices),
        "device_names": "facility" if facility else ("events" if labels else "addresses"),
        "only_in_modelled": devices.loc[~devices["in_emulated"], "device"].tolist(),
        "only_in_emulated": devices.loc[~devices["in_modelled"], "device"].tolist(),
        "totals": _totals(flows),
        "flow_ends_outside_facility": outside,
        "signals": len(nrmse),
        "worst_signals": [
            {"signal": r.signal, "nrmse": r.nrmse, "rmse": r.rmse}
            for r in signals.dropna(subset=["nrmse"]).head(WORST_SIGNALS).itertuples()
        ],
        "signals_only_in_modelled": physics["signals_only_in_modelled"],
        "signals_only_in_emulated": physics["signals_only_in_emulated"],
    }
    return Fidelity(devices, signals, _plain(overall), traces)


# -- rendering --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _names(items: list[str], limit: int = 5) -> str:
    more = f" +{len(items) - limit} more" if len(items) > limit else ""
    return (", ".join(items[:limit]) + more) if items else "none"


def _span(window: dict[str, Any]) -> str:
    if window["start_s"] is None:
        return "nothing (a process table is empty)"
    return f"{window['start_s']:g}-{window['end_s']:g} s"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first = f"  {cells[0]:<{widths[0]}}"
        rest = (f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _frame_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='muted'>Nothing to show.</p>"
    return frame.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="—", border=0)


def gap_figure(metrics: pd.DataFrame) -> Any:
    """Overall relative error per flow metric (traffic-weighted over devices)."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=metrics["metric"], y=metrics["error"], marker_color="#1f77b4"))
    fig.update_layout(title="Flow metrics: traffic-weighted error", yaxis_range=[0, 1])
    return fig.update_layout(height=360, template="plotly_white")


def device_figure(devices: pd.DataFrame, limit: int = 40) -> Any:
    """The devices with the largest flow gap."""
    import plotly.graph_objects as go

    top = devices.head(limit)
    fig = go.Figure(go.Bar(x=top["device"], y=top["flow_gap"], marker_color="#d62728"))
    fig.update_layout(title=f"Flow gap per device (top {len(top)})", yaxis_range=[0, 1])
    return fig.update_layout(height=380, template="plotly_white")


def trace_figure(traces: pd.DataFrame) -> Any:
    """The worst signals, modelled (solid) against emulated (dashed), over hours."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    if not traces.empty:
        for i, (name, g) in enumerate(traces.groupby("signal", sort=True)):
            colour = qualitative.D3[i % len(qualitative.D3)]
            x = g["t"] / 3600
            line = dict(color=colour)
            fig.add_scatter(x=x, y=g["modelled"], name=f"{name} modelled", line=line)
            line = dict(color=colour, dash="dash")
            fig.add_scatter(x=x, y=g["emulated"], name=f"{name} emulated", line=line)
    fig.update_layout(title="Worst signals: modelled vs emulated", xaxis_title="hours")
    return fig.update_layout(height=420, template="plotly_white")
