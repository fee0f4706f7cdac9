"""suricata: real Suricata on router captures, with ICS rules written from the site's design."""

from __future__ import annotations

import ipaddress
import pickle
import re
import shutil
import struct
from pathlib import Path

import pytest

from detectors import SiteView
from detectors.suricata import SID_BASE, Suricata, ics_rules, merge_pcaps
from tests.conftest import ROOT
from tests.test_pcapflows import ACK, EPOCH, FIN, PSH, SYN, Frame, ipv4, mbap, write_pcap
from twin.errors import BackendError
from twin.facility import Facility
from twin.network.policy import Policy
from twin.scenario import load_facility
from twin.telemetry import Alert, Captures, TelemetryBatch

FACILITIES = ROOT / "scenarios" / "facilities"
BMS, ENG, AHU, VAV_HALL = "10.20.10.10", "10.20.10.11", "10.20.20.10", "10.20.20.11"
CAM, CAM_LOBBY, PLC = "10.20.40.16", "10.20.40.17", "10.20.60.10"
INTRUDER, STRANGER = "198.51.100.66", "203.0.113.9"  # the internet zone; no zone at all
SPEED = 2.0  # simulated seconds per capture second: the run went twice as fast as real time
WARMUP = 100.0  # simulated seconds: the detector is fitted at this time
MODBUS_EVENTS = Path("/etc/suricata/rules/modbus-events.rules")

needs_suricata = pytest.mark.skipif(
    shutil.which("suricata") is None,
    reason="Suricata is not installed: Debian package 'suricata' from bookworm-backports "
    "(scripts/setup-system)",
)


def site(
    design: str = "flat", facility: str = "harbour-dc", captures: Path | None = None
) -> SiteView:
    fac = Facility.build(load_facility(FACILITIES / f"{facility}.yaml"))
    caps = Captures(captures, EPOCH, SPEED) if captures is not None else None
    return SiteView(fac, Policy(fac, design, fac.designs[design]), caps)


def sim(wall_offset: float) -> float:
    """Simulated time of a packet written `wall_offset` capture seconds after EPOCH."""
    return wall_offset * SPEED


# -- captures as the router writes them -------------------------------------------------------


class Session:
    """A TCP connection with real sequence and acknowledgement numbers, so Suricata's stream
    engine reassembles it and its app-layer parsers see the payload."""

    def __init__(
        self, frames: list[Frame], client: str, server: str, dport: int, t: float, sport: int
    ) -> None:
        self.frames, self.client, self.server = frames, client, server
        self.sport, self.dport, self.t = sport, dport, t
        self.seq = {True: 1000, False: 5000}  # by 'from the client'

    def send(self, from_client: bool, flags: int, payload: bytes = b"", dt: float = 0.01) -> None:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        sport, dport = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        ack = self.seq[not from_client] if flags & ACK else 0
        header = struct.pack(
            "!HHIIBBHHH", sport, dport, self.seq[from_client], ack, 5 << 4, flags, 65535, 0, 0
        )
        self.frames.append((self.t, ipv4(src, dst, 6, header + payload)))
        self.seq[from_client] += len(payload) + bool(flags & (SYN | FIN))
        self.t += dt

    def open(self) -> Session:
        self.send(True, SYN)
        self.send(False, SYN | ACK)
        self.send(True, ACK)
        return self

    def ask(self, request: bytes, answer: bytes, dt: float = 0.01) -> None:
        self.send(True, PSH | ACK, request)
        self.send(False, PSH | ACK, answer, dt)

    def close(self) -> None:
        self.send(True, FIN | ACK)
        self.send(False, FIN | ACK)
        self.send(True, ACK)


def read_holding(tid: int, count: int = 4) -> tuple[bytes, bytes]:
    """A spec-correct read of holding registers and its answer."""
    return (
        mbap(tid, 1, struct.pack("!BHH", 3, 0, count)),
        mbap(tid, 1, struct.pack("!BB", 3, 2 * count) + bytes(2 * count)),
    )


def write_register(tid: int, value: int) -> bytes:
    return mbap(tid, 1, struct.pack("!BHH", 6, 10, value))  # the answer echoes the request


def write_pcaps(directory: Path, frames: list[Frame], view: SiteView) -> list[Path]:
    """One capture per zone, holding what entered the router from that zone (as `tcpdump -Q in`)."""
    directory.mkdir(parents=True, exist_ok=True)
    by_zone: dict[str, list[Frame]] = {}
    for t, packet in sorted(frames, key=lambda f: f[0]):
        src = str(ipaddress.ip_address(packet[12:16]))
        by_zone.setdefault(view.zone(src) or "outside", []).append((t, packet))
    return [write_pcap(directory / f"{zone}.pcap", fs) for zone, fs in sorted(by_zone.items())]


