"""The physics detector: what each rule flags, what it leaves alone, and real attacks it finds."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from attacks import TECHNIQUES
from detectors import SiteView
from detectors.physics import Physics
from tests.attacks.harness import engine
from tests.conftest import FLAGSHIP
from twin.engine import Engine
from twin.facility import Facility
from twin.network.policy import Policy
from twin.scenario import facility_of, load_scenario
from twin.scoring import score_alerts
from twin.telemetry import EVENT_COLUMNS, PROCESS_COLUMNS, Alert, TelemetryBatch, alerts_frame

HALL, OFFICE = "room.server-hall.temp_c", "room.office-1.temp_c"
Sample = Mapping[str, float | tuple[float, float]]  # signal -> reported, or (true value, reported)
Samples = Sequence[tuple[float, Sample]]


def site() -> SiteView:
    fac = Facility.build(facility_of(load_scenario(FLAGSHIP)))
    return SiteView(fac, Policy(fac, "flat", fac.designs["flat"]))


def batch(samples: Samples, events: Sequence[dict[str, Any]] = ()) -> TelemetryBatch:
    """Process rows from (t, {signal: reported or (value, reported)}) samples, plus events."""
    rows = [
        (t, s, *(v if isinstance(v, tuple) else (v, v)))
        for t, sample in samples
        for s, v in sample.items()
    ]
    process = pd.DataFrame(rows, columns=list(PROCESS_COLUMNS)).astype(PROCESS_COLUMNS)
    blank = {**dict.fromkeys(EVENT_COLUMNS, ""), "value": np.nan}
    ev = pd.DataFrame(
        [{**blank, "event_id": i, **e} for i, e in enumerate(events)], columns=list(EVENT_COLUMNS)
    )
    t0, t1 = (samples[0][0], samples[-1][0] + 60) if samples else (0.0, 60.0)
    return TelemetryBatch(t0, t1, process=process, events=ev.astype(EVENT_COLUMNS))


def hall(
    n: int, t0: float = 0.0, lie: float | None = None, seed: int = 0, fan: bool = True
) -> Samples:
    """The server hall under a P controller (the physics of harbour-dc, per minute); with `lie`
    the controller acts on and reports that temperature while the hall follows physics; with
    the AHU's fan off no air arrives whatever the damper says."""
    temp, rng, out = 22.0, np.random.default_rng(seed), []
    air: Sample = {"ahu.ahu.supply_air_c": 13.0, "ahu.ahu.supply_air_setpoint_c": 13.0}
    for k in range(n):
        sensed = lie if lie is not None else round(temp + rng.normal(0, 0.05), 1)
        damper = float(np.clip(66 + 35 * (sensed - 22), 15, 100))
        sample: Sample = {
            HALL: (temp, sensed),
            "vav.vav-hall.damper_pct": damper,
            "outdoor.temp_c": 10.0,
        }
        out.append((t0 + 60 * k, {**air, **sample}))
        temp += 5.74e-4 * (13 - temp) * damper * fan + 0.0017 * (10 - temp) + 0.34
    return out


def fitted(warm: Samples, **params: Any) -> Physics:
    return Physics(**params).fit(batch(warm), site())


def rules(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.device, a.severity, a.technique) for a in alerts]


# -- the thermal model and its CUSUM --------------------------------------------------------


def test_a_room_that_obeys_its_physics_stays_quiet() -> None:
    """Three hours of warm-up, then a day of the same physics (other noise): no alert."""
    det = fitted(hall(180))
    later = hall(1440, t0=180 * 60, seed=1)
    assert [a for k in range(0, 1440, 5) for a in det.observe(batch(later[k : k + 5]))] == []


def test_a_frozen_lie_departs_from_the_thermal_model() -> None:
    """The VAV reports 18 degC and shuts its damper: the model expects heating; the VAV is named."""
    det = fitted(hall(180))
    alerts = det.observe(batch(hall(30, t0=180 * 60, lie=18.0)))
    assert rules(alerts) == [("vav-hall", "medium", "T0856")]
    assert "room.server-hall.temp_c (below it)" in alerts[0].reason
    assert alerts[0].t - 180 * 60 <= 5 * 60 and alerts[0].dst_ip == "10.20.20.11"
    assert det.observe(batch(hall(30, t0=210 * 60, lie=18.0))) == []  # latched: said once


