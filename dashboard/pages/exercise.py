"""Exercise page: pick a scenario, watch the plant and the alerts, respond."""

from __future__ import annotations

from typing import Any

import dash
import dash_cytoscape as cyto
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import figures, ids
from dashboard.app import classroom
from dashboard.session import ACTION_LABELS, SPEEDS
from dashboard.widgets import (
    designs_of,
    load_shipped,
    message,
    parse_text,
    parse_upload,
    scenario_options,
    with_design,
)  # fmt: skip
from twin.errors import Problem, ScenarioError, TwinError

dash.register_page(__name__, path="/", name="Exercise", order=0, title="twin: exercise")

DEFAULT = "flagship"


def _field(label: str, child: Any) -> html.Label:
    return html.Label([label, child], className="field")


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            dcc.Store(id=ids.EXERCISE),
            dcc.Store(id=ids.UPLOADED),
            dcc.Store(id=ids.PHYSICS_T),
            dcc.Store(id=ids.MAP_KEY),
            dcc.Interval(id=ids.TICK, interval=1000),
            html.Div(
                [
                    html.H3("Start an exercise", style={"margin": "4px 0 8px"}),
                    html.Div(
                        [
                            _field("Scenario", dcc.Dropdown(scenario_options(), DEFAULT, id=ids.SCENARIO,
                                                           clearable=False, style={"width": "230px"})),
                            _field("or upload a scenario file", dcc.Upload(
                                html.Button("Upload YAML…", className="secondary"), id=ids.UPLOAD,
                                max_size=256 * 1024)),
                            _field("Segmentation design", dcc.Dropdown(id=ids.DESIGN, clearable=False,
                                                                       style={"width": "150px"})),
                            _field("Speed (simulated per real second)", dcc.Dropdown(
                                [{"label": f"{s}x", "value": s} for s in SPEEDS], 60, id=ids.SPEED,
                                clearable=False, style={"width": "120px"})),
                            html.Button("Start exercise", id=ids.START),
                            html.Span("or", className="help"),
                            _field("Team exercise code", dcc.Input(id=ids.JOIN_CODE, placeholder="e.g. K7QF3M",
                                                                   maxLength=12, style={"width": "110px"})),
                            html.Button("Join", id=ids.JOIN, className="secondary"),
                        ],
                        className="row",
                    ),
                    html.Div(id=ids.UPLOAD_STATUS),
                    html.Div(id=ids.SETUP_MESSAGE),
                ],
                id=ids.SETUP,
                className="card",
            ),
            html.Div(
                [
                    html.Div(id=ids.STATUS, className="status"),
                    html.Div(
                        [
                            html.Button("Pause", id=ids.PAUSE, className="secondary"),
                            html.Button("Resume", id=ids.RESUME, className="secondary"),
                            html.Button("Stop and review", id=ids.STOP, className="danger"),
                            dcc.Link("After-action review →", href="/after-action"),
                        ],
                        className="row noprint",
                        style={"marginTop": "6px"},
                    ),
                    html.Div(id=ids.CONTROL_MESSAGE),
                ],
                className="card",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Div(
                                [html.B("Facility map"), html.Span(id=ids.LEGEND, className="legend help")],
                            ),
                            cyto.Cytoscape(
                                id=ids.MAP, elements=[], layout={"name": "preset", "fit": True},
                                stylesheet=figures.MAP_STYLE, style={"height": "440px", "width": "100%"},
                                userZoomingEnabled=True, autoRefreshLayout=True,
                            ),
                            html.Div(
                                [
                                    html.B("Respond"),
                                    html.Div("Click a device on the map (or pick it), choose an action, "
                                             "then confirm.", className="help"),
                                    html.Div(
                                        [
                                            _field("Device or conduit", dcc.Dropdown(id=ids.DEVICE,
                                                                                     style={"width": "240px"})),
                                            _field("Action", dcc.Dropdown(id=ids.ACTION, style={"width": "260px"})),
                                            html.Button("Apply…", id=ids.APPLY),
                                        ],
                                        className="row",
                                    ),
                                    html.Div(
                                        [
                                            html.Span(id=ids.CONFIRM_TEXT),
                                            html.Button("Confirm", id=ids.CONFIRM, style={"marginLeft": "10px"}),
                                            html.Button("Cancel", id=ids.CANCEL, className="secondary",
                                                        style={"marginLeft": "6px"}),
                                        ],
                                        id=ids.CONFIRM_BOX, className="confirm", style={"display": "none"},
                                    ),
                                    html.Div(id=ids.ACTION_MESSAGE),
                                    html.Div(id=ids.ACTIONS),
                                ],
                                className="noprint",
                                style={"marginTop": "8px"},
                            ),
                        ],
                        className="card col",
                    ),
                    html.Div(
                        [
                            html.B("Alerts (newest first; repeats within a minute merged)"),
                            html.Div(id=ids.FEED, className="feed"),
                            html.Div(id=ids.HINTS),
                            dcc.Graph(id=ids.PHYSICS, config={"displaylogo": False}),
                        ],
                        className="card col",
                    ),
                ],
                className="row",
                style={"alignItems": "flex-start"},
            ),
        ]
    )  # fmt: skip


