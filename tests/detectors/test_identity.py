"""The identity detector: firmware attestation, rogue devices, changed fingerprints, login bursts."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from attacks import TECHNIQUES
from detectors import SiteView
from detectors.identity import Identity
from tests.attacks.harness import device, engine, facility
from tests.conftest import FLAGSHIP, SCENARIOS
from twin.behaviour import ATTESTATION_INTERVAL
from twin.engine import Engine
from twin.facility import Facility
from twin.network.flows import FLOW_COLUMNS
from twin.network.policy import Policy
from twin.scenario import facility_of, load_scenario
from twin.scoring import score_alerts
from twin.telemetry import EVENT_COLUMNS, Alert, TelemetryBatch, alerts_frame

BMS, ENG, AHU, VAV, CAM, PLC = (
    "10.20.10.10", "10.20.10.11", "10.20.20.10", "10.20.20.11", "10.20.40.17", "10.20.60.10",
)  # fmt: skip
VAV_FW = ("1.4.2", "10cdc139cc9dd26be1faabd965342dd8")


def site() -> SiteView:
    fac = Facility.build(facility_of(load_scenario(FLAGSHIP)))
    return SiteView(fac, Policy(fac, "flat", fac.designs["flat"]))


def flow(src: str, dst: str, port: int = 502, t: float = 60.0, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: 0 for c in FLOW_COLUMNS}
    row.update(
        t_start=t - 60, t_end=t, t_export=t, src_ip=src, dst_ip=dst, src_port=50000, dst_port=port,
        proto="tcp", app="other", packets=10, bytes=1000, packets_rev=8, bytes_rev=900,
        tcp_flags="AP", modbus_fc_set="", modbus_unit=1, blocked=False, encrypted=False,
    )  # fmt: skip
    row.update(extra)
    return row


def event(kind: str, t: float = 60.0, **extra: Any) -> dict[str, Any]:
    return {
        **{c: "" for c in EVENT_COLUMNS},
        "event_id": 0,
        "t": t,
        "kind": kind,
        "value": np.nan,
        **extra,
    }


def batch(*rows: dict[str, Any], events: Sequence[dict[str, Any]] = ()) -> TelemetryBatch:
    flows = pd.DataFrame(list(rows), columns=list(FLOW_COLUMNS)).astype(FLOW_COLUMNS)
    ev = pd.DataFrame(list(events), columns=list(EVENT_COLUMNS)).astype(EVENT_COLUMNS)
    return TelemetryBatch(0.0, 600.0, flows=flows, events=ev)


def fitted(*rows: dict[str, Any], **params: Any) -> Identity:
    return Identity(**params).fit(batch(*rows), site())


def said(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.device, a.severity, a.technique) for a in alerts]


def report(
    version: str, digest: str, t: float = 86400.0, name: str = "vav-hall", ip: str = VAV
) -> dict[str, Any]:
    return event("firmware_report", t, device=name, ip=ip, detail=f"{version} {digest}")


# -- firmware attestation ---------------------------------------------------------------------


def test_firmware_differing_from_the_inventory_is_critical_once() -> None:
    """The inventory's image passes; another is critical, said once, and re-armed by a reflash."""
    det = fitted()
    assert det.observe(batch(events=[report(*VAV_FW)])) == []
    implant = report("implant", "a741b14e7f85a741b14e7f85a741b14e")
    (alert,) = det.observe(batch(events=[implant]))
    assert (alert.device, alert.severity, alert.technique, alert.t) == (
        "vav-hall",
        "critical",
        "T0839",
        86400.0,
    )
    assert "implant a741b14e7f85" in alert.reason and "1.4.2 10cdc139cc9d" in alert.reason
    assert det.observe(batch(events=[implant])) == []  # the next day's report: already said
    assert det.observe(batch(events=[report(*VAV_FW, t=172800.0)])) == []  # reflashed
    assert said(det.observe(batch(events=[implant]))) == [("vav-hall", "critical", "T0839")]


