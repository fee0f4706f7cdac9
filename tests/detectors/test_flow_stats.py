"""flow_stats: robust z-scores and EWMA against the warm-up, per device and persistent channel."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors.flow_stats import FlowStats, robust_scales
from tests.conftest import FLAGSHIP
from tests.test_detectors import AHU, BMS, CAM, ENG, PLC, flow, site
from tests.test_detectors import batch as unnumbered
from twin.run import RunResult, execute
from twin.scenario import load_scenario
from twin.telemetry import TelemetryBatch

VAV = "10.20.20.12"


def batch(*rows: dict[str, Any]) -> TelemetryBatch:
    """Rows in a batch, numbered 1..n (flow ids) in the given order."""
    b = unnumbered(*rows)
    b.flows["flow_id"] = np.arange(1, len(b.flows) + 1)
    return b


def steady(t0: float, t1: float) -> list[dict[str, Any]]:
    """A poller's persistent flows every minute, with a little jitter, and a sparse engineer."""
    rows = []
    for i, t in enumerate(range(int(t0) + 60, int(t1) + 1, 60)):
        jitter = (i * 37) % 11 - 5
        rows += [
            flow(BMS, AHU, t=t, src_port=50001, packets=36, bytes=2160 + 6 * jitter,
                 bytes_rev=1164, packets_rev=18, modbus_reads=18),
            flow(BMS, VAV, t=t, src_port=50002, packets=36, bytes=2226 + 6 * jitter,
                 bytes_rev=1254, packets_rev=18, modbus_reads=18),
        ]  # fmt: skip
        if i % 40 == 7:
            rows.append(flow(ENG, PLC, t=t, packets=5, bytes=330, bytes_rev=355, modbus_reads=5))
    return rows


def fitted(**params: Any) -> FlowStats:
    return FlowStats(**params).fit(batch(*steady(0, 7200)), site())


def scan(t: float = 7800.0, hosts: int = 30) -> list[dict[str, Any]]:
    return [
        flow(CAM, f"10.20.20.{h}", port=p, t=t, packets=2, bytes=120, tcp_flags="S")
        for h in range(1, hosts + 1)
        for p in (23, 80, 502)
    ]


def test_routine_traffic_after_the_warm_up_is_left_alone() -> None:
    """More of the warm-up's own traffic (jitter, a rare engineering session) raises nothing."""
    det = fitted()
    assert det.observe(batch(*steady(7200, 9000))) == []
    assert det.last_scores_.max() < det.threshold


def test_a_scan_from_a_silent_camera_is_one_alert() -> None:
    """A sweep from a device that never spoke is one T0846 alert naming it, at the export time."""
    det = fitted()
    alerts = det.observe(batch(*steady(7200, 7800), *scan()))
    assert len(alerts) == 1
    (a,) = alerts
    assert (a.device, a.src_ip, a.technique, a.t) == ("cam-lobby", CAM, "T0846", 7800.0)
    assert "silent in the warm-up" in a.reason and "peers per interval 90" in a.reason


def test_a_write_from_a_host_that_never_wrote_is_flagged() -> None:
    """One Modbus write where the warm-up had none is a T0836 alert; the poll flows are not."""
    det = fitted()
    write = flow(CAM, AHU, t=7860, packets=4, bytes=228, bytes_rev=174, modbus_writes=1,
                 modbus_fc_set="6", tcp_flags="FSPA")  # fmt: skip
    b = batch(*steady(7200, 7860), write)
    alerts = det.observe(b)
    assert [(a.device, a.dst_ip, a.technique) for a in alerts] == [("cam-lobby", AHU, "T0836")]
    assert det.last_scores_.idxmax() == len(b.flows)


def test_bursts_apart_in_time_are_separate_alerts() -> None:
    """A scan and a write three minutes later are two alerts: they may be two attack steps."""
    det = fitted()
    write = flow(CAM, AHU, t=7980, packets=4, bytes=228, modbus_writes=1, modbus_fc_set="6")
    alerts = det.observe(batch(*scan(7800), write))
    assert [(a.t, a.technique) for a in alerts] == [(7800.0, "T0846"), (7980.0, "T0836")]


