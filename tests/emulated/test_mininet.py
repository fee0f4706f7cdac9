"""The facility as Mininet sees it: `FacilityTopo`, and the file `twin topo` writes for `mn --custom`.

The file is opened by Debian's own `mn` (its own Python, without the twin), driven by a
script of commands on stdin, and must leave nothing behind when it exits.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mininet.topo import Topo

from tests.emulated.test_topology import (
    ATTACKER,
    HARBOUR,
    emulated,
    leaves_nothing,  # noqa: F401 - the fixture `emulated` uses
)
from twin.cli import main as cli_main
from twin.facility import Facility
from twin.network.emulated import FacilityTopo
from twin.network.emulated.lifecycle import ProcessId
from twin.scenario import load_facility

MN = shutil.which("mn")


@pytest.fixture(scope="module")
def harbour() -> Facility:
    return Facility.build(load_facility(HARBOUR))


def test_facility_topo_is_a_mininet_topo_of_the_facility(harbour: Facility) -> None:
    """A host per device and the attacker, a switch per zone, the router linked to each;
    every host is linked to its zone's switch and carries the device's address and MAC."""
    topo = FacilityTopo(harbour, "zoned", attacker=ATTACKER)
    assert isinstance(topo, Topo)
    hosts = set(topo.hosts())
    assert {d.name for d in harbour.devices} | {"attacker", "router"} == hosts
    assert set(topo.switches()) == set(harbour.zones)
    links = {frozenset((a, b)) for a, b in topo.links()}
    for device in harbour.devices:
        assert frozenset((device.name, device.zone)) in links
        info = topo.nodeInfo(device.name)["device"]
        assert (info["ip"].split("/")[0], info["mac"]) == (device.ip, device.mac)
    assert {frozenset(("router", z)) for z in harbour.zones} <= links
    assert all(topo.nodeInfo(s)["inNamespace"] for s in topo.switches())
    assert "-A FORWARD -j CONDUITS" in topo.nodeInfo("router")["router"]["rules"]


def test_the_written_file_needs_only_mininet(tmp_path: Path) -> None:
    """`twin topo` writes plain Python importing nothing of the twin, with `topos` for mn
    and the plan of the scenario's facility and design inside."""
    target = tmp_path / "facility_topo.py"
    assert cli_main(["topo", "flagship", "--design", "micro", "-o", str(target)]) == 0
    source = target.read_text()
    at_load = {  # what runs when mn loads it: FacilityTopo(PLAN) never imports the twin
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.parse(source).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name.split(".")[0] for name in at_load} == {
        "__future__", "json", "subprocess", "typing", "mininet",
    }  # fmt: skip
    loaded: dict[str, object] = {}
    exec(compile(source, str(target), "exec"), loaded)
    topos = loaded["topos"]
    plan = loaded["PLAN"]
    assert isinstance(topos, dict) and isinstance(plan, dict)
    assert set(topos) == {"facility"}
    assert (plan["facility"], plan["design"], plan["kind"]) == ("harbour-dc", "micro", "micro")
    assert all(seg["isolated"] for seg in plan["segments"])
    topo = topos["facility"]()
    assert "intruder" in topo.hosts()  # the flagship campaign's origin


def test_an_unwritable_topology_file_is_refused_as_bad_input(tmp_path: Path) -> None:
    """A directory, or a path in a directory that does not exist: exit 2, nothing written."""
    assert cli_main(["topo", "flagship", "-o", str(tmp_path)]) == 2
    assert cli_main(["topo", "flagship", "-o", str(tmp_path / "no" / "topo.py")]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_file_twin_topo_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    """An existing file of the user's: exit 2 and it is left as it was; a topology the
    command wrote before is rewritten in place."""
    mine = tmp_path / "notes.py"
    mine.write_text("keep me\n")
    assert cli_main(["topo", "flagship", "-o", str(mine)]) == 2
    assert mine.read_text() == "keep me\n"
    topo = tmp_path / "facility_topo.py"
    assert cli_main(["topo", "flagship", "-o", str(topo)]) == 0
    assert cli_main(["topo", "flagship", "--design", "zoned", "-o", str(topo)]) == 0
    assert "design 'zoned'" in topo.read_text().splitlines()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facility_topo.py", "notes.py"]


@emulated
@pytest.mark.skipif(MN is None, reason="no mn (Debian package mininet)")
def test_mn_opens_the_written_file_on_its_own(tmp_path: Path) -> None:
    """`sudo mn --custom facility_topo.py --topo facility --switch lxbr --controller none`
    starts the zoned flagship network: the CLI reads hyphenated host names, the router
    holds the design's rules, the BMS reaches the AHU's Modbus port (refused: nothing
    serves it here) and the internet is dropped; on exit every node is gone and the
    root namespace is as it was (the `emulated` fixture compares it)."""
    target = tmp_path / "facility_topo.py"
    assert cli_main(["topo", "flagship", "--design", "zoned", "-o", str(target)]) == 0
    connect = (
        "python3 -c 'import socket; s = socket.socket(); s.settimeout(3.0); "
        'print("connect", s.connect_ex(("10.20.20.10", 502)))\''
    )
    script = "\n".join(
        [
            "py [n.pid for n in net.hosts + net.switches]",
            "router iptables -S FORWARD",
            "bms-server ip -br addr show dev eth0",
            f"bms-server {connect}",
            f"intruder {connect}",
            "exit",
            "",
        ]
    )
    done = subprocess.run(
        [MN or "mn", "--custom", str(target), "--topo", "facility", "--switch", "lxbr",
         "--controller", "none"],
        input=script,
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    listed = re.search(r"\[[\d, ]+\]", said)
    assert listed is not None, said
    pids = json.loads(listed.group(0))
    assert len(pids) == 35 + 1 + 7  # devices and intruder, router, a switch per zone
    assert "-A FORWARD -j CONDUITS" in said
    assert "10.20.10.10/24" in said
    assert re.findall(r"connect (\d+)", said) == ["111", "11"]  # refused; dropped (timeout)
    assert not any(ProcessId.of(pid) for pid in pids), "a node of mn outlived it"
