"""Suricata as a peer detector: ICS rules generated from the design, run offline on the captures."""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import json
import shutil
import struct
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Self

import pandas as pd
import yaml

from detectors.base import Detector, SiteView
from detectors.conduit_policy import WRITER_ROLES
from twin import evidence
from twin.devices import Device
from twin.errors import BackendError
from twin.telemetry import Alert, TelemetryBatch

SID_BASE = 9_100_000  # private range: clear of Suricata's own (2.2M) and ET's (2.0M, 2.8M)
MODBUS_PORT = 502
CITED = ("flow_id", "src_ip", "dst_ip", "t_start", "t_export")  # flow columns kept for evidence
CITE_SLACK_S = 120.0  # a packet is in a record exported at most one interval (60 s) later
SEVERITY = {1: "high", 2: "medium"}  # Suricata priority -> alert severity; 3 and up are low
# Suricata's own protocol/decoder event rules ("SURICATA Modbus Data mismatch" and the like),
# if extra_rules loads them: parser diagnostics, not detections. 7.0.10's Modbus parser calls
# every spec-correct register read's answer (functions 3 and 4) a data mismatch.
OWN_EVENTS = range(2_200_000, 2_300_000)
CLASSES = {  # the standard Suricata classtypes the generated rules use, with their priorities
    "attempted-admin": ("Attempted Administrator Privilege Gain", 1),
    "attempted-recon": ("Attempted Information Leak", 2),
    "network-scan": ("Detection of a Network Scan", 3),
    "policy-violation": ("Potential Corporate Privacy Violation", 1),
    "unsuccessful-user": ("Unsuccessful User Privilege Gain", 1),
    "protocol-command-decode": ("Generic Protocol Command Decode", 3),
}
SYSTEM_CLASSES = Path("/etc/suricata/classification.config")
SYSTEM_REFERENCES = Path("/etc/suricata/reference.config")
# variables common third-party rule sets (ET Open's SCADA rules, say) refer to
SERVER_GROUPS = (
    "HTTP_SERVERS", "SMTP_SERVERS", "SQL_SERVERS", "DNS_SERVERS", "TELNET_SERVERS",
    "AIM_SERVERS", "DC_SERVERS", "DNP3_SERVER", "DNP3_CLIENT", "MODBUS_CLIENT",
    "MODBUS_SERVER", "ENIP_CLIENT", "ENIP_SERVER",
)  # fmt: skip
PORT_GROUPS = {
    "HTTP_PORTS": "80", "SHELLCODE_PORTS": "!80", "ORACLE_PORTS": "1521", "SSH_PORTS": "22",
    "DNP3_PORTS": "20000", "MODBUS_PORTS": str(MODBUS_PORT), "FTP_PORTS": "21",
    "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]", "GENEVE_PORTS": "6081", "VXLAN_PORTS": "4789",
    "TEREDO_PORTS": "3544",
}  # fmt: skip
INSTALL_HINT = (
    "install the Debian package 'suricata' from bookworm-backports "
    "(scripts/setup-system does it, as root)"
)

Record = tuple[int, int, int, bytes]  # seconds, nanoseconds, wire length, captured bytes


# -- the rule set -----------------------------------------------------------------------------


def _group(addresses: Iterable[str]) -> str:
    """A Suricata address (or port) list: one item bare, several in brackets."""
    items = list(addresses)
    return items[0] if len(items) == 1 else f"[{','.join(items)}]"


def _sorted(addresses: Iterable[str]) -> list[str]:
    """Addresses and networks in address order, without those another one covers."""
    nets = {a: ipaddress.ip_network(a, strict=False) for a in set(addresses)}
    kept = [
        a
        for a, n in nets.items()
        if not any(o != n and o.version == n.version and n.subnet_of(o) for o in nets.values())  # type: ignore[arg-type]
    ]
    return sorted(kept, key=lambda a: (nets[a].version, nets[a], a))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace(";", "\\;")


