"""allowed_path: a channel's volume and shape per export interval against its warm-up."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors import SiteView
from detectors.allowed_path import AllowedPath
from tests.conftest import SCENARIOS
from twin.engine import Engine
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
    import pytest

    for bad in ({"threshold": 0.0}, {"min_spread": -1.0}, {"min_intervals": 1},
                {"alarms_per_day": -2.0}):  # fmt: skip
        with pytest.raises(ValueError, match=str(next(iter(bad.values())))):
            AllowedPath(**bad)
