"""Trainer page: run a team exercise, see the attack as it really goes, inject, hint, pause."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import figures, ids
from dashboard.app import classroom
from dashboard.session import SPEEDS
from dashboard.widgets import designs_of, load_shipped, message, scenario_options, table
from twin.errors import ScenarioError, TwinError

dash.register_page(__name__, path="/trainer", name="Trainer", order=1, title="twin: trainer")


def _field(label: str, child: Any) -> html.Label:
    return html.Label([label, child], className="field")


def _techniques() -> list[dict[str, str]]:
    from attacks import TECHNIQUES

    return [{"label": f"{n} ({t.technique_id})", "value": n} for n, t in sorted(TECHNIQUES.items())]


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id=ids.TRAINER_TICK, interval=1000),
            html.Div(
                [
                    html.H3("Trainer", style={"margin": "4px 0"}),
                    html.Div("Enter the trainer token printed by `twin dashboard` when it started.", className="help"),
                    html.Div([_field("Trainer token", dcc.Input(id=ids.TOKEN, type="password", style={"width": "220px"})),
                              html.Button("Unlock", id=ids.BECOME_TRAINER)], className="row"),
                    html.Div(id=ids.TRAINER_MESSAGE),
                ],
                className="card",
            ),
            html.Div(
                [
                    html.B("Team exercise"),
                    html.Div("Start one, then give the code to the trainees: they join it on the Exercise page. "
                             "Your own Exercise page shows its map with the compromised devices marked.",
                             className="help"),
                    html.Div([
                        _field("Scenario", dcc.Dropdown(scenario_options(), "flagship", id=ids.TEAM_SCENARIO,
                                                       clearable=False, style={"width": "230px"})),
                        _field("Design", dcc.Dropdown(id=ids.TEAM_DESIGN, clearable=False, style={"width": "140px"})),
                        _field("Speed", dcc.Dropdown([{"label": f"{s}x", "value": s} for s in SPEEDS], 60,
                                                     id=ids.TEAM_SPEED, clearable=False, style={"width": "110px"})),
                        html.Button("Start team exercise", id=ids.TEAM_START),
                        html.Button("Pause everyone", id=ids.PAUSE_ALL, className="secondary"),
                        html.Button("Resume", id=ids.RESUME_TEAM, className="secondary"),
                        html.Button("Stop", id=ids.STOP_TEAM, className="danger"),
                    ], className="row"),
                    html.Div(id=ids.TEAM_CODE, className="status", style={"marginTop": "8px"}),
                ],
                className="card",
            ),
            html.Div(
                [
                    html.Div([html.B("Attack as it really goes"), html.Div(id=ids.TIMELINE)], className="card col"),
                    html.Div([html.B("Trainees"), html.Div(id=ids.ROSTER)], className="card col"),
                ],
                className="row",
                style={"alignItems": "flex-start"},
            ),
            html.Div(
                [
                    html.B("Inject an attack step, or push a hint"),
                    html.Div([
                        _field("Technique", dcc.Dropdown(_techniques(), id=ids.INJECT_TECHNIQUE, style={"width": "300px"})),
                        _field("Target device", dcc.Dropdown(id=ids.INJECT_TARGET, style={"width": "200px"})),
                        html.Button("Inject", id=ids.INJECT),
                    ], className="row"),
                    html.Div([
                        _field("Hint to the trainees", dcc.Input(id=ids.HINT_TEXT, maxLength=300, style={"width": "480px"})),
                        html.Button("Push hint", id=ids.PUSH_HINT),
                    ], className="row", style={"marginTop": "8px"}),
                ],
                className="card",
            ),
        ]
    )  # fmt: skip


@callback(
    Output(ids.TEAM_DESIGN, "options"),
    Output(ids.TEAM_DESIGN, "value"),
    Input(ids.TEAM_SCENARIO, "value"),
)
def team_designs(name: Any) -> tuple[Any, Any]:
    try:
        spec = load_shipped(name)
    except ScenarioError:
        return [], None
    return designs_of(spec), spec.design


@callback(
    Output(ids.TRAINER_MESSAGE, "children"),
    Input(ids.BECOME_TRAINER, "n_clicks"),
    Input(ids.TEAM_START, "n_clicks"),
    Input(ids.PAUSE_ALL, "n_clicks"),
    Input(ids.RESUME_TEAM, "n_clicks"),
    Input(ids.STOP_TEAM, "n_clicks"),
    Input(ids.INJECT, "n_clicks"),
    Input(ids.PUSH_HINT, "n_clicks"),
    State(ids.TOKEN, "value"),
    State(ids.TEAM_SCENARIO, "value"),
    State(ids.TEAM_DESIGN, "value"),
    State(ids.TEAM_SPEED, "value"),
    State(ids.INJECT_TECHNIQUE, "value"),
    State(ids.INJECT_TARGET, "value"),
    State(ids.HINT_TEXT, "value"),
    State(ids.CLIENT, "data"),
    prevent_initial_call=True,
)
def trainer_action(*args: Any) -> Any:
    token, name, design, speed, technique, target, hint, client = args[7:]
    room = classroom()
    which = ctx.triggered_id
    try:
        if which == ids.BECOME_TRAINER:
            room.become_trainer(client, token)
            return message("unlocked: you are the trainer", ok=True)
        if which == ids.TEAM_START:
            spec = load_shipped(name, design)
            r = room.open(client, spec, speed, team=True, source=f"scenarios/{name}.yaml")
            return message(f"team exercise {r.exercise.code} started", ok=True)
        if which == ids.PAUSE_ALL:
            return message(f"paused {room.pause_everyone(client)} exercise(s)", ok=True)
        code = room.seat(client).exercise
        ex = room.trainer_room(client, code).exercise
        if which == ids.RESUME_TEAM:
            ex.resume()
            return message("resumed", ok=True)
        if which == ids.STOP_TEAM:
            ex.stop()
            return message("stopped: the After-action page has the review", ok=True)
        if which == ids.INJECT:
            sid = ex.inject(
                str(technique or ""), target if isinstance(target, str) else None, "trainer"
            )
            return message(f"injected {technique} as step {sid}", ok=True)
        if which == ids.PUSH_HINT:
            text = str(hint or "").strip()[:300]
            if not text:
                return message("write a hint first")
            ex.hint(text, "trainer")
            return message("hint pushed to the trainees", ok=True)
    except ScenarioError as exc:
        return message("; ".join(str(p) for p in exc.problems))
    except (TwinError, ValueError) as exc:
        return message(f"refused: {exc}")
    return no_update


@callback(
    Output(ids.TEAM_CODE, "children"),
    Output(ids.TIMELINE, "children"),
    Output(ids.ROSTER, "children"),
    Output(ids.INJECT_TARGET, "options"),
    Input(ids.TRAINER_TICK, "n_intervals"),
    State(ids.CLIENT, "data"),
)
def trainer_view(_n: Any, client: Any) -> tuple[Any, ...]:
    room = classroom()
    try:
        if room.seat(client).role != "trainer":
            return (
                html.Div("Unlock with the trainer token to run a team exercise.", className="help"),
                "",
                "",
                [],
            )
        code = room.seat(client).exercise
        r = room.trainer_room(client, code)
        v = room.view(client, code)
        roster = room.roster(client, code)
    except TwinError as exc:
        return message(str(exc)), "", "", []
    w = v["warmup"]
    head = html.Div([
        "Exercise code ", html.B(v["code"], style={"fontSize": "22px", "letterSpacing": "2px"}),
        f" · {v['scenario']} on {v['design']} · {v['state']} · {figures.clock(v['t'], w)} at {v['speed']:g}x · "
        f"compromised: {', '.join(v['compromised']) or 'nothing'} · quarantined: {', '.join(v['quarantined']) or 'nothing'}",
    ])  # fmt: skip
    rows = []
    for sid, t0 in v["running_steps"].items():
        rows.append(
            {
                "time": figures.clock(t0, w),
                "step": sid,
                "technique": "",
                "target": "",
                "outcome": "under way",
            }
        )
    for e in v["steps"]:
        if e["kind"] == "step":
            outcome = "succeeded" if e["succeeded"] else (e["blocked_by"] or "failed")
            rows.append(
                {
                    "time": figures.clock(e["t_start"], w),
                    "step": e["step_id"],
                    "technique": e["technique"],
                    "target": e["target"],
                    "outcome": outcome,
                }
            )
        elif e["kind"] == "step_skipped":
            rows.append(
                {
                    "time": figures.clock(e["t"], w),
                    "step": e["step_id"],
                    "technique": e["technique"],
                    "target": "",
                    "outcome": f"not attempted: {e['reason']}",
                }
            )
        elif e["kind"] == "inject":
            rows.append(
                {
                    "time": figures.clock(e["t"], w),
                    "step": e["step"]["id"],
                    "technique": e["step"]["technique"],
                    "target": e["step"].get("target") or "",
                    "outcome": "injected",
                }
            )
    timeline = table(rows, ["time", "step", "technique", "target", "outcome"]) if rows else html.Div(
        "No attack step yet.", className="help")  # fmt: skip
    people = table(roster, ["trainee", "actions", "applied", "last action", "stuck"]) if roster else html.Div(
        "No trainee has joined yet.", className="help")  # fmt: skip
    targets = [
        {"label": d["name"], "value": d["name"]} for d in r.exercise.info()["site"]["devices"]
    ]
    return head, timeline, people, targets
