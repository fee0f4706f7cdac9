"""device_health: availability attacks seen from the process side, within minutes."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from detectors import SiteView
from detectors.device_health import DeviceHealth
from tests.conftest import SCENARIOS
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
