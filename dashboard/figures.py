"""Pure functions from an exercise's tables to plotly figures and map elements (no Dash state)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin.facility import Facility
from twin.network.policy import Policy

COLOURS = {
    "normal": "#5b8def",
    "alerting": "#f0a202",
    "quarantined": "#8c8c8c",
    "compromised": "#d7263d",
}
# ATT&CK for ICS tactics, in kill-chain order, and where the library's techniques sit
TACTICS = (
    "Initial Access", "Discovery", "Lateral Movement", "Collection", "Persistence",
    "Evasion", "Inhibit Response Function", "Impair Process Control", "Impact",
)  # fmt: skip
TECHNIQUE_TACTIC = {
    "T0883": ("Internet Accessible Device", "Initial Access"),
    "T0866": ("Exploitation of Remote Services", "Initial Access"),
    "T0848": ("Rogue Master", "Initial Access"),
    "T0847": ("Replication Through Removable Media", "Initial Access"),
    "T0812": ("Default Credentials", "Lateral Movement"),
    "T1110": ("Brute Force (Enterprise)", "Lateral Movement"),
    "T0886": ("Remote Services", "Lateral Movement"),
    "T0859": ("Valid Accounts", "Lateral Movement"),
    "T0846": ("Remote System Discovery", "Discovery"),
    "T0888": ("Remote System Information Discovery", "Discovery"),
    "T0842": ("Network Sniffing", "Discovery"),
    "T0802": ("Automated Collection", "Collection"),
    "T0882": ("Theft of Operational Information", "Impact"),
    "T0839": ("Module Firmware", "Persistence"),
    "T0857": ("System Firmware", "Persistence"),
    "T0856": ("Spoof Reporting Message", "Evasion"),
    "T0878": ("Alarm Suppression", "Inhibit Response Function"),
    "T0814": ("Denial of Service", "Inhibit Response Function"),
    "T0836": ("Modify Parameter", "Impair Process Control"),
    "T0855": ("Unauthorized Command Message", "Impair Process Control"),
    "T0869": ("Standard Application Layer Protocol", "Impair Process Control"),
    "T0831": ("Manipulation of Control", "Impact"),
}


def clock(t: float, warmup: float) -> str:
    """Exercise time: hours:minutes since the warm-up ended."""
    s = max(0.0, t - warmup)
    return f"{int(s // 3600)}:{int(s % 3600 // 60):02d}"


# -- the facility map ----------------------------------------------------------------------


def site_of(facility: Facility, policy: Policy) -> dict[str, Any]:
    """The facility as plain data for the map: zones, devices, conduits."""
    return {
        "zones": [{"name": z.name, "purpose": z.purpose} for z in facility.zones.values()],
        "devices": [
            {"name": d.name, "zone": d.zone, "kind": d.kind, "ip": d.ip} for d in facility.devices
        ],
        "conduits": [
            {"name": c.name, "src": sorted(c.src | c.src_zones), "dst": sorted(c.dst | c.dst_zones)}
            for c in policy.conduits
        ],
    }


def map_elements(
    site: dict[str, Any], state: dict[str, Any], *, trainer: bool
) -> list[dict[str, Any]]:
    """Cytoscape elements: zones as compound nodes, devices inside, conduits as edges.

    A device's class is its state: compromised (trainer only) > quarantined > alerting > normal.
    """
    compromised = set(state.get("compromised", ())) if trainer else set()
    quarantined = set(state.get("quarantined", ()))
    alerting = set(state.get("alerting", ()))
    blocked = set(state.get("blocked", ()))
    els: list[dict[str, Any]] = []
    per_row, zones_per_row = 3, 3
    zones = site["zones"]
    members: dict[str, list[dict[str, Any]]] = {z["name"]: [] for z in zones}
    for d in site["devices"]:
        members.setdefault(d["zone"], []).append(d)
    # zones on a grid, each as tall as its devices need, so the map fits a card
    origin: dict[str, tuple[float, float]] = {}
    y, row_h = 0.0, 0.0
    for i, zname in enumerate(members):
        if i % zones_per_row == 0 and i:
            y += row_h + 90
            row_h = 0.0
        origin[zname] = ((i % zones_per_row) * (per_row * 90 + 70), y)
        row_h = max(row_h, ((len(members[zname]) - 1) // per_row) * 70)
    for z in zones:
        els.append({"data": {"id": f"zone:{z['name']}", "label": f"{z['name']} ({z['purpose']})"},
                    "classes": "zone"})  # fmt: skip
    names = {d["name"] for d in site["devices"]}
    for zname, ds in members.items():
        zx, zy = origin[zname]
        for i, d in enumerate(ds):
            n = d["name"]
            cls = (
                "compromised" if n in compromised
                else "quarantined" if n in quarantined
                else "alerting" if n in alerting
                else "normal"
            )  # fmt: skip
            els.append({
                "data": {"id": n, "label": n, "parent": f"zone:{zname}", "kind": d["kind"], "ip": d["ip"]},
                "position": {"x": zx + (i % per_row) * 90, "y": zy + (i // per_row) * 70},
                "classes": cls,
            })  # fmt: skip
    for c in site["conduits"]:
        for s in c["src"][:6]:
            for t in c["dst"][:6]:
                src = s if s in names else f"zone:{s}"
                dst = t if t in names else f"zone:{t}"
                els.append({
                    "data": {"id": f"{c['name']}:{s}->{t}", "source": src, "target": dst, "label": c["name"]},
                    "classes": "blocked" if c["name"] in blocked else "conduit",
                })  # fmt: skip
    return els


MAP_STYLE = [
    {"selector": "node", "style": {"label": "data(label)", "font-size": 14, "text-valign": "bottom",
                                   "text-margin-y": 3, "width": 30, "height": 30}},
    {"selector": ".zone", "style": {"background-color": "#eef2f7", "border-color": "#9aa7b8",
                                    "border-width": 1, "text-valign": "top", "font-size": 15,
                                    "font-weight": "bold", "shape": "round-rectangle"}},
    {"selector": ".normal", "style": {"background-color": COLOURS["normal"]}},
    {"selector": ".alerting", "style": {"background-color": COLOURS["alerting"], "border-width": 3,
                                        "border-color": "#b36b00"}},
    {"selector": ".quarantined", "style": {"background-color": COLOURS["quarantined"],
                                           "shape": "square", "border-width": 3,
                                           "border-color": "#333"}},
    {"selector": ".compromised", "style": {"background-color": COLOURS["compromised"],
                                           "shape": "diamond"}},
    {"selector": "edge", "style": {"width": 1.2, "line-color": "#b8c2cf", "curve-style": "bezier",
                                   "target-arrow-shape": "triangle",
                                   "target-arrow-color": "#b8c2cf"}},
    {"selector": ".blocked", "style": {"line-color": "#d7263d", "line-style": "dashed",
                                       "target-arrow-color": "#d7263d"}},
    {"selector": ":selected", "style": {"border-width": 4, "border-color": "#222"}},
]  # fmt: skip


# -- live physics --------------------------------------------------------------------------


def physics_figure(
    history: list[tuple[float, dict[str, float]]],
    bands: dict[str, tuple[float, float]],
    warmup: float,
) -> dict[str, Any]:
    """Room temperatures against their comfort/safety bands, tank levels, doors and alarms.

    A plain figure dict: it is rebuilt every second for every session, and building it
    through plotly's validating classes costs ~30x more.
    """
    data: list[dict[str, Any]] = []

    def line(x: list[float], y: list[Any], name: str, axis: int, **style: Any) -> None:
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name,
                     "xaxis": "x", "yaxis": f"y{axis if axis > 1 else ''}", **style})  # fmt: skip

    if history:
        x = [(t - warmup) / 60.0 for t, _ in history]
        ends = [x[0], x[-1]]
        names = sorted({n for _, v in history for n in v})
        rooms = [n for n in names if n.endswith(".temp_c")]
        hot = _hottest(history, rooms, bands)
        for n in rooms:
            line(x, [v.get(n) for _, v in history], n.split(".")[1], 1,
                 line={"width": 2.5 if n in hot else 1}, opacity=1.0 if n in hot else 0.45)  # fmt: skip
        for n in hot:
            hi = bands.get(n, (None, None))[1]
            if hi is not None:
                line(
                    ends,
                    [hi, hi],
                    f"{n.split('.')[1]} upper band",
                    1,
                    line={"dash": "dash", "color": "#d7263d"},
                )
        for n in (n for n in names if n.endswith(".level_m")):
            line(x, [v.get(n) for _, v in history], n.split(".")[1], 2)
            lo, hi = bands.get(n, (None, None))
            if lo is not None and hi is not None:
                for b in (lo, hi):
                    line(ends, [b, b], f"{n.split('.')[1]} safe band", 2, showlegend=False,
                         line={"dash": "dot", "color": "#d7263d", "width": 1})  # fmt: skip
        opened = [sum(v.get(n, 0.0) for n in names if n.endswith(".open")) for _, v in history]
        alarms = [sum(v.get(n, 0.0) for n in names if n.endswith(".alarm")) for _, v in history]
        line(x, opened, "doors open", 3, line={"shape": "hv"})
        line(x, alarms, "alarms", 3, line={"shape": "hv", "color": "#d7263d"})
    titles = ("room temperature (°C) against its band", "tank level (m) against its safe band",
              "doors open / alarms raised")  # fmt: skip
    domains = ((0.5, 1.0), (0.25, 0.44), (0.0, 0.19))
    layout: dict[str, Any] = {
        "height": 520, "margin": {"l": 40, "r": 10, "t": 30, "b": 40}, "uirevision": "physics",
        "legend": {"font": {"size": 9}}, "template": _TEMPLATE,
        "xaxis": {"anchor": "y3", "title": {"text": "exercise time (min)"}},
        "annotations": [
            {"text": t, "x": 0.5, "y": d[1], "xref": "paper", "yref": "paper", "xanchor": "center",
             "yanchor": "bottom", "showarrow": False, "font": {"size": 13}}
            for t, d in zip(titles, domains, strict=True)
        ],
    }  # fmt: skip
    for i, d in enumerate(domains, 1):
        layout[f"yaxis{i if i > 1 else ''}"] = {"domain": list(d), "anchor": "x"}
    return {"data": data, "layout": layout}


_TEMPLATE = {"layout": {"plot_bgcolor": "white", "paper_bgcolor": "white",
                        "xaxis": {"gridcolor": "#EBF0F8", "zeroline": False},
                        "yaxis": {"gridcolor": "#EBF0F8", "zeroline": False}}}  # fmt: skip


def _hottest(history: list[tuple[float, dict[str, float]]], rooms: list[str],
             bands: dict[str, tuple[float, float]], n: int = 2) -> list[str]:  # fmt: skip
    """The rooms closest to (or furthest over) their upper band: those worth watching."""
    last = history[-1][1]
    margin = {r: last.get(r, 0.0) - bands.get(r, (0.0, 1e9))[1] for r in rooms}
    return sorted(rooms, key=lambda r: -margin[r])[:n]


# -- after-action ----------------------------------------------------------------------------


def timeline_figure(log: list[dict[str, Any]], history: list[tuple[float, dict[str, float]]],
                    warmup: float) -> go.Figure:  # fmt: skip
    """One timeline: attack steps, alerts, actions, hints, and the hottest room's temperature."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06
    )
    m = lambda t: (float(t) - warmup) / 60.0  # noqa: E731
    lanes = {"attack step": 4, "alert": 3, "action": 2, "hint": 1}
    steps = [e for e in log if e.get("kind") == "step"]
    for e in steps:
        colour = "#d7263d" if e.get("succeeded") else "#8c8c8c"
        fig.add_scatter(x=[m(e["t_start"]), max(m(e["t_end"]), m(e["t_start"]) + 0.5)], y=[4, 4],
                        mode="lines+markers", line={"width": 10, "color": colour}, showlegend=False,
                        hovertext=f"{e['step_id']} {e['technique']} -> {e['target']}: "
                                  f"{'succeeded' if e.get('succeeded') else e.get('blocked_by') or 'failed'}",
                        hoverinfo="text", row=1, col=1)  # fmt: skip
    for kind, lane, symbol, colour in (("alert", 3, "triangle-up", "#f0a202"),
                                       ("action", 2, "square", "#2a9d8f"), ("hint", 1, "star", "#6a4c93")):  # fmt: skip
        es = [e for e in log if e.get("kind") == kind]
        if es:
            fig.add_scatter(
                x=[m(e["t"]) for e in es], y=[lane] * len(es), mode="markers", name=kind,
                marker={"symbol": symbol, "size": 11, "color": colour},
                hovertext=[_what(e) for e in es], hoverinfo="text", row=1, col=1,
            )  # fmt: skip
    fig.update_yaxes(
        tickvals=list(lanes.values()), ticktext=list(lanes), range=[0.5, 4.5], row=1, col=1
    )
    if history:
        rooms = sorted({n for _, v in history for n in v if n.endswith(".temp_c")})
        hottest = max(rooms, key=lambda r: max(v.get(r, -1e9) for _, v in history), default=None)
        if hottest:
            fig.add_scatter(x=[m(t) for t, _ in history], y=[v.get(hottest) for _, v in history],
                            name=f"{hottest.split('.')[1]} °C", mode="lines", row=2, col=1)  # fmt: skip
    fig.update_xaxes(title_text="exercise time (min)", row=2, col=1)
    fig.update_layout(
        height=420, margin={"l": 80, "r": 10, "t": 20, "b": 40}, template="plotly_white"
    )
    return fig


