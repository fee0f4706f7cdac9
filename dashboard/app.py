"""The Dash app: a shell (navigation, this browser's session id) around the pages/ folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash
import flask
from dash import Dash, Input, Output, State, dcc, html

from dashboard import ids
from dashboard.classroom import Classroom

PAGES = Path(__file__).resolve().parent / "pages"
KEY = "twin.classroom"


def classroom() -> Classroom:
    """The server's classroom, from the Flask app serving this request (not a module global)."""
    room: Classroom = flask.current_app.extensions[KEY]
    return room


def create_app(room: Classroom) -> Dash:
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(PAGES),
        title="twin: training dashboard",
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]  # None: the tab title does not flicker
    )
    app.server.extensions[KEY] = room
    nav = html.Nav(
        [html.Span("twin", className="brand")]
        + [
            dcc.Link(page["name"], href=page["relative_path"], className="navlink")
            for page in sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
        ],
        id=ids.NAV,
    )
    app.layout = html.Div(
        [
            dcc.Location(id=ids.URL),
            dcc.Store(id=ids.CLIENT, storage_type="local"),
            nav,
            html.Main(dash.page_container),
        ]
    )

    @app.server.route("/study-report")
    def study_report() -> Any:
        # only the report of a study the what-if page lists: no path from a browser is read
        from dashboard.lab import find_studies, study_roots

        wanted = flask.request.args.get("dir", "")
        for d in find_studies(study_roots()):
            if str(d) == wanted and (d / "report.html").is_file():
                return flask.send_file(d / "report.html", mimetype="text/html")
        flask.abort(404)

    @app.callback(Output(ids.CLIENT, "data"), Input(ids.URL, "pathname"), State(ids.CLIENT, "data"))
    def session_id(_path: Any, client: Any) -> Any:
        # the server mints ids; a stale or forged one gets a fresh session
        seat = classroom().enter(client)
        return dash.no_update if seat.client == client else seat.client

    return app


def serve(room: Classroom, host: str, port: int) -> None:
    """Serve until interrupted (Flask's threaded server: one thread per request)."""
    app = create_app(room)
    try:
        app.run(host=host, port=port, debug=False, threaded=True)
    finally:
        room.close()  # every exercise's process ends with the server
