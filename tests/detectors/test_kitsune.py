"""kitsune: damped incremental statistics per source, channel and socket, scored in z units."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors.kitsune import DampedStats, Kitsune, damped_features
from tests.conftest import FLAGSHIP
from tests.detectors.test_flow_stats import batch, scan, steady
from tests.test_detectors import AHU, CAM, flow, site
from twin.run import RunResult, execute
from twin.scenario import load_scenario
from twin.telemetry import TelemetryBatch

WRITE = flow(CAM, AHU, t=7980, packets=4, bytes=228, bytes_rev=174, modbus_writes=1,
             modbus_fc_set="6", tcp_flags="FSPA")  # fmt: skip


def fitted(**params: object) -> Kitsune:
    return Kitsune(**params).fit(batch(*steady(0, 7200)), site())  # type: ignore[arg-type]


def naive(t: np.ndarray, x: np.ndarray, lam: float) -> tuple[float, float]:
    """Damped weight and mean after the last record, one record at a time."""
    w = s = 0.0
    for i in range(len(t)):
        decay = 2.0 ** (-lam * (t[i] - t[i - 1])) if i else 1.0
        w, s = w * decay + 1.0, s * decay + x[i]
    return w, s / w


def test_damped_sums_match_a_record_by_record_update() -> None:
    """Batched log-domain sums equal the sequential update, split over calls or not."""
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 50_000, 400))  # λ·span far beyond what 2^x can hold
    x = rng.uniform(0, 10, 400)
    key = pd.Index(np.where(rng.random(400) < 0.5, "a", "b"))
    whole, parts = DampedStats((0.1, 0.001)), DampedStats((0.1, 0.001))
    one = damped_features(whole.update(key, t, x, x))
    split = np.vstack([damped_features(parts.update(key[s], t[s], x[s], x[s]))
                       for s in (slice(0, 150), slice(150, 400))])  # fmt: skip
    np.testing.assert_allclose(one, split, rtol=1e-6, atol=1e-4)  # s.d.: sums of squares
    last_a = np.flatnonzero(key == "a")[-1]
    w, mean = naive(t[key == "a"], x[key == "a"], 0.001)
    assert np.expm1(one[last_a, 6]) == pytest.approx(w) and one[last_a, 7] == pytest.approx(mean)


def test_routine_traffic_after_the_warm_up_is_left_alone() -> None:
    """More of the warm-up's own traffic stays within the warm-up's envelope."""
    det = fitted()
    assert det.observe(batch(*steady(7200, 9000))) == []
    assert det.last_scores_.max() < det.threshold_


def test_a_scan_and_the_write_that_follows_are_two_alerts() -> None:
    """The flagship's chain: the sweep's rate, then the write on a channel the sweep opened."""
    det = fitted()
    alerts = det.observe(batch(*steady(7200, 8100), *scan(7800), WRITE))
    assert [(a.device, a.technique, a.t) for a in alerts] == [
        ("cam-lobby", "T0846", 7800.0),
        ("cam-lobby", "T0836", 7980.0),
    ]
    assert "source rate far above" in alerts[0].reason


def test_a_lone_write_is_a_blind_spot() -> None:
    """One write from a silent host looks like any sporadic session: damped statistics miss it."""
    det = fitted()
    assert det.observe(batch(*steady(7200, 8100), WRITE)) == []


def test_memory_is_forgotten_once_it_has_decayed() -> None:
    """A socket's state is dropped when even the slowest window has forgotten it."""
    det = fitted()
    det.observe(batch(*scan(7800)))
    sockets = det.stats_["socket"]
    assert (sockets.keys.str.startswith(CAM + "|")).sum() == 90
    det.observe(batch(*steady(7800, 7800 + 12_000)))
    assert not sockets.keys.str.startswith(CAM + "|").any()


def test_parameters_empty_batches_and_pickling() -> None:
    """Bad parameters are named; an empty batch says nothing; a pickled copy agrees."""
    for name, value in (("lambdas", ()), ("quantile", 2), ("margin", 0.5), ("burn_in", -1)):
        with pytest.raises(ValueError, match=f"{name} must .*got {value}"):
            Kitsune(**dict[str, Any]({name: value}))
    det = fitted()
    assert det.observe(TelemetryBatch(0, 1)) == [] and det.last_scores_.empty
    probe = batch(*steady(7200, 7800), *scan())
    assert pickle.loads(pickle.dumps(det)).observe(probe) == det.observe(probe)
    assert Kitsune().fit(batch(), site()).observe(batch(*scan())) != []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    out = tmp_path_factory.mktemp("kitsune")
    attacked = load_scenario(FLAGSHIP, {"duration": "4h", "detectors": ["kitsune"]})
    quiet = load_scenario(FLAGSHIP, {"duration": "6h", "campaign": None, "detectors": ["kitsune"]})
    return (
        execute(attacked, out / "flagship", counterfactual=False),
        execute(quiet, out / "quiet", counterfactual=False),
    )


def test_flags_the_flagship_scan_and_write(runs: tuple[RunResult, RunResult]) -> None:
    """On the flagship (flat), the scan and the write are detected by evidence (their own
    flows; the internet login is an event, not a flow it scores) and no alert is false."""
    (score,) = runs[0].scores
    assert (score.detected, score.steps, score.precision) == (2, 3, 1.0)
    assert score.false_alarms_per_day == 0.0 and score.flow_pr_auc > 0.9


def test_quiet_on_attack_free_telemetry(runs: tuple[RunResult, RunResult]) -> None:
    """Three attack-free hours after the warm-up: no alert at all."""
    (score,) = runs[1].scores
    assert score.alerts == 0