def _what(e: dict[str, Any]) -> str:
    if e["kind"] == "alert":
        return f"{e['detector']} {e['severity']}: {e['device']} {e['technique']}"
    if e["kind"] == "action":
        return f"{e['action']} {e['target']}: {e['status']}"
    return str(e.get("text", ""))


def matrix_figure(log: list[dict[str, Any]]) -> go.Figure:
    """ATT&CK for ICS techniques exercised, by tactic: attempted, succeeded, detected."""
    steps = [e for e in log if e.get("kind") == "step"]
    alerts = {e["technique"] for e in log if e.get("kind") == "alert"}
    cells: dict[tuple[str, str], str] = {}
    for e in steps:
        tid = str(e["technique"])
        name, tactic = TECHNIQUE_TACTIC.get(tid, (tid, "Impact"))
        label = f"{tid} {name}"
        status = "succeeded" if e.get("succeeded") else "blocked"
        if tid in alerts:
            status += ", alerted"
        cells[(tactic, label)] = status
    fig = go.Figure()
    tactics = [t for t in TACTICS if any(k[0] == t for k in cells)] or ["(no attack step ran)"]
    for i, tactic in enumerate(tactics):
        techs = sorted(label for (t, label) in cells if t == tactic)
        for j, label in enumerate(techs):
            status = cells[(tactic, label)]
            colour = "#d7263d" if status.startswith("succeeded") else "#2a9d8f"
            fig.add_shape(type="rect", x0=i, x1=i + 0.95, y0=-j - 0.9, y1=-j, fillcolor=colour,
                          opacity=0.85 if "alerted" in status else 0.45, line={"width": 0})  # fmt: skip
            fig.add_annotation(x=i + 0.475, y=-j - 0.45, text=f"{label}<br><i>{status}</i>",
                               showarrow=False, font={"size": 10, "color": "white"})  # fmt: skip
    fig.update_xaxes(tickvals=[i + 0.475 for i in range(len(tactics))], ticktext=tactics, side="top",
                     range=[0, len(tactics)], showgrid=False)  # fmt: skip
    depth = max([sum(1 for k in cells if k[0] == t) for t in tactics] + [1])
    fig.update_yaxes(visible=False, range=[-depth - 0.1, 0.1])
    fig.update_layout(height=110 + 70 * depth, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      template="plotly_white", plot_bgcolor="white")  # fmt: skip
    return fig


