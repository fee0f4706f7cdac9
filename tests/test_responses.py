"""Responses: each action changes the running simulation, and playbooks reduce harm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.attacks.harness import engine, run
from tests.conftest import SCENARIOS
from twin.errors import SimulationError
from twin.responses import EnableAlarms, Quarantine, RestoreSetpoints, RotateCredentials
from twin.run import execute
from twin.scenario import load_scenario

CHAIN = [
    {"id": "foothold", "technique": "default_credentials", "at": "1h10m", "target": "cam-lobby"},
    {"id": "recon", "technique": "network_scan", "after": "foothold", "delay": "2m", "from": "cam-lobby",
     "params": {"subnets": ["10.20.20.0/24"], "ports": [502], "rate": 100}},
    {"id": "overheat", "technique": "modbus_write", "after": "recon", "delay": "2m", "from": "cam-lobby",
     "target": "ahu", "params": {"register": "supply_air_setpoint", "value": 35}},
]  # fmt: skip


def test_quarantining_the_foothold_stops_the_next_step() -> None:
    """A quarantine before the scan turns every probe into a firewall denial; containment is timed."""
    e = engine(CHAIN)
    truth = run(e, until=3 * 3600, actions=[(3600 + 660, Quarantine(device="cam-lobby"))])
    assert not bool(truth.loc["recon", "succeeded"])
    assert truth.loc["recon", "blocked_by"] == "response: cam-lobby quarantined"
    assert "overheat" not in truth.index
    assert e.contained_at == pytest.approx(3600 + 660)


def test_rotating_credentials_logs_the_attacker_out() -> None:
    """Rotating the camera's password evicts the attacker: the scan from it is not attempted."""
    e = engine(CHAIN)
    run(e, until=3 * 3600, actions=[(3600 + 660, RotateCredentials(device="cam-lobby"))])
    assert e.campaign is not None and "cam-lobby" not in e.campaign.attacker.positions
    assert [s["step_id"] for s in e.campaign.skipped] == ["recon", "overheat"]


def test_restore_setpoints_undoes_a_malicious_write() -> None:
    """After the write, restoring the AHU's commissioned setpoints brings supply air back to 13 C."""
    e = engine(CHAIN)
    run(e, until=2 * 3600)
    ahu = e.device("ahu")
    assert e.plant.hvac.sa_setpoint[ahu.index] == 35.0
    e.act(RestoreSetpoints(device="ahu"))
    assert e.plant.hvac.sa_setpoint[ahu.index] == 13.0
    kinds = {(r[2], r[4]) for r in e.events.rows}
    assert ("ahu", "response") in kinds


def test_enable_alarms_restores_only_safety_registers() -> None:
    """Re-enabling alarms restores interlock/alarm/override registers and leaves setpoints alone."""
    e = engine([])
    plc = e.device("plc")
    e.plant.tanks.interlock[plc.index] = 0.0
    e.plant.tanks.high_sp[plc.index] = 3.9
    e.act(EnableAlarms(device="plc"))
    assert e.plant.tanks.interlock[plc.index] == 1.0 and e.plant.tanks.high_sp[plc.index] == 3.9


def test_unknown_device_is_a_clear_error() -> None:
    """Acting on a device the site does not have names it."""
    with pytest.raises(SimulationError, match="no device 'cam-99'"):
        engine([]).act(RestoreSetpoints(device="cam-99"))


def test_playbook_lowers_harm_and_says_by_how_much(tmp_path: Path) -> None:
    """The flagship with its playbook: less harm than the same run without, reported in numbers."""
    result = execute(
        load_scenario(SCENARIOS / "flagship-response.yaml", {"duration": "4h30m"}), tmp_path
    )
    impact = result.summary["impact"]
    without = impact["harm_without_responses"]["degree_hours_outside_band"]
    assert without > 5.0
    assert impact["degree_hours_outside_band"] < without / 4
    assert impact["harm_avoided"]["degree_hours_outside_band"] == pytest.approx(
        without - impact["degree_hours_outside_band"], abs=1e-3
    )
    assert impact["time_to_containment_s"] is not None
    assert {a["action"] for a in result.summary["actions"]} == {"Quarantine", "RestoreSetpoints"}
    report = (tmp_path / "report.html").read_text()
    assert "Responses avoided" in report
    assert (
        json.loads((tmp_path / "summary.json").read_text())["responses"][0]["action"]
        == "quarantine"
    )