def test_a_small_sustained_rise_is_caught_by_the_ewma() -> None:
    """Bytes up 35% for an hour: below every instantaneous threshold, but the EWMA sees it
    (at the configured threshold: no calibration probe, whose hour of synthetic warm-up would
    count the sparse engineer as its budget's alarm)."""
    det = fitted(alarms_per_day=None)
    rows = [
        {**r, "bytes": int(r["bytes"] * 1.35)} for r in steady(7200, 10800) if r["src_ip"] == BMS
    ]
    alerts = det.observe(batch(*rows))
    assert alerts and all(a.device == "bms-server" for a in alerts)
    assert "EWMA" in alerts[0].reason


def test_scales_never_narrower_than_the_warm_up_extremes() -> None:
    """The warm-up's extreme scores ENVELOPE_Z (3), however small the MAD."""
    x = pd.DataFrame({"a": [1.0] * 99 + [2.0]}).to_numpy()
    med, lo, hi = robust_scales(x, pd.Series([0] * 100).to_numpy(), 2, 0.01)
    assert med[0, 0] == 1.0 and hi[0, 0] == pytest.approx(1 / 3) and lo[0, 0] == 0.01
    assert med[1, 0] == 0.0 and hi[1, 0] == 0.01  # a group without rows is silence


def test_parameters_empty_batches_pickling_and_determinism() -> None:
    """Bad parameters are named; an empty batch says nothing; a pickled copy scores alike."""
    for name, value in (("threshold", 2), ("alpha", 0), ("min_flows", 1), ("floor", 0)):
        with pytest.raises(ValueError, match=f"{name} must .*got {value}"):
            FlowStats(**dict[str, Any]({name: value}))
    det = fitted()
    assert det.observe(TelemetryBatch(7200, 7500)) == [] and det.last_scores_.empty
    copy = pickle.loads(pickle.dumps(det))
    b = batch(*steady(7200, 7800), *scan())
    assert det.observe(b) == copy.observe(b)
    assert det.last_scores_.equals(copy.last_scores_)
    assert FlowStats().fit(batch(), site()).observe(batch(*scan())) != []


@pytest.fixture(scope="module")
def flagship(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    spec = load_scenario(FLAGSHIP, {"duration": "4h", "detectors": ["flow_stats"]})
    return execute(spec, tmp_path_factory.mktemp("flow_stats"), counterfactual=False)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    spec = load_scenario(
        FLAGSHIP, {"duration": "6h", "campaign": None, "detectors": ["flow_stats"]}
    )
    return execute(spec, tmp_path_factory.mktemp("flow_stats_quiet"), counterfactual=False)


def test_flags_the_flagship_scan_and_write(flagship: RunResult) -> None:
    """On the flagship (flat), every step is detected and no alert is false."""
    (score,) = flagship.scores
    assert (score.detected, score.steps, score.precision) == (3, 3, 1.0)
    assert score.false_alarms_per_day == 0.0 and score.flow_pr_auc > 0.9
    alerts = pd.read_parquet(Path(flagship.directory) / "alerts.parquet")
    assert {"T0846", "T0836"} <= set(alerts["technique"])
    assert set(alerts["device"]) == {"cam-lobby"}


def test_quiet_on_attack_free_telemetry(quiet: RunResult) -> None:
    """Three attack-free hours after the warm-up: no alert at all."""
    (score,) = quiet.scores
    assert score.alerts == 0


def test_calibration_raises_the_threshold_to_keep_the_budget() -> None:
    """With a budget, a probe on the warm-up's last third sets the threshold: never below the
    configured one, and above every alarm the probe raised when the budget allows none."""
    free, budget = fitted(alarms_per_day=None), fitted(alarms_per_day=1.0)
    assert free.threshold_ == free.threshold
    assert budget.threshold_ >= budget.threshold
    assert budget.calibration_["allowed"] == 0
    if budget.calibration_["alarms"]:
        assert budget.threshold_ > budget.threshold
