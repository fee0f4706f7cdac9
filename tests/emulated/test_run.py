"""A shipped scenario end to end on the emulated network, and runs that end badly.

The shipped flagship runs through `twin bench --backend mininet` (so Suricata joins the
leaderboard). On flat the chain succeeds for real (a web login, an nmap sweep, a Modbus
write across the router); on zoned the router drops the sweep and the write is never
attempted. nmap's modbus-discover, run from the camera the intruder holds, names the
AHU's configured vendor. Killed runs (SIGTERM, SIGKILL, a device face dying) leave
nothing of theirs behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import SCENARIOS
from twin.bench import bench
from twin.cli import main as cli_main
from twin.devices import KINDS
from twin.engine import Engine
from twin.fidelity import compare
from twin.network.emulated import STATE_NAME, missing_requirements, netns
from twin.network.emulated.backend import TOOLS, EmulatedNetwork
from twin.network.transactions import ModbusIdentify, ModbusRead, Probe
from twin.responses import BlockConduit, Quarantine
from twin.run import RunResult, execute
from twin.scenario import load_scenario
from twin.telemetry import read_table

FLAGSHIP = SCENARIOS / "flagship.yaml"
SPEED = 200.0  # simulated seconds per wall second: 4 h in 72 s
DURATION = "4h"
LAG_P99_MS = 100.0


def _missing() -> list[str]:
    import shutil

    return missing_requirements() + [
        f"no {tool}" for tool in (*TOOLS, "suricata") if shutil.which(tool) is None
    ]


pytestmark = [
    pytest.mark.mininet,
    pytest.mark.skipif(bool(_missing()), reason="emulation unavailable: " + "; ".join(_missing())),
]


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """The shipped flagship on flat, through the benchmark (Suricata on the leaderboard)."""
    out = tmp_path_factory.mktemp("bench-flat")
    board, _ = bench(
        [FLAGSHIP], ["conduit_policy", "allowlist", "suricata"], [7], out, DURATION,
        attack_free=False, backend="mininet", speed=SPEED,
    )  # fmt: skip
    return board, out / "runs" / "flagship-s7"


@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    spec = load_scenario(
        FLAGSHIP,
        {"design": "zoned", "backend": "mininet", "speed": SPEED, "duration": DURATION,
         "detectors": ["conduit_policy", "allowlist", "suricata"]},
    )  # fmt: skip
    return execute(spec, tmp_path_factory.mktemp("zoned"), counterfactual=False)


def summary(run: Path) -> dict[str, Any]:
    return json.loads((run / "summary.json").read_text())


def alive(pid: int) -> bool:
    """Running (a zombie whose parent died is not: nothing left but its exit status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- the flagship for real ----------------------------------------------------------------


def test_flat_chain_succeeds_over_the_emulated_network(flat: tuple[pd.DataFrame, Path]) -> None:
    """Login, nmap sweep and the setpoint write all succeed; the AHU's setpoint in the
    plant is the attacker's; the server hall leaves its band."""
    _, run = flat
    s = summary(run)
    assert s["status"] == "complete" and s["backend"] == "mininet"
    truth = read_table(run, "truth").set_index("step_id")
    assert truth["succeeded"].all(), truth[["succeeded", "blocked_by", "detail"]]
    process = read_table(run, "process")
    setpoint = process[process["signal"] == "ahu.ahu.supply_air_setpoint_c"]
    assert setpoint["value"].max() == pytest.approx(35.0)
    assert s["impact"]["degree_hours_outside_band"] > 0


def test_flows_come_from_the_captures(flat: tuple[pd.DataFrame, Path]) -> None:
    """The pcaps are kept; the flows table holds the real write (fc 6) from the camera to
    the AHU, the BMS's polls, and the sweep's flows labelled in the truth table."""
    _, run = flat
    pcaps = sorted((run / "captures").glob("*.pcap"))
    assert {p.stem for p in pcaps} >= {"bms", "hvac", "cameras", "internet"}
    flows = read_table(run, "flows")
    truth = read_table(run, "truth").set_index("step_id")
    write = flows[flows["flow_id"].isin(truth.loc["overheat", "flow_ids"])]
    assert (write["dst_ip"] == "10.20.20.10").all() and write["modbus_writes"].sum() >= 1
    assert "6" in set(write["modbus_fc_set"])
    polls = flows[(flows["src_ip"] == "10.20.10.10") & (flows["dst_port"] == 502)]
    assert polls["modbus_reads"].sum() > 1000
    assert len(truth.loc["recon", "flow_ids"]) > 100


def test_real_time_kept_pace(flat: tuple[pd.DataFrame, Path]) -> None:
    """At speed 200 the kernel keeps real time: lag p99 within 100 ms, the BMS polling on."""
    stats = summary(flat[1])["emulated"]
    assert stats["lag_p99_ms"] <= LAG_P99_MS, stats
    assert stats["poller_reads"] > 10_000


def test_suricata_in_the_leaderboard(flat: tuple[pd.DataFrame, Path]) -> None:
    """Suricata read the run's pcaps with our ICS rules and caught the chain."""
    board, run = flat
    row = board.set_index("detector").loc["suricata"]
    assert row["recall"] >= 2 / 3 and row["precision"] > 0.5, board
    alerts = read_table(run, "alerts")
    mine = alerts[alerts["detector"] == "suricata"]
    assert "T0836" in set(mine["technique"])  # the write from a non-engineering host
    assert not mine["reason"].str.contains("mismatch").any()


def test_network_is_gone_after_the_run(flat: tuple[pd.DataFrame, Path]) -> None:
    """The run's inventory is gone (its teardown succeeded) and no Mininet node of it runs."""
    run = flat[1]
    assert not (run / STATE_NAME).exists()
    assert summary(run)["emulated"]["nodes"] >= summary(run)["emulated"]["hosts"]
    shells = subprocess.run(["pgrep", "-f", "^bash --norc --noediting -is mininet:"],
                            capture_output=True, text=True).stdout.split()  # fmt: skip
    assert not [p for p in shells if _parent_is_a_dead_run(int(p))]


def _parent_is_a_dead_run(pid: int) -> bool:
    """A Mininet shell orphaned to init: what a run that did not clean up would leave."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == 1


def test_zoned_stops_the_sweep_at_the_router(zoned: RunResult) -> None:
    s = zoned.summary
    assert s["status"] == "complete"
    truth = read_table(zoned.directory, "truth").set_index("step_id")
    assert truth.loc["foothold", "succeeded"]
    assert not truth.loc["recon", "succeeded"]
    assert "no conduit cameras->hvac" in truth.loc["recon", "blocked_by"]
    assert [x["step_id"] for x in s["impact"]["steps_not_attempted"]] == ["overheat"]
    assert s["impact"]["degree_hours_outside_band"] == 0


# -- runs that end badly ------------------------------------------------------------------


def start_run(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "twin.cli", "run", "flagship", "--backend", "mininet",
            "--speed", "60", "--out", str(out), "-q", *extra]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_deployed(
    out: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0
) -> dict[str, Any]:
    """The run's inventory once its faces serve and its captures record."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        polls = out / "captures" / "bms.pcap"  # the BMS's polls enter the router at once
        if polls.exists() and polls.stat().st_size > 24:
            state = json.loads((out / STATE_NAME).read_text())
            if any("faceproc" in " ".join(e.get("argv", [])) for e in state["entries"]):
                return state
        time.sleep(0.2)
    raise AssertionError("the run did not deploy in time")


def leftovers(state: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Mininet nodes (whose shells hold the namespaces) and processes of the run still alive,
    and anything else still inside the nodes' namespaces."""
    nodes = [e["pid"] for e in state["entries"] if e["kind"] == "node"]
    pids = [e["pid"] for e in state["entries"] if e["kind"] == "process"]
    return [p for p in nodes if alive(p)], [p for p in pids if alive(p)]


def namespaces_of(state: dict[str, Any]) -> set[tuple[int, int]]:
    nodes = [e["pid"] for e in state["entries"] if e["kind"] == "node"]
    return {i for p in nodes if (i := netns.inode_of(p)) is not None}


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "run"


def test_sigterm_tears_everything_down(run_dir: Path) -> None:
    """SIGTERM: the run ends as interrupted, and every node, process and namespace is gone."""
    proc = start_run(run_dir)
    state = wait_deployed(run_dir, proc)
    assert leftovers(state) != ([], [])  # the check sees a live run's network
    namespaces = namespaces_of(state)
    assert len(namespaces) == len([e for e in state["entries"] if e["kind"] == "node"])
    faces = [e["pid"] for e in state["entries"] if e.get("argv", [""])[0].startswith("face of")]
    assert len(faces) == 35  # the 34 devices of harbour-dc and the intruder's server, by pid
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert leftovers(state) == ([], [])
    assert netns.pids_inside(namespaces) == []
    assert summary(run_dir)["status"] == "interrupted"


def test_sigkill_leaves_an_inventory_that_reap_clears(run_dir: Path) -> None:
    """SIGKILL: faces, pollers and captures live on in the nodes' namespaces; `twin reap`
    ends exactly what the inventory lists, and with them every namespace and the run's
    scratch directory."""
    proc = start_run(run_dir)
    state = wait_deployed(run_dir, proc)
    namespaces = namespaces_of(state)
    proc.kill()
    proc.communicate(timeout=30)
    _, processes = leftovers(state)
    assert processes, "a SIGKILLed run cannot clean up: its processes are still there"
    assert netns.pids_inside(namespaces)
    assert cli_main(["reap", str(run_dir)]) == 0  # what a person runs; the next run does it too
    assert leftovers(state) == ([], [])
    assert netns.pids_inside(namespaces) == []
    assert not (run_dir / STATE_NAME).exists()
    scratch = [e["path"] for e in state["entries"] if e["kind"] == "dir"]
    assert scratch and not any(Path(d).exists() for d in scratch)  # the faces' socket dir


def test_a_dying_device_face_fails_the_run_cleanly(run_dir: Path) -> None:
    proc = start_run(run_dir)
    state = wait_deployed(run_dir, proc)
    zygote = next(e["pid"] for e in state["entries"] if "faceproc" in " ".join(e.get("argv", [])))
    children = Path(f"/proc/{zygote}/task/{zygote}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"died" in err and b"device face" in err, err
    assert leftovers(state) == ([], [])
    assert summary(run_dir)["status"] == "failed"


def test_responses_change_the_router_while_the_run_goes_on(tmp_path: Path) -> None:
    """Quarantining the camera makes the router drop its traffic from the next packet on;
    blocking the BMS->HVAC conduit (zoned) cuts the BMS's real Modbus to the AHU."""
    spec = load_scenario(
        FLAGSHIP,
        {"design": "zoned", "backend": "mininet", "speed": 600, "duration": "4h", "warmup": "10m"},
    )
    engine = Engine(spec, workdir=tmp_path / "run")
    with engine.net:
        engine.run_until(60)
        cam, nvr, bms = (engine.device(n).ip for n in ("cam-lobby", "nvr", "bms-server"))
        assert engine.net.exchange(Probe(nvr, cam, dst_port=554)).ok
        engine.act(Quarantine(device="cam-lobby"))
        reply = engine.net.exchange(Probe(nvr, cam, dst_port=554))
        assert reply.status == "blocked" and "quarantine" in reply.detail
        target = engine.device("ahu").ip
        assert engine.net.exchange(ModbusRead(bms, target, "holding", 0, 1)).ok
        conduit = engine.net.policy.conduits_between(bms, target)[0]
        engine.act(BlockConduit(conduit=conduit))
        assert engine.net.exchange(ModbusRead(bms, target, "holding", 0, 1)).status == "blocked"


def test_fidelity_of_the_flagship(flat: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    """The same scenario and seed on the modelled network: the report prints its numbers,
    the BMS's polls match closely and the physics is the same kernel's."""
    run = flat[1]
    spec = load_scenario(
        Path(summary(run)["source"]),
        {"duration": DURATION, "detectors": ["conduit_policy", "allowlist"]},
    )
    modelled = execute(spec, tmp_path / "modelled", source=summary(run)["source"])
    fidelity = compare(modelled.directory, run)
    fidelity.write(tmp_path)
    print(fidelity.text())
    overall = fidelity.overall
    assert 0 <= overall["flow_gap"] < 0.5
    assert overall["physics_gap"] < 0.05
    devices = fidelity.devices.set_index("device")
    assert devices.loc["ahu", "modbus_reads_per_min_error"] < 0.25
    assert (tmp_path / "fidelity.html").exists()


def test_device_groups_sharing_hosts_still_answer_as_themselves(tmp_path: Path) -> None:
    """hosts: group puts each device group in one namespace; every member still serves
    its own registers on its own address, and the BMS polls them all."""
    spec = load_scenario(
        FLAGSHIP,
        {"backend": "mininet", "hosts": "group", "speed": 600, "duration": "4h",
         "warmup": "10m", "design": "zoned"},
    )  # fmt: skip
    engine = Engine(spec, workdir=tmp_path / "run")
    with engine.net:
        engine.run_until(1800)  # 3 s of wall time: the poller reports each second
        net = engine.net
        assert isinstance(net, EmulatedNetwork)
        assert len(net.topology.hosts) < len(engine.facility.devices)
        bms = engine.device("bms-server").ip
        for name in ("vav-1", "vav-4", "door-2", "env-3"):
            device = engine.device(name)
            regs = KINDS[device.kind].registers
            table = next(t for t in ("holding", "input", "coil", "discrete") if regs.span(t))
            start, count = regs.span(table) or (0, 1)
            reply = engine.net.exchange(ModbusRead(bms, device.ip, table, start, count))
            assert reply.ok and len(reply.values) == count, (name, reply)
        status = net.poll_status["bms-server"]
        assert status["reads"] > 100 and status["down"] == [], status


def test_nmap_modbus_discover_from_the_foothold_names_the_vendor(tmp_path: Path) -> None:
    """The identification step is nmap's modbus-discover, run inside the camera's host."""
    spec = load_scenario(
        FLAGSHIP, {"backend": "mininet", "speed": 600, "duration": "4h", "warmup": "10m"}
    )
    engine = Engine(spec, workdir=tmp_path / "run")
    with engine.net:
        engine.run_until(60)
        cam, ahu = engine.device("cam-lobby"), engine.device("ahu")
        reply = engine.net.exchange(ModbusIdentify(cam.ip, ahu.ip, cause="identify"))
        assert reply.ok and reply.detail == "nmap modbus-discover", reply
        assert reply.text == (f"{ahu.vendor} {ahu.model} {ahu.firmware}",)
        assert reply.text == ("Siemens PXC36-E.D 3.2.7",)  # what harbour-dc configures