class RuleSet:
    """Rules numbered in the order they are added, from SID_BASE + 1."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(
        self,
        header: str,
        msg: str,
        options: str,
        *,
        technique: str,
        priority: int,
        classtype: str,
        about: str = "destination",  # whose device an alert names; 'source' drops the dst
    ) -> None:
        sid = SID_BASE + len(self.lines) + 1
        self.lines.append(
            f'alert {header} (msg:"TWIN {_escape(msg)}"; {options} classtype:{classtype}; '
            f"priority:{priority}; metadata: mitre_technique_id {technique}, twin_about {about}; "
            f"sid:{sid}; rev:1;)"
        )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Addresses:
    """The facility and design as address lists: what Suricata's rules are written in."""

    def __init__(self, site: SiteView) -> None:
        self.site = site
        fac = site.facility
        self.outside_zones = set(fac.internet_zones())
        inside = [z for z in fac.zones.values() if z.name not in self.outside_zones]
        if not inside:
            raise ValueError(f"facility {fac.name!r} has no zone outside the internet to watch")
        self.home = _sorted(
            [str(z.subnet) for z in inside]
            + [d.ip for d in fac.devices if d.zone not in self.outside_zones]
        )

    def zone(self, name: str) -> set[str]:
        """A zone's addresses: its subnet, and members whose address lies outside it."""
        fac = self.site.facility
        return {str(fac.zones[name].subnet)} | {d.ip for d in fac.devices if d.zone == name}

    def side(self, names: frozenset[str], zones: frozenset[str]) -> set[str]:
        fac = self.site.facility
        out = {fac.by_name[n].ip for n in names if n in fac.by_name}
        for z in zones:
            out |= self.zone(z)
        return out

    def modbus_sources(self, device: Device) -> set[str]:
        """Addresses with a documented Modbus path to the device (as conduit_policy reads it)."""
        policy = self.site.policy
        out = self.zone(device.zone) if policy.kind != "micro" else set()
        for c in policy.conduits:
            if MODBUS_PORT in c.ports and (device.name in c.dst or device.zone in c.dst_zones):
                out |= self.side(c.src, c.src_zones)
        return out

    def writers(self, device: Device) -> list[str]:
        """Engineering hosts with a documented Modbus path to the device."""
        site = self.site
        same_zone_ok = site.policy.kind != "micro"
        return [
            w.ip
            for w in site.facility.devices
            if site.role(w.ip) in WRITER_ROLES
            and (
                (same_zone_ok and w.zone == device.zone)
                or site.policy.conduit_for(w.ip, device.ip, MODBUS_PORT) is not None
            )
        ]

    def inbound(self) -> dict[str, dict[int, set[str]]]:
        """Documented paths in from outside: inside address -> port -> outside sources."""
        fac = self.site.facility
        out: dict[str, dict[int, set[str]]] = {}
        for c in self.site.policy.conduits:
            outside_names = {n for n in c.src if fac.by_name[n].zone in self.outside_zones}
            srcs = self.side(frozenset(outside_names), c.src_zones & self.outside_zones)
            inside_names = {n for n in c.dst if fac.by_name[n].zone not in self.outside_zones}
            dsts = self.side(frozenset(inside_names), c.dst_zones - self.outside_zones)
            for dst in dsts if srcs else ():
                for port in c.ports:
                    out.setdefault(dst, {}).setdefault(port, set()).update(srcs)
        return out


