"""The pcap flow meter: classic libpcap captures into the flows table the modelled network makes.

Conventions, chosen so a capture and a model run of one scenario can be compared row by row:

- `bytes`/`bytes_rev` count each packet as its IPv4 total length plus a 14-byte Ethernet
  header, whatever the capture's link type (Ethernet, Linux cooked SLL/SLL2, raw IP) and
  snap length. This is the model's convention (54 bytes for a bare TCP segment, 98 for a
  ping); real stacks add what the model leaves out, such as TCP options (Linux: 12 bytes of
  timestamps per segment), and that difference is left visible for the fidelity report.
- A flow is one bidirectional 5-tuple conversation. Its initiator (the SYN sender; else the
  side not on a service port; else whoever spoke first) is `src`. State lives across export
  intervals; counters are cut at each interval boundary (`epoch` + k * interval in wall
  time, i.e. simulated k * interval) and exported with `t_export` = that boundary. A TCP
  connection that ends (RST, or FIN both ways) and a new SYN on the same 5-tuple start a
  new flow; flow state idle for `idle_timeout` is dropped at the next boundary.
- Modbus counting follows the model: requests with fc 1-4 are reads, 5/6/15/16 (and 22,
  23) writes, 23 is both; 43 (device identification) joins the fc set only.
- `blocked` is always False: a capture cannot tell a dropped packet from one never answered.
"""

from __future__ import annotations

import heapq
import math
import os
import re
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from twin.devices.base import ENCRYPTED_APPS, PORT_APPS
from twin.errors import BackendError
from twin.network.flows import FLAG_ORDER, FLOW_COLUMNS, empty_flows

ETHERNET_HEADER = 14  # added to the IP length of every packet, as the model counts
LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_IPV4, LINK_SLL2 = 1, 101, 113, 228, 276
# magic as stored -> (struct byte order, seconds per timestamp fraction unit)
MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
MAX_RECORD = 1 << 20  # a larger captured length means a corrupt file, not a packet
CHUNK = 1 << 22
IP_HEADER = struct.Struct("!BxHHHxBxx4s4s")  # version+ihl, length, id, fragment, protocol, addrs
TCP_HEADER = struct.Struct("!HHI4xBB")  # ports, sequence, data offset, flags
UDP_PORTS = struct.Struct("!HH")
MAX_FRAGMENTS = 65536  # first fragments remembered per interval
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP, UDP, ICMP = 6, 17, 1
PROTO_NAMES = {TCP: "tcp", UDP: "udp", ICMP: "icmp"}
ICMP_REPLIES = frozenset({0, 14, 16, 18})  # echo, timestamp, info, mask replies
CLOSED_LINGER = 5.0  # s a finished TCP flow keeps its state, for its trailing ACKs
READ_FCS = frozenset({1, 2, 3, 4, 23})
WRITE_FCS = frozenset({5, 6, 15, 16, 22, 23})
MODBUS, HTTP, TELNET = 1, 2, 3  # the payloads the meter reads
PAYLOAD_KINDS = {"modbus": MODBUS, "http": HTTP, "telnet": TELNET}
# auth failures in server-to-client text; `tail` keeps len-1 bytes for matches split by segments
AUTH_PATTERNS = {
    HTTP: re.compile(rb"HTTP/\d\.\d 40[13] "),
    TELNET: re.compile(rb"incorrect", re.IGNORECASE),
}
AUTH_TAIL = {HTTP: 12, TELNET: 8}

Packet = tuple[float, int, bytes, int]  # simulated time, link type, captured bytes, wire length


def read_pcap(
    path: str | os.PathLike[str],
    epoch: float = 0.0,
    skipped: Counter[str] | None = None,
    speed: float = 1.0,
) -> Iterator[Packet]:
    """Packets of one classic pcap file in file order, times as simulated seconds since
    `epoch` (wall-clock seconds times `speed`, for a run faster than real time).

    A record cut short at the end (a capture killed mid-write) or a corrupt record length
    ends the file; both are counted in `skipped`.
    """
    tail = PcapTail(path, epoch, speed, skipped)
    try:
        if not tail.open():
            raise BackendError(
                f"{path}: not a pcap file (magic {tail.head[:4].hex() or 'missing'})"
            )
        while True:
            yield from tail.records(CHUNK)
            if not tail.got or tail.broken:
                break
        if tail.pending and not tail.broken:
            tail.skipped["truncated_record"] += 1
    finally:
        tail.close()