def test_rooms_heating_with_open_dampers_blame_their_ahu() -> None:
    """The fan stops: hall and office heat although their dampers open; one alert, on the AHU."""

    def both(samples: Samples) -> Samples:
        return [(t, {**s, OFFICE: s[HALL], "vav.vav-1.damper_pct": s["vav.vav-hall.damper_pct"]})
                for t, s in samples]  # fmt: skip

    det = fitted(both(hall(180)))
    alerts = det.observe(batch(both(hall(30, t0=180 * 60, seed=1, fan=False))))
    assert rules(alerts) == [("ahu", "high", "T0831")]
    assert "(above it)" in alerts[0].reason
    assert det.observe(batch(both(hall(30, t0=210 * 60, seed=2, fan=False)))) == []


# -- fusion rules ---------------------------------------------------------------------------


def test_reported_temperature_against_an_independent_sensor() -> None:
    """office-1 has an env sensor: a 3 degC gap for 5 min is flagged; the hall has none."""
    warm = [(60.0 * k, {OFFICE: 21.0, HALL: 22.0}) for k in range(60)]
    lie = [(3600 + 60.0 * k, {OFFICE: (24.0, 21.0), HALL: (25.0, 22.0)}) for k in range(8)]
    alerts = Physics().fit(batch(warm), site()).observe(batch(lie))
    assert rules(alerts) == [("vav-1", "high", "T0856")]
    assert alerts[0].t == 3600 + 300
    everywhere = Physics(independent="all").fit(batch(warm), site()).observe(batch(lie))
    assert sorted(a.device for a in everywhere) == ["vav-1", "vav-hall"]
    assert Physics(independent="none").fit(batch(warm), site()).observe(batch(lie)) == []


def test_a_damper_closed_on_a_room_above_its_band() -> None:
    """Reported 28 degC (band 27) with the damper at 20 %: a PI loop would be wide open."""
    warm = [(60.0 * k, {HALL: 22.0, "vav.vav-hall.damper_pct": 60.0}) for k in range(60)]
    det = Physics().fit(batch(warm), site())
    hot = [(3600 + 60.0 * k, {HALL: 28.0, "vav.vav-hall.damper_pct": 20.0}) for k in range(4)]
    assert rules(det.observe(batch(hot))) == [("vav-hall", "high", "T0831")]
    fine = [(7200 + 60.0 * k, {HALL: 28.0, "vav.vav-hall.damper_pct": 100.0}) for k in range(4)]
    assert Physics().fit(batch(warm), site()).observe(batch(fine)) == []


def _setpoint(t: float, src: str, value: float) -> dict[str, Any]:
    """The hall VAV logging a write of its room setpoint."""
    return {"t": t, "device": "vav-hall", "ip": "10.20.20.11", "kind": "register_write",
            "src_ip": src, "detail": f"room_setpoint: 22 -> {value:g}", "value": value}  # fmt: skip


def test_a_room_held_above_its_band_by_its_own_setback_is_no_attack() -> None:
    """The BMS, which commands the hall's setpoint in the warm-up, sets it up to 30 degC for the
    night: 29 degC (band 27) with the damper nearly shut is the loop doing its job. The same
    setpoint written by another host is changed control, and the band still judges it."""
    bms, camera = "10.20.10.10", "10.20.60.10"
    warm = [(60.0 * k, {HALL: 22.0, "vav.vav-hall.damper_pct": 60.0}) for k in range(60)]
    hot = [(3660 + 60.0 * k, {HALL: 29.0, "vav.vav-hall.damper_pct": 20.0}) for k in range(4)]
    det = Physics().fit(batch(warm, [_setpoint(600.0, bms, 22.0)]), site())
    assert det.observe(batch(hot, [_setpoint(3600.0, bms, 30.0)])) == []
    det = Physics().fit(batch(warm, [_setpoint(600.0, bms, 22.0)]), site())
    alerts = det.observe(batch(hot, [_setpoint(3600.0, camera, 30.0)]))
    assert rules(alerts) == [("vav-hall", "high", "T0831")]


