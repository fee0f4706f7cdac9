"""The emulated network: harbour-dc deployed per design, reachability as Policy.verdict says,
responses applied live, and nothing left behind afterwards, even after a SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from twin.devices import KINDS
from twin.errors import BackendError
from twin.facility import Facility
from twin.modbus import DeviceFace, ModbusPeer
from twin.network.emulated import (
    STATE_NAME,
    Deployment,
    Topology,
    missing_requirements,
    netns,
    reap,
    ruleset,
    stale_states,
)
from twin.network.emulated.firewall import Firewall, response_rules
from twin.network.emulated.lifecycle import STATE_FORMAT, ProcessId
from twin.network.policy import Policy
from twin.scenario import load_facility

ROOT = Path(__file__).resolve().parents[2]
HARBOUR = ROOT / "scenarios" / "facilities" / "harbour-dc.yaml"
ATTACKER = ("attacker", "198.51.100.66")
PROBE_TIMEOUT = 2.0  # a dropped SYN or echo is judged blocked after this long

MISSING = missing_requirements()
F = TypeVar("F", bound=Callable[..., object])


def emulated(test: F) -> F:
    """Marks a test that deploys for real: root and tools needed, nothing may be left behind."""
    test = pytest.mark.usefixtures("leaves_nothing")(test)
    test = pytest.mark.skipif(bool(MISSING), reason="emulation unavailable: " + "; ".join(MISSING))(
        test
    )
    return pytest.mark.mininet(test)


@pytest.fixture(scope="module")
def harbour() -> Facility:
    return Facility.build(load_facility(HARBOUR))


def policy(facility: Facility, design: str) -> Policy:
    return Policy(facility, design, facility.designs[design])


def topology(facility: Facility, design: str) -> Topology:
    return Topology.of(facility, design, attacker=ATTACKER)


# --- the plan, as data (no root needed) ----------------------------------------------------


def test_every_device_gets_a_host_on_its_zone_and_every_zone_a_router_leg(
    harbour: Facility,
) -> None:
    """One host per device with its own address and MAC; the router owns each zone's .1."""
    topo = Topology.of(harbour, "zoned")
    assert [h.name for h in topo.hosts] == [d.name for d in harbour.devices]
    for device in harbour.devices:
        host = topo.host(device.name)
        assert (str(host.ip), host.mac, host.zone) == (device.ip, device.mac, device.zone)
    assert {s.zone for s in topo.segments} == set(harbour.zones)
    for seg in topo.segments:
        assert seg.gateway == seg.subnet.network_address + 1
        assert all(h.ip != seg.gateway for h in topo.hosts)
    assert [s.zone for s in topo.segments if s.internet] == ["internet"]
    assert len({h.port for h in topo.hosts}) == len(topo.hosts)
    # Mininet node names are one namespace: switches and the router never take a host's
    names = [topo.router, *(s.ifname for s in topo.segments), *(h.name for h in topo.hosts)]
    assert len(set(names)) == len(names)
    for host in topo.hosts:
        assert host.port.startswith(topo.segment(host.zone).ifname + "-")
        assert len(host.port) <= 15


def test_the_attacker_starts_from_its_origin_in_the_internet_zone(harbour: Facility) -> None:
    """The campaign's origin address becomes a host of its own behind the router."""
    attacker = topology(harbour, "micro").host("attacker")
    assert (str(attacker.ip), attacker.zone, attacker.role) == (ATTACKER[1], "internet", "attacker")


def test_device_groups_can_share_a_host(harbour: Facility) -> None:
    """For very large sites a group is one host holding every member's address; single
    devices keep their own, and any member's name finds the group's host."""
    shared = Topology.of(harbour, "zoned", attacker=ATTACKER, share_groups=True)
    alone = topology(harbour, "zoned")
    groups = {d.group for d in harbour.devices if d.name != d.group}
    assert len(shared.hosts) == len(alone.hosts) - sum(
        sum(d.group == g for d in harbour.devices) - 1 for g in groups
    )
    vav = shared.host("vav-3")
    assert vav.name == "vav" and [n for n, _ in vav.devices] == [f"vav-{i}" for i in range(1, 7)]
    assert [str(ip) for _, ip in vav.devices] == [
        harbour.by_name[f"vav-{i}"].ip for i in range(1, 7)
    ]
    assert shared.host("ahu").devices == ((("ahu", shared.host("ahu").ip)),)
    served = sorted(n for h in shared.hosts for n, _ in h.devices)
    assert served == sorted(d.name for d in harbour.devices)


