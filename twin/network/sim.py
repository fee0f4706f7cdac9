"""The modelled network: conduits enforced in-process, latency in SimPy time, flows as aggregates."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from twin.devices import KINDS, Device
from twin.devices.base import ENCRYPTED_APPS, PORT_APPS
from twin.faces import Faces
from twin.network.base import ScanResult
from twin.network.flows import Chunk, FlowKey, FlowMeter, StandingFlow
from twin.network.policy import Policy
from twin.network.transactions import (
    READ_FC,
    Flood,
    Login,
    ModbusIdentify,
    ModbusRead,
    ModbusWrite,
    Ping,
    Probe,
    Reply,
    Transaction,
    Transfer,
    function_code,
)

HEADER = 54  # Ethernet + IPv4 + TCP bytes per packet
LATENCY_ZONE = 0.0004
LATENCY_FIREWALL = 0.0008
LATENCY_INTERNET = 0.03


class SimNetwork:
    """Network backend 'sim': deterministic, no root, scales to thousands of devices."""

    name = "sim"

    def __init__(
        self,
        env: simpy.Environment,
        policy: Policy,
        faces: Faces,
        meter: FlowMeter,
        rng: np.random.Generator,
    ) -> None:
        self.env = env
        self.policy = policy
        self.faces = faces
        self.meter = meter
        self.rng = rng
        self.standing = StandingMasks(policy, faces, meter)
        self._port = 0
        self.closed = False
        # successful Modbus writes as they crossed the wire: what a sniffer could capture
        self.observed_writes: list[tuple[float, ModbusWrite]] = []

    def __enter__(self) -> SimNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True

    # the modelled network has no clock, processes or rules of its own to keep in step
    def begin(self) -> None:
        """Called once the run is assembled, before the first event."""

    def after_step(self) -> None:
        """Called after each physics step."""

    def apply_policy(self) -> None:
        """Called after a response changed the policy."""

    def stop_capture(self) -> None:
        """Called when the run's traffic is over, before detectors finish."""

    # -- traffic ----------------------------------------------------------------------------

    def add_standing(self, flow: StandingFlow) -> None:
        self.meter.add_standing(flow)

    def poll(
        self, poller: Device, device: Device, every: float, blocks: list[tuple[str, int, int]]
    ) -> int:
        """`poller` reads each (table, address, count) block of `device` every `every` s, on
        one standing connection: one aggregate flow per export interval. Its source port."""
        polls = self.meter.interval / every
        req = sum(HEADER + 12 for _ in blocks)
        resp = sum(
            HEADER + 9 + (2 * n if t in ("holding", "input") else (n + 7) // 8)
            for t, _, n in blocks
        )
        sport = self.ephemeral_port()
        self.add_standing(
            StandingFlow(
                poller.ip, device.ip, sport, 502, "tcp", "modbus",
                packets=polls * len(blocks) * 2, bytes=polls * (req + HEADER * len(blocks)),
                packets_rev=polls * len(blocks), bytes_rev=polls * resp,
                modbus_reads=round(polls * len(blocks)),
                fc_set=",".join(str(READ_FC[t]) for t in sorted({b[0] for b in blocks}, key=READ_FC.__getitem__)),
                unit=KINDS[device.kind].modbus_unit,
            )
        )  # fmt: skip
        return sport

    def scan(
        self, src_ip: str, subnets: list[str], ports: list[int], rate: float, method: str,
        cause: str,
    ) -> Generator[simpy.Event, Any, ScanResult]:  # fmt: skip
        """A sweep from src_ip at `rate` probes/s: each port of every host (tcp), or one
        echo per host (icmp). Open ports by host, blocked probes by rule, probes sent."""
        found: dict[str, set[int]] = {}
        blocks: Counter[str] = Counter()
        sent = 0
        gap = 1.0 / rate
        for subnet in subnets:
            for host in ipaddress.ip_network(subnet).hosts():
                ip = str(host)
                if ip == src_ip:
                    continue
                txns: list[Transaction] = (
                    [Ping(src_ip, ip, cause=cause)]
                    if method == "icmp"
                    else [Probe(src_ip, ip, dst_port=port, cause=cause) for port in ports]
                )
                for txn in txns:
                    yield self.env.timeout(gap)
                    reply = self.exchange(txn)
                    sent += 1
                    if reply.ok:
                        open_ports = found.setdefault(ip, set())
                        if isinstance(txn, Probe):
                            open_ports.add(txn.dst_port)
                    elif reply.status == "blocked":
                        blocks[reply.detail] += 1
        return found, blocks, sent

    def reachable(self, src_ip: str, dst_ip: str, port: int) -> bool:
        return self.policy.verdict(src_ip, dst_ip, port).allowed

    def latency(self, src_ip: str, dst_ip: str) -> float:
        fac = self.policy.facility
        a, b = fac.zone_of_ip(src_ip), fac.zone_of_ip(dst_ip)
        internet = set(fac.internet_zones())
        rtt = LATENCY_ZONE
        if a != b:
            rtt += LATENCY_FIREWALL
        if (a in internet) != (b in internet):
            rtt += LATENCY_INTERNET
        return rtt

    def send(self, txn: Transaction) -> Generator[simpy.Event, Any, Reply]:
        """Carry one transaction, taking its round-trip time; `yield from` it in a process."""
        yield self.env.timeout(self.latency(txn.src_ip, txn.dst_ip))
        return self.exchange(txn)

    def exchange(self, txn: Transaction) -> Reply:
        """Carry one transaction now (for device logic that needs no latency)."""
        verdict = self.policy.verdict(txn.src_ip, txn.dst_ip, txn.port)
        reply = self.faces.answer(txn) if verdict.allowed else Reply("blocked", verdict.rule)
        self._account(txn, reply)
        if isinstance(txn, ModbusWrite) and reply.ok and txn.cause is None:
            self.observed_writes.append((self.env.now, txn))
            if len(self.observed_writes) > 10_000:
                del self.observed_writes[:5_000]
        return reply

    def ephemeral_port(self) -> int:
        self._port = (self._port + 7919) % 16384
        return 49152 + self._port

    def _account(self, txn: Transaction, reply: Reply) -> None:
        new_connection = txn.sport is None
        sport = txn.sport if txn.sport is not None else self.ephemeral_port()
        proto = "icmp" if isinstance(txn, Ping) else "tcp"
        key: FlowKey = (txn.src_ip, txn.dst_ip, 0 if proto == "icmp" else sport, txn.port, proto)
        app = PORT_APPS.get(txn.port, "other")
        common: dict[str, Any] = {"cause": txn.cause, "encrypted": app in ENCRYPTED_APPS}
        now = self.env.now
        if isinstance(txn, Flood):  # the packets cross the wire whatever the target does
            self.meter.record(
                key, now, app, packets=txn.packets, bytes=txn.packets * txn.packet_bytes,
                packets_rev=0 if reply.status != "ok" else txn.packets // 10,
                bytes_rev=0 if reply.status != "ok" else txn.packets // 10 * (HEADER + 4),
                tcp_flags="S", blocked=reply.status == "blocked", **common,
            )  # fmt: skip
            return
        if isinstance(txn, Ping):
            answered = reply.status == "ok"
            self.meter.record(
                key, now, app, packets=1, bytes=98, packets_rev=int(answered),
                bytes_rev=98 * int(answered), blocked=reply.status == "blocked", **common,
            )  # fmt: skip
            return
        if reply.status in ("blocked", "no_host", "timeout"):
            self.meter.record(
                key,
                now,
                app,
                packets=2,
                bytes=2 * (HEADER + 6),
                tcp_flags="S",
                blocked=reply.status == "blocked",
                **common,
            )
            return
        if reply.status == "closed" or isinstance(txn, Probe):
            opened = reply.status != "closed"
            self.meter.record(
                key, now, app, packets=2 if opened else 1, bytes=(2 if opened else 1) * (HEADER + 6),
                packets_rev=1, bytes_rev=HEADER + 4, tcp_flags="SAR", **common,
            )  # fmt: skip
            return
        hs_fwd, hs_rev, hs_flags = (3, 2, "SAPF") if new_connection else (0, 0, "AP")
        if isinstance(txn, ModbusIdentify) and new_connection:
            # scanners (nmap's modbus-discover) first ask Report Server ID (17), on a
            # connection of its own, then Read Device Identification (43/14)
            product = len(" ".join(reply.text))
            self.meter.record(
                (txn.src_ip, txn.dst_ip, self.ephemeral_port(), txn.port, "tcp"), now, app,
                packets=4, bytes=HEADER * 4 + 8, packets_rev=3, bytes_rev=HEADER * 3 + 11 + product,
                tcp_flags=hs_flags, fc=17, unit=txn.unit, **common,
            )  # fmt: skip
        if isinstance(txn, ModbusRead | ModbusWrite | ModbusIdentify):
            if isinstance(txn, ModbusIdentify):
                req, resp = 11, 9 + sum(len(x) + 2 for x in reply.text)
            elif isinstance(txn, ModbusRead):
                req = 12
                resp = 9 + (
                    2 * txn.count if txn.table in ("holding", "input") else (txn.count + 7) // 8
                )
            else:
                req = 12 if len(txn.values) == 1 else 13 + 2 * len(txn.values)
                resp = 12
            if reply.status == "exception":
                resp = 9
            self.meter.record(
                key, now, app, packets=1 + hs_fwd, bytes=HEADER * (1 + hs_fwd) + req,
                packets_rev=1 + hs_rev, bytes_rev=HEADER * (1 + hs_rev) + resp, tcp_flags=hs_flags,
                reads=int(isinstance(txn, ModbusRead)), writes=int(isinstance(txn, ModbusWrite)),
                fc=function_code(txn), unit=txn.unit, exception=reply.status == "exception", **common,
            )  # fmt: skip
        elif isinstance(txn, Login):
            fwd, rev, size, size_rev = {
                "http": (5, 5, 420, 1100), "telnet": (9, 9, 90, 380), "ssh": (14, 12, 2600, 3100),
            }[txn.service]  # fmt: skip
            self.meter.record(
                key, now, app, packets=fwd, bytes=HEADER * fwd + size, packets_rev=rev,
                bytes_rev=HEADER * rev + size_rev, tcp_flags="SAPF",
                auth_failure=reply.status == "denied", **common,
            )  # fmt: skip
        elif isinstance(txn, Transfer):
            fwd = max(1, -(-txn.bytes_out // 1400)) + hs_fwd
            rev = max(1, -(-txn.bytes_in // 1400)) + hs_rev
            self.meter.record(
                key, now, app, packets=fwd, bytes=HEADER * fwd + txn.bytes_out, packets_rev=rev,
                bytes_rev=HEADER * rev + txn.bytes_in, tcp_flags=hs_flags, **common,
            )  # fmt: skip

    # -- export -----------------------------------------------------------------------------

    def export(self, t_end: float) -> Chunk:
        return self.meter.export(
            t_end, self.standing.allowed(), self.standing.answered(self.env.now)
        )


class StandingMasks:
    """Which standing flows cross the wire now: those the policy lets through (worked out
    again only when the policy or the flows change) to a destination that answers (a
    flood can overwhelm it). Both backends export their standing flows through it."""

    def __init__(self, policy: Policy, faces: Faces, meter: FlowMeter) -> None:
        self.policy = policy
        self.faces = faces
        self.meter = meter
        self._allowed = np.zeros(0, dtype=bool)
        self._key = (-1, -1)

    def allowed(self) -> np.ndarray:
        key = (self.policy.version, len(self.meter.standing))
        if key != self._key:
            verdict = self.policy.verdict
            self._allowed = np.array(
                [verdict(f.src_ip, f.dst_ip, f.dport).allowed for f in self.meter.standing],
                dtype=bool,
            )
            self._key = key
        return self._allowed

    def answered(self, now: float) -> np.ndarray | None:
        """Standing flows whose destination answers (None: all do; floods make some not)."""
        fac = self.policy.facility
        busy = [
            fac.by_name[n].ip for n, until in self.faces.overloaded_until.items() if until > now
        ]
        if not busy:
            return None
        return ~np.isin(np.array([f.dst_ip for f in self.meter.standing]), busy)