def day(frames: list[Frame]) -> None:
    """BMS polling all along; an intruder's camera writes to the AHU, identifies it, scans;
    attempts from the internet on the lobby camera's port forward."""
    for n, dst in enumerate((AHU, VAV_HALL)):  # polling, on persistent connections
        bms = Session(frames, BMS, dst, 502, t=1.0 + n, sport=40000 + n).open()
        for tid in range(1, 30):
            bms.ask(*read_holding(tid), dt=10.0)
    warm = Session(frames, CAM, AHU, 502, t=20.0, sport=41000).open()  # still in the warm-up
    warm.ask(write_register(1, 300), write_register(1, 300))
    warm.close()
    attack = Session(frames, CAM, AHU, 502, t=100.0, sport=41001).open()
    attack.ask(write_register(2, 350), write_register(2, 350))  # sim 200.06
    many = mbap(3, 1, struct.pack("!BHHB", 16, 10, 1, 2) + struct.pack("!H", 350))
    attack.ask(many, mbap(3, 1, struct.pack("!BHH", 16, 10, 1)))  # same minute: no second alert
    attack.ask(mbap(4, 1, bytes([43, 14, 1, 0])),
               mbap(4, 1, bytes([43, 14, 1, 0, 0, 0, 1, 0, 7]) + b"Siemens"))  # fmt: skip
    attack.close()
    again = Session(frames, CAM, AHU, 502, t=160.0, sport=41002).open()  # sim 320: a new minute
    again.ask(write_register(5, 350), write_register(5, 350))
    again.close()
    t = 200.0  # a SYN sweep of the HVAC zone
    for host in range(10, 40):
        for port in (23, 80, 502):
            Session(frames, CAM, f"10.20.20.{host}", port, t, sport=42000 + port).send(True, SYN)
            t += 0.01
    Session(frames, INTRUDER, CAM_LOBBY, 80, t=230.0, sport=43000).open()  # the port forward
    Session(frames, INTRUDER, CAM_LOBBY, 23, t=231.0, sport=43001).send(True, SYN)
    Session(frames, STRANGER, CAM_LOBBY, 80, t=232.0, sport=43002).send(True, SYN)
    web = Session(frames, INTRUDER, CAM_LOBBY, 80, t=250.0, sport=43003).open()
    for password in ("YWRtaW46YWRtaW4=", "YWRtaW46MTIzNA==", "YWRtaW46cGFzcw=="):
        web.ask(
            b"GET /ISAPI/Security/userCheck HTTP/1.1\r\nHost: cam\r\n"
            b"Authorization: Basic " + password.encode() + b"\r\n\r\n",
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
            dt=1.0,
        )
    web.close()
    form = b"username=admin&password=12345"
    post = Session(frames, INTRUDER, CAM_LOBBY, 80, t=280.0, sport=43004).open()
    post.ask(
        b"POST /login HTTP/1.1\r\nHost: cam\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    post.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Suricata, list[Alert]]:
    directory = tmp_path_factory.mktemp("captures")
    view = site(captures=directory)
    frames: list[Frame] = []
    day(frames)
    write_pcaps(directory, frames, view)
    det = Suricata().fit(TelemetryBatch(0.0, WARMUP), view)
    return det, det.finish()


def said(alerts: list[Alert], technique: str) -> list[tuple[str, str, str, str]]:
    return [(a.device, a.severity, a.src_ip, a.dst_ip) for a in alerts if a.technique == technique]


# -- the rules ---------------------------------------------------------------------------------


def negated(rule: str, dst: str) -> set[str]:
    """The source list of the rule `... !<sources> any -> <dst> 502`."""
    m = re.search(rf" !\[?([^\] ]+)\]? any -> {re.escape(dst)} 502 ", rule)
    assert m, rule
    return set(m.group(1).split(","))


def covered(ip: str, addresses: set[str]) -> bool:
    return any(ipaddress.ip_address(ip) in ipaddress.ip_network(a) for a in addresses)


@pytest.mark.parametrize("design", ["flat", "zoned", "micro"])
def test_modbus_rules_follow_the_conduits(design: str) -> None:
    """A device's Modbus rules spare exactly the hosts the design documents (conduit_policy's
    reading), and its write rule spares only engineering hosts among those."""
    view = site(design)
    rules = ics_rules(view).splitlines()
    fac, policy = view.facility, view.policy
    for d in (d for d in fac.devices if "modbus" in d.services):
        path = next(r for r in rules if f"connection to {d.name} (" in r)
        write = next(r for r in rules if f"write to {d.name} from" in r)
        spared, writers = negated(path, d.ip), negated(write, d.ip)
        for s in fac.devices:
            if s.zone == "internet":
                continue
            same_zone = s.zone == d.zone and policy.kind != "micro"
            documented = same_zone or policy.conduit_for(s.ip, d.ip, 502) is not None
            assert covered(s.ip, spared) == documented, (design, s.name, d.name)
            assert covered(s.ip, writers) == (documented and s.kind in ("bms", "workstation"))
    ahu_write = next(r for r in rules if "write to ahu from" in r)
    assert negated(ahu_write, AHU) == {BMS}  # the engineering workstation has no HVAC conduit
    assert negated(next(r for r in rules if "write to plc from" in r), PLC) == {BMS, ENG}


def test_every_rule_has_a_private_sid_a_meaning_and_a_technique() -> None:
    """Sids count up from 9,100,001; each rule says what it means and which ATT&CK technique."""
    rules = ics_rules(site("zoned")).splitlines()
    sids = [int(m) for r in rules for m in re.findall(r"sid:(\d+);", r)]
    assert sids == list(range(SID_BASE + 1, SID_BASE + 1 + len(rules)))
    assert all(re.search(r'msg:"TWIN [^"]+";', r) for r in rules)
    techniques = {re.search(r"mitre_technique_id (T\d{4})", r).group(1) for r in rules}  # type: ignore[union-attr]
    assert techniques == {"T0836", "T0846", "T0883", "T0886", "T0888", "T1110"}


def test_the_port_forward_is_the_only_documented_way_in() -> None:
    """Inbound rules spare the documented internet -> cam-lobby:80 conduit, and only it."""
    rules = ics_rules(site("zoned")).splitlines()
    inbound = [r for r in rules if "inbound TCP" in r]
    assert inbound[0].startswith(f"alert tcp $EXTERNAL_NET any -> [$HOME_NET,!{CAM_LOBBY}] any ")
    assert inbound[1].startswith(f"alert tcp $EXTERNAL_NET any -> {CAM_LOBBY} !80 ")
    assert inbound[2].startswith(
        f"alert tcp [$EXTERNAL_NET,!198.51.100.0/24] any -> {CAM_LOBBY} 80 "
    )


# -- what it refuses -----------------------------------------------------------------------------


def test_a_modelled_run_is_refused_with_the_way_out() -> None:
    """On the sim backend there are no captures: fit says to run on the emulated network."""
    with pytest.raises(BackendError, match=r"needs packet captures: run with --backend mininet"):
        Suricata().fit(TelemetryBatch(0.0, WARMUP), site())


def test_missing_binary_names_the_package(tmp_path: Path) -> None:
    """Without Suricata, fit says which Debian package to install and how."""
    with pytest.raises(BackendError) as info:
        Suricata(binary="/nonexistent/suricata").fit(
            TelemetryBatch(0.0, WARMUP), site(captures=tmp_path)
        )
    message = str(info.value)
    for needed in (
        "/nonexistent/suricata",
        "'suricata'",
        "bookworm-backports",
        "scripts/setup-system",
    ):
        assert needed in message


@pytest.mark.parametrize(
    "params",
    [{"timeout": 0}, {"scan_threshold": 1}, {"scan_seconds": 0}, {"login_failures": 0}],
)
def test_bad_parameters_are_refused(params: dict[str, float]) -> None:
    """Bad parameters fail at construction, naming the value (so `twin validate` reports them)."""
    with pytest.raises(ValueError, match=str(next(iter(params.values())))):
        Suricata(**params)  # type: ignore[arg-type]


def test_captures_merge_in_time_order(tmp_path: Path) -> None:
    """Per-interface captures become one time-ordered stream; mixed link types are refused."""
    a = write_pcap(
        tmp_path / "a.pcap", [(1.0, ipv4(BMS, AHU, 17, b"a")), (3.0, ipv4(BMS, AHU, 17, b"c"))]
    )
    b = write_pcap(tmp_path / "b.pcap", [(2.0, ipv4(AHU, BMS, 17, b"b"))], nano=True, order=">")
    assert merge_pcaps([a, b], tmp_path / "m.pcap") == 3
    merged = (tmp_path / "m.pcap").read_bytes()
    assert struct.unpack("<I", merged[:4])[0] == 0xA1B23C4D  # nanosecond timestamps
    stamps, pos = [], 24
    while pos < len(merged):
        sec, ns, incl, _ = struct.unpack("<IIII", merged[pos : pos + 16])
        stamps.append(sec - EPOCH + ns / 1e9)
        pos += 16 + incl
    assert stamps == [1.0, 2.0, 3.0]
    c = write_pcap(tmp_path / "c.pcap", [(4.0, ipv4(BMS, AHU, 17, b"d"))], linktype=113)
    with pytest.raises(BackendError, match="different link types"):
        merge_pcaps([a, c], tmp_path / "m2.pcap")


# -- on captures ---------------------------------------------------------------------------------


@needs_suricata
@pytest.mark.parametrize("facility", ["harbour-dc", "office-hq", "plant-line"])
@pytest.mark.parametrize("design", ["flat", "zoned", "micro"])
def test_installed_suricata_accepts_the_rules(facility: str, design: str, tmp_path: Path) -> None:
    """fit runs `suricata -T` on the generated rules: every shipped facility and design passes."""
    Suricata().fit(TelemetryBatch(0.0, WARMUP), site(design, facility, tmp_path))


@needs_suricata
def test_a_rule_suricata_rejects_fails_at_fit(tmp_path: Path) -> None:
    """A bad rule is reported before the run, with Suricata's own words."""
    bad = tmp_path / "bad.rules"
    bad.write_text('alert modbus any any -> any 502 (msg:"x"; modbus: function write; sid:1;)\n')
    with pytest.raises(BackendError, match=r"suricata failed \(exit 1\): .*invalid modbus option"):
        Suricata(extra_rules=str(bad)).fit(TelemetryBatch(0.0, WARMUP), site(captures=tmp_path))


@needs_suricata
def test_polling_raises_nothing(run: tuple[Suricata, list[Alert]]) -> None:
    """The BMS reading its controllers over documented conduits is never alerted on."""
    _, alerts = run
    assert alerts
    assert not [a for a in alerts if BMS in (a.src_ip, a.dst_ip)]


@needs_suricata
def test_write_from_a_camera(run: tuple[Suricata, list[Alert]]) -> None:
    """A camera writing the AHU's setpoint: high, T0836, named by the AHU, at the simulated
    time of the write (capture clock mapped through the run's epoch and speed), once per
    minute; the write in the warm-up is not reported."""
    _, alerts = run
    writes = [a for a in alerts if a.technique == "T0836"]
    assert [(a.device, a.severity, a.src_ip, a.dst_ip) for a in writes] == [
        ("ahu", "high", CAM, AHU)
    ] * 2
    # Suricata inspects a request once the server has acknowledged it: one round trip later
    assert [a.t for a in writes] == [pytest.approx(sim(100.05)), pytest.approx(sim(160.05))]
    assert "write to ahu" in writes[0].reason and writes[0].detector == "suricata"


@needs_suricata
def test_undocumented_path_identification_and_scan(run: tuple[Suricata, list[Alert]]) -> None:
    """Camera -> AHU Modbus has no conduit (T0886, medium); function 43 is identification
    (T0888); the sweep is a scan named by its source with no single target (T0846)."""
    _, alerts = run
    paths = said(alerts, "T0886")
    assert ("ahu", "medium", CAM, AHU) in paths
    assert {d for d, *_ in paths} >= {"ahu", "vav-hall", "env-4"}  # the sweep's port-502 probes
    identify = [a for a in alerts if a.technique == "T0888"]
    assert [(a.device, a.src_ip, a.dst_ip) for a in identify] == [("ahu", CAM, AHU)]
    assert identify[0].t == pytest.approx(sim(100.09))
    scans = said(alerts, "T0846")
    assert scans and set(scans) == {("cam-6", "high", CAM, "")}


@needs_suricata
def test_from_outside_and_login_failures(run: tuple[Suricata, list[Alert]]) -> None:
    """The port forward itself is quiet; other ports, other sources and web logins from the
    internet are T0883; three 401s in a minute are a login burst (T1110) at the camera."""
    _, alerts = run
    inbound = said(alerts, "T0883")
    assert ("cam-lobby", "medium", INTRUDER, CAM_LOBBY) in inbound
    assert ("cam-lobby", "medium", STRANGER, CAM_LOBBY) in inbound
    quiet = [a for a in alerts if a.t == pytest.approx(sim(230.0), abs=0.1)]
    assert not quiet  # the SYN on the documented conduit
    logins = [a.reason for a in alerts if "web login" in a.reason]
    assert [r.rsplit(", ", 1)[1] for r in logins] == ["with HTTP credentials", "with a login form"]
    assert said(alerts, "T1110") == [("cam-lobby", "medium", INTRUDER, CAM_LOBBY)]


def exchange(directory: Path, request: bytes, answer: bytes, **params: str) -> Suricata:
    """A fitted detector over captures holding one Modbus exchange, camera -> AHU, after the warm-up."""
    view = site(captures=directory)
    frames: list[Frame] = []
    session = Session(frames, CAM, AHU, 502, t=60.0, sport=40000).open()
    session.ask(mbap(1, 1, request), mbap(1, 1, answer))
    session.close()
    write_pcaps(directory, frames, view)
    return Suricata(**params).fit(TelemetryBatch(0.0, WARMUP), view)  # type: ignore[arg-type]


WRITES = {
    5: (struct.pack("!BHH", 5, 1, 0xFF00), struct.pack("!BHH", 5, 1, 0xFF00)),
    6: (struct.pack("!BHH", 6, 1, 7), struct.pack("!BHH", 6, 1, 7)),
    15: (struct.pack("!BHHBB", 15, 1, 8, 1, 0xFF), struct.pack("!BHH", 15, 1, 8)),
    16: (struct.pack("!BHHBH", 16, 1, 1, 2, 7), struct.pack("!BHH", 16, 1, 1)),
    22: (struct.pack("!BHHH", 22, 1, 0xFFFF, 0), struct.pack("!BHHH", 22, 1, 0xFFFF, 0)),
    23: (struct.pack("!BHHHHBH", 23, 0, 1, 1, 1, 2, 7), struct.pack("!BBH", 23, 2, 0)),
    3: (struct.pack("!BHH", 3, 0, 1), struct.pack("!BBH", 3, 2, 0)),
    4: (struct.pack("!BHH", 4, 0, 1), struct.pack("!BBH", 4, 2, 0)),
}


@needs_suricata
@pytest.mark.parametrize("fc", sorted(WRITES))
def test_every_write_function_is_a_write(fc: int, tmp_path: Path) -> None:
    """Functions 5, 6, 15, 16, 22 and 23 from a camera are writes (T0836); reads are not."""
    alerts = exchange(tmp_path, *WRITES[fc]).finish()
    assert ("T0836" in {a.technique for a in alerts}) == (fc not in (3, 4))
    assert "T0886" in {a.technique for a in alerts}  # the camera has no Modbus conduit


@needs_suricata
@pytest.mark.skipif(not MODBUS_EVENTS.is_file(), reason=f"no {MODBUS_EVENTS}")
def test_modbus_data_mismatch_noise_is_dropped(tmp_path: Path) -> None:
    """With Suricata's own Modbus event rules loaded, 7.0.10 calls every spec-correct register
    read's answer a 'Modbus Data mismatch': counted in suppressed_, never an alert."""
    view = site(captures=tmp_path)
    frames: list[Frame] = []
    bms = Session(frames, BMS, AHU, 502, t=60.0, sport=40000).open()
    for tid in range(1, 6):
        bms.ask(*read_holding(tid))
    write_pcaps(tmp_path, frames, view)
    det = Suricata(extra_rules=str(MODBUS_EVENTS)).fit(TelemetryBatch(0.0, WARMUP), view)
    assert det.finish() == []
    assert det.suppressed_ == {"SURICATA Modbus Data mismatch": 5}


@needs_suricata
def test_pickled_and_fresh_detectors_agree(run: tuple[Suricata, list[Alert]]) -> None:
    """A pickled fitted detector, and a second fitted one, say exactly the same; a clone
    keeps the parameters and none of the learned state."""
    det, alerts = run
    assert pickle.loads(pickle.dumps(det)).finish() == alerts
    assert det.clone().fit(TelemetryBatch(0.0, WARMUP), det.site_).finish() == alerts
    clone = det.clone()
    assert clone.get_params() == det.get_params()
    assert not [k for k in vars(clone) if k.endswith("_")]


@needs_suricata
def test_observe_says_nothing_and_finish_works_on_no_packets(tmp_path: Path) -> None:
    """Streamed batches give nothing (Suricata reads the whole captures at the end); captures
    without packets give no alert; a run without any capture file is an error."""
    det = Suricata().fit(TelemetryBatch(0.0, WARMUP), site(captures=tmp_path))
    assert det.observe(TelemetryBatch(WARMUP, 160.0)) == []
    with pytest.raises(BackendError, match=r"no packet captures \(\*\.pcap\)"):
        det.finish()
    write_pcap(tmp_path / "hvac.pcap", [])
    assert det.finish() == []
