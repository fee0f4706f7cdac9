"""allowed_path: a channel's volume and shape per export interval against its warm-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors import SiteView
from detectors.allowed_path import AllowedPath
from tests.conftest import SCENARIOS
from twin.engine import Engine
from twin.network.flows import FLOW_COLUMNS
from twin.scenario import load_scenario
from twin.scoring import score_alerts
from twin.telemetry import Alert, TelemetryBatch, alerts_frame


def _run(attacked: bool) -> tuple[AllowedPath, list[Alert], pd.DataFrame, float]:
    """dc-gateway-exfil cut short (the leak starts at 3 h 36 min), with or without its campaign."""
    spec = load_scenario(SCENARIOS / "dc-gateway-exfil.yaml")
    spec = spec.model_copy(update={"duration": 4 * 3600.0, "warmup": 2 * 3600.0})
    if not attacked:
        spec = spec.model_copy(update={"campaign": None})
    e = Engine(spec)
    warm = [e.run_until(t) for t in np.arange(300.0, spec.warmup + 1, 300.0)]
    rest = [e.run_until(t) for t in np.arange(spec.warmup + 300.0, spec.duration + 1, 300.0)]
    det = AllowedPath().fit(TelemetryBatch.concat(warm), SiteView(e.facility, e.net.policy))
    alerts = [a for b in rest for a in det.observe(b)]
    return det, alerts, e.truth(), spec.duration - spec.warmup


def test_slow_exfiltration_over_the_gateways_own_egress_is_caught_by_its_flows() -> None:
    """The gateway's uploads on its permitted MQTT egress, far above its routine, are alerted
    within two minutes of the leak's start, every alert citing the leak's flows."""
    _, alerts, truth, monitored = _run(attacked=True)
    score = score_alerts(truth, alerts_frame(alerts), monitored, "allowed_path")
    leak = truth.set_index("step_id").loc["leak"]
    assert alerts and score.precision == 1.0
    caused = {f"flow:{i}" for i in leak["flow_ids"]}
    assert all(set(a.evidence) & caused for a in alerts)
    assert min(a.t for a in alerts) - leak["t_start"] <= 120.0
    assert {a.device for a in alerts} == {"gateway"} and alerts[0].technique == "T0882"


def test_the_same_site_without_the_campaign_raises_nothing() -> None:
    """The attack-free run of the same site and seed: no alert, and every flow scores low."""
    det, alerts, _, _ = _run(attacked=False)
    assert alerts == []
    assert float(det.last_scores_.max()) <= det.threshold_


def test_parameters_are_checked() -> None:
    """Nonsense parameters fail at construction with the value in the message."""
    for bad in ({"threshold": 0.0}, {"min_spread": -1.0}, {"min_intervals": 1},
                {"alarms_per_day": -2.0}):  # fmt: skip
        with pytest.raises(ValueError, match=str(next(iter(bad.values())))):
            AllowedPath(**bad)


BMS, PLC, GATEWAY = "10.20.10.10", "10.20.60.10", "10.20.50.10"


def _flow(i: int, src: str, dst: str, port: int, t: float, up: int, down: int) -> dict[str, Any]:
    row: dict[str, Any] = {c: 0 for c in FLOW_COLUMNS}
    row.update(flow_id=i, t_start=t - 60, t_end=t, t_export=t, src_ip=src, dst_ip=dst,
               src_port=40000, dst_port=port, proto="tcp", app="modbus" if port == 502 else "mqtt",
               packets=4, packets_rev=4 if down else 0, bytes=up, bytes_rev=down,
               tcp_flags="SAP", modbus_fc_set="", blocked=False, encrypted=port != 502)  # fmt: skip
    return row


def _frame(rows: list[dict[str, Any]], t0: float, t1: float) -> TelemetryBatch:
    flows = pd.DataFrame(rows, columns=list(FLOW_COLUMNS)).astype(FLOW_COLUMNS)
    return TelemetryBatch(t0, t1, flows=flows)


def _routine() -> AllowedPath:
    """Sixty minutes of a BMS poll (240 B up, 140 B down) and a gateway's cloud upload
    (1,900 B up, 380 B down) each minute, with a little jitter; no calibration."""
    from tests.detectors.test_physics import site

    rows = []
    for k in range(60):
        t, j = 60.0 * (k + 1), k % 3
        rows.append(_flow(2 * k, BMS, PLC, 502, t, 240 + j, 140 + j))
        rows.append(_flow(2 * k + 1, GATEWAY, "198.51.100.20", 8883, t, 1900 + 40 * j, 380 + j))
    return AllowedPath(alarms_per_day=None).fit(_frame(rows, 0.0, 3600.0), site())


def test_a_large_upload_to_a_new_outside_address_is_judged_as_the_devices_egress() -> None:
    """500 kB from the gateway to an internet address it never used, on its cloud port, is an
    upload far above that egress's routine: one alert citing both flows of the interval."""
    det = _routine()
    alerts = det.observe(_frame([
        _flow(500, GATEWAY, "198.51.100.20", 8883, 3660.0, 1900, 380),
        _flow(501, GATEWAY, "198.51.100.77", 8883, 3660.0, 500_000, 700),
        _flow(502, BMS, PLC, 502, 3660.0, 241, 141),
    ], 3600.0, 3900.0))  # fmt: skip
    assert [(a.device, a.dst_ip, a.technique, a.evidence) for a in alerts] == [
        ("gateway", "198.51.100.77", "T0882", ("flow:500", "flow:501"))
    ]
    assert det.last_scores_[501] > det.threshold_ >= det.last_scores_[502]


def test_a_peer_that_stops_answering_is_not_a_misused_path() -> None:
    """Polls that get nothing back change the channel's shape, but that is availability
    (device_health's part): no alert; the same polls carrying ten times the routine are one."""
    det = _routine()
    assert det.observe(_frame([_flow(600, BMS, PLC, 502, 3660.0, 240, 0)], 3600.0, 3900.0)) == []
    alerts = det.observe(_frame([_flow(601, BMS, PLC, 502, 3720.0, 2400, 140)], 3600.0, 3900.0))
    assert [(a.device, a.technique, a.evidence) for a in alerts] == [
        ("bms-server", "T0802", ("flow:601",))
    ]
