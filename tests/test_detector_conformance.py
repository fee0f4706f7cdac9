"""The conformance suite every registered detector passes (built-ins and plug-ins alike)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from detectors import REGISTRY, Detector, SiteView
from tests.conftest import SCENARIOS
from twin.engine import Engine
from twin.scenario import load_scenario
from twin.scoring import merge_alerts, score_alerts
from twin.telemetry import TelemetryBatch

NAMES = sorted(REGISTRY)
# what runs on a modelled (sim-backend) recording; detectors that read packet captures
# (suricata) are held to them against real captures in tests/detectors/test_suricata.py
ON_RECORDINGS = [n for n in NAMES if not REGISTRY[n].needs_captures]


@dataclass
class Recording:
    """A scenario's telemetry as detectors receive it, and (for scoring only) its truth."""

    baseline: TelemetryBatch
    batches: list[TelemetryBatch]
    site: SiteView
    truth: pd.DataFrame
    monitored_s: float
    devices: int


_recordings: dict[str, Recording] = {}


def recording(scenario: str) -> Recording:
    if scenario not in _recordings:
        spec = load_scenario(SCENARIOS / f"{scenario}.yaml")
        e = Engine(spec)
        warm, t = [], 0.0
        while t < spec.warmup:
            t = min(t + spec.batch_interval, spec.warmup)
            warm.append(e.run_until(t))
        batches = []
        while t < spec.duration:
            t = min(t + spec.batch_interval, spec.duration)
            batches.append(e.run_until(t))
        _recordings[scenario] = Recording(
            TelemetryBatch.concat(warm), batches, SiteView(e.facility, e.net.policy), e.truth(),
            spec.duration - spec.warmup, len(e.facility.devices),
        )  # fmt: skip
    return _recordings[scenario]


def fitted(cls: type[Detector]) -> tuple[Detector, Recording]:
    rec = recording(cls.reference_scenario)
    return cls().fit(rec.baseline, rec.site), rec


def observe_all(det: Detector, rec: Recording) -> list[Any]:
    return [a for b in rec.batches for a in det.observe(b)]


@pytest.mark.parametrize("name", NAMES)
def test_parameters_survive_clone_and_pickling(name: str) -> None:
    """Unfitted, with its default parameters, a detector clones and pickles to the same parameters."""
    det = REGISTRY[name]()
    assert det.clone().get_params() == det.get_params()
    assert pickle.loads(pickle.dumps(det)).get_params() == det.get_params()


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_clone_keeps_parameters_and_forgets_learning(name: str) -> None:
    """A clone has the same parameters and none of the learned '_' state."""
    det, _ = fitted(REGISTRY[name])
    clone = det.clone()
    assert clone.get_params() == det.get_params()
    assert not [k for k in vars(clone) if k.endswith("_") and not k.startswith("_")]


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_fitted_detector_survives_pickling(name: str) -> None:
    """Pickled after fit, it says exactly what the original says."""
    det, rec = fitted(REGISTRY[name])
    twin = pickle.loads(pickle.dumps(det))
    assert observe_all(twin, rec) == observe_all(det, rec)


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_deterministic(name: str) -> None:
    """Two fresh instances on the same telemetry raise the same alerts."""
    a, rec = fitted(REGISTRY[name])
    b, _ = fitted(REGISTRY[name])
    assert observe_all(a, rec) == observe_all(b, rec)


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_empty_batch_says_nothing(name: str) -> None:
    """An empty batch gives no alerts and no error."""
    det, _ = fitted(REGISTRY[name])
    assert det.observe(TelemetryBatch(0.0, 60.0)) == []


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_never_reads_the_truth(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fitting and observing work with every way to the truth table closed."""
    import twin.telemetry

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} read stored results: {args}")

    rec = recording(REGISTRY[name].reference_scenario)
    monkeypatch.setattr(twin.telemetry, "read_table", forbidden)
    monkeypatch.setattr(pd, "read_parquet", forbidden)
    det = REGISTRY[name]().fit(rec.baseline, rec.site)
    observe_all(det, rec)
    assert "campaign" not in vars(rec.site) and not hasattr(rec.site, "truth")


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_better_than_chance_on_its_reference_scenario(name: str) -> None:
    """It detects steps, with precision above what alerts at random times and devices would get."""
    cls = REGISTRY[name]
    det, rec = fitted(cls)
    alerts = pd.DataFrame([a.__dict__ for a in observe_all(det, rec)])
    if alerts.empty:
        pytest.fail(f"{name} raised no alert on {cls.reference_scenario}")
    score = score_alerts(rec.truth, alerts, rec.monitored_s, name)
    windows = sum(
        float(r.t_end) + float(r.grace) - float(r.t_start) for r in rec.truth.itertuples()
    )
    named = len({x for r in rec.truth.itertuples() for x in (r.attacker, r.target)})
    chance = min(1.0, windows / rec.monitored_s) * min(1.0, named / rec.devices)
    assert score.recall > 0, f"{name} detected no step of {cls.reference_scenario}"
    assert score.precision > chance, (name, score, chance, len(merge_alerts(alerts)))


@pytest.mark.parametrize("name", ON_RECORDINGS)
def test_every_alert_cites_its_evidence(name: str) -> None:
    """Every alert on its reference scenario cites flows, events or signals of that recording
    (the tokens scoring joins with the truth): nothing vague, nothing invented."""
    det, rec = fitted(REGISTRY[name])
    alerts = observe_all(det, rec)
    assert alerts, f"{name} raised no alert on {REGISTRY[name].reference_scenario}"
    flows = {f"flow:{i}" for b in rec.batches for i in b.flows["flow_id"]}
    events = {f"event:{i}" for b in rec.batches for i in b.events["event_id"]}
    signals = {f"signal:{s}" for b in rec.batches for s in b.process["signal"].unique()}
    signals |= {
        f"signal:{p}.{d.name}" for d in rec.site.facility.devices for p in ("health", "firmware")
    }
    for a in alerts:
        assert a.evidence, f"{name}: alert without evidence: {a}"
        unknown = set(a.evidence) - flows - events - signals
        assert not unknown, f"{name}: cites what the recording does not hold: {sorted(unknown)[:5]}"