def test_an_ahu_setpoint_outside_its_learned_range() -> None:
    """Supply air held at 13 degC in the warm-up; a 35 degC setpoint names the AHU at once."""
    warm = [
        (60.0 * k, {"ahu.ahu.supply_air_setpoint_c": 13.0, "ahu.ahu.supply_air_c": 13.0})
        for k in range(60)
    ]
    det = Physics().fit(batch(warm), site())
    assert det.observe(batch([(3600.0, {"ahu.ahu.supply_air_setpoint_c": 15.0})])) == []
    (alert,) = det.observe(batch([(3660.0, {"ahu.ahu.supply_air_setpoint_c": 35.0})]))
    assert (alert.device, alert.t, alert.technique) == ("ahu", 3660.0, "T0831")


def tank(n: int, high: float = 3.0, alarms: bool = True) -> Samples:
    """harbour-dc's buffer tank per minute: the pump fills between 1.5 m and 3 m (`high` from
    minute 240 on); the alarm, if enabled, at the 3.6 m trip level."""
    level, pump, out = 2.0, 1.0, []
    for k in range(n):
        pump = 1.0 if level <= 1.5 else 0.0 if level >= (3.0 if k < 240 else high) else pump
        alarm = float(alarms and level >= 3.6)
        sample = {"tank.chw-buffer.level_m": round(level, 2), "tank.chw-buffer.pump_on": pump}
        out.append((60.0 * k, {**sample, "tank.chw-buffer.alarm": alarm}))
        level += 0.0625 * pump - 0.0221 * np.sqrt(level)
    return out


def test_a_pump_running_above_the_high_setpoint_and_a_silent_trip() -> None:
    """High setpoint raised to 3.9 m: the pump runs past 3.0 m (overfill); past the 3.6 m trip
    with the alarm muted it is critical; with the alarm working only the overfill is said."""
    quiet = tank(720)
    det = fitted(quiet[:240])
    assert [a for k in range(240, 720, 5) for a in det.observe(batch(quiet[k : k + 5]))] == []
    muted = rules(fitted(quiet[:240]).observe(batch(tank(480, high=3.9, alarms=False)[240:])))
    assert muted == [("plc", "high", "T0831"), ("plc", "critical", "T0878")]
    heard = rules(fitted(quiet[:240]).observe(batch(tank(480, high=3.9)[240:])))
    assert heard == [("plc", "high", "T0831")]


def door(open_: float, locked: float = 1.0) -> Sample:
    return {"door.door-1.open": open_, "door.door-1.locked": locked}


def test_doors_released_or_opened_without_a_badge() -> None:
    """A badge swipe explains an opening; an opening without one, or a released lock, does not."""
    det = Physics().fit(batch([(60.0 * k, door(0.0)) for k in range(60)]), site())
    swipe = {"t": 3600.0, "device": "reader-1", "kind": "badge_swipe", "detail": "door-1"}
    assert det.observe(batch([(3600.0, door(1.0))], [swipe])) == []
    assert rules(det.observe(batch([(3720.0, door(1.0))]))) == [("door-1", "high", "T0855")]
    released = rules(det.observe(batch([(7200.0, door(0.0, locked=0.0))])))
    assert released == [("door-1", "medium", "T0855")]


def test_parameters_are_checked_and_the_fitted_detector_pickles() -> None:
    """Bad parameters are named; a pickled detector says what the original says."""
    with pytest.raises(ValueError, match="h must be > 0, got 0"):
        Physics(h=0)
    with pytest.raises(
        ValueError, match="independent must be one of sensors, all, none, got 'some'"
    ):
        Physics(independent="some")
    det = fitted(hall(180))
    twin = pickle.loads(pickle.dumps(det))
    lie = batch(hall(30, t0=180 * 60, lie=18.0))
    assert twin.observe(lie) == det.observe(lie) != []
    assert det.clone().get_params() == det.get_params()
    assert Physics().fit(TelemetryBatch(0.0, 60.0), site()).observe(lie) == []


# -- real runs ------------------------------------------------------------------------------


def stream(e: Engine, det: Physics, step: float = 300.0) -> tuple[list[Alert], pd.DataFrame]:
    """Fit on the engine's warm-up, then observe it batch by batch to the end; alerts and truth."""
    spec = e.spec
    det.fit(e.run_until(spec.warmup), SiteView(e.facility, e.net.policy))
    alerts: list[Alert] = []
    for t in np.arange(spec.warmup + step, spec.duration + step / 2, step):
        alerts += det.observe(e.run_until(float(t)))
    return alerts, e.truth()