def test_same_version_with_another_hash_is_a_tampered_image() -> None:
    """A doctored build under the inventory's version string: T0857, said as such."""
    (alert,) = fitted().observe(batch(events=[report("1.4.2", "ffffffffffffffffffffffffffffffff")]))
    assert alert.technique == "T0857" and "same version, different image" in alert.reason


# -- rogue devices ----------------------------------------------------------------------------


def test_new_devices_and_port_security_refusals_name_the_address() -> None:
    """An unknown MAC/IP is high, a port-security refusal medium, a known device reconnecting nothing."""
    det = fitted()
    events = [
        event("new_device", device="switch-hvac", src_ip="10.20.20.200", detail="02:00:5e:10:00:99"),
        event("port_security_violation", device="switch-ot", src_ip="10.20.60.200", detail="02:00:5e:10:00:98"),
        event("new_device", device="switch-hvac", src_ip=VAV, detail="2e:35:a0:00:00:04"),
    ]  # fmt: skip
    assert said(det.observe(batch(events=events))) == [
        ("10.20.20.200", "high", "T0848"), ("10.20.60.200", "medium", "T0848"),
    ]  # fmt: skip
    spoof = event("new_device", device="switch-hvac", src_ip=AHU, detail="02:00:5e:10:00:97")
    (alert,) = det.observe(batch(events=[spoof]))
    assert alert.device == "ahu" and "claims the address of ahu" in alert.reason


def test_traffic_from_or_answered_by_an_unlisted_address() -> None:
    """An unlisted address in a site zone is named once; the internet and silent targets are not."""
    det = fitted(flow(BMS, AHU), check_services=False)
    alerts = det.observe(batch(
        flow("10.20.20.200", AHU, t=120),
        flow(CAM, "10.20.40.99", port=80, t=180),  # answered: someone lives there
        flow(CAM, "10.20.40.98", port=80, t=180, packets_rev=0),  # a scan into nothing
        flow("198.51.100.66", CAM, port=80, t=240),  # the internet is not in the inventory either
    ))  # fmt: skip
    assert sorted(said(alerts)) == [
        ("10.20.20.200", "high", "T0848"),
        ("10.20.40.99", "high", "T0848"),
    ]
    assert det.observe(batch(flow("10.20.20.200", AHU, t=700))) == []


# -- changed fingerprints ---------------------------------------------------------------------


def test_a_device_using_a_port_it_never_used_and_no_conduit_documents() -> None:
    """A VAV calling out on 443 is named; the engineering workstation's documented Modbus is not."""
    det = fitted(flow(BMS, AHU))
    alerts = det.observe(batch(
        flow(VAV, "198.51.100.200", port=443, t=300, blocked=True),
        flow(ENG, PLC, port=502, t=320),
    ))  # fmt: skip
    assert said(alerts) == [("vav-hall", "medium", "T0869")]
    assert alerts[0].t == 300 and "port 443" in alerts[0].reason
    assert det.observe(batch(flow(VAV, "198.51.100.200", port=443, t=900))) == []
    again = fitted(flow(BMS, AHU), learn_online=False)
    assert [len(again.observe(batch(flow(VAV, "198.51.100.200", port=443)))) for _ in range(2)] == [
        1,
        1,
    ]


def test_a_device_answering_on_a_port_it_does_not_serve() -> None:
    """A VAV holding a data session on 23 is a changed fingerprint; a probe's SYN/RST is not."""
    probe = flow(AHU, VAV, port=23, tcp_flags="SAR", packets_rev=1)
    det = fitted(flow(BMS, VAV), probe)  # the AHU probing port 23 is its habit, not the VAV's
    assert det.observe(batch(probe)) == []
    alerts = det.observe(batch(flow(AHU, VAV, port=23, t=400, tcp_flags="SAPF")))
    assert (
        said(alerts) == [("vav-hall", "medium", "T0839")]
        and "answers on port 23" in alerts[0].reason
    )


# -- login bursts -----------------------------------------------------------------------------


def failures(n: int, t0: float = 100.0, gap: float = 60.0) -> list[dict[str, Any]]:
    return [event("login_failed", t0 + gap * i, device="cam-lobby", ip=CAM, src_ip="198.51.100.66")
            for i in range(n)]  # fmt: skip


