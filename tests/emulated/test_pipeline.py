"""Live Modbus on the emulated network, captured at the router and metered into flows.

Zoned harbour-dc: the BMS polls the AHU, a VAV and the PLC through the firewall while
tcpdump records what enters the router; the flows table of those captures shows the
polls (and the one setpoint write) as Modbus, and the attacker's and a camera's tries
as never answered. nmap's modbus-discover, run from the BMS, reads the AHU's identity.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from tests.emulated.test_topology import HARBOUR, snapshot
from twin.devices import KINDS
from twin.devices.base import Device, RegisterMap
from twin.errors import BackendError
from twin.facility import Facility
from twin.modbus import DeviceFace, ModbusPeer, RegisterStore, to_raw
from twin.network.emulated import STATE_NAME, Deployment, Topology, missing_requirements
from twin.network.emulated.pipeline import (
    capture,
    capturing,
    run_in,
    start_faces,
    stop_capture,
    stop_faces,
)
from twin.network.pcapflows import flows_from_pcaps
from twin.network.policy import Policy
from twin.scenario import load_facility

ATTACKER = ("attacker", "198.51.100.66")  # the flagship campaign's origin
DESIGN = "zoned"
POLLED = ("ahu", "vav-hall", "plc")
POLL_SECONDS = 10.0
POLL_EVERY = 1.0
TIMEOUT = 2.0  # a Modbus connect/answer not in this long counts as dropped
NSE = Path("/usr/share/nmap/scripts/modbus-discover.nse")

# What each kind's registers read on a normal afternoon, in engineering units
PLAUSIBLE: dict[str, dict[str, float]] = {
    "ahu": {"supply_air_setpoint": 16.5, "fan_enable": 1, "supply_air_temp": 17.2},
    "vav": {
        "room_setpoint": 22.0,
        "room_temp_override": 0.0,
        "override_enable": 0,
        "room_temp": 23.4,
        "damper": 0.45,
    },
    "plc": {
        "level_low_sp": 1.2,
        "level_high_sp": 3.8,
        "level_trip_sp": 4.5,
        "valve": 0.6,
        "interlock_enable": 1,
        "alarm_enable": 1,
        "level": 2.7,
        "pressure": 101.3,
        "vibration": 2.1,
        "pump_running": 1,
        "high_level_alarm": 0,
    },
}
READ_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
NEW_SETPOINT = 18.0
TMP_PREFIX = "twin-pipeline-"

MISSING = missing_requirements() + [
    f"no {tool}" for tool in ("tcpdump",) if shutil.which(tool) is None
]
pytestmark = [
    pytest.mark.mininet,
    pytest.mark.skipif(bool(MISSING), reason="emulation unavailable: " + "; ".join(MISSING)),
]


@pytest.fixture(scope="module")
def harbour() -> Facility:
    return Facility.build(load_facility(HARBOUR))


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Run state and captures, removed afterwards (pytest's tmp_path would keep them)."""
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX) as d:
        yield Path(d)


@pytest.fixture
def leaves_nothing() -> Iterator[None]:
    """Namespaces, root links, iptables rules, child processes and our temp dirs as they
    were (only ours: other programs may use /tmp meanwhile)."""
    before = snapshot(), ours()
    yield
    after = snapshot(), ours()
    for key in before[0]:
        assert after[0][key] == before[0][key], f"left behind in {key}"
    assert after[1] == before[1], "left behind in /tmp"