# -- detector lab and what-if ---------------------------------------------------------------


def leaderboard_figure(board: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for col in ("recall", "precision", "f1"):
        if col in board:
            fig.add_bar(x=board["detector"], y=board[col], name=col)
    fig.update_layout(barmode="group", height=320, template="plotly_white", yaxis={"range": [0, 1]},
                      title="event-level recall, precision and F1 (pooled)", margin={"t": 40})  # fmt: skip
    return fig


def per_scenario_figure(per_run: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    if {"scenario", "detector", "recall"} <= set(per_run.columns):
        data = per_run[~per_run["attack_free"]] if "attack_free" in per_run else per_run
        grid = data.pivot_table(
            index="detector", columns="scenario", values="recall", aggfunc="mean"
        )
        fig.add_heatmap(z=grid.to_numpy(), x=list(grid.columns), y=list(grid.index), zmin=0, zmax=1,
                        colorscale="RdYlGn", text=grid.round(2).to_numpy(), texttemplate="%{text}")  # fmt: skip
    fig.update_layout(
        height=320, template="plotly_white", title="recall per scenario", margin={"t": 40}
    )
    return fig


STUDY_OUTCOMES = (
    "blast_radius", "steps_succeeded", "steps_blocked_by_design", "time_to_compromise_s",
    "time_to_detect_s", "time_to_contain_s", "degree_hours_outside_band", "harm",
)  # fmt: skip


def study_figure(results: pd.DataFrame) -> go.Figure:
    """Designs side by side, one small chart per outcome (mean over the study's runs)."""
    key = next((c for c in ("design", "designs", "variant", "name") if c in results.columns), None)
    numeric = set(results.select_dtypes("number").columns)
    outcomes = [c for c in STUDY_OUTCOMES if c in numeric] or sorted(numeric - {"seed", "sample"})[
        :6
    ]
    outcomes = outcomes[:6]
    if key is None or not outcomes:
        return go.Figure(layout={"height": 200, "template": "plotly_white",
                                 "title": "no design column or outcomes in this table"})  # fmt: skip
    means = results.groupby(key)[outcomes].mean()
    fig = make_subplots(
        rows=1, cols=len(outcomes), subplot_titles=[c.replace("_", " ") for c in outcomes]
    )
    for i, col in enumerate(outcomes, 1):
        fig.add_bar(
            x=[str(d) for d in means.index], y=means[col], name=col, row=1, col=i, showlegend=False
        )
    fig.update_layout(height=340, template="plotly_white", margin={"t": 60},
                      title=f"mean outcome per {key} over {len(results)} runs")  # fmt: skip
    return fig
