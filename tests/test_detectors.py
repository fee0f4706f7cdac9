"""Built-in detectors: what each flags, what it leaves alone, and the API they share."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from detectors import BUILTIN, REGISTRY, SiteView, build, check_params
from detectors.allowlist import Allowlist
from detectors.conduit_policy import ConduitPolicy
from tests.conftest import FLAGSHIP
from twin.facility import Facility
from twin.network.flows import FLOW_COLUMNS
from twin.network.policy import Policy
from twin.scenario import facility_of, load_scenario
from twin.telemetry import TelemetryBatch

BMS, ENG, AHU, CAM, PLC = "10.20.10.10", "10.20.10.11", "10.20.20.10", "10.20.40.17", "10.20.60.10"


def site(design: str = "flat") -> SiteView:
    fac = Facility.build(facility_of(load_scenario(FLAGSHIP)))
    return SiteView(fac, Policy(fac, design, fac.designs[design]))


def flow(src: str, dst: str, port: int = 502, t: float = 60.0, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: 0 for c in FLOW_COLUMNS}
    row.update(
        t_start=t - 60, t_end=t, t_export=t, src_ip=src, dst_ip=dst, src_port=50000, dst_port=port,
        proto="tcp", app="modbus" if port == 502 else "other", packets=10, bytes=1000,
        tcp_flags="PA", modbus_fc_set="3" if port == 502 else "", modbus_unit=1, blocked=False,
        encrypted=False,
    )  # fmt: skip
    row.update(extra)
    return row


def batch(*rows: dict[str, Any]) -> TelemetryBatch:
    frame = pd.DataFrame(list(rows), columns=list(FLOW_COLUMNS)).astype(FLOW_COLUMNS)
    return TelemetryBatch(0.0, 600.0, flows=frame)


def test_conduit_policy_flags_denied_and_undocumented_paths() -> None:
    """A firewall denial and an allowed-but-undocumented crossing each raise one alert."""
    det = ConduitPolicy().fit(batch(), site())
    alerts = det.observe(batch(
        flow(BMS, AHU),  # documented conduit: fine
        flow(CAM, AHU, t=120, blocked=True),
        flow(CAM, PLC, t=180),
    ))  # fmt: skip
    reasons = sorted(a.reason.split(":")[0] for a in alerts)
    assert reasons == ["denied by the firewall", "no conduit allows"]
    assert all(a.device == "cam-lobby" for a in alerts)


def test_conduit_policy_flags_writes_from_non_engineering_hosts() -> None:
    """A Modbus write from a camera is high severity; the engineering workstation's is not flagged."""
    det = ConduitPolicy().fit(batch(), site())
    alerts = det.observe(batch(
        flow(ENG, PLC, modbus_writes=1, modbus_fc_set="6"),
        flow(CAM, AHU, t=240, modbus_writes=1, modbus_fc_set="6"),
    ))  # fmt: skip
    writes = [a for a in alerts if a.technique == "T0836"]
    assert [(a.src_ip, a.dst_ip, a.severity, a.t) for a in writes] == [(CAM, AHU, "high", 240.0)]


def test_conduit_policy_flags_a_scan_once() -> None:
    """Probing many address/port pairs is one scan alert, not one per probe."""
    det = ConduitPolicy(scan_threshold=10).fit(batch(), site())
    probes = [
        flow(CAM, f"10.20.40.{h}", port=p, packets=2) for h in range(20, 30) for p in (23, 80)
    ]
    alerts = det.observe(batch(*probes))
    scans = [a for a in alerts if a.technique == "T0846"]
    assert len(scans) == 1 and "20 address/port pairs on 10 hosts" in scans[0].reason