def test_a_burst_of_failed_logins_is_one_alert() -> None:
    """Five failures in the window alert once (naming the guesser); four do not; a pause re-arms."""
    det = fitted()
    assert det.observe(batch(events=failures(4))) == []
    (alert,) = det.observe(batch(events=failures(3, t0=400.0)))
    assert (alert.device, alert.src_ip, alert.technique, alert.t) == (
        "cam-lobby",
        "198.51.100.66",
        "T1110",
        400.0,
    )
    assert det.observe(batch(events=failures(10, t0=600.0))) == []  # the same burst
    assert len(det.observe(batch(events=failures(5, t0=20000.0)))) == 1


def test_an_account_lockout_alerts_at_once() -> None:
    """A lockout is a burst even when the window saw fewer failures."""
    locked = event("account_locked", 50.0, device="cam-lobby", ip=CAM, src_ip="198.51.100.66")
    assert said(fitted().observe(batch(events=[locked]))) == [("cam-lobby", "high", "T1110")]


def test_parameters_are_checked_and_the_fitted_detector_pickles() -> None:
    """Bad parameters are named; a pickled detector says what the original says."""
    with pytest.raises(ValueError, match="max_failures must be at least 1, got 0"):
        Identity(max_failures=0)
    with pytest.raises(ValueError, match="window_s must be > 0, got -1"):
        Identity(window_s=-1)
    det = fitted(flow(BMS, AHU))
    copy = pickle.loads(pickle.dumps(det))
    odd = batch(flow("10.20.20.200", AHU), events=[report("x", "y")])
    assert copy.observe(odd) == det.observe(odd) != []
    assert det.observe(TelemetryBatch(0.0, 60.0)) == []


# -- real runs --------------------------------------------------------------------------------


def stream(e: Engine, det: Identity, step: float = 300.0) -> tuple[list[Alert], pd.DataFrame]:
    """Fit on the engine's warm-up, then observe it batch by batch to the end; alerts and truth."""
    spec = e.spec
    det.fit(e.run_until(spec.warmup), SiteView(e.facility, e.net.policy))
    alerts: list[Alert] = []
    for t in np.arange(spec.warmup + step, spec.duration + step / 2, step):
        alerts += det.observe(e.run_until(float(t)))
    return alerts, e.truth()


def detected(alerts: list[Alert], truth: pd.DataFrame, step: str, monitored: float) -> bool:
    row = truth[truth["step_id"] == step]
    return score_alerts(row, alerts_frame(alerts), monitored, "identity").detected == 1


def test_quiet_for_a_day_of_the_flagship_without_its_attack() -> None:
    """27 h of the flagship with no campaign (a firmware attestation included): no alert."""
    spec = load_scenario(FLAGSHIP, {"campaign": None, "duration": "27h"})
    alerts, _ = stream(Engine(spec), Identity(), step=3600.0)
    assert alerts == []


@pytest.mark.skipif("firmware_implant" not in TECHNIQUES, reason="needs firmware_implant")
def test_finds_a_beaconing_implant_and_its_next_attestation() -> None:
    """A USB-flashed VAV: its first beacon changes its fingerprint; the next report is critical."""

    def unmonitored(fac: dict[str, Any]) -> None:
        device(fac, "vav-hall")["physical_access"] = "unmonitored"

    usb = {"id": "usb", "technique": "firmware_implant", "at": "1h10m", "target": "vav-hall",
           "params": {"version": "1.4.2-x", "beacon_s": 1800}}  # fmt: skip
    e = engine([usb], fac=facility(unmonitored), duration="4h30m", export_interval=600)
    alerts, truth = stream(e, Identity(), step=1800.0)
    assert said(alerts) == [("vav-hall", "medium", "T0869"), ("vav-hall", "critical", "T0839")]
    assert alerts[1].t == ATTESTATION_INTERVAL and detected(
        alerts, truth, "usb", ATTESTATION_INTERVAL - 3000
    )


