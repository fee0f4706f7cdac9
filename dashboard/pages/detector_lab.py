"""Detector lab page: benchmark detectors on scenarios in the background; the leaderboard."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import figures, ids
from dashboard.app import classroom
from dashboard.lab import MAX_SEEDS
from dashboard.widgets import message, scenario_options, shipped, table
from twin.errors import TwinError

dash.register_page(
    __name__, path="/detector-lab", name="Detector lab", order=3, title="twin: detector lab"
)


def _field(label: str, child: Any) -> html.Label:
    return html.Label([label, child], className="field")


def _detectors() -> list[str]:
    from detectors import REGISTRY

    return sorted(REGISTRY)


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id=ids.LAB_TICK, interval=1500),
            html.Div(
                [
                    html.H3("Detector lab", style={"margin": "4px 0"}),
                    html.Div("Benchmark detectors against attack scenarios: each scenario runs once per seed "
                             "with every chosen detector watching; the leaderboard pools the runs.",
                             className="help"),
                    html.Div([
                        _field("Detectors", dcc.Dropdown(_detectors(), ["conduit_policy", "allowlist"],
                                                         id=ids.LAB_DETECTORS, multi=True, style={"width": "360px"})),
                        _field("Scenarios", dcc.Dropdown(scenario_options(), ["flagship"], id=ids.LAB_SCENARIOS,
                                                         multi=True, style={"width": "360px"})),
                        _field("Seeds (comma separated)", dcc.Input(id=ids.LAB_SEEDS, value="1", style={"width": "110px"})),
                        _field("Duration (optional, e.g. 5h)", dcc.Input(id=ids.LAB_DURATION, value="", style={"width": "110px"})),
                        html.Button("Run benchmark", id=ids.LAB_RUN),
                    ], className="row"),
                    html.Div(id=ids.LAB_PROGRESS, style={"marginTop": "8px"}),
                ],
                className="card",
            ),
            html.Div(
                [html.B("Leaderboard"), html.Div(id=ids.LAB_BOARD, style={"overflowX": "auto"})],
                className="card",
            ),
            html.Div([dcc.Graph(id=ids.LAB_PLOT, config={"displaylogo": False})], className="card"),
        ]
    )  # fmt: skip


@callback(
    Output(ids.LAB_PROGRESS, "children", allow_duplicate=True),
    Input(ids.LAB_RUN, "n_clicks"),
    State(ids.LAB_DETECTORS, "value"),
    State(ids.LAB_SCENARIOS, "value"),
    State(ids.LAB_SEEDS, "value"),
    State(ids.LAB_DURATION, "value"),
    State(ids.CLIENT, "data"),
    prevent_initial_call=True,
)
def run(_n: Any, dets: Any, scen: Any, seeds: Any, duration: Any, client: Any) -> Any:
    known, ships = set(_detectors()), shipped()
    dets = [d for d in (dets or []) if isinstance(d, str) and d in known]
    paths = [ships[s] for s in (scen or []) if isinstance(s, str) and s in ships]
    try:
        seed_list = [int(x) for x in str(seeds or "").replace(",", " ").split()]
    except ValueError:
        return message("seeds must be whole numbers, e.g. 1, 2")
    if not dets or not paths or not seed_list:
        return message("choose at least one detector, one scenario and one seed")
    if len(seed_list) > MAX_SEEDS or any(not 0 <= s < 2**31 for s in seed_list):
        return message(f"at most {MAX_SEEDS} seeds, each from 0 to 2^31-1")
    dur = str(duration or "").strip() or None
    if dur is not None:
        from twin.schema import parse_duration

        try:
            parse_duration(dur)
        except (ValueError, TypeError):
            return message(f"duration {dur!r} is not a time such as 5h or 90m")
    try:
        classroom().lab_start(client, paths, dets, seed_list, dur)
    except TwinError as exc:
        return message(str(exc))
    return message(
        f"benchmark started: {len(paths)} scenario(s) x {len(seed_list)} seed(s)", ok=True
    )


@callback(
    Output(ids.LAB_PROGRESS, "children"),
    Output(ids.LAB_BOARD, "children"),
    Output(ids.LAB_PLOT, "figure"),
    Input(ids.LAB_TICK, "n_intervals"),
    State(ids.CLIENT, "data"),
    prevent_initial_call=True,
)
def progress(_n: Any, client: Any) -> tuple[Any, Any, Any]:
    try:
        job = classroom().lab_job(client)
    except TwinError as exc:
        return message(str(exc)), no_update, no_update
    if job is None:
        return no_update, html.Div("No benchmark yet.", className="help"), no_update
    if job.state == "running":
        share = f"{job.done} of {job.total} runs" if job.total else "starting"
        bar = html.Progress(
            value=str(job.done), max=str(max(job.total, 1)), style={"width": "300px"}
        )
        return html.Div([f"running: {share} ", bar, f" {job.current}"]), no_update, no_update
    if job.state == "failed":
        return message(f"the benchmark failed: {job.error}"), no_update, no_update
    if ctx.triggered_id and job.board is not None:
        board = job.board.round(3).astype(object).where(job.board.notna(), None).to_dict("records")
        plot = (
            figures.per_scenario_figure(job.per_run)
            if job.per_run is not None
            else figures.leaderboard_figure(job.board)
        )
        return message(f"done: results in {job.out}", ok=True), table(board), plot
    return no_update, no_update, no_update