def test_allowlist_learns_the_baseline_and_flags_what_is_new() -> None:
    """Paths and Modbus functions seen in the warm-up pass; a new path and a new write do not."""
    det = Allowlist(trust_conduits=False).fit(
        batch(flow(BMS, AHU), flow(ENG, PLC, port=502)), site()
    )
    alerts = det.observe(batch(
        flow(BMS, AHU, t=700),
        flow(CAM, AHU, t=720),
        flow(BMS, AHU, t=760, modbus_writes=1, modbus_fc_set="3,16"),
    ))  # fmt: skip
    assert len(alerts) == 2
    new_path, new_fc = sorted(alerts, key=lambda a: a.t)
    assert new_path.src_ip == CAM and "new path" in new_path.reason
    assert new_fc.technique == "T0836" and "function 16" in new_fc.reason


def test_allowlist_trusts_what_the_design_documents() -> None:
    """A documented path and an engineer's write on it pass; the same from a camera does not."""
    det = Allowlist().fit(batch(flow(BMS, AHU)), site())
    quiet = det.observe(batch(flow(ENG, PLC, t=700, modbus_writes=1, modbus_fc_set="3,6")))
    assert quiet == []  # eng-ws -> plc modbus is a conduit; engineers write setpoints
    loud = det.observe(batch(flow(CAM, PLC, t=760, modbus_writes=1, modbus_fc_set="6")))
    assert [a.src_ip for a in loud] == [CAM, CAM] and {a.technique for a in loud} == {
        "T0886",
        "T0836",
    }


def test_allowlist_online_learning_does_not_repeat_itself() -> None:
    """With online learning, a new path alerts once; without it, every batch."""
    base = batch(flow(BMS, AHU))
    again = batch(flow(CAM, AHU, t=700))
    online, offline = Allowlist().fit(base, site()), Allowlist(learn_online=False).fit(base, site())
    assert [len(online.observe(again)) for _ in range(2)] == [1, 0]
    assert [len(offline.observe(again)) for _ in range(2)] == [1, 1]


# detectors that read packet captures (suricata): tests/detectors/test_suricata.py, on real captures
@pytest.mark.parametrize("name", sorted(n for n in BUILTIN if not BUILTIN[n].needs_captures))
def test_every_builtin_clones_pickles_and_handles_empty_batches(name: str) -> None:
    """The shared contract: clone from params, survive pickling, say nothing about nothing."""
    det = build(name)
    clone = det.clone()
    assert type(clone) is type(det) and clone.get_params() == det.get_params()
    fitted = det.fit(batch(flow(BMS, AHU)), site())
    assert fitted.observe(batch()) == []
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.observe(batch(flow(CAM, AHU, t=700, blocked=True))) == fitted.observe(
        batch(flow(CAM, AHU, t=700, blocked=True))
    )


def test_registry_and_parameter_checks() -> None:
    """Built-ins are registered by name; bad parameters are named before anything runs."""
    assert {"conduit_policy", "allowlist"} <= set(REGISTRY)
    assert check_params(ConduitPolicy, {"scan_threshold": 5}) == []
    (unknown,) = check_params(ConduitPolicy, {"threshold": 5})
    assert "unknown parameter 'threshold'" in unknown.message
    (bad,) = check_params(ConduitPolicy, {"scan_threshold": 1})
    assert "at least 2" in bad.message


@pytest.mark.slow
def test_a_scenario_naming_no_detectors_runs_the_default_ensemble(tmp_path: Path) -> None:
    """No `detectors:` list is never 'score nothing': the default ensemble runs and is scored,
    and the summary says so (twin run prints it)."""
    from detectors.ensemble import DEFAULT_MEMBERS
    from twin.run import execute

    spec = load_scenario(FLAGSHIP, {"detectors": [], "duration": "4h"})
    result = execute(spec, tmp_path / "run", counterfactual=False)
    assert [d["name"] for d in result.summary["detectors"]] == ["ensemble"]
    assert all(m in result.summary["detectors_note"] for m in DEFAULT_MEMBERS)
    (score,) = result.scores
    assert score.detector == "ensemble" and score.recall == 1.0
