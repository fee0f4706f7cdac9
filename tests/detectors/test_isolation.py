"""isolation_forest: an isolation forest over per-flow features, with a range-excess term."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from detectors.isolation import FEATURES, FlowContext, IsolationForestFlows, flow_matrix
from tests.conftest import FLAGSHIP
from tests.detectors.test_flow_stats import batch, scan, steady
from tests.test_detectors import AHU, CAM, flow, site
from twin.run import RunResult, execute
from twin.scenario import load_scenario
from twin.telemetry import TelemetryBatch


def fitted(**params: object) -> IsolationForestFlows:
    return IsolationForestFlows(**params).fit(batch(*steady(0, 7200)), site())  # type: ignore[arg-type]


def test_feature_matrix_has_one_named_column_per_feature() -> None:
    """Every column of the flow matrix is named, and a SYN-only probe sets its flag."""
    b = batch(*steady(0, 600), *scan(hosts=2))
    x = flow_matrix(b.flows, FlowContext.learn(b.flows, site()))
    assert x.shape == (len(b.flows), len(FEATURES))
    assert x[-1, FEATURES.index("SYN without ACK")] == 1.0
    assert x[-1, FEATURES.index("peers per interval")] == pytest.approx(np.log1p(6))


def test_routine_traffic_after_the_warm_up_is_left_alone() -> None:
    """More of the warm-up's own traffic scores under the threshold."""
    det = fitted()
    assert det.observe(batch(*steady(7200, 9000))) == []
    assert det.last_scores_.max() < det.threshold_


def test_scan_and_write_from_a_silent_camera_are_two_alerts() -> None:
    """A sweep and a later write: one alert each, guessed T0846 and T0836, naming the camera."""
    det = fitted()
    write = flow(CAM, AHU, t=7980, packets=4, bytes=228, bytes_rev=174, modbus_writes=1,
                 modbus_fc_set="6", tcp_flags="FSPA")  # fmt: skip
    b = batch(*steady(7200, 8100), *scan(7800), write)
    alerts = det.observe(b)
    assert [(a.device, a.technique, a.t) for a in alerts] == [
        ("cam-lobby", "T0846", 7800.0),
        ("cam-lobby", "T0836", 7980.0),
    ]
    assert "outside the warm-up's range" in alerts[0].reason
    scores, cam = det.last_scores_.to_numpy(), (b.flows["src_ip"] == CAM).to_numpy()
    assert scores[cam].min() > scores[~cam].max()


def test_without_the_range_term_the_forest_saturates() -> None:
    """A pure forest scores a far-out scan like the warm-up's rarest flows: under its threshold."""
    pure = fitted(range_weight=0.0)
    assert pure.observe(batch(*scan(7800))) == []
    assert len(fitted().observe(batch(*scan(7800)))) == 1


def test_parameters_seed_empty_batches_and_pickling() -> None:
    """Bad parameters are named; the same seed gives the same forest; a pickled copy agrees."""
    for name, value in (("n_estimators", 0), ("max_samples", 1), ("quantile", 0), ("margin", -1)):
        with pytest.raises(ValueError, match=f"{name} must .*got {value}"):
            IsolationForestFlows(**dict[str, Any]({name: value}))
    a, b = fitted(seed=3), fitted(seed=3)
    probe = batch(*steady(7200, 7800), *scan())
    assert a.observe(probe) == b.observe(probe) and a.last_scores_.equals(b.last_scores_)
    assert a.observe(TelemetryBatch(0, 1)) == [] and a.last_scores_.empty
    assert pickle.loads(pickle.dumps(b)).observe(probe) == a.observe(probe)
    assert IsolationForestFlows().fit(batch(), site()).observe(batch(*scan())) != []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    out = tmp_path_factory.mktemp("isolation_forest")
    attacked = load_scenario(FLAGSHIP, {"duration": "4h", "detectors": ["isolation_forest"]})
    quiet = load_scenario(
        FLAGSHIP, {"duration": "6h", "campaign": None, "detectors": ["isolation_forest"]}
    )
    return (
        execute(attacked, out / "flagship", counterfactual=False),
        execute(quiet, out / "quiet", counterfactual=False),
    )


def test_flags_the_flagship_scan_and_write(runs: tuple[RunResult, RunResult]) -> None:
    """On the flagship (flat), every step is detected and no alert is false."""
    (score,) = runs[0].scores
    assert (score.detected, score.steps, score.precision) == (3, 3, 1.0)
    assert score.false_alarms_per_day == 0.0 and score.flow_pr_auc > 0.9


def test_quiet_on_attack_free_telemetry(runs: tuple[RunResult, RunResult]) -> None:
    """Three attack-free hours after the warm-up: no alert at all."""
    (score,) = runs[1].scores
    assert score.alerts == 0