def ours() -> list[str]:
    return sorted(p.name for p in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"))


def deploy(facility: Facility, run_dir: Path) -> Deployment:
    pol = Policy(facility, DESIGN, facility.designs[DESIGN])
    return Deployment(Topology.of(facility, DESIGN, attacker=ATTACKER), pol, run_dir)


def store_for(device: Device) -> RegisterStore:
    return RegisterStore(KINDS[device.kind].registers, PLAUSIBLE[device.kind])


def read_plan(registers: RegisterMap) -> list[tuple[str, int, int]]:
    """(table, first address, count) covering each table of a map (they are contiguous)."""
    tables: dict[str, list[int]] = {}
    for reg in registers:
        tables.setdefault(reg.table, []).append(reg.address)
    return [(t, min(a), max(a) - min(a) + 1) for t, a in sorted(tables.items())]


def poll(ips: dict[str, str], plans: dict[str, list[tuple[str, int, int]]]) -> dict[str, int]:
    """The BMS's poll loop (run inside bms-server): every table of every device each
    second, one connection per device; the AHU setpoint is written once half-way."""
    peers = {name: ModbusPeer(ip, timeout=TIMEOUT).connect() for name, ip in ips.items()}
    reads = dict.fromkeys(ips, 0)
    setpoint = KINDS["ahu"].registers.get("supply_air_setpoint")
    assert setpoint is not None
    try:
        start = time.monotonic()
        rounds = 0
        while time.monotonic() - start < POLL_SECONDS:
            for name, peer in peers.items():
                for table, address, count in plans[name]:
                    assert len(peer.read(table, address, count)) == count
                    reads[name] += 1
            rounds += 1
            if rounds == 5:
                peers["ahu"].write("holding", setpoint.address, [to_raw(setpoint, NEW_SETPOINT)])
            time.sleep(max(0.0, start + rounds * POLL_EVERY - time.monotonic()))
    finally:
        for peer in peers.values():
            peer.close()
    return reads


def refused(ip: str) -> str:
    """A Modbus read of the AHU's setpoint; the error text if it fails, as it should."""
    try:
        with ModbusPeer(ip, timeout=TIMEOUT) as peer:
            peer.read("holding", 0)
    except BackendError as exc:
        return str(exc)
    return ""


def settle(paths: list[Path], quiet: float = 1.5, limit: float = 15.0) -> None:
    """Wait until the captures stop growing: tcpdump, stopped, drops what it has not read
    yet, and a busy machine can leave it well behind the traffic."""
    deadline = time.monotonic() + limit
    sizes: list[int] = []
    while time.monotonic() < deadline:
        now = [p.stat().st_size if p.exists() else 0 for p in paths]
        if now == sizes:
            return
        sizes = now
        time.sleep(quiet)


def fc_set(rows: pd.DataFrame) -> set[int]:
    return {int(c) for s in rows["modbus_fc_set"] for c in s.split(",") if c}


@pytest.mark.usefixtures("leaves_nothing")
def test_polls_cross_the_firewall_as_modbus_flows_and_outsiders_get_no_answer(
    harbour: Facility, workdir: Path
) -> None:
    """Captured at the router (each packet once, as it enters) and metered: one Modbus flow
    per polled device from the BMS with reads of the function codes used, the write
    counted on the AHU's flow only; the attacker's and the camera's SYNs are in the
    capture but never answered (the zoned firewall drops internet->hvac, cameras->hvac)."""
    epoch = time.time()
    devices = [harbour.by_name[n] for n in POLLED]
    plans = {d.name: read_plan(KINDS[d.kind].registers) for d in devices}
    with deploy(harbour, workdir) as dep:
        ip = {h.name: str(h.ip) for h in dep.topology.hosts}
        ifaces = {dep.topology.segment(dep.host(h).zone).ifname for h in ("bms-server", *POLLED)}
        ifaces |= {dep.topology.segment(dep.host(h).zone).ifname for h in ("attacker", "cam-lobby")}
        faces: list[DeviceFace] = start_faces(dep, devices, store_for)
        try:
            # the BMS's own view of its link, for checking the router files hold no doubles
            host_cap = capture(dep, "bms-server", workdir / "bms-host.pcap", direction="inout")
            try:
                with (
                    capturing(dep, sorted(ifaces), workdir) as pcaps,
                    ThreadPoolExecutor(3) as pool,
                ):
                    polled = pool.submit(
                        dep.call_in, "bms-server", lambda: poll({n: ip[n] for n in POLLED}, plans)
                    )
                    outsiders = {
                        src: pool.submit(dep.call_in, src, lambda: refused(ip["ahu"]))
                        for src in ("attacker", "cam-lobby")
                    }
                    reads = polled.result()
                    errors = {src: f.result() for src, f in outsiders.items()}
                    settle([*pcaps, workdir / "bms-host.pcap"])  # the last FIN/ACKs
            finally:
                stop_capture(dep, host_cap)
            ahu_face = faces[0]
            assert ahu_face.store.value("supply_air_setpoint") == NEW_SETPOINT
        finally:
            stop_faces(faces)
    assert not (workdir / STATE_NAME).exists()
    assert all(n >= POLL_SECONDS * len(plans[d]) * 0.8 for d, n in reads.items()), reads
    for src, error in errors.items():
        assert "cannot connect" in error, f"{src} reached the AHU: {error!r}"

    flows = flows_from_pcaps(pcaps, epoch)
    assert len(flows) > 0
    bms = flows[flows.src_ip == ip["bms-server"]]
    for name in POLLED:
        rows = bms[(bms.dst_ip == ip[name]) & (bms.dst_port == 502)]
        assert len(rows) >= 1, f"no flow bms-server -> {name}"
        assert set(rows.app) == {"modbus"}
        assert rows.modbus_reads.sum() == reads[name], name
        assert rows.packets_rev.sum() > 0
        expected = {READ_FC[t] for t, _, _ in plans[name]}
        assert 3 in expected and expected <= fc_set(rows), (name, fc_set(rows))
    writes = flows[flows.modbus_writes > 0]
    assert list(writes.dst_ip) == [ip["ahu"]]
    assert writes.modbus_writes.sum() == 1
    assert fc_set(writes) & {6, 16}
    for src in ("attacker", "cam-lobby"):
        rows = flows[(flows.src_ip == ip[src]) & (flows.dst_ip == ip["ahu"])]
        assert len(rows) >= 1, f"{src}'s SYN is not in the capture"
        assert rows.packets_rev.sum() == 0 and rows.modbus_reads.sum() == 0

    # every packet once: the router's inbound files agree with the BMS's own link
    host = flows_from_pcaps(workdir / "bms-host.pcap", epoch)
    key = ["src_ip", "dst_ip", "src_port", "dst_port"]
    mine = bms.groupby(key)[["packets", "packets_rev", "bytes", "bytes_rev"]].sum()
    theirs = host.groupby(key)[["packets", "packets_rev", "bytes", "bytes_rev"]].sum()
    assert mine.sort_index().equals(theirs.sort_index()), (mine, theirs)


@pytest.mark.usefixtures("leaves_nothing")
def test_nmap_modbus_discover_from_the_bms_names_the_ahu_vendor(
    harbour: Facility, workdir: Path
) -> None:
    """`nmap --script modbus-discover` (aggressive), run inside bms-server, reads the AHU
    face's Device Identification: the vendor harbour-dc configures comes back."""
    if shutil.which("nmap") is None or not NSE.exists():
        pytest.skip("nmap or its modbus-discover script is not installed")
    ahu = harbour.by_name["ahu"]
    with deploy(harbour, workdir) as dep:
        faces = start_faces(dep, [ahu], store_for)
        try:
            # -Pn -n -sT: no ping or DNS (nothing leaves the namespaces), a plain connect scan
            argv = ["nmap", "-Pn", "-n", "-sT", "-p", "502", "--script", "modbus-discover"]
            argv += ["--script-args", "modbus-discover.aggressive=true", str(dep.host("ahu").ip)]
            status, out = run_in(dep, "bms-server", argv, timeout=40)
        finally:
            stop_faces(faces)
    assert status == 0, out
    assert "502/tcp open" in out, out
    assert ahu.vendor == "Siemens"
    assert f"Device identification: {ahu.vendor} {ahu.model} {ahu.firmware}" in out, out