def ics_rules(
    site: SiteView,
    scan_threshold: int = 20,
    scan_seconds: int = 10,
    login_failures: int = 3,
    limit_seconds: int = 60,
) -> str:
    """The ICS rule set for a site: what its design documents, turned into Suricata rules.

    `limit_seconds` (capture time) bounds how often a rule repeats per source and target.
    """
    addresses = Addresses(site)
    fac = site.facility
    rules = RuleSet()
    once = f"threshold: type limit, track by_both, count 1, seconds {limit_seconds};"
    syn = "flow:to_server; flags:S,12;"

    for fc, what in ((43, "read device identification"), (17, "report server id"),
                     (8, "diagnostics")):  # fmt: skip
        rules.add(
            f"modbus any any -> any {MODBUS_PORT}",
            f"ICS Modbus {what} (function {fc}): a device is being fingerprinted",
            f"flow:to_server,established; modbus: function {fc}; {once}",
            technique="T0888", priority=2, classtype="attempted-recon",
        )  # fmt: skip
    rules.add(
        "tcp any any -> $HOME_NET any",
        f"scan: one source sent {scan_threshold} SYNs within {scan_seconds} s",
        f"flow:stateless; flags:S,12; threshold: type both, track by_src, count {scan_threshold}, seconds {scan_seconds};",
        technique="T0846", priority=1, classtype="network-scan", about="source",
    )  # fmt: skip
    failures = f"threshold: type both, track by_both, count {login_failures}, seconds 60;"
    rules.add(
        "http $HOME_NET any -> any any",
        f"login failures: {login_failures} HTTP 401/403 answers from a device within 60 s",
        f'flow:to_client,established; http.stat_code; pcre:"/^40[13]$/"; {failures}',
        technique="T1110", priority=2, classtype="unsuccessful-user",
    )  # fmt: skip
    rules.add(
        "tcp $HOME_NET 23 -> any any",
        f"login failures: {login_failures} telnet 'Login incorrect' from a device within 60 s",
        f'flow:from_server,established; content:"incorrect"; nocase; {failures}',
        technique="T1110", priority=2, classtype="unsuccessful-user",
    )  # fmt: skip
    for how, match in (
        ("with HTTP credentials", 'http.header_names; content:"|0d 0a|Authorization|0d 0a|"; nocase;'),
        ("with a login form", 'http.method; content:"POST"; http.uri; content:"login"; nocase;'),
    ):  # fmt: skip
        rules.add(
            "http $EXTERNAL_NET any -> $HOME_NET any",
            f"web login to a site device from outside the site, {how}",
            f"flow:to_server,established; {match} {once}",
            technique="T0883", priority=2, classtype="policy-violation",
        )  # fmt: skip

    # in from outside, except on the documented conduits (a port forward, say)
    inbound = addresses.inbound()
    undocumented = [f"!{a}" for a in _sorted(inbound)]
    for proto, first in (("tcp", syn), ("udp", "flow:to_server;")):
        rules.add(
            f"{proto} $EXTERNAL_NET any -> {_group(['$HOME_NET', *undocumented])} any",
            f"inbound {proto.upper()} from outside the site, no conduit documents it",
            f"{first} {once}", technique="T0883", priority=2, classtype="policy-violation",
        )  # fmt: skip
        for dst in _sorted(inbound):
            ports = inbound[dst]
            name = site.name(dst)
            rules.add(
                f"{proto} $EXTERNAL_NET any -> {dst} !{_group([str(p) for p in sorted(ports)])}",
                f"inbound {proto.upper()} from outside to {name} on a port no conduit documents",
                f"{first} {once}", technique="T0883", priority=2, classtype="policy-violation",
            )  # fmt: skip
            for port, srcs in sorted(ports.items()):
                rules.add(
                    f"{proto} {_group(['$EXTERNAL_NET', *(f'!{s}' for s in _sorted(srcs))])} any -> {dst} {port}",
                    f"inbound {proto.upper()} to {name}:{port} from outside its conduit's sources",
                    f"{first} {once}", technique="T0883", priority=2, classtype="policy-violation",
                )  # fmt: skip
    rules.add(
        "icmp $EXTERNAL_NET any -> $HOME_NET any",
        "ping from outside the site",
        f"itype:8; {once}", technique="T0883", priority=3, classtype="attempted-recon",
    )  # fmt: skip

    for d in fac.devices:
        if "modbus" not in d.services or d.zone in addresses.outside_zones:
            continue
        sources = _sorted(addresses.modbus_sources(d))
        writers = _sorted(addresses.writers(d))
        src = f"!{_group(sources)}" if sources else "any"
        rules.add(
            f"tcp {src} any -> {d.ip} {MODBUS_PORT}",
            f"ICS Modbus connection to {d.name} ({d.zone}) on a path no conduit documents",
            f"{syn} {once}", technique="T0886", priority=2, classtype="policy-violation",
        )  # fmt: skip
        writer = f"!{_group(writers)}" if writers else "any"
        rules.add(
            f"modbus {writer} any -> {d.ip} {MODBUS_PORT}",
            f"ICS Modbus write to {d.name} from a host that is not its engineering writer",
            f"flow:to_server,established; modbus: access write; {once}",
            technique="T0836", priority=1, classtype="attempted-admin",
        )  # fmt: skip
    return rules.text()


