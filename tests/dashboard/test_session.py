"""The exercise as plain Python: warm-up, live stepping, trainee actions, injects, replay."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from dashboard.review import score
from dashboard.session import FEED_CAP, Exercise, actions_for, detection_cadence, quantum
from twin.errors import SimulationError
from twin.scenario import load_scenario
from twin.schema import ScenarioSpec
from twin.telemetry import Alert

from ..conftest import FLAGSHIP

QUARANTINE_AT = 12960.0  # after the scan's alerts (12900 s), before the setpoint write


def flagship(**overrides: Any) -> ScenarioSpec:
    return load_scenario(FLAGSHIP, {"duration": "4h", **overrides})


def kinds(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in log if e["kind"] == kind]


@pytest.fixture(scope="module")
def responded() -> Exercise:
    script = [
        {
            "t": QUARANTINE_AT,
            "kind": "action",
            "action": "quarantine",
            "target": "cam-lobby",
            "by": "t1",
        }
    ]
    ex = Exercise(flagship(), "RESP01", speed=60, script=script)
    ex.run_to(4 * 3600)
    return ex


def test_quantum_divides_the_export_interval() -> None:
    """The stepping grid divides the export interval, so detectors see the same batches."""
    spec = flagship()
    q = quantum(spec)
    assert q <= 10 and spec.export_interval % q == 0 and q % spec.physics_step == 0


def test_detection_cadence_is_a_few_wall_seconds() -> None:
    """Detector batches are whole export intervals, a few wall seconds apart at any speed."""
    spec = flagship()
    for speed in (1, 10, 60, 600):
        every = detection_cadence(spec, speed)
        assert every % spec.export_interval == 0 and every <= max(
            spec.batch_interval, spec.export_interval
        )
        assert every / speed <= 5 or every == spec.export_interval


def test_quarantine_stops_the_attack(responded: Exercise) -> None:
    """Quarantining the camera after the scan alerts blocks the setpoint write; the log says so."""
    log = responded.log
    action = kinds(log, "action")[0]
    assert action["status"] == "applied" and action["t"] == QUARANTINE_AT
    assert action["detail"] == "quarantined cam-lobby"
    write = next(e for e in kinds(log, "step") if e["step_id"] == "overheat")
    assert not write["succeeded"] and write["blocked_by"].startswith("response")
    assert kinds(log, "contained")[0]["t"] == QUARANTINE_AT
    assert "cam-lobby" in responded.live.quarantined
    assert responded.state == "finished"


def test_alerts_arrive_in_the_feed_merged(responded: Exercise) -> None:
    """The scan's alerts reach the feed; repeats of one alert within a minute are one line."""
    feed = list(responded.feed)
    assert any(a["device"] == "cam-lobby" and a["severity"] == "high" for a in feed)
    keys = [(a["detector"], a["device"], a["technique"], a["t"]) for a in feed]
    assert len(keys) == len(set(keys))
    assert sum(a["count"] for a in feed) == len(kinds(responded.log, "alert"))


def test_physics_history_has_the_hall(responded: Exercise) -> None:
    """The charts' history holds the server hall's temperature with its band, one sample a minute."""
    hist = list(responded.history)
    assert len(hist) >= 60  # the hour after the warm-up, one a minute
    assert "room.server-hall.temp_c" in hist[-1].values
    lo, hi = responded.bands["room.server-hall.temp_c"]
    assert lo < hi
    assert all(b.t - a.t == pytest.approx(60.0) for a, b in itertools.pairwise(hist))


def test_the_response_avoids_harm(responded: Exercise) -> None:
    """Against the same run without a response the hall overheats; with it, it does not."""
    baseline = responded.no_response_harm()
    end = kinds(responded.log, "end")[0]
    assert baseline["degree_hours_outside_band"] > 0.5
    assert end["harm"]["degree_hours_outside_band"] < baseline["degree_hours_outside_band"] / 10
    review = score(responded.log, baseline, responded.spec.warmup)
    harm = next(x for x in review.lines if x.item == "physical harm")
    assert harm.points > 0.9 * harm.max_points


def test_actions_offered_only_where_they_apply(responded: Exercise) -> None:
    """A camera can be quarantined or rotated but has no setpoints; the air handler has."""
    cam = actions_for(responded.facility, "cam-lobby")
    ahu = actions_for(responded.facility, "ahu")
    assert "quarantine" in cam and "rotate_credentials" in cam and "restore_setpoints" not in cam
    assert "restore_setpoints" in ahu
    assert actions_for(responded.facility, "no-such-device") == []


def test_an_action_that_does_not_apply_is_refused() -> None:
    """Asking for setpoints on a camera, or an unknown conduit, is refused before it is queued."""
    ex = Exercise(flagship(), "REFUSE")
    ex.state = "running"
    with pytest.raises(SimulationError, match="does not apply"):
        ex.request("restore_setpoints", "cam-lobby", "t1")
    with pytest.raises(SimulationError, match="no conduit"):
        ex.request("block_conduit", "nowhere", "t1")
    assert ex.requests == []


def test_feed_is_capped() -> None:
    """However many distinct alerts arrive, the feed keeps at most FEED_CAP lines."""
    ex = Exercise(flagship(), "CAP")
    for i in range(FEED_CAP * 3):
        ex.alert(Alert(float(i * 120), "det", "low", f"dev-{i % 7}", technique=f"T{i}"))
    assert len(ex.feed) == FEED_CAP
    assert len(ex._merge) <= FEED_CAP + 1


def test_inject_runs_a_step_the_scenario_did_not_have() -> None:
    """A trainer's inject becomes a real attack step with its truth row in the log."""
    ex = Exercise(flagship(duration="3h30m", campaign=None), "INJ")
    assert ex.engine.campaign is None
    with pytest.raises(SimulationError, match="no attacker"):
        ex.inject("default_credentials", "cam-lobby", "trainer")
    quiet = {"attacker": {"name": "intruder", "origin": "198.51.100.66"}, "steps": []}
    ex = Exercise(flagship(duration="3h20m", campaign=quiet), "INJ2")
    ex.inject("default_credentials", "cam-lobby", "trainer")
    ex.run_to(3 * 3600 + 20 * 60)
    steps = kinds(ex.log, "step")
    assert [s["step_id"] for s in steps] == ["inject-1"]
    assert steps[0]["succeeded"] and steps[0]["target"] == "cam-lobby"
    assert kinds(ex.log, "inject")[0]["step"]["technique"] == "default_credentials"


@pytest.mark.slow
def test_a_live_exercise_replays_exactly() -> None:
    """A live run in its thread (wall-clock paced) and a replay of its actions give the same log."""
    spec = flagship(duration="3h50m")
    live = Exercise(spec, "LIVE01", speed=600)
    live.start()
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "alert" and e["severity"] == "high" for e in live.log_copy()):
        assert time.monotonic() < deadline, "no high alert within two minutes"
        time.sleep(0.05)
    live.request("quarantine", "cam-lobby", "t1")
    live.request("restore_setpoints", "ahu", "t1")
    while live.state not in ("finished", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert live.state == "finished", live.error
    replay = Exercise(
        spec, "REPLAY", speed=600, script=live.script(), grid=live.q, detect_every=live.detect_every
    )
    replay.run_to(spec.duration)
    assert replay.log == live.log
    base = live.no_response_harm()
    assert score(replay.log, base, spec.warmup) == score(live.log, base, spec.warmup)
