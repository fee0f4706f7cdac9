"""After-action page: the score with its reasons, one timeline, the ATT&CK matrix, exports."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from dashboard import figures, ids, review
from dashboard.app import classroom
from dashboard.widgets import message
from twin.errors import TwinError

dash.register_page(
    __name__, path="/after-action", name="After-action", order=2, title="twin: after-action"
)


def layout(**_: Any) -> html.Div:
    return html.Div(
        [
            dcc.Interval(id=ids.AAR_LOAD, interval=2000, max_intervals=30),
            dcc.Download(id=ids.DOWNLOAD),
            html.Div(
                [
                    html.H3("After-action review", style={"margin": "4px 0"}),
                    html.Div(id=ids.AAR_MESSAGE),
                    html.Div(
                        [
                            html.Div([html.Div("score", className="help"), html.Div(id=ids.SCORE_TOTAL, className="total")],
                                     style={"minWidth": "140px"}),
                            html.Div(id=ids.SCORE_LINES, className="col"),
                        ],
                        className="row",
                        style={"alignItems": "flex-start"},
                    ),
                    html.Div(
                        [
                            html.Button("Export JSON", id=ids.EXPORT_JSON, className="secondary"),
                            html.Button("Export CSV", id=ids.EXPORT_CSV, className="secondary"),
                            html.Button("Print", id=ids.PRINT, className="secondary"),
                        ],
                        className="row noprint",
                        style={"marginTop": "8px"},
                    ),
                ],
                className="card",
            ),
            html.Div([html.B("Timeline: attack steps, alerts, actions and the physics"),
                      dcc.Graph(id=ids.AAR_TIMELINE, config={"displaylogo": False})], className="card"),
            html.Div([html.B("ATT&CK for ICS techniques exercised (dark: an alert named the technique)"),
                      dcc.Graph(id=ids.MATRIX, config={"displaylogo": False})], className="card"),
        ]
    )  # fmt: skip


def _review(client: Any) -> tuple[Any, dict[str, Any], list[dict[str, Any]], review.Review]:
    room = classroom().mine(client)
    if room is None:
        raise TwinError("no exercise yet: start one on the Exercise page")
    ex = room.exercise
    info = ex.info()
    state = ex.get_state()
    if state not in ("finished", "failed"):
        raise TwinError(
            f"exercise {info['code']} is still {state}: the review is ready when it ends "
            "(Stop and review on the Exercise page)"
        )
    log = ex.log_copy()
    baseline = ex.no_response_harm()
    meta = {"exercise": info["code"], "scenario": info["scenario"], "design": info["design"],
            "seed": info["seed"], "grid_s": info["grid"], "detect_every_s": info["detect_every"], "warmup_s": info["warmup"], "baseline_harm": baseline}  # fmt: skip
    return ex, meta, log, review.score(log, baseline, info["warmup"], info["device_ips"])


@callback(
    Output(ids.SCORE_TOTAL, "children"),
    Output(ids.SCORE_LINES, "children"),
    Output(ids.AAR_TIMELINE, "figure"),
    Output(ids.MATRIX, "figure"),
    Output(ids.AAR_MESSAGE, "children"),
    Output(ids.AAR_LOAD, "disabled"),
    Input(ids.AAR_LOAD, "n_intervals"),
    State(ids.CLIENT, "data"),
)
def show(_n: Any, client: Any) -> tuple[Any, ...]:
    if client is None:
        return no_update, no_update, no_update, no_update, no_update, False
    try:
        ex, meta, log, r = _review(client)
    except TwinError as exc:
        return "-", "", no_update, no_update, message(str(exc)), False
    rows = [
        html.Tr([html.Td(x.item), html.Td(f"{x.points:+g}" if x.max_points == 0 else f"{x.points:g} / {x.max_points:g}"),
                 html.Td(x.reason)])
        for x in r.lines
    ]  # fmt: skip
    lines = html.Table(
        [
            html.Thead(html.Tr([html.Th("line"), html.Th("points"), html.Th("why")])),
            html.Tbody(rows),
        ],
        className="simple",
    )
    history = ex.view()["history"]
    note = message(
        f"{meta['scenario']} on the {meta['design']} design, seed {meta['seed']}, exercise {meta['exercise']}; "
        "replaying the seed with the same actions reproduces this run exactly",
        ok=True,
    )
    return (
        f"{r.total:g}",
        lines,
        figures.timeline_figure(log, history, meta["warmup_s"]),
        figures.matrix_figure(log),
        note,
        True,
    )


@callback(
    Output(ids.DOWNLOAD, "data"),
    Input(ids.EXPORT_JSON, "n_clicks"),
    Input(ids.EXPORT_CSV, "n_clicks"),
    State(ids.CLIENT, "data"),
    prevent_initial_call=True,
)
def export(_j: Any, _c: Any, client: Any) -> Any:
    try:
        _, meta, log, r = _review(client)
    except TwinError:
        return no_update
    if ctx.triggered_id == ids.EXPORT_JSON:
        return dcc.send_string(
            review.export_json(log, r, meta), f"exercise-{meta['exercise']}.json"
        )
    return dcc.send_string(review.export_csv(log), f"exercise-{meta['exercise']}.csv")


clientside_callback(
    "function(n) { if (n) { window.print(); } return ''; }",
    Output(ids.PRINT, "title"),
    Input(ids.PRINT, "n_clicks"),
    prevent_initial_call=True,
)