# -- Suricata's configuration -----------------------------------------------------------------


def suricata_config(site: SiteView, work: Path, rule_files: list[str]) -> str:
    """A minimal suricata.yaml: Modbus parsing on, eve alerts only, checksums not checked.

    Captures from veth interfaces carry checksums the kernel never filled in (offload), so
    a checksum check would drop every segment.
    """
    home = _group(Addresses(site).home)
    config: dict[str, Any] = {
        "vars": {
            "address-groups": {
                "HOME_NET": home,
                "EXTERNAL_NET": "!$HOME_NET",
                **{group: "$HOME_NET" for group in SERVER_GROUPS},
            },
            "port-groups": PORT_GROUPS,
        },
        "default-log-dir": str(work),
        "default-rule-path": str(work),
        "rule-files": rule_files,  # not -S, which takes one file only
        "classification-file": str(work / "classification.config"),
        "reference-config-file": str(work / "reference.config"),
        "threshold-file": str(work / "threshold.config"),
        "outputs": [
            {
                "eve-log": {
                    "enabled": "yes",
                    "filetype": "regular",
                    "filename": "eve.json",
                    "types": [{"alert": {"metadata": "yes", "tagged-packets": "no"}}],
                }
            }
        ],
        "stats": {"enabled": "no"},
        "logging": {
            "default-log-level": "notice",
            "outputs": [{"console": {"enabled": "yes"}}],
        },
        "app-layer": {
            "protocols": {
                "modbus": {
                    "enabled": "yes",
                    "detection-ports": {"dp": str(MODBUS_PORT)},
                    "stream-depth": 0,
                }
            }
        },
        "stream": {"checksum-validation": "no", "midstream": "yes"},
        "pcap-file": {"checksum-checks": "no"},
    }
    return "%YAML 1.1\n---\n" + yaml.safe_dump(config, sort_keys=False)


def _classification() -> str:
    lines = [f"config classification: {k},{d},{p}" for k, (d, p) in CLASSES.items()]
    # third-party rules name other classtypes: keep the system's definitions too
    with contextlib.suppress(OSError):
        lines.append(SYSTEM_CLASSES.read_text())
    return "\n".join(lines) + "\n"


def find_suricata(binary: str) -> str:
    """The Suricata executable's path, or a BackendError saying how to install it."""
    path = shutil.which(binary)
    if path is None:
        raise BackendError(f"Suricata is not installed ({binary!r} not found): {INSTALL_HINT}")
    return path


# -- captures ---------------------------------------------------------------------------------