def test_quiet_for_a_day_of_the_flagship_without_its_attack() -> None:
    """27 h of the flagship with no campaign: at most one false alarm per simulated day."""
    spec = load_scenario(FLAGSHIP, {"campaign": None, "duration": "27h", "export_interval": 3600})
    alerts, _ = stream(Engine(spec), Physics())
    assert len(alerts) <= 1, alerts


def test_catches_the_flagship_supply_air_overheat() -> None:
    """The flagship's 35 degC setpoint: one alert on the AHU within a minute, nothing else."""
    spec = load_scenario(FLAGSHIP, {"duration": "4h", "export_interval": 3600})
    alerts, truth = stream(Engine(spec), Physics())
    assert [(a.device, a.technique) for a in alerts] == [("ahu", "T0831")]
    overheat = truth.set_index("step_id").loc["overheat"]
    assert 0 <= alerts[0].t - overheat["t_start"] <= 60


FOOTHOLD = {"id": "foothold", "technique": "default_credentials", "at": "1h10m", "target": "cam-lobby"}  # fmt: skip
FAST: dict[str, Any] = {"export_interval": 300}


def chain(subnet: str, *steps: dict[str, Any]) -> list[dict[str, Any]]:
    recon = {"id": "recon", "technique": "network_scan", "after": "foothold", "from": "cam-lobby",
             "params": {"subnets": [subnet], "ports": [502], "rate": 50}}  # fmt: skip
    return [FOOTHOLD, recon, *({"after": "recon", "from": "cam-lobby", **s} for s in steps)]


def detected(alerts: list[Alert], truth: pd.DataFrame, step: str, monitored: float) -> bool:
    row = truth[truth["step_id"] == step]
    return score_alerts(row, alerts_frame(alerts), monitored, "physics").detected == 1


@pytest.mark.skipif("false_data_injection" not in TECHNIQUES, reason="needs false_data_injection")
def test_finds_false_data_injection_on_the_server_hall_vav() -> None:
    """A VAV told the hall is at 18 degC: named within the step's grace, and nothing else."""
    lie = {
        "id": "lie",
        "technique": "false_data_injection",
        "target": "vav-hall",
        "params": {"value": 18},
    }
    alerts, truth = stream(engine(chain("10.20.20.0/24", lie), duration="2h30m", **FAST), Physics())
    assert detected(alerts, truth, "lie", 5400)
    assert {a.device for a in alerts} == {"vav-hall"}


@pytest.mark.skipif(
    not {"manipulate_control", "suppress_alarm"} <= set(TECHNIQUES),
    reason="needs the PLC techniques",
)
def test_finds_an_overfill_whose_alarm_was_suppressed() -> None:
    """Interlock off, high setpoint raised, alarm muted: the pump above high and the silent trip."""
    mute = {"id": "mute", "technique": "suppress_alarm", "target": "plc"}
    overfill = {"id": "overfill", "technique": "manipulate_control", "target": "plc", "params": {"writes": [
        {"register": "level_high_sp", "value": 3.9}, {"register": "interlock_enable", "value": 0}]}}  # fmt: skip
    e = engine(
        chain("10.20.60.0/24", mute, {**overfill, "after": "mute"}), duration="2h45m", **FAST
    )
    alerts, _ = stream(e, Physics())
    assert {(a.device, a.technique) for a in alerts} >= {("plc", "T0831"), ("plc", "T0878")}
    assert {a.device for a in alerts} == {"plc"}


@pytest.mark.skipif("unlock_doors" not in TECHNIQUES, reason="needs unlock_doors")
def test_finds_doors_unlocked_for_accomplices() -> None:
    """Lock coils written to 0 and two walk-ins: the released door is named at once."""
    unlock = {
        "id": "unlock",
        "technique": "unlock_doors",
        "params": {"doors": ["door-2"], "entries": 2},
    }
    alerts, truth = stream(engine(chain("10.20.30.0/24", unlock), duration="2h", **FAST), Physics())
    assert detected(alerts, truth, "unlock", 3600)
    assert {a.device for a in alerts} == {"door-2"}