@callback(
    Output(ids.UPLOADED, "data"),
    Output(ids.UPLOAD_STATUS, "children"),
    Input(ids.UPLOAD, "contents"),
    State(ids.UPLOAD, "filename"),
    prevent_initial_call=True,
)
def uploaded(contents: Any, filename: Any) -> tuple[Any, Any]:
    spec, text, problems = parse_upload(contents)
    name = str(filename or "upload")[:80]
    if spec is None:
        return None, html.Div(
            [message(f"{name}: {len(problems)} problem(s) found")]
            + [html.Div(p, className="message error") for p in problems[:30]]
        )
    return {"text": text, "name": name}, message(
        f"{name}: ok ({spec.name}); it will be used when you start", ok=True
    )


@callback(
    Output(ids.DESIGN, "options"),
    Output(ids.DESIGN, "value"),
    Input(ids.SCENARIO, "value"),
    Input(ids.UPLOADED, "data"),
)
def designs(name: Any, upload: Any) -> tuple[Any, Any]:
    try:
        spec = _chosen(name, upload, None)
    except (TwinError, ValueError):
        return [], None
    return designs_of(spec), spec.design


def _chosen(name: Any, upload: Any, design: Any) -> Any:
    if isinstance(upload, dict) and isinstance(upload.get("text"), str):
        spec, _, problems = parse_text(upload["text"])
        if spec is None:
            raise ScenarioError([Problem("", p) for p in problems or ["invalid scenario"]])
        return with_design(spec, design)
    return load_shipped(name, design)


@callback(
    Output(ids.EXERCISE, "data"),
    Output(ids.SETUP_MESSAGE, "children"),
    Output(ids.UPLOADED, "data", allow_duplicate=True),
    Input(ids.START, "n_clicks"),
    Input(ids.JOIN, "n_clicks"),
    Input(ids.CLIENT, "data"),
    State(ids.SCENARIO, "value"),
    State(ids.UPLOADED, "data"),
    State(ids.DESIGN, "value"),
    State(ids.SPEED, "value"),
    State(ids.JOIN_CODE, "value"),
    prevent_initial_call="initial_duplicate",
)
def begin(_s: Any, _j: Any, client: Any, name: Any, upload: Any, design: Any, speed: Any,
          code: Any) -> tuple[Any, Any, Any]:  # fmt: skip
    room = classroom()
    try:
        if ctx.triggered_id == ids.START:
            spec = _chosen(name, upload, design)
            source = upload["name"] if isinstance(upload, dict) else f"scenarios/{name}.yaml"
            r = room.open(client, spec, speed, team=False, source=source)
            return (
                r.exercise.code,
                message(f"exercise {r.exercise.code} started: warming up", ok=True),
                None,
            )
        if ctx.triggered_id == ids.JOIN:
            r = room.join(client, code)
            return (
                r.exercise.code,
                message(f"joined team exercise {r.exercise.code}", ok=True),
                no_update,
            )
        if client is None:
            return no_update, no_update, no_update
        mine = room.mine(client)  # a refresh finds this browser's exercise again
        return (mine.exercise.code if mine else None), no_update, no_update
    except ScenarioError as exc:
        return (
            no_update,
            html.Div([message(str(p)) for p in exc.problems] or message("invalid scenario")),
            no_update,
        )
    except (TwinError, ValueError) as exc:
        return no_update, message(str(exc)), no_update


