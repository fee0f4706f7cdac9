"""federated: per-zone autoencoders averaged by FedAvg, against the same model trained centrally."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

import detectors.federated as fed
from detectors.federated import Federated, edge_zones, fed_avg
from tests.conftest import FLAGSHIP
from tests.detectors.test_flow_stats import batch, scan, steady
from tests.test_detectors import AHU, CAM, flow, site
from twin.run import RunResult, execute
from twin.scenario import load_scenario
from twin.telemetry import TelemetryBatch

NVR, GATEWAY, ENV = "10.20.40.10", "10.20.50.10", "10.20.20.18"


def zones_steady(t0: float, t1: float) -> list[dict[str, Any]]:
    """The poller's flows plus a video stream (cameras zone) and a gateway's polls (iot zone)."""
    rows = steady(t0, t1)
    for i, t in enumerate(range(int(t0) + 60, int(t1) + 1, 60)):
        rows += [
            flow(NVR, CAM, port=554, t=t, app="rtsp", src_port=50010, packets=2600,
                 bytes=140_000 + 900 * (i % 7), packets_rev=21_000, bytes_rev=30_000_000),
            flow(GATEWAY, ENV, t=t, src_port=50020, packets=4, bytes=240, packets_rev=2,
                 bytes_rev=138, modbus_reads=2),
        ]  # fmt: skip
    return rows


def fitted(**params: Any) -> Federated:
    return Federated(**params).fit(batch(*zones_steady(0, 7200)), site())


def test_fed_avg_weights_edges_by_their_flows() -> None:
    """The server's model is the flow-weighted mean of the edge models."""
    a, b = {"w": np.array([0.0, 4.0])}, {"w": np.array([4.0, 0.0])}
    np.testing.assert_allclose(fed_avg([a, b], [3, 1])["w"], [1.0, 3.0])


def test_each_flow_belongs_to_its_source_zone_else_its_destination_zone() -> None:
    """An internal source's zone owns its flows; an outside attacker's flow goes to its target's."""
    b = batch(flow(CAM, AHU), flow("198.51.100.66", CAM, port=80), flow("203.0.113.9", "8.8.8.8"))
    assert list(edge_zones(b.flows, site())) == ["cameras", "cameras", "outside"]


def test_edges_train_only_on_their_own_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """In federated mode every local update sees one zone's flows; central sees them all."""
    seen: list[int] = []
    train = fed.train

    def spy(p: fed.Params, x: np.ndarray, *args: Any) -> fed.Params:
        seen.append(len(x))
        return train(p, x, *args)

    monkeypatch.setattr(fed, "train", spy)
    b = batch(*zones_steady(0, 3600))
    per_zone = sorted(np.unique(edge_zones(b.flows, site()), return_counts=True)[1])
    Federated(rounds=2, alarms_per_day=None).fit(b, site())  # no calibration probe training
    assert sorted(seen) == sorted(per_zone * 2)
    seen.clear()
    Federated(mode="central", rounds=2, alarms_per_day=None).fit(b, site())
    assert seen == [len(b.flows)] * 2


@pytest.mark.parametrize("mode", ["federated", "central"])
def test_routine_traffic_passes_and_the_chain_alerts(mode: str) -> None:
    """Either way, the warm-up's own traffic passes and a sweep and a write alert once each."""
    det = fitted(mode=mode)
    assert det.observe(batch(*zones_steady(7200, 9000))) == []
    write = flow(CAM, AHU, t=7980, packets=4, bytes=228, bytes_rev=174, modbus_writes=1,
                 modbus_fc_set="6", tcp_flags="FSPA")  # fmt: skip
    alerts = det.observe(batch(*zones_steady(7200, 8100), *scan(7800), write))
    assert [(a.device, a.technique, a.t) for a in alerts] == [
        ("cam-lobby", "T0846", 7800.0),
        ("cam-lobby", "T0836", 7980.0),
    ]
    assert "worst reconstructed" in alerts[0].reason


def test_parameters_seeds_empty_batches_and_pickling() -> None:
    """Bad parameters are named; a seed fixes the model; a pickled copy scores alike."""
    for name, value in (("mode", "gossip"), ("rounds", 0), ("learning_rate", 1.5),
                        ("quantile", 0), ("margin", 0.5), ("min_error", -1)):  # fmt: skip
        with pytest.raises(ValueError, match=f"{name} must .*got '?{value}"):
            Federated(**dict[str, Any]({name: value}))
    a, b = fitted(seed=5), fitted(seed=5)
    probe = batch(*zones_steady(7200, 7800), *scan())
    assert a.observe(probe) == b.observe(probe) and a.last_scores_.equals(b.last_scores_)
    assert fitted(seed=6).threshold_ != a.threshold_
    assert a.observe(TelemetryBatch(0, 1)) == [] and a.last_scores_.empty
    assert pickle.loads(pickle.dumps(a)).observe(probe) == a.observe(probe)
    assert Federated().fit(batch(), site()).observe(batch(*scan())) != []


BOTH = [
    {"name": "federated", "label": "federated"},
    {"name": "federated", "params": {"mode": "central"}, "label": "central"},
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    out = tmp_path_factory.mktemp("federated")
    attacked = load_scenario(FLAGSHIP, {"duration": "4h", "detectors": BOTH})
    quiet = load_scenario(FLAGSHIP, {"duration": "6h", "campaign": None, "detectors": BOTH})
    return (
        execute(attacked, out / "flagship", counterfactual=False),
        execute(quiet, out / "quiet", counterfactual=False),
    )


def test_federated_and_central_both_catch_the_flagship(runs: tuple[RunResult, RunResult]) -> None:
    """Trained at the edges or centrally, the model detects every flagship step, no false alarm."""
    scores = {s.detector: s for s in runs[0].scores}
    for mode in ("federated", "central"):
        s = scores[mode]
        assert (s.detected, s.steps, s.precision, s.false_alarms_per_day) == (3, 3, 1.0, 0.0)
        assert s.flow_pr_auc > 0.9


def test_quiet_on_attack_free_telemetry(runs: tuple[RunResult, RunResult]) -> None:
    """Three attack-free hours after the warm-up: no alert in either mode."""
    assert {s.detector: s.alerts for s in runs[1].scores} == {
        "federated": 0,
        "central": 0,
        "union": 0,
    }