class PcapTail:
    """The packets appended to a classic pcap since the last `read`, as tcpdump -U writes it.

    A record not yet complete stays for the next call; times are simulated seconds as in
    `read_pcap`. A file not yet created (or without its whole header yet) reads as empty.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        epoch: float,
        speed: float = 1.0,
        skipped: Counter[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.epoch = epoch
        self.speed = speed
        self.skipped = Counter() if skipped is None else skipped
        self.head = b""
        self.broken = False  # a corrupt record length: nothing after it can be framed
        self.got = 0  # bytes the last read took from the file
        self._file: BinaryIO | None = None
        self._buf = b""
        self._record = struct.Struct("<IIII")
        self._unit = 1e-6
        self._linktype = LINK_ETHERNET

    @property
    def pending(self) -> int:
        """Bytes of a record not complete yet."""
        return len(self._buf)

    def open(self) -> bool:
        """Read the file header: False while it is not all there; BackendError if the file
        is not a classic pcap; FileNotFoundError if there is no file."""
        if self._file is not None:
            return True
        f = open(self.path, "rb")  # noqa: SIM115 - held across reads, closed in close()
        head = self.head = f.read(24)
        if head[:4] == PCAPNG_MAGIC:
            f.close()
            raise BackendError(
                f"{self.path}: pcapng is not read; capture with tcpdump -w (classic pcap)"
            )
        if len(head) >= 4 and head[:4] not in MAGICS:
            f.close()
            raise BackendError(f"{self.path}: not a pcap file (magic {head[:4].hex()})")
        if len(head) < 24:
            f.close()
            return False
        order, self._unit = MAGICS[head[:4]]
        self._linktype = struct.unpack(order + "I", head[20:24])[0] & 0xFFFF
        self._record = struct.Struct(order + "IIII")
        self._file = f
        return True

    def read(self, limit: int = -1) -> list[Packet]:
        """Complete records from what was appended (at most `limit` more bytes are read)."""
        return list(self.records(limit))

    def records(self, limit: int = -1) -> Iterator[Packet]:
        """`read` as a generator (the whole-file reader's path); sets `got`, the bytes read."""
        self.got = 0
        try:
            if self.broken or not self.open():
                return
        except FileNotFoundError:
            return
        assert self._file is not None
        chunk = self._file.read(limit)
        self.got = len(chunk)
        buf = self._buf + chunk
        pos, n, record = 0, len(buf), self._record
        epoch, unit, speed, linktype = self.epoch, self._unit, self.speed, self._linktype
        try:
            while pos + 16 <= n:
                sec, sub, incl, orig = record.unpack_from(buf, pos)
                if incl > MAX_RECORD:
                    self.skipped["corrupt_record"] += 1
                    self.broken = True
                    break
                end = pos + 16 + incl
                if end > n:
                    break
                yield ((sec - epoch) + sub * unit) * speed, linktype, buf[pos + 16 : end], orig
                pos = end
        finally:
            self._buf = buf[pos:]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _swap_by_ports(sport: int, dport: int) -> bool:
    """Whether the sender of a mid-conversation packet is the server, judged by its port."""
    s_known, d_known = sport in PORT_APPS, dport in PORT_APPS
    if s_known != d_known:
        return s_known
    if (sport < 1024) != (dport < 1024):
        return sport < 1024
    return False


def _fc_list(fcs: int) -> str:
    return ",".join(str(c) for c in range(fcs.bit_length()) if fcs >> c & 1) if fcs else ""


class Flow:
    """One conversation: its identity and stream state, and its counters for this interval."""

    __slots__ = (
        "app", "auth_failures", "bytes", "bytes_rev", "closed", "dport", "dst", "encrypted",
        "exceptions", "fcs", "fins", "flags", "last_seen", "next_seq", "packets",
        "packets_rev", "payload", "proto", "reads", "sport", "src", "stream", "syn_seq",
        "t_first", "t_last", "touched", "unit", "writes",
    )  # fmt: skip

    def __init__(self, src: bytes, dst: bytes, sport: int, dport: int, proto: int) -> None:
        self.src, self.dst, self.sport, self.dport, self.proto = src, dst, sport, dport, proto
        self.app = PORT_APPS.get(dport, "other")
        self.encrypted = self.app in ENCRYPTED_APPS
        self.payload = PAYLOAD_KINDS.get(self.app, 0) if proto == TCP else 0
        self.closed = False
        self.fins = 0
        self.syn_seq: int | None = None
        self.last_seen = 0.0
        self.next_seq: list[int | None] = [None, None]  # per direction: 0 forward, 1 reverse
        self.stream = [b"", b""]
        self.reset()

    def reset(self) -> None:
        self.touched = False  # has packets in the interval being filled
        self.t_first = self.t_last = 0.0
        self.packets = self.bytes = self.packets_rev = self.bytes_rev = 0
        self.flags = self.reads = self.writes = self.fcs = self.exceptions = 0
        self.auth_failures = 0
        self.unit = -1

    def feed(self, rev: int, seq: int, data: bytes, wire_len: int) -> None:
        """Pass one TCP segment's payload to the app parser, once, in stream order."""
        expected = self.next_seq[rev]
        self.next_seq[rev] = (seq + wire_len) & 0xFFFFFFFF
        if expected is not None:
            ahead = ((seq - expected + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            if ahead < 0:  # retransmission or overlap: keep only the new bytes
                if ahead + wire_len <= 0:
                    self.next_seq[rev] = expected
                    return
                data = data[-ahead:]
            elif ahead > 0:  # bytes the capture missed: start over at the next frame
                self.stream[rev] = b""
        if self.payload == MODBUS:
            self._modbus(rev, data)
        else:
            self._auth(rev, data)
        if len(data) < wire_len:  # snap length cut the segment: the stream has a hole
            self.stream[rev] = b""

    def _modbus(self, rev: int, data: bytes) -> None:
        buf = self.stream[rev] + data if self.stream[rev] else data
        i, n = 0, len(buf)
        while n - i >= 8:
            length = buf[i + 4] << 8 | buf[i + 5]
            fc = buf[i + 7]
            if buf[i + 2] or buf[i + 3] or not 2 <= length <= 254 or not fc & 0x7F:
                i += 1  # not an MBAP header: slide until one appears
                continue
            end = i + 6 + length
            if end > n:
                break
            if rev:
                self.exceptions += fc >> 7
            else:
                self.unit = buf[i + 6]
                self.fcs |= 1 << fc
                self.reads += fc in READ_FCS
                self.writes += fc in WRITE_FCS
            i = end
        self.stream[rev] = buf[i:]

    def _auth(self, rev: int, data: bytes) -> None:
        if not rev:
            return
        text = self.stream[1] + data
        self.auth_failures += len(AUTH_PATTERNS[self.payload].findall(text))
        self.stream[1] = text[-AUTH_TAIL[self.payload] :]


class PcapMeter:
    """Streams packets into flows and exports one record per flow per interval."""

    def __init__(self, interval: float = 60.0, idle_timeout: float = 60.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.flows: dict[tuple[bytes, bytes, int, int, int], Flow] = {}  # both directions
        self.pending: list[Flow] = []  # flows with packets in the interval being filled
        self.fragments: dict[tuple[bytes, bytes, int, int], tuple[Flow, int]] = {}
        self.current: int | None = None  # index of the interval being filled
        self.start, self.end = math.inf, -math.inf  # its bounds in simulated seconds
        self.skipped: Counter[str] = Counter()
        self.packets = 0
        self.late = 0
        self.rows: list[tuple[object, ...]] = []

    # -- packets ----------------------------------------------------------------------------

    def add(self, t: float, linktype: int, data: bytes, wire_len: int) -> None:
        """Account one captured packet (`t` in simulated seconds)."""
        self.packets += 1
        if not self.start <= t < self.end:
            t = self._advance(t)
        if linktype == LINK_ETHERNET:
            off, etype = 14, data[12:14]
            while etype in (b"\x81\x00", b"\x88\xa8"):  # VLAN tags
                off, etype = off + 4, data[off + 2 : off + 4]
        elif linktype == LINK_SLL:
            off, etype = 16, data[14:16]
        elif linktype == LINK_SLL2:
            off, etype = 20, data[0:2]
        elif linktype in (LINK_RAW, LINK_IPV4):
            off, etype = 0, b"\x08\x00"
        else:
            self.skipped[f"linktype_{linktype}"] += 1
            return
        if etype != b"\x08\x00":
            reason = "truncated_link" if len(etype) < 2 else "not_ip"
            self.skipped["ipv6" if etype == b"\x86\xdd" else reason] += 1
            return
        n = len(data)
        if n < off + 20:
            self.skipped["bad_ip_header"] += 1
            return
        version_ihl, ip_len, ident, frag, proto, src, dst = IP_HEADER.unpack_from(data, off)
        if version_ihl >> 4 != 4 or version_ihl & 15 < 5:
            self.skipped["bad_ip_header"] += 1
            return
        ihl = (version_ihl & 15) * 4
        if ip_len < ihl:  # offloaded super-packet with no length: trust the wire length
            ip_len = wire_len - off
        if proto not in PROTO_NAMES:
            self.skipped[f"ip_proto_{proto}"] += 1
            return
        size = ip_len + ETHERNET_HEADER
        if frag & 0x1FFF:  # a later fragment carries no ports: join its first fragment's flow
            hit = self.fragments.get((src, dst, proto, ident))
            if hit is None:
                self.skipped["orphan_fragment"] += 1
            else:
                self._count(hit[0], hit[1], t, size, 0)
            return
        l4 = off + ihl
        end = off + ip_len if off + ip_len < n else n  # drops Ethernet padding
        tcp_flags = seq = doff = 0
        if proto == TCP:
            if end < l4 + 20:
                self.skipped["truncated_tcp"] += 1
                return
            sport, dport, seq, doff, tcp_flags = TCP_HEADER.unpack_from(data, l4)
            tcp_flags &= 0x3F
        elif proto == UDP:
            if end < l4 + 8:
                self.skipped["truncated_udp"] += 1
                return
            sport, dport = UDP_PORTS.unpack_from(data, l4)
        else:
            if end < l4 + 1:
                self.skipped["truncated_icmp"] += 1
                return
            sport = dport = 0
        key = (src, dst, sport, dport, proto)
        flow = self.flows.get(key)
        if flow is None or (
            tcp_flags & (SYN | ACK) == SYN and (flow.closed or flow.syn_seq != seq)
        ):
            flow = self._open(key, tcp_flags, data[l4] if proto == ICMP else -1)
            if tcp_flags & (SYN | ACK) == SYN:
                flow.syn_seq = seq
        # _count, inlined: this is the per-packet path
        if not flow.touched:
            flow.touched = True
            flow.t_first = flow.t_last = flow.last_seen = t
            self.pending.append(flow)
        elif t >= flow.t_last:
            flow.t_last = flow.last_seen = t
        elif t < flow.t_first:  # a late packet, clamped to the interval start
            flow.t_first = t
        if flow.sport == sport and flow.src == src:
            rev = 0
            flow.packets += 1
            flow.bytes += size
        else:
            rev = 1
            flow.packets_rev += 1
            flow.bytes_rev += size
        flow.flags |= tcp_flags
        if frag & 0x2000:
            if len(self.fragments) < MAX_FRAGMENTS:
                self.fragments[(src, dst, proto, ident)] = (flow, rev)
            return  # the first fragment's payload is incomplete: no app parsing
        if not tcp_flags:
            return
        if tcp_flags & RST:
            flow.closed = True
        elif tcp_flags & FIN:
            flow.fins |= 1 << rev
            flow.closed = flow.fins == 3
        if flow.payload:
            doff = (doff >> 4) * 4
            if tcp_flags & SYN:
                flow.next_seq[rev] = (seq + 1) & 0xFFFFFFFF
            elif ip_len > ihl + doff:
                flow.feed(rev, seq, data[l4 + doff : end], ip_len - ihl - doff)

    def _advance(self, t: float) -> float:
        """Move to the interval holding `t`, exporting the one before; clamp late packets."""
        k = math.floor(t / self.interval)
        if self.current is not None:
            if k < self.current:  # file order disagrees with time
                self.late += 1
                return self.start
            if k == self.current:  # rounding at the very edge of the interval
                return t
            self.flush()
        self.current = k
        self.start, self.end = k * self.interval, (k + 1) * self.interval
        return t

    def _open(self, key: tuple[bytes, bytes, int, int, int], tcp_flags: int, icmp: int) -> Flow:
        src, dst, sport, dport, proto = key
        if proto == TCP and tcp_flags & SYN:
            swap = bool(tcp_flags & ACK)  # a SYN-ACK's receiver opened the connection
        elif proto == ICMP:
            swap = icmp in ICMP_REPLIES
        else:
            swap = _swap_by_ports(sport, dport)
        flow = Flow(dst, src, dport, sport, proto) if swap else Flow(src, dst, sport, dport, proto)
        self.flows[key] = self.flows[(dst, src, dport, sport, proto)] = flow
        return flow

    def _count(self, flow: Flow, rev: int, t: float, size: int, tcp_flags: int) -> None:
        if not flow.touched:
            flow.touched = True
            flow.t_first = flow.t_last = flow.last_seen = t
            self.pending.append(flow)
        elif t >= flow.t_last:
            flow.t_last = flow.last_seen = t
        elif t < flow.t_first:
            flow.t_first = t
        if rev:
            flow.packets_rev += 1
            flow.bytes_rev += size
        else:
            flow.packets += 1
            flow.bytes += size
        flow.flags |= tcp_flags

    # -- export -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Export the interval being filled and drop the state of finished or idle flows."""
        if self.current is None:
            return
        boundary = (self.current + 1) * self.interval
        ntoa = socket.inet_ntoa
        for f in self.pending:
            self.rows.append((
                f.t_first, f.t_last, boundary, ntoa(f.src), ntoa(f.dst), f.sport, f.dport,
                PROTO_NAMES[f.proto], f.app, f.packets, f.bytes, f.packets_rev, f.bytes_rev,
                "".join(c for i, c in enumerate(FLAG_ORDER) if f.flags >> i & 1),
                f.reads, f.writes, _fc_list(f.fcs),
                f.unit, f.exceptions, f.auth_failures, False, f.encrypted,
            ))  # fmt: skip
            f.reset()
        self.pending = []
        self.fragments.clear()
        stale = [
            k
            for k, f in self.flows.items()
            if f.last_seen < boundary - (CLOSED_LINGER if f.closed else self.idle_timeout)
        ]
        for k in stale:
            del self.flows[k]

    def table(self) -> pd.DataFrame:
        """The flows table of everything exported so far (call `flush` first to close)."""
        if not self.rows:
            return empty_flows()
        names = [c for c in FLOW_COLUMNS if c != "flow_id"]
        df = pd.DataFrame.from_records(self.rows, columns=names)
        df = df.sort_values(["t_export", "t_start"], kind="stable", ignore_index=True)
        df.insert(0, "flow_id", np.arange(1, len(df) + 1, dtype=np.int64))
        return df.astype(FLOW_COLUMNS)


def flows_from_pcaps(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    epoch: float,
    interval: float = 60.0,
    idle_timeout: float = 60.0,
    speed: float = 1.0,
) -> pd.DataFrame:
    """The flows table of one or more captures, merged in time order.

    `epoch` is the wall-clock time of simulated t=0 and `speed` simulated seconds per
    wall-clock second; table times (and `interval`, `idle_timeout`) are simulated seconds.
    Packets the meter does not understand are counted in `df.attrs["skipped"]`. Two captures
    of the same packet (both sides of a router) count it twice: capture each link once.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    meter = PcapMeter(interval, idle_timeout)
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    readers = [read_pcap(Path(p), epoch, meter.skipped, speed) for p in paths]
    packets = readers[0] if len(readers) == 1 else heapq.merge(*readers, key=itemgetter(0))
    add = meter.add
    for t, linktype, data, wire_len in packets:
        add(t, linktype, data, wire_len)
    meter.flush()
    df = meter.table()
    df.attrs["skipped"] = dict(meter.skipped)
    df.attrs["packets"] = meter.packets
    df.attrs["late"] = meter.late
    return df
