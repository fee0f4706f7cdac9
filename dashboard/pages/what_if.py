"""What-if page: open a study's results and compare segmentation designs with its charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashboard import figures, ids
from dashboard.lab import find_studies, read_study, study_roots
from dashboard.widgets import message, table

dash.register_page(__name__, path="/what-if", name="What-if", order=4, title="twin: what-if")


def layout(**_: Any) -> html.Div:
    found = find_studies(study_roots())
    options = [{"label": str(p), "value": str(p)} for p in found]
    intro = (
        "Pick a study's results directory (written by `twin study`)."
        if found
        else "No study results yet: run `twin study <study.yaml>` and its directory (a results "
        "table and report.html) appears here to compare designs."
    )
    return html.Div(
        [
            html.Div(
                [
                    html.H3("What-if: compare designs", style={"margin": "4px 0"}),
                    html.Div(intro, className="help", id=ids.STUDY_MESSAGE),
                    html.Div([
                        dcc.Dropdown(options, options[0]["value"] if options else None, id=ids.STUDY_DIR,
                                     style={"width": "640px"}, placeholder="a study results directory"),
                        html.Button("Open", id=ids.STUDY_OPEN),
                    ], className="row"),
                ],
                className="card",
            ),
            html.Div([dcc.Graph(id=ids.STUDY_PLOT, config={"displaylogo": False}), html.Div(id=ids.STUDY_TABLE)],
                     className="card"),
            html.Div(id=ids.STUDY_REPORT, className="card"),
        ]
    )  # fmt: skip


@callback(
    Output(ids.STUDY_MESSAGE, "children"),
    Output(ids.STUDY_PLOT, "figure"),
    Output(ids.STUDY_TABLE, "children"),
    Output(ids.STUDY_REPORT, "children"),
    Input(ids.STUDY_OPEN, "n_clicks"),
    State(ids.STUDY_DIR, "value"),
    prevent_initial_call=True,
)
def open_study(_n: Any, chosen: Any) -> tuple[Any, ...]:
    # only directories the page offered: a browser cannot make the server read any path
    offered = {str(p) for p in find_studies(study_roots())}
    if not isinstance(chosen, str) or chosen not in offered:
        return message("pick one of the study directories listed"), no_update, no_update, no_update
    try:
        results, report = read_study(Path(chosen))
    except Exception as exc:  # a half-written study is reported, not a crash
        return (
            message(f"cannot read {chosen}: {type(exc).__name__}: {exc}"),
            no_update,
            no_update,
            no_update,
        )
    shown = _report(chosen, report is not None)
    if results is None:
        return message(f"{chosen} has no results table yet"), no_update, "", shown
    cols = [
        c for c in results.columns if results[c].dtype.kind in "biufO" and c not in ("key", "error")
    ]
    head = results[cols[:14]].head(100).round(3).to_dict("records")
    note = message(f"{chosen}: {len(results)} result rows", ok=True)
    return note, figures.study_figure(results), table(head), shown


def _report(directory: str, exists: bool) -> html.Div:
    if not exists:
        return html.Div("This study has no report.html.", className="help")
    url = "/study-report?" + urlencode({"dir": directory})
    return html.Div([
        html.B("The study's report "), html.A("(open in a new tab)", href=url, target="_blank"),
        html.Iframe(src=url, style={"width": "100%", "height": "800px", "border": "0"}),
    ])  # fmt: skip