PCAP_MAGIC = {  # first four bytes -> (byte order, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}


def _records(fh: IO[bytes], order: str, nano: bool) -> Iterator[Record]:
    """Records of an open classic pcap past its header; a record cut short ends the file."""
    scale = 1 if nano else 1000
    while len(head := fh.read(16)) == 16:
        sec, sub, incl, orig = struct.unpack(order + "IIII", head)
        data = fh.read(incl)
        if len(data) < incl:
            return
        yield sec, sub * scale, orig, data


def merge_pcaps(paths: list[Path], out: Path) -> int:
    """One capture of several, in time order, and how many packets it holds.

    Suricata needs both directions of a flow in one stream, and each router capture holds
    only what entered on its interface. A record cut short (tcpdump stopped mid-write) ends
    its file.
    """
    packets = 0
    with contextlib.ExitStack() as stack:
        streams, linktypes = [], set()
        for p in paths:
            fh = stack.enter_context(p.open("rb"))
            head = fh.read(24)
            if len(head) < 24:
                continue  # a capture that never got its header: nothing in it
            if head[:4] not in PCAP_MAGIC:
                raise BackendError(f"{p}: not a classic pcap file (magic {head[:4].hex()})")
            order, nano = PCAP_MAGIC[head[:4]]
            linktypes.add(struct.unpack(order + "I", head[20:24])[0] & 0x0FFFFFFF)
            streams.append(_records(fh, order, nano))
        if len(linktypes) > 1:
            raise BackendError(f"captures with different link types {sorted(linktypes)}: {paths}")
        linktype = linktypes.pop() if linktypes else 1
        with out.open("wb") as w:
            w.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
            for sec, ns, orig, data in heapq.merge(*streams, key=lambda r: (r[0], r[1])):
                w.write(struct.pack("<IIII", sec, ns, len(data), orig))
                w.write(data)
                packets += 1
    return packets


# -- the detector -----------------------------------------------------------------------------


class Suricata(Detector):
    """Real Suricata, offline on the run's router captures, with rules written from the design.

    The generated rules (sids from 9,100,001; `msg` starts with "TWIN"):
    - a Modbus write to a device from a host that is not one of its engineering writers
      (an engineering host with a documented Modbus path to it), T0836;
    - a Modbus connection to a device on a path no conduit documents, T0886;
    - Modbus identification and diagnostics (functions 43, 17, 8) from anyone, T0888;
    - a SYN scan (`scan_threshold` SYNs within `scan_seconds` from one source), T0846;
    - bursts of HTTP 401/403 or telnet 'Login incorrect' answers, T1110;
    - inbound connections or pings from outside the site except on documented conduits,
      and web logins to site devices from outside, T0883.
    Suricata's own protocol-event alerts (sids 2,200,000-2,299,999, e.g. "SURICATA Modbus
    Data mismatch") are dropped and counted in `suppressed_`. Alerts are reported by
    `finish`, one per rule, source and target per simulated minute.
    """

    name = "suricata"
    summary = (
        "real Suricata on the emulated run's captures, with Modbus rules generated from the design"
    )
    reference_scenario = "flagship"
    needs_captures: ClassVar[bool] = True

    def __init__(
        self,
        timeout: float = 300.0,
        binary: str = "suricata",
        extra_rules: str = "",
        scan_threshold: int = 20,
        scan_seconds: int = 10,
        login_failures: int = 3,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if scan_threshold < 2:
            raise ValueError(f"scan_threshold must be at least 2, got {scan_threshold}")
        if scan_seconds < 1:
            raise ValueError(f"scan_seconds must be at least 1, got {scan_seconds}")
        if login_failures < 1:
            raise ValueError(f"login_failures must be at least 1, got {login_failures}")
        self.timeout = timeout
        self.binary = binary
        self.extra_rules = extra_rules
        self.scan_threshold = scan_threshold
        self.scan_seconds = scan_seconds
        self.login_failures = login_failures

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        if site.captures is None:
            raise BackendError(
                "suricata needs packet captures: run with --backend mininet "
                "(the modelled network has none)"
            )
        self.binary_ = find_suricata(self.binary)
        self.site_ = site
        self.since_ = float(baseline.t_end)  # alerts before the warm-up ended are not reported
        # capture seconds per simulated minute: how long a rule stays quiet after alerting
        limit = max(1, round(60.0 / site.captures.speed))
        self.rules_ = ics_rules(
            site, self.scan_threshold, self.scan_seconds, self.login_failures, limit
        )
        self.suppressed_: dict[str, int] = {}
        self.seen_: list[pd.DataFrame] = []  # flow records, to cite as evidence at the end
        with tempfile.TemporaryDirectory(prefix="twin-suricata-") as tmp:
            self._suricata(Path(tmp), ["-T"])  # rules the installed Suricata rejects fail now
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        if len(batch.flows):
            self.seen_.append(batch.flows[list(CITED)])
        return []  # Suricata reads whole captures: see finish

    def _cite(self, flows: pd.DataFrame, t: float, a: str, b: str) -> tuple[str, ...]:
        """The flow records between `a` and `b` (either way, any port) live around time `t`."""
        if flows.empty or not a:
            return ()
        if b:
            ends = flows["src_ip"].isin([a, b]) & flows["dst_ip"].isin([a, b])
        else:
            ends = flows["src_ip"] == a
        live = (flows["t_start"] <= t + CITE_SLACK_S) & (flows["t_export"] >= t - CITE_SLACK_S)
        return evidence.flows(flows["flow_id"][ends & live])

    def finish(self) -> list[Alert]:
        captures = self.site_.captures
        assert captures is not None  # fit refuses a site without captures
        pcaps = captures.pcaps()
        if not pcaps:
            raise BackendError(f"suricata: no packet captures (*.pcap) in {captures.directory}")
        with tempfile.TemporaryDirectory(prefix="twin-suricata-") as tmp:
            work = Path(tmp)
            pcap = work / "merged.pcap"
            if not merge_pcaps(pcaps, pcap):
                return []  # Suricata refuses a capture without packets
            self._suricata(work, ["-r", str(pcap), "-k", "none", "--runmode", "single"])
            alerts, suppressed = self._alerts(work / "eve.json")
        self.suppressed_ = dict(sorted(suppressed.items()))
        return alerts

    def _suricata(self, work: Path, args: list[str]) -> None:
        """Write the configuration and rules into `work` and run Suricata there."""
        (work / "twin-ics.rules").write_text(self.rules_)
        (work / "classification.config").write_text(_classification())
        refs = SYSTEM_REFERENCES.read_text() if SYSTEM_REFERENCES.is_file() else ""
        (work / "reference.config").write_text(refs)
        (work / "threshold.config").write_text("")
        rule_files = [str(work / "twin-ics.rules")]
        if self.extra_rules:
            extra = Path(self.extra_rules)
            if not extra.is_file():
                raise BackendError(f"suricata: extra_rules {self.extra_rules!r} is not a file")
            rule_files.append(str(extra.resolve()))
        (work / "suricata.yaml").write_text(suricata_config(self.site_, work, rule_files))
        cmd = [self.binary_, "-c", str(work / "suricata.yaml"), "-l", str(work)]
        cmd += ["--init-errors-fatal", *args]
        try:
            done = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"suricata did not finish in {self.timeout:g} s (the detector's timeout): "
                + " ".join(cmd)
            ) from None
        except OSError as exc:
            raise BackendError(f"suricata could not start ({self.binary_}): {exc}") from None
        if done.returncode != 0:
            said = [ln for ln in done.stdout.splitlines() if ln.startswith(("E:", "W:"))]
            raise BackendError(
                f"suricata failed (exit {done.returncode}): "
                + (" | ".join(said[-5:]) or done.stdout[-500:])
            )

    def _alerts(self, eve: Path) -> tuple[list[Alert], Counter[str]]:
        """Eve alert events as twin alerts, one per rule, source and target per sim minute."""
        site = self.site_
        captures = site.captures
        assert captures is not None
        suppressed: Counter[str] = Counter()
        seen: set[tuple[int, str, str, int]] = set()
        flows = (
            pd.concat(self.seen_, ignore_index=True)
            if self.seen_
            else pd.DataFrame(columns=list(CITED))
        )
        out: list[tuple[int, Alert]] = []
        if not eve.is_file():
            return [], suppressed
        with eve.open() as fh:
            for line in fh:
                event = json.loads(line)
                if event.get("event_type") != "alert":
                    continue
                rule = event["alert"]
                sid, msg = int(rule["signature_id"]), str(rule["signature"])
                if sid in OWN_EVENTS or msg.startswith("SURICATA "):
                    suppressed[msg] += 1
                    continue
                t = captures.sim_time(_wall(event["timestamp"]))
                if t < self.since_:
                    continue
                flow = event.get("flow", {})
                src = str(flow.get("src_ip", event.get("src_ip", "")))
                dst = str(flow.get("dest_ip", event.get("dest_ip", "")))
                meta = rule.get("metadata", {})
                cited = self._cite(flows, t, src, dst)
                if meta.get("twin_about", [""])[0] == "source":
                    device, dst = site.name(src), ""
                else:
                    device = site.name(dst if self._inside(dst) or not self._inside(src) else src)
                key = (sid, src, dst, int(t // 60.0))
                if key in seen:
                    continue
                seen.add(key)
                severity = SEVERITY.get(int(rule.get("severity", 3)), "low")
                technique = meta.get("mitre_technique_id", [""])[0]
                out.append((sid, Alert(t, self.name, severity, device, src, dst, technique, msg,
                                       evidence=cited)))  # fmt: skip
        out.sort(key=lambda x: (x[1].t, x[0], x[1].src_ip, x[1].dst_ip))
        return [a for _, a in out], suppressed

    def _inside(self, ip: str) -> bool:
        d = self.site_.device(ip)
        return d is not None and d.zone not in self.site_.facility.internet_zones()


def _wall(timestamp: str) -> float:
    """Eve's timestamp (local time with its UTC offset) as POSIX seconds."""
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