@callback(
    Output(ids.CONTROL_MESSAGE, "children"),
    Input(ids.PAUSE, "n_clicks"),
    Input(ids.RESUME, "n_clicks"),
    Input(ids.STOP, "n_clicks"),
    State(ids.CLIENT, "data"),
    State(ids.EXERCISE, "data"),
    prevent_initial_call=True,
)
def control(_p: Any, _r: Any, _s: Any, client: Any, code: Any) -> Any:
    what = {ids.PAUSE: "pause", ids.RESUME: "resume", ids.STOP: "stop"}.get(str(ctx.triggered_id))
    if what is None:
        return no_update
    try:
        classroom().control(client, code, what)
    except TwinError as exc:
        return message(str(exc))
    if what == "stop":
        return html.Div(
            [
                message("exercise stopped: ", ok=True),
                dcc.Link("read your after-action review", href="/after-action"),
            ]
        )
    return message(f"{what}d", ok=True)


@callback(
    Output(ids.STATUS, "children"),
    Output(ids.MAP, "elements"),
    Output(ids.FEED, "children"),
    Output(ids.ACTIONS, "children"),
    Output(ids.HINTS, "children"),
    Output(ids.PHYSICS, "figure"),
    Output(ids.PHYSICS_T, "data"),
    Output(ids.LEGEND, "children"),
    Output(ids.MAP_KEY, "data"),
    Input(ids.TICK, "n_intervals"),
    Input(ids.EXERCISE, "data"),
    State(ids.CLIENT, "data"),
    State(ids.PHYSICS_T, "data"),
    State(ids.MAP_KEY, "data"),
)
def tick(_n: Any, code: Any, client: Any, shown_t: Any, shown_map: Any) -> tuple[Any, ...]:
    if not code:
        idle = html.Span(
            "No exercise yet: pick a scenario and press Start, or join a team exercise with its code."
        )
        return idle, [], "", "", "", no_update, None, no_update, None
    room = classroom()
    try:
        v = room.view(client, code)
        site = room.room(client, code).exercise.info()["site"]
    except TwinError as exc:
        return message(str(exc)), [], "", "", "", no_update, None, no_update, None
    trainer = v["role"] == "trainer"
    status = _status(v)
    elements: Any = figures.map_elements(site, v, trainer=trainer)
    key = f"{code}:" + ",".join(f"{e['data']['id']}={e.get('classes', '')}" for e in elements)
    key = str(hash(key))
    if key == shown_map:
        elements = no_update
    feed = _feed(v)
    actions = _actions(v)
    hints = [html.Div(f"Hint from the trainer: {h['text']}", className="hint") for h in v["hints"]]
    fig: Any
    t: Any
    if shown_t == v["t"] and v["history"]:
        fig, t = no_update, no_update
    else:
        fig, t = figures.physics_figure(v["history"], v["bands"], v["warmup"]), v["t"]
    kinds = ("normal", "alerting", "quarantined") + (("compromised",) if trainer else ())
    legend = [
        html.Span([html.Span(className="dot", style={"background": figures.COLOURS[k]}), k])
        for k in kinds
    ]
    return status, elements, feed, actions, hints, fig, t, legend, key


def _status(v: dict[str, Any]) -> Any:
    state = v["state"]
    if state == "warming":
        what = f"warming up: the detectors learn normal traffic ({v['warm_progress']:.0%})"
    elif state == "failed":
        what = f"failed: {v['error']}"
    else:
        what = state
    total = v["duration"] - v["warmup"]
    return html.Div([
        html.B(f"{v['scenario']} "), f"on the {v['design']} design · exercise {v['code']}"
        + (" (team)" if v["team"] else "") + f" · {what} · ",
        html.B(f"{figures.clock(v['t'], v['warmup'])}"), f" of {figures.clock(total + v['warmup'], v['warmup'])}",
        f" at {v['speed']:g}x",
        html.Div(v["story"] or "", className="help"),
        html.Div("Your job: watch the alerts and the plant; when a device misbehaves, pick it on the map, "
                 "respond (quarantine it, restore setpoints, ...), then Stop and review for your score.",
                 className="help", style={"fontWeight": "600", "marginTop": "4px"}),
    ])  # fmt: skip