@pytest.mark.skipif("rogue_device" not in TECHNIQUES, reason="needs rogue_device")
def test_finds_a_rogue_device_and_the_scan_it_runs() -> None:
    """A box on the HVAC switch: named when plugged in and again when its sweep starts."""
    plug = {"id": "plug", "technique": "rogue_device", "at": "1h10m",
            "params": {"zone": "hvac", "ip": "10.20.20.200"}}  # fmt: skip
    sweep = {"id": "sweep", "technique": "network_scan", "after": "plug", "delay": "20m",
             "from": "plug", "params": {"subnets": ["10.20.20.0/28"], "ports": [502], "rate": 5}}  # fmt: skip
    alerts, truth = stream(engine([plug, sweep], duration="2h"), Identity())
    assert {a.device for a in alerts} == {"10.20.20.200"} and len(alerts) == 2
    assert detected(alerts, truth, "plug", 3600) and detected(alerts, truth, "sweep", 3600)


@pytest.mark.skipif("brute_force" not in TECHNIQUES, reason="needs brute_force")
def test_finds_a_brute_force_on_the_lobby_camera() -> None:
    """A fast guesser trips the lockout: one T1110 alert naming the camera and the guesser."""
    guess = {"id": "guess", "technique": "brute_force", "at": "1h10m", "target": "cam-lobby",
             "params": {"interval_s": 5}}  # fmt: skip
    alerts, truth = stream(engine([guess], duration="2h"), Identity())
    assert said(alerts) == [("cam-lobby", "high", "T1110")]
    assert detected(alerts, truth, "guess", 3600)


# -- logins from embedded devices -------------------------------------------------------------


def test_a_login_whose_client_is_a_camera_alerts_once_per_pair() -> None:
    """A camera logging in (or trying) to the workstation is a pivot: one alert citing the
    device's log of it; the BMS and the workstation logging in, as people do, never alert."""
    det = fitted()
    pivot = event("login_ok", 100.0, device="eng-ws", ip=ENG, src_ip=CAM, user="admin",
                  detail="ssh", event_id=7)  # fmt: skip
    (alert,) = det.observe(batch(events=[pivot]))
    assert (alert.device, alert.src_ip, alert.technique, alert.evidence) == (
        "eng-ws", CAM, "T0886", ("event:7",),
    )  # fmt: skip
    assert "cam-lobby (camera) logged in to eng-ws as admin" in alert.reason
    assert det.observe(batch(events=[{**pivot, "t": 700.0, "event_id": 8}])) == []
    people = [event("login_ok", 200.0, device="ahu", ip=AHU, src_ip=src, detail="http")
              for src in (BMS, ENG)]  # fmt: skip
    assert det.observe(batch(events=people)) == []


def test_a_device_that_logged_in_during_the_warm_up_is_not_a_pivot() -> None:
    """What the warm-up saw a device do is its routine, whatever its kind."""
    routine = event("login_ok", 100.0, device="nvr", ip="10.20.40.10", src_ip=CAM, detail="http")
    det = Identity().fit(batch(events=[routine]), site())
    assert det.observe(batch(events=[{**routine, "t": 9000.0}])) == []


@pytest.mark.slow
def test_the_pivot_from_the_gate_camera_is_seen_at_the_login() -> None:
    """plant-integrator-pivot: the camera's ssh login to the workstation is detected by the
    login itself, and nothing else in the attack-free run alerts."""
    spec = load_scenario(SCENARIOS / "plant-integrator-pivot.yaml")
    alerts, truth = stream(Engine(spec), Identity())
    pivots = [a for a in alerts if a.technique == "T0886"]
    step = truth.set_index("step_id").loc["pivot"]
    assert pivots and (pivots[0].device, pivots[0].src_ip) == ("eng-ws", step["attacker_ip"])
    assert detected(pivots, truth, "pivot", spec.duration - spec.warmup)
    quiet = load_scenario(SCENARIOS / "plant-integrator-pivot.yaml", {"campaign": None})
    calm, _ = stream(Engine(quiet), Identity(), step=3600.0)
    assert [a for a in calm if a.technique == "T0886"] == []
