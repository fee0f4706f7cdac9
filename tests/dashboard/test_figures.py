"""Figures and the facility map: pure functions from tables to what the pages draw."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from dashboard.figures import map_elements, matrix_figure, physics_figure, site_of, timeline_figure
from twin.facility import Facility
from twin.network.policy import Policy
from twin.scenario import facility_of, load_scenario

from ..conftest import FLAGSHIP


def site() -> dict[str, Any]:
    spec = load_scenario(FLAGSHIP)
    fac = Facility.build(facility_of(spec))
    return site_of(fac, Policy(fac, "zoned", fac.designs["zoned"]))


def classes(els: list[dict[str, Any]]) -> dict[str, str]:
    return {e["data"]["id"]: e.get("classes", "") for e in els if "source" not in e["data"]}


def test_map_has_zones_devices_and_conduits() -> None:
    """Zones are compound nodes holding their devices; conduits are edges between real nodes."""
    s = site()
    els = map_elements(s, {}, trainer=False)
    nodes = {e["data"]["id"]: e for e in els if "source" not in e["data"]}
    assert {f"zone:{z['name']}" for z in s["zones"]} <= set(nodes)
    assert nodes["ahu"]["data"]["parent"] == "zone:hvac"
    edges = [e for e in els if "source" in e["data"]]
    assert edges and all(
        e["data"]["source"] in nodes and e["data"]["target"] in nodes for e in edges
    )


def test_compromised_shows_to_the_trainer_only() -> None:
    """A compromised device is flagged for the trainer; a trainee sees it as alerting at most."""
    state = {"compromised": ["cam-lobby"], "alerting": ["cam-lobby"], "quarantined": ["ahu"]}
    s = site()
    assert classes(map_elements(s, state, trainer=True))["cam-lobby"] == "compromised"
    assert classes(map_elements(s, state, trainer=False))["cam-lobby"] == "alerting"
    assert classes(map_elements(s, state, trainer=False))["ahu"] == "quarantined"
    assert classes(map_elements(s, state, trainer=False))["vav-1"] == "normal"


def test_blocked_conduit_is_drawn_blocked() -> None:
    """A conduit a trainee blocked is drawn as blocked."""
    s = site()
    name = s["conduits"][0]["name"]
    els = map_elements(s, {"blocked": [name]}, trainer=False)
    assert {
        e["classes"] for e in els if e["data"].get("label") == name and "source" in e["data"]
    } == {"blocked"}


def test_physics_figure_draws_rooms_against_their_band() -> None:
    """The hottest room gets its upper band drawn; time is in exercise minutes."""
    history = [(10800.0 + 60 * i, {"room.hall.temp_c": 22.0 + i, "room.office.temp_c": 21.0,
                                   "tank.t.level_m": 2.0, "door.d.open": float(i % 2)}) for i in range(10)]  # fmt: skip
    bands = {
        "room.hall.temp_c": (18.0, 27.0),
        "room.office.temp_c": (19.0, 25.0),
        "tank.t.level_m": (0.5, 3.5),
    }
    fig = go.Figure(physics_figure(history, bands, 10800.0))  # plotly accepts it as it is
    names = [t.name for t in fig.data]
    assert "hall" in names and "hall upper band" in names
    band = next(t for t in fig.data if t.name == "hall upper band")
    assert list(band.y) == [27.0, 27.0]
    assert next(t for t in fig.data if t.name == "hall").x[-1] == 9.0
    assert {t.yaxis for t in fig.data} == {"y", "y2", "y3"}


def test_timeline_and_matrix_show_what_happened() -> None:
    """The timeline has one lane each for steps, alerts and actions; the matrix one cell per technique."""
    log = [
        {"t": 12001, "kind": "step", "step_id": "s", "technique": "T0836", "t_start": 12000.0, "t_end": 12001.0,
         "target": "ahu", "succeeded": True, "blocked_by": ""},
        {"t": 12060, "kind": "alert", "detector": "d", "severity": "high", "device": "cam", "technique": "T0836"},
        {"t": 12100, "kind": "action", "action": "quarantine", "target": "cam", "status": "applied"},
    ]  # fmt: skip
    tl = timeline_figure(log, [], 10800.0)
    assert {t.name for t in tl.data if t.name} >= {"alert", "action"}
    mx = matrix_figure(log)
    texts = [a.text for a in mx.layout.annotations]
    assert any("T0836 Modify Parameter" in t and "alerted" in t for t in texts)
    assert "Impair Process Control" in mx.layout.xaxis.ticktext