def test_what_cannot_be_wired_is_refused_all_at_once(harbour: Facility) -> None:
    """An origin outside the internet, or on a device's address, is named with the reason."""
    with pytest.raises(BackendError, match="not in an internet zone"):
        Topology.of(harbour, "zoned", attacker=("attacker", "10.20.20.200"))
    with pytest.raises(BackendError, match="vendor-cloud") as err:
        Topology.of(harbour, "zoned", attacker=("ahu", "198.51.100.20"))
    assert "also a device's" in str(err.value)
    with pytest.raises(BackendError, match="reserved"):
        Topology.of(harbour, "zoned", attacker=("attacker", "198.51.100.1"))
    with pytest.raises(BackendError, match="no design 'mesh'"):
        Topology.of(harbour, "mesh")


def conduit_rule_count(pol: Policy) -> int:
    return sum(len(c.src | c.src_zones) * len(c.dst | c.dst_zones) * 2 for c in pol.conduits)


@pytest.mark.parametrize("design", ["flat", "zoned", "micro"])
def test_the_firewall_drops_by_default_and_opens_each_conduit(
    harbour: Facility, design: str
) -> None:
    """FORWARD drops by default, replies pass, and every conduit opens its ports (TCP and UDP)."""
    pol = policy(harbour, design)
    text = ruleset(pol, topology(harbour, design))
    assert ":FORWARD DROP [0:0]" in text
    assert "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT" in text
    lines = text.splitlines()
    assert lines.index("-A FORWARD -j QUARANTINE") < lines.index(
        "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    )
    assert sum(line.startswith("-A CONDUITS ") for line in lines) == conduit_rule_count(pol)
    # the BMS reaches the AHU: through its zone (flat, zoned) or the AHU alone (micro)
    dst, name = (
        ("10.20.20.10/32", "bms-server->ahu#0")
        if design == "micro"
        else ("10.20.20.0/24", "bms-server->hvac#0")
    )
    for proto in ("tcp", "udp"):
        rule = f'-A CONDUITS -s 10.20.10.10/32 -d {dst} -p {proto} --dport 502 -m comment --comment "{name}" -j ACCEPT'
        assert rule in lines


def test_each_design_has_its_own_default(harbour: Facility) -> None:
    """flat: the whole site and the internet each talk freely; zoned: inside a zone; micro: nothing."""

    def design_rules(design: str) -> list[str]:
        text = ruleset(policy(harbour, design), topology(harbour, design))
        return [line for line in text.splitlines() if line.startswith("-A DESIGN ")]

    site = [z for z in harbour.zones.values() if z.purpose != "internet"]
    flat = design_rules("flat")
    assert len(flat) == len(site) ** 2 + 1
    assert "-A DESIGN -s 10.20.40.0/24 -d 10.20.20.0/24 -j ACCEPT" in flat
    assert not any("198.51.100.0/24 -d 10.20" in line for line in flat)
    assert design_rules("zoned") == [
        f"-A DESIGN -s {z.subnet} -d {z.subnet} -j ACCEPT" for z in harbour.zones.values()
    ]
    assert design_rules("micro") == []


def test_a_blocked_conduit_denies_only_where_it_is_the_first_match(harbour: Facility) -> None:
    """As Policy.conduit_for: an earlier open conduit still carries the flow, a later is moot."""
    pol = policy(harbour, "zoned")
    pol.block_conduit("eng-ws->ot#3")
    verdicts: dict[str, set[str]] = {}
    for line in response_rules(pol, topology(harbour, "zoned")):
        if line.startswith("-A BLOCKED "):
            name = line.split('--comment "')[1].split('"')[0]
            verdicts.setdefault(name, set()).add(line.rsplit(" -j ", 1)[1])
    assert verdicts == {
        "bms-server->hvac#0": {"RETURN"},
        "bms-server->access#1": {"RETURN"},
        "bms-server->ot#2": {"RETURN"},
        "eng-ws->ot#3": {"DENY-RESPONSE"},
    }


def test_responses_inside_a_zone_route_that_zone_through_the_router(harbour: Facility) -> None:
    """Micro filters every zone at the router; zoned only the zones a response reaches into."""
    topo = topology(harbour, "micro")
    assert Firewall(policy(harbour, "micro"), topo).routed_zones() == set(harbour.zones)
    wall = Firewall(policy(harbour, "zoned"), topology(harbour, "zoned"))
    assert wall.routed_zones() == set()
    wall.policy.quarantine(harbour.by_name["ahu"].ip)
    assert wall.routed_zones() == {"hvac"}
    wall.policy.block_conduit("bms-server->hvac#0")  # crosses zones: bridged traffic unaffected
    assert wall.routed_zones() == {"hvac"}


# --- lifecycle without namespaces (no root needed) -----------------------------------------


def write_state(path: Path, owner: ProcessId | None, entries: list[dict[str, object]]) -> None:
    owner_json = None if owner is None else {"pid": owner.pid, "start": owner.start}
    path.write_text(json.dumps({"format": STATE_FORMAT, "owner": owner_json, "entries": entries}))


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_reap_ends_a_listed_process_but_never_a_recycled_pid(tmp_path: Path) -> None:
    """A pid whose start time differs is someone else's process now and is left alone."""
    stranger, ours = sleeper(), sleeper()
    try:
        them, us = ProcessId.of(stranger.pid), ProcessId.of(ours.pid)
        assert them is not None and us is not None
        state = tmp_path / STATE_NAME
        entries: list[dict[str, object]] = [
            {"kind": "process", "pid": them.pid, "start": them.start + 1, "group": True},
            {"kind": "process", "pid": us.pid, "start": us.start, "group": True},
        ]
        write_state(state, None, entries)
        reaped = reap(state)
        assert reaped.processes == 1
        assert ours.wait(timeout=5) == -signal.SIGTERM
        assert stranger.poll() is None
        assert not state.exists()
    finally:
        for proc in (stranger, ours):
            proc.kill()
            proc.wait()


def test_reap_refuses_while_the_run_is_alive_and_stale_states_skips_it(tmp_path: Path) -> None:
    """Only a dead run's inventory is reaped; a live run tears down its own."""
    owner = sleeper()
    try:
        live, dead = tmp_path / "live" / STATE_NAME, tmp_path / "dead" / STATE_NAME
        live.parent.mkdir()
        dead.parent.mkdir()
        write_state(live, ProcessId.of(owner.pid), [])
        write_state(dead, ProcessId(owner.pid, 1), [])  # same pid, other start: gone
        assert stale_states(tmp_path) == [dead]
        with pytest.raises(BackendError, match="is alive"):
            reap(live)
        reap(dead)
        assert live.exists() and not dead.exists()
    finally:
        owner.kill()
        owner.wait()


# --- live networks (root) ------------------------------------------------------------------


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[1] == me:
                    out.add(int(entry.name))
    return out


def snapshot() -> dict[str, object]:
    """What a run could leave on the machine, as a person would look for it."""
    rules = [
        re.sub(r"\[\d+:\d+\]", "[0:0]", line)
        for line in run(["iptables-save"]).splitlines()
        if not line.startswith("#")
    ]
    return {
        "netns": sorted(run(["ip", "netns", "list"]).splitlines()),
        "links": sorted(run(["ip", "-o", "link"]).splitlines()),
        "iptables": rules,
        "children": children(),
    }


@pytest.fixture
def leaves_nothing() -> Iterator[None]:
    before = snapshot()
    yield
    after = snapshot()
    for key in before:
        assert after[key] == before[key], f"left behind in {key}"


@contextlib.contextmanager
def deployed(facility: Facility, design: str, run_dir: Path) -> Iterator[tuple[Deployment, Policy]]:
    pol = policy(facility, design)
    with Deployment(topology(facility, design), pol, run_dir) as dep:
        yield dep, pol
    assert not (run_dir / STATE_NAME).exists()


LISTENER = textwrap.dedent(
    """
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for port in sys.argv[2:]:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(port)))
        s.listen(64)
        sel.register(s, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()
            conn.close()
    """
)


@contextlib.contextmanager
def listeners(dep: Deployment, ports: dict[str, set[int]]) -> Iterator[list[int]]:
    """A tiny TCP server per host on the given ports, started (and stopped) by pid."""
    procs = []
    try:
        for host, wanted in ports.items():
            argv = [
                sys.executable,
                "-c",
                LISTENER,
                str(dep.host(host).ip),
                *map(str, sorted(wanted)),
            ]
            procs.append(dep.spawn(host, argv, stdout=subprocess.PIPE))
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"listening\n"
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            dep.stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def tcp_open(ip: str, port: int) -> bool:
    """True if a TCP handshake completes; False if the SYN is dropped."""
    try:
        with socket.create_connection((ip, port), timeout=PROBE_TIMEOUT):
            return True
    except TimeoutError:
        return False


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def echo(ip: str) -> bool:
    """True if an ICMP echo request to ip is answered in time."""
    ident = threading.get_native_id() & 0xFFFF
    body = struct.pack("!HH", ident, 1) + b"twin-probe"
    packet = struct.pack("!BBH", 8, 0, _checksum(b"\x08\x00\x00\x00" + body)) + body
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.sendto(packet, (ip, 0))
        deadline = time.monotonic() + PROBE_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (src, _) = sock.recvfrom(2048)
            except TimeoutError:
                return False
            head = (data[0] & 0x0F) * 4
            kind, _, _, rid = struct.unpack("!BBHH", data[head : head + 6])
            if kind == 0 and rid == ident and src == ip:
                return True
    return False


def reaches(dep: Deployment, src: str, dst: str, port: int) -> bool:
    ip = str(dep.host(dst).ip)
    probe: Callable[[], bool] = (lambda: echo(ip)) if port == 0 else (lambda: tcp_open(ip, port))
    return dep.call_in(src, probe)


# (source, destination, port); port 0 is an ICMP echo, as in Policy
PAIRS = [
    ("bms-server", "ahu", 502),
    ("cam-1", "ahu", 502),
    ("vav-1", "ahu", 502),
    ("bms-server", "door-2", 502),
    ("eng-ws", "plc", 502),
    ("eng-ws", "cam-1", 80),
    ("nvr", "cam-1", 554),
    ("cam-1", "cam-2", 80),
    ("gateway", "env-1", 502),
    ("gateway", "vendor-cloud", 8883),
    ("gateway", "drop-server", 8883),
    ("cam-lobby", "drop-server", 80),
    ("attacker", "cam-lobby", 80),
    ("attacker", "cam-1", 80),
    ("attacker", "bms-server", 502),
    ("bms-server", "ahu", 0),
    ("cam-1", "cam-2", 0),
    ("attacker", "drop-server", 0),
]


@emulated
@pytest.mark.parametrize("design", ["flat", "zoned", "micro"])
def test_reachability_matches_the_policy(harbour: Facility, tmp_path: Path, design: str) -> None:
    """Real TCP handshakes and pings between hosts pass exactly where Policy.verdict allows."""
    ports: dict[str, set[int]] = {}
    for _, dst, port in PAIRS:
        if port:
            ports.setdefault(dst, set()).add(port)
    with deployed(harbour, design, tmp_path) as (dep, pol), listeners(dep, ports):
        ip = {h.name: str(h.ip) for h in dep.topology.hosts}
        expected = {(s, d, p): pol.verdict(ip[s], ip[d], p).allowed for s, d, p in PAIRS}
        with ThreadPoolExecutor(max_workers=len(PAIRS)) as pool:
            futures = {pair: pool.submit(reaches, dep, *pair) for pair in PAIRS}
            observed = {pair: f.result() for pair, f in futures.items()}
    assert observed == expected
    assert set(expected.values()) == {True, False}


@emulated
@pytest.mark.parametrize("design", ["flat", "micro"])
def test_a_started_network_forwards_its_first_frames(
    harbour: Facility, tmp_path: Path, design: str
) -> None:
    """The moment start() returns, each host's very first ARP (for its zone's router
    address) is answered, and every interface of every node is operationally up: the first
    packet a run sends is not lost (it was, for up to a second, on the port each zone's
    switch made first, and the kernel's first Modbus write stalled the clock for 1 s)."""
    with deployed(harbour, design, tmp_path) as (dep, _):
        hosts = dep.topology.hosts
        gateway = {h.name: str(dep.topology.segment(h.zone).gateway) for h in hosts}
        # a SYN to the router from every host at once: the router drops it (INPUT DROP),
        # but the ARP before it is answered before any rule looks, so the neighbour tells
        knock = "timeout 0.3 bash -c 'echo > /dev/tcp/{0}/9' 2> /dev/null; ip neigh show {0}"
        asks = {
            h.name: subprocess.Popen(
                netns.inside(dep.pid(h.name), ["bash", "-c", knock.format(gateway[h.name])]),
                stdout=subprocess.PIPE, text=True,
            )
            for h in hosts
        }  # fmt: skip
        neighbours = {name: proc.communicate(timeout=10)[0] for name, proc in asks.items()}
        unanswered = {n: out.strip() for n, out in neighbours.items() if " lladdr " not in out}
        assert unanswered == {}
        down = {}
        for name in dep.nodes:
            links = subprocess.run(netns.inside(dep.pid(name), ["ip", "-o", "link"]),
                                   capture_output=True, text=True, check=True).stdout  # fmt: skip
            found = re.findall(r"^\d+: ([^:@]+)\S*: .* state (\S+)", links, re.M)
            down[name] = [(i, state) for i, state in found if i != "lo" and state != "UP"]
        assert {n: d for n, d in down.items() if d} == {}
        assert len(down) == len(harbour.devices) + 2 + len(harbour.zones)


def ahu_face(facility: Facility, dep: Deployment) -> DeviceFace:
    face = DeviceFace.for_device(facility.by_name["ahu"], host=str(dep.host("ahu").ip), port=502)
    face.store.update({"supply_air_setpoint": 16.5})
    return face


SETPOINT = KINDS["ahu"].registers.registers[0]  # supply_air_setpoint, holding 0


def read_setpoint(peer: ModbusPeer) -> int:
    return peer.read(SETPOINT.table, SETPOINT.address)[0]


@emulated
def test_a_modbus_read_crosses_a_conduit_and_a_camera_is_dropped(
    harbour: Facility, tmp_path: Path
) -> None:
    """Zoned: the BMS reads the AHU's setpoint over Modbus/TCP; the same read from a camera
    never gets an answer."""
    with deployed(harbour, "zoned", tmp_path) as (dep, _):
        face = ahu_face(harbour, dep)
        dep.call_in("ahu", face.start)  # its server thread, and so its socket, is the AHU's
        try:
            ahu = str(dep.host("ahu").ip)

            def read_once() -> int:
                with ModbusPeer(ahu, timeout=PROBE_TIMEOUT) as peer:
                    return read_setpoint(peer)

            assert dep.call_in("bms-server", read_once) == 165
            with pytest.raises(BackendError, match="cannot connect"):
                dep.call_in("cam-1", read_once)
        finally:
            face.stop()


@emulated
def test_a_live_quarantine_cuts_an_open_connection_and_release_restores_it(
    harbour: Facility, tmp_path: Path
) -> None:
    """Zoned: quarantining the AHU ends the BMS's open poll connection and the bridged
    traffic of its own zone, while the rest of the zone still talks; release undoes it."""
    with deployed(harbour, "zoned", tmp_path) as (dep, pol):
        ahu = str(dep.host("ahu").ip)
        face = ahu_face(harbour, dep)
        dep.call_in("ahu", face.start)
        # never connected from here: a socket opened in the root namespace would leave
        # the machine; every connect happens inside the BMS host
        peer = ModbusPeer(ahu, timeout=PROBE_TIMEOUT)
        try:
            dep.call_in("bms-server", peer.connect)  # the poll connection is the BMS's
            assert dep.call_in("bms-server", lambda: read_setpoint(peer)) == 165
            assert reaches(dep, "vav-1", "ahu", 502)  # same zone: bridged

            dep.quarantine(ahu)
            assert not pol.verdict(dep.host("bms-server").ip.compressed, ahu, 502).allowed
            with pytest.raises(BackendError, match="no answer"):
                dep.call_in("bms-server", lambda: read_setpoint(peer))
            assert not reaches(dep, "vav-1", "ahu", 502)
            assert reaches(dep, "vav-1", "vav-2", 0)  # the zone's other traffic goes on

            dep.release(ahu)
            assert dep.call_in("bms-server", lambda: read_setpoint(peer)) == 165
            assert reaches(dep, "vav-1", "ahu", 502)
        finally:
            peer.close()
            face.stop()


@emulated
def test_blocking_a_conduit_live_cuts_its_flows_only(harbour: Facility, tmp_path: Path) -> None:
    """Zoned: blocking bms-server->hvac stops the BMS reaching the AHU; eng-ws still reaches
    the PLC over its own conduit."""
    with (
        deployed(harbour, "zoned", tmp_path) as (dep, _),
        listeners(dep, {"ahu": {502}, "plc": {502}}),
    ):
        assert reaches(dep, "bms-server", "ahu", 502)
        dep.block_conduit("bms-server->hvac#0")
        assert not reaches(dep, "bms-server", "ahu", 502)
        assert reaches(dep, "eng-ws", "plc", 502)
        rules = dep.firewall.rules()
        assert '--comment "bms-server->hvac#0" -j DENY-RESPONSE' in rules
        with pytest.raises(KeyError, match="no conduit"):
            dep.block_conduit("bms-server->nowhere#9")


@emulated
def test_teardown_ends_every_process_and_namespace(harbour: Facility, tmp_path: Path) -> None:
    """After close(), no namespace, link, rule or process of the run remains (the fixture
    compares the whole machine before and after)."""
    with deployed(harbour, "micro", tmp_path) as (dep, _):
        names = dep.nodes
        # + attacker, router, a switch per zone
        assert len(names) == len(harbour.devices) + 2 + len(harbour.zones)
        assert sorted(n.name for n in (*dep.net.hosts, *dep.net.switches)) == sorted(names)
        shells = [ProcessId.of(dep.pid(n)) for n in names]
        procs = [dep.spawn(h, ["sleep", "60"]) for h in ("ahu", "plc", "attacker")]
        ids = [ProcessId.of(p.pid) for p in procs]
        # a process a person starts in a host's shell (as at the mininet> prompt) goes too
        dep.node("ahu").cmd("sleep 60 &")
    assert all(i is not None and not i.alive() for i in ids + shells)
    assert all(p.returncode is not None for p in procs)


@emulated
def test_a_failed_deploy_tears_down_what_it_made(harbour: Facility, tmp_path: Path) -> None:
    """A deployment that fails half-way (here: its run's state dir holds leftovers of
    another run) raises BackendError and leaves nothing."""
    (tmp_path / STATE_NAME).write_text("{}")
    with pytest.raises(BackendError, match="reap it first"):
        Deployment(topology(harbour, "zoned"), policy(harbour, "zoned"), tmp_path).start()
    (tmp_path / STATE_NAME).unlink()
    dep = Deployment(topology(harbour, "zoned"), policy(harbour, "zoned"), tmp_path)
    dep.rules = "*filter\n-A NOWHERE -j ACCEPT\nCOMMIT\n"  # the router's rules fail to load
    with pytest.raises(BackendError, match="iptables-restore failed"):
        dep.start()
    assert not (tmp_path / STATE_NAME).exists()


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from twin.facility import Facility
    from twin.network.emulated import Deployment, Topology
    from twin.network.policy import Policy
    from twin.scenario import load_facility

    facility = Facility.build(load_facility(sys.argv[2]))
    design = "micro"
    topo = Topology.of(facility, design, attacker=("attacker", "198.51.100.66"))
    dep = Deployment(topo, Policy(facility, design, facility.designs[design]), Path(sys.argv[1]))
    dep.start()
    print("deployed", flush=True)
    proc = dep.spawn("ahu", ["sleep", "120"])
    print(proc.pid, flush=True)
    time.sleep(120)
    """
)


@emulated
@pytest.mark.parametrize("moment", ["deploying", "running"])
def test_a_run_killed_with_sigkill_is_reaped_to_nothing(tmp_path: Path, moment: str) -> None:
    """SIGKILL runs no finally block: what the run started in its nodes lives on, holding
    their namespaces. reap(state file) ends the run's processes and nodes by pid, and with
    them every namespace, whether the run died mid-deploy or while running."""
    state = tmp_path / STATE_NAME
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(HARBOUR)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    try:
        deadline = time.monotonic() + 30
        if moment == "deploying":  # as soon as the first few nodes exist
            while time.monotonic() < deadline:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    entries = json.loads(state.read_text())["entries"]
                    if len(entries) >= 3:
                        break
                time.sleep(0.001)
            spawned = None
        else:
            assert child.stdout.readline() == b"deployed\n"
            spawned = int(child.stdout.readline())
    finally:
        child.kill()  # SIGKILL, by its pid
        child.wait()
        rest = child.stdout.read()
        child.stdout.close()
    if moment == "deploying":
        assert rest == b"", "the run had finished deploying before the kill"
    entries = json.loads(state.read_text())["entries"]
    nodes = [ProcessId(e["pid"], e["start"]) for e in entries if e["kind"] == "node"]
    # a node's shell ends when its pty's master dies with the run; what runs inside stays
    left = [n for n in nodes if n.alive()]
    assert nodes
    namespaces = {netns.inode_of(n.pid) for n in left} - {None}
    if spawned is not None:
        assert ProcessId.of(spawned) is not None
        namespaces.add(netns.inode_of(spawned))

    reaped = reap(state)

    assert not state.exists()
    assert not any(n.alive() for n in nodes)
    assert netns.pids_inside(i for i in namespaces if i is not None) == []
    assert reaped.namespaces <= len(left)  # the rest ended on their own meanwhile
    if spawned is not None:
        assert reaped.processes == 1
        assert ProcessId.of(spawned) is None
    with pytest.raises(BackendError, match="no inventory"):
        reap(state)


@emulated
def test_reap_clears_what_a_twin_from_before_mininet_left(tmp_path: Path) -> None:
    """An inventory written before the backend moved onto Mininet lists named namespaces:
    reap still removes them, and what runs inside them."""
    name = f"twin-legacy{os.getpid()}-ahu"
    run(["ip", "netns", "add", name])
    inside = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"], start_new_session=True)
    try:
        theirs = os.stat(Path("/run/netns", name))
        deadline = time.monotonic() + 10
        while netns.inode_of(inside.pid) != (theirs.st_dev, theirs.st_ino):
            assert time.monotonic() < deadline, "sleep never entered the namespace"
            time.sleep(0.01)
        state = tmp_path / STATE_NAME
        write_state(state, None, [{"kind": "netns", "name": name}])
        assert reap(state).namespaces == 1
        assert not Path("/run/netns", name).exists()
        assert inside.wait(timeout=5) == -signal.SIGKILL
    finally:
        if Path("/run/netns", name).exists():
            run(["ip", "netns", "del", name])
        inside.kill()
        inside.wait()
