"""device_health: availability attacks seen from the process side, within minutes."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from detectors import SiteView
from detectors.device_health import DeviceHealth
from tests.conftest import SCENARIOS
from twin import evidence
from twin.engine import Engine
from twin.scenario import load_scenario
from twin.scoring import score_alerts
from twin.telemetry import EVENT_COLUMNS, Alert, TelemetryBatch, alerts_frame


@cache
def recorded(attack: bool) -> tuple[TelemetryBatch, list[TelemetryBatch], SiteView, pd.DataFrame]:
    """plant-rogue-flood (a PLC flooded until it stops scanning), with or without its attack."""
    spec = load_scenario(SCENARIOS / "plant-rogue-flood.yaml", {} if attack else {"campaign": None})
    e = Engine(spec)
    warm = [e.run_until(t) for t in np.arange(300.0, spec.warmup + 1, 300.0)]
    rest = [e.run_until(t) for t in np.arange(spec.warmup + 300.0, spec.duration + 1, 300.0)]
    return TelemetryBatch.concat(warm), rest, SiteView(e.facility, e.net.policy), e.truth()


def observe(attack: bool) -> tuple[list[Alert], pd.DataFrame, float]:
    baseline, batches, site, truth = recorded(attack)
    det = DeviceHealth().fit(baseline, site)
    return [a for b in batches for a in det.observe(b)], truth, batches[-1].t_end - baseline.t_end


@pytest.mark.slow
def test_a_flooded_plc_is_reported_within_two_minutes() -> None:
    """The flood that stalls plc-mix-1 is detected by evidence (its availability) within 120 s."""
    alerts, truth, monitored = observe(attack=True)
    flood = truth[truth["name"] == "flood"].iloc[0]
    mine = [a for a in alerts if a.device == "plc-mix-1"]
    assert mine and "signal:health.plc-mix-1" in mine[0].evidence
    score = score_alerts(truth, alerts_frame(alerts), monitored, "device_health")
    assert score.detected >= 1
    assert min(a.t for a in mine) - float(flood["t_start"]) <= 120.0


@pytest.mark.slow
def test_quiet_night_raises_nothing() -> None:
    """Without the attack the same night gives no alert (no comm loss, polls answered, values move)."""
    alerts, _, _ = observe(attack=False)
    assert alerts == []


def _events(rows: list[tuple[float, str, str]]) -> pd.DataFrame:
    blank = {**dict.fromkeys(EVENT_COLUMNS, ""), "value": np.nan}
    frame = pd.DataFrame(
        [{**blank, "event_id": i + 1, "t": t, "device": d, "ip": "10.0.0.1", "kind": k, "detail": "comm_loss"}
         for i, (t, d, k) in enumerate(rows)],
        columns=list(EVENT_COLUMNS),
    )  # fmt: skip
    return frame.astype(EVENT_COLUMNS)


def test_comm_loss_once_per_outage_and_flaky_devices_ignored() -> None:
    """One alert per outage (again only after the alarm cleared); a device that lost
    communication in the warm-up is flaky by nature and never reported."""
    baseline, _, site, _ = recorded(False)
    warm = TelemetryBatch(
        0.0, 1.0, baseline.flows, baseline.process, _events([(5.0, "flaky", "alarm_raised")])
    )
    det = DeviceHealth(check_stale=False).fit(warm, site)
    rows = [(100.0, "plc", "alarm_raised"), (160.0, "plc", "alarm_raised"), (200.0, "flaky", "alarm_raised"),
            (300.0, "plc", "alarm_cleared"), (400.0, "plc", "alarm_raised")]  # fmt: skip
    alerts = det.observe(TelemetryBatch(100.0, 500.0, events=_events(rows)))
    assert [(a.t, a.device) for a in alerts] == [(100.0, "plc"), (400.0, "plc")]
    assert alerts[0].evidence == ("event:1", "signal:health.plc")


def _room(changes: list[float], t0: float, t1: float, signal: str) -> pd.DataFrame:
    """A reported room temperature sampled each minute that steps 0.1 degC at `changes`."""
    t = np.arange(t0, t1, 60.0)
    v = 20.0 + 0.1 * np.searchsorted(np.asarray(changes), t, side="right")
    return pd.DataFrame({"t": t, "signal": signal, "value": v, "reported": v})


def test_a_quiet_night_teaches_longer_spells_and_an_outage_is_still_reported() -> None:
    """A room that moved every 5 min in the warm-up holds still for 14 min spells at night
    (under the 15 min limit): those teach its rhythm, so a 20 min spell later is no alarm
    (the warm-up alone would have called it stale); three hours frozen is still reported."""
    from tests.detectors.test_physics import site

    where = site()
    signal = "room.server-hall.temp_c"
    assert signal in {
        s for names in evidence.device_signals(where.facility).values() for s in names
    }
    warm = list(np.arange(300.0, 3600.0, 300.0))
    det = DeviceHealth().fit(
        TelemetryBatch(0.0, 3600.0, process=_room(warm, 0.0, 3600.0, signal)), where
    )
    night = [*warm, 4440.0, 5280.0, 6120.0, 7320.0, 8520.0]  # 14, 14, 14, 20 and 20 min spells
    alerts = []
    for lo in np.arange(3600.0, 8600.0 + 3 * 3600.0, 300.0):
        alerts += det.observe(
            TelemetryBatch(lo, lo + 300.0, process=_room(night, lo, lo + 300.0, signal))
        )
    assert [(a.device, a.technique) for a in alerts] == [(alerts[0].device, "T0814")]
    assert alerts[0].t >= 8520.0 + 3 * 1200.0 - 60.0  # three times the longest routine spell