def _feed(v: dict[str, Any]) -> Any:
    if not v["feed"]:
        return html.Div(
            "No alerts yet. They appear here as the detectors raise them.", className="help"
        )
    rows = [
        html.Tr([
            html.Td(figures.clock(a["t_last"], v["warmup"])), html.Td(a["device"]), html.Td(a["detector"]),
            html.Td(a["severity"], className=f"sev-{a['severity']}"), html.Td(a["technique"]),
            html.Td(a["reason"] + (f" (x{a['count']})" if a["count"] > 1 else "")),
        ])
        for a in v["feed"]
    ]  # fmt: skip
    head = html.Tr(
        [html.Th(c) for c in ("time", "device", "detector", "severity", "ATT&CK", "why")]
    )
    return html.Table([html.Thead(head), html.Tbody(rows)], className="simple")


def _actions(v: dict[str, Any]) -> Any:
    if not v["requests"]:
        return ""
    items = [
        html.Li([f"{ACTION_LABELS.get(r['kind'], r['kind'])} → {r['target']}: ",
                 html.Span(r["status"], className=r["status"]),
                 (f" at {figures.clock(r['t'], v['warmup'])}: {r['detail']}" if r["t"] is not None else "")])
        for r in reversed(v["requests"][-8:])
    ]  # fmt: skip
    return html.Div([html.B("Actions"), html.Ul(items, style={"fontSize": "12px"})])


@callback(
    Output(ids.DEVICE, "options"),
    Input(ids.EXERCISE, "data"),
    State(ids.CLIENT, "data"),
)
def targets(code: Any, client: Any) -> Any:
    if not code:
        return []
    try:
        site = classroom().room(client, code).exercise.info()["site"]
    except TwinError:
        return []
    return [{"label": f"{d['name']} ({d['kind']}, {d['zone']})", "value": d["name"]} for d in site["devices"]] + [
        {"label": f"conduit {c['name']}", "value": f"conduit:{c['name']}"} for c in site["conduits"]
    ]  # fmt: skip


@callback(Output(ids.DEVICE, "value"), Input(ids.MAP, "tapNodeData"), prevent_initial_call=True)
def tapped(node: Any) -> Any:
    if not isinstance(node, dict) or str(node.get("id", "")).startswith("zone:"):
        return no_update
    return node.get("id")


@callback(
    Output(ids.ACTION, "options"),
    Output(ids.ACTION, "value"),
    Input(ids.DEVICE, "value"),
    State(ids.EXERCISE, "data"),
    State(ids.CLIENT, "data"),
)
def applicable(target: Any, code: Any, client: Any) -> tuple[Any, Any]:
    if not isinstance(target, str) or not code:
        return [], None
    if target.startswith("conduit:"):
        kinds = ["block_conduit"]
    else:
        try:
            kinds = classroom().room(client, code).exercise.info()["actions"].get(target, [])
        except TwinError:
            return [], None
    return [{"label": ACTION_LABELS[k], "value": k} for k in kinds], kinds[0] if kinds else None


@callback(
    Output(ids.CONFIRM_BOX, "style"),
    Output(ids.CONFIRM_TEXT, "children"),
    Output(ids.ACTION_MESSAGE, "children"),
    Input(ids.APPLY, "n_clicks"),
    Input(ids.CONFIRM, "n_clicks"),
    Input(ids.CANCEL, "n_clicks"),
    State(ids.DEVICE, "value"),
    State(ids.ACTION, "value"),
    State(ids.CLIENT, "data"),
    State(ids.EXERCISE, "data"),
    prevent_initial_call=True,
)
def respond(
    _a: Any, _c: Any, _x: Any, target: Any, kind: Any, client: Any, code: Any
) -> tuple[Any, Any, Any]:
    hidden = {"display": "none"}
    if ctx.triggered_id == ids.CANCEL:
        return hidden, "", ""
    if not isinstance(target, str) or not isinstance(kind, str):
        return hidden, "", message("choose a device (or conduit) and an action first")
    name = target.removeprefix("conduit:")
    if ctx.triggered_id == ids.APPLY:
        return {"display": "block"}, f"{ACTION_LABELS.get(kind, kind)} on {name}?", ""
    try:
        classroom().act(client, code, kind, name)
    except TwinError as exc:
        return hidden, "", message(f"refused: {exc}")
    return (
        hidden,
        "",
        message(
            f"{ACTION_LABELS.get(kind, kind)} on {name}: pending, applied at the next step", ok=True
        ),
    )
