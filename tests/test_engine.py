"""The engine: determinism, stepping with actions between steps, and the tables it makes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FLAGSHIP, run_flagship
from twin.engine import Engine
from twin.errors import BackendError, SimulationError
from twin.responses import BlockConduit, Quarantine, RestoreRegister
from twin.run import RunResult
from twin.scenario import load_scenario
from twin.telemetry import TABLES, read_table


def engine(**overrides: str) -> Engine:
    return Engine(load_scenario(FLAGSHIP, {"duration": "4h", **overrides}))


def test_same_seed_same_tables_bit_for_bit(tmp_path: Path, flat_run: RunResult) -> None:
    """Running a scenario twice with one seed gives identical tables and scores."""
    again = run_flagship(tmp_path, design="flat")
    for table in TABLES:
        a, b = read_table(flat_run.directory, table), read_table(again.directory, table)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert flat_run.summary["scores"] == again.summary["scores"]


def test_another_seed_gives_other_noise() -> None:
    """The seed reaches the physics: another seed changes the measured temperatures."""
    a, b = engine(seed=1), engine(seed=2)
    pa, pb = a.run_until(1800).process, b.run_until(1800).process
    assert not pa["reported"].equals(pb["reported"])


def test_run_until_streams_disjoint_batches() -> None:
    """Each call returns only what happened since the previous one, in time order."""
    e = engine()
    first = e.run_until(600)
    second = e.run_until(1200)
    assert first.process["t"].max() < second.process["t"].min()
    assert set(first.flows["flow_id"]).isdisjoint(second.flows["flow_id"])
    assert second.flows["t_export"].is_monotonic_increasing
    with pytest.raises(SimulationError, match="cannot run back"):
        e.run_until(100)


def test_quarantine_cuts_polling_and_raises_comm_loss() -> None:
    """A quarantined controller's poll flows turn to denied attempts and the BMS alarms."""
    e = engine()
    e.run_until(600)
    ahu = e.device("ahu")
    e.act(Quarantine(device="ahu", reason="test"))
    batch = e.run_until(900)
    polls = batch.flows[batch.flows["dst_ip"] == ahu.ip]
    assert len(polls) > 0 and polls["blocked"].all() and (polls["modbus_reads"] == 0).all()
    kinds = set(
        zip(batch.events["device"], batch.events["kind"], batch.events["detail"], strict=True)
    )
    assert ("ahu", "alarm_raised", "comm_loss") in kinds
    assert ("ahu", "response", "quarantined ahu") in kinds


def test_restore_register_changes_the_plant() -> None:
    """Restoring a setpoint writes the plant state the next physics step uses."""
    e = engine()
    e.run_until(60)
    e.act(RestoreRegister(device="ahu", register="supply_air_setpoint", value=18.0))
    assert e.plant.hvac.sa_setpoint[e.device("ahu").index] == 18.0


def test_unknown_conduit_is_a_simulation_error() -> None:
    """Blocking a conduit that does not exist says which ones do."""
    e = engine(design="zoned")
    with pytest.raises(SimulationError, match="no conduit 'nope'"):
        e.act(BlockConduit(conduit="nope"))


def test_mininet_backend_needs_a_run_directory() -> None:
    """The emulated backend keeps its captures in the run directory: without one it says so
    before creating anything (and, without root or its tools, says what is missing)."""
    with pytest.raises(BackendError, match=r"run directory|cannot run here"):
        engine(backend="mininet")


def test_flows_carry_the_modbus_fields(flat_run: RunResult) -> None:
    """Polling shows up as Modbus flows with reads and function codes, one row per minute."""
    flows = read_table(flat_run.directory, "flows")
    modbus = flows[flows["app"] == "modbus"]
    polls = modbus[modbus["src_ip"] == "10.20.10.10"]  # the BMS server
    assert len(polls) > 1000 and (polls["modbus_reads"] > 0).all()
    assert {"4", "1,3,4", "1,2,4", "1,2,3,4", "1,3,4,6"} <= set(polls["modbus_fc_set"])
    per_pair = modbus.groupby(["src_ip", "dst_ip", "src_port"]).size()
    assert per_pair.max() <= 4 * 60 + 1  # one record per 60 s export interval over 4 h
