"""The pcap flow meter: captures become the same flows table the modelled network writes."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from twin.errors import BackendError
from twin.network.flows import FLOW_COLUMNS
from twin.network.pcapflows import PcapMeter, flows_from_pcaps

EPOCH = 1_700_000_000.0
CLIENT, SERVER = "10.20.0.5", "10.60.0.9"
Frame = tuple[float, bytes]  # simulated time, IPv4 packet (link header added when written)


# -- building captures byte by byte -----------------------------------------------------------


def ipv4(src: str, dst: str, proto: int, body: bytes, ident: int = 1, frag: int = 0x4000) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, frag, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return header + body


def tcp(
    src: str, dst: str, sport: int, dport: int, seq: int, flags: int, payload: bytes = b""
) -> bytes:
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    return ipv4(src, dst, 6, segment + payload)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def icmp_echo(src: str, dst: str, reply: bool) -> bytes:
    return ipv4(src, dst, 1, struct.pack("!BBHHH", 0 if reply else 8, 0, 0, 7, 1) + bytes(56))


def link_header(linktype: int, packet: bytes) -> bytes:
    if linktype == 1:  # Ethernet, padded to the 60-byte minimum as on the wire
        frame = bytes(6) + b"\x02" + bytes(5) + b"\x08\x00" + packet
        return frame + bytes(max(0, 60 - len(frame)))
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + packet
    if linktype == 276:
        return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8)) + packet
    raise AssertionError(linktype)


def write_pcap(
    path: Path,
    frames: list[Frame],
    linktype: int = 1,
    nano: bool = False,
    order: str = "<",
    raw: bool = False,
) -> Path:
    """A classic pcap; `raw` frames are written as given (already link-framed or garbage)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for t, packet in frames:
        data = packet if raw else link_header(linktype, packet)
        whole = math.floor(t)  # EPOCH is whole seconds: keep the fraction exact
        sec, sub = int(EPOCH) + whole, round((t - whole) * (1e9 if nano else 1e6))
        out.append(struct.pack(order + "IIII", sec, sub, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack("!HHHB", tid, 0, len(pdu) + 1, unit) + pdu


READ_REQ = mbap(1, 7, struct.pack("!BHH", 3, 0, 4))  # read 4 holding registers
READ_RESP = mbap(1, 7, struct.pack("!BB", 3, 8) + bytes(8))
WRITE_REQ = mbap(2, 7, struct.pack("!BHH", 6, 10, 215))
WRITE_RESP = WRITE_REQ
WRITE_MANY_REQ = mbap(3, 7, struct.pack("!BHHB", 16, 40, 2, 4) + bytes(4))
EXCEPTION_RESP = mbap(3, 7, struct.pack("!BB", 0x90, 2))  # illegal data address
SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04


class Conversation:
    """A TCP connection fabricated segment by segment, with real sequence numbers."""

    def __init__(self, sport: int = 50123, dport: int = 502, t: float = 10.0) -> None:
        self.sport, self.dport, self.t = sport, dport, t
        self.seq = {True: 1000, False: 5000}  # by 'from client'
        self.frames: list[Frame] = []

    def send(self, client: bool, flags: int, payload: bytes = b"", dt: float = 0.01) -> None:
        src, dst = (CLIENT, SERVER) if client else (SERVER, CLIENT)
        sport, dport = (self.sport, self.dport) if client else (self.dport, self.sport)
        self.frames.append((self.t, tcp(src, dst, sport, dport, self.seq[client], flags, payload)))
        self.seq[client] += len(payload) + bool(flags & (SYN | FIN))
        self.t += dt

    def handshake(self) -> None:
        self.send(True, SYN)
        self.send(False, SYN | ACK)
        self.send(True, ACK)

    def close(self) -> None:
        self.send(True, FIN | ACK)
        self.send(False, FIN | ACK)
        self.send(True, ACK)


def modbus_conversation(t: float = 10.0) -> Conversation:
    """Handshake, a read, a write, a write answered by an exception, FIN both ways."""
    c = Conversation(t=t)
    c.handshake()
    for request, response in (
        (READ_REQ, READ_RESP), (WRITE_REQ, WRITE_RESP), (WRITE_MANY_REQ, EXCEPTION_RESP)
    ):  # fmt: skip
        c.send(True, PSH | ACK, request)
        c.send(False, PSH | ACK, response)
    c.close()
    return c


def meter(tmp_path: Path, frames: list[Frame], **kwargs: object) -> pd.DataFrame:
    return flows_from_pcaps(write_pcap(tmp_path / "c.pcap", frames, **kwargs), EPOCH)  # type: ignore[arg-type]


# -- the columns ------------------------------------------------------------------------------


def test_modbus_conversation_fills_every_column(tmp_path: Path) -> None:
    """A fabricated Modbus/TCP exchange gives one record with every column as the model fills it."""
    c = modbus_conversation()
    df = meter(tmp_path, c.frames)
    assert list(df.columns) == list(FLOW_COLUMNS)
    assert len(df) == 1
    row = df.iloc[0].to_dict()
    assert row == {
        "flow_id": 1, "t_start": pytest.approx(10.0), "t_end": pytest.approx(10.11),
        "t_export": 60.0, "src_ip": CLIENT, "dst_ip": SERVER, "src_port": 50123,
        "dst_port": 502, "proto": "tcp", "app": "modbus",
        "packets": 7, "bytes": 7 * 54 + len(READ_REQ) + len(WRITE_REQ) + len(WRITE_MANY_REQ),
        "packets_rev": 5, "bytes_rev": 5 * 54 + len(READ_RESP) + len(WRITE_RESP) + len(EXCEPTION_RESP),
        "tcp_flags": "FSPA", "modbus_reads": 1, "modbus_writes": 2, "modbus_fc_set": "3,6,16",
        "modbus_unit": 7, "modbus_exceptions": 1, "auth_failures": 0, "blocked": False,
        "encrypted": False,
    }  # fmt: skip


def test_dtypes_match_the_modelled_table(tmp_path: Path) -> None:
    """The table casts to the flows contract, so it concatenates with a model run's flows."""
    df = meter(tmp_path, modbus_conversation().frames)
    expected = pd.DataFrame({c: pd.Series(dtype=t) for c, t in FLOW_COLUMNS.items()}).dtypes
    assert df.dtypes.equals(expected)


def test_adu_split_across_segments_and_two_adus_in_one_segment(tmp_path: Path) -> None:
    """Requests are counted however TCP cuts the stream: halves of one ADU, two ADUs at once."""
    c = Conversation()
    c.handshake()
    c.send(True, ACK, WRITE_MANY_REQ[:5])  # cut inside the MBAP header
    c.send(True, PSH | ACK, WRITE_MANY_REQ[5:])
    c.send(False, PSH | ACK, EXCEPTION_RESP[:8])
    c.send(False, PSH | ACK, EXCEPTION_RESP[8:] + READ_RESP)  # end of one, all of the next
    c.send(True, PSH | ACK, READ_REQ + WRITE_REQ)
    df = meter(tmp_path, c.frames)
    row = df.iloc[0]
    assert (row.modbus_reads, row.modbus_writes, row.modbus_fc_set) == (1, 2, "3,6,16")
    assert row.modbus_exceptions == 1


def test_retransmission_and_garbage_do_not_miscount(tmp_path: Path) -> None:
    """A resent segment is parsed once; junk in the stream is skipped up to the next header."""
    c = Conversation()
    c.handshake()
    c.send(True, PSH | ACK, READ_REQ)
    c.seq[True] -= len(READ_REQ)
    c.send(True, PSH | ACK, READ_REQ)  # retransmission
    c.send(True, PSH | ACK, b"\xff\x13\x37garbage!" + WRITE_REQ)
    row = meter(tmp_path, c.frames).iloc[0]
    assert (row.packets, row.modbus_reads, row.modbus_writes) == (5, 1, 1)


def test_capture_gap_resyncs_the_stream(tmp_path: Path) -> None:
    """Bytes the capture missed drop the half-read ADU instead of misparsing what follows."""
    c = Conversation()
    c.handshake()
    c.send(True, PSH | ACK, READ_REQ[:6])
    c.seq[True] += 100  # a hundred bytes never captured
    c.send(True, PSH | ACK, WRITE_REQ)
    row = meter(tmp_path, c.frames).iloc[0]
    assert (row.modbus_reads, row.modbus_writes) == (0, 1)


# -- intervals, direction, lifetimes ------------------------------------------------------------


def test_flow_spanning_three_intervals_gives_three_records(tmp_path: Path) -> None:
    """A connection alive for 150 s is cut at each 60-s boundary, like the model's exports."""
    c = Conversation(t=50.0)
    c.handshake()
    for t in (55.0, 70.0, 100.0, 130.0, 170.0):
        c.t = t
        c.send(True, PSH | ACK, READ_REQ)
        c.send(False, PSH | ACK, READ_RESP)
    c.close()
    df = meter(tmp_path, c.frames)
    assert list(df.t_export) == [60.0, 120.0, 180.0]
    assert list(df.flow_id) == [1, 2, 3]
    assert list(df.t_start) == pytest.approx([50.0, 70.0, 130.0])
    assert list(df.t_end) == pytest.approx([55.01, 100.01, 170.04])
    assert list(df.modbus_reads) == [1, 2, 2]
    assert list(df.tcp_flags) == ["SPA", "PA", "FPA"]
    assert (df.src_ip == CLIENT).all() and (df.dst_port == 502).all()
    assert df.packets.sum() + df.packets_rev.sum() == len(c.frames)


def test_interval_boundaries_start_at_the_epoch(tmp_path: Path) -> None:
    """Records are cut on simulated-time boundaries, however the wall clock is aligned."""
    path = write_pcap(tmp_path / "c.pcap", modbus_conversation(t=119.95).frames)
    split = flows_from_pcaps(path, EPOCH)
    assert list(split.t_export) == [120.0, 180.0]
    assert list(split.packets + split.packets_rev) == [5, 7]
    whole = flows_from_pcaps(path, EPOCH + 0.5)  # the run started half a second later
    assert list(whole.t_export) == [120.0]
    assert whole.t_start.iloc[0] == pytest.approx(119.45)


def test_packets_before_the_epoch_and_late_packets(tmp_path: Path) -> None:
    """Setup traffic before t=0 exports at 0; a packet older than the open interval joins it."""
    frames = [
        (-5.0, udp(CLIENT, SERVER, 40000, 53, b"q")),
        (70.0, udp(CLIENT, SERVER, 40001, 53, b"q")),
        (30.0, udp(CLIENT, SERVER, 40001, 53, b"late")),  # out of order in the file
    ]
    df = meter(tmp_path, frames)
    assert list(df.t_export) == [0.0, 120.0]
    assert df.t_start.iloc[0] == -5.0 and df.packets.iloc[1] == 2
    assert df.t_start.iloc[1] == 60.0 and df.attrs["late"] == 1


def test_idle_and_finished_flows_leave_the_meter() -> None:
    """Meter state is bounded by live flows: idle and closed ones go at the next boundary."""
    m = PcapMeter()
    for i in range(1000):
        packet = link_header(1, udp(CLIENT, SERVER, 20000 + i, 53, b"q"))
        m.add(1.0 + i / 1000, 1, packet, len(packet))
    c = modbus_conversation(t=100.0)
    keep = Conversation(sport=50200, t=110.0)
    keep.handshake()
    for t, packet in c.frames + keep.frames + [(200.0, udp(CLIENT, SERVER, 1, 53, b"q"))]:
        m.add(t, 1, link_header(1, packet), 0)
    # at 180: the 1000 lookups idle since t=2 and the closed Modbus flow are gone
    assert {f.sport for f in m.flows.values()} == {50200, 1}
    m.flush()
    assert len(m.table()) == 1000 + 3


def test_vlan_tagged_frames_are_read(tmp_path: Path) -> None:
    """802.1Q tags in front of the IP header do not hide the packet."""
    packet = tcp(CLIENT, SERVER, 50123, 502, 1, SYN)
    frame = bytes(12) + b"\x81\x00\x00\x0a\x08\x00" + packet
    df = meter(tmp_path, [(1.0, frame)], raw=True)
    assert (df.src_ip.iloc[0], df.dst_port.iloc[0], df.bytes.iloc[0]) == (CLIENT, 502, 54)


def test_initiator_is_src_when_the_capture_starts_late(tmp_path: Path) -> None:
    """Joining mid-connection, the side on the service port is still the server."""
    c = Conversation()
    c.send(False, PSH | ACK, READ_RESP)  # first seen: a response
    c.send(True, PSH | ACK, READ_REQ)
    d = Conversation(sport=50999)
    d.send(False, SYN | ACK)  # first seen: the SYN-ACK
    d.send(True, ACK)
    df = meter(tmp_path, c.frames + d.frames)
    assert list(df.src_ip) == [CLIENT, CLIENT]
    assert list(df.dst_port) == [502, 502]
    assert list(df.modbus_reads) == [1, 0]


def test_new_syn_after_close_is_a_new_flow(tmp_path: Path) -> None:
    """Two connections reusing a 5-tuple inside one interval give two records."""
    first = modbus_conversation(t=1.0)
    second = modbus_conversation(t=5.0)
    df = meter(tmp_path, first.frames + second.frames)
    assert len(df) == 2
    assert list(df.modbus_reads) == [1, 1]
    assert list(df.t_start) == pytest.approx([1.0, 5.0])


def test_udp_and_icmp_flows(tmp_path: Path) -> None:
    """A ping and a DNS lookup are one bidirectional flow each, counted as the model counts."""
    frames = [
        (1.0, icmp_echo(CLIENT, SERVER, reply=False)),
        (1.1, icmp_echo(SERVER, CLIENT, reply=True)),
        (2.0, udp(CLIENT, SERVER, 40000, 53, bytes(30))),
        (2.1, udp(SERVER, CLIENT, 53, 40000, bytes(80))),
        (3.0, ipv4(CLIENT, SERVER, 47, bytes(10))),  # GRE: not metered
    ]
    df = meter(tmp_path, frames)
    ping, dns = df.iloc[0], df.iloc[1]
    assert (ping.proto, ping.src_ip, ping.src_port, ping.dst_port, ping.app) == (
        "icmp", CLIENT, 0, 0, "other"
    )  # fmt: skip
    assert (ping.packets, ping.bytes, ping.packets_rev, ping.bytes_rev) == (1, 98, 1, 98)
    assert (dns.proto, dns.app, dns.dst_port, dns.tcp_flags) == ("udp", "dns", 53, "")
    assert (dns.bytes, dns.bytes_rev) == (14 + 28 + 30, 14 + 28 + 80)
    assert df.attrs["skipped"] == {"ip_proto_47": 1}


def test_fragments_join_their_flow(tmp_path: Path) -> None:
    """A fragmented datagram counts all its fragments in one flow."""
    first = ipv4(
        CLIENT, SERVER, 17, struct.pack("!HHHH", 40000, 53, 1508, 0) + bytes(1472), 9, 0x2000
    )
    rest = ipv4(CLIENT, SERVER, 17, bytes(28), 9, 185)  # offset 1480 bytes
    df = meter(tmp_path, [(1.0, first), (1.0, rest)])
    assert (df.packets.iloc[0], df.bytes.iloc[0]) == (2, 14 + 1500 + 14 + 48)


def test_encrypted_and_unknown_apps(tmp_path: Path) -> None:
    """The app comes from the server port; encrypted apps are flagged."""
    tls = Conversation(dport=443)
    tls.handshake()
    odd = Conversation(sport=51000, dport=9999)
    odd.handshake()
    df = meter(tmp_path, tls.frames + odd.frames)
    assert list(df.app) == ["https", "other"]
    assert list(df.encrypted) == [True, False]
    assert not df.blocked.any()


# -- application fields -----------------------------------------------------------------------


def test_http_401_and_403_are_auth_failures(tmp_path: Path) -> None:
    """Each 401/403 a web server sends back is one failed login; a 200 is not."""
    c = Conversation(dport=80)
    c.handshake()
    for status in (b"401 Unauthorized", b"403 Forbidden", b"200 OK"):
        c.send(True, PSH | ACK, b"GET /admin HTTP/1.1\r\nHost: cam\r\n\r\n")
        c.send(False, PSH | ACK, b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
    c.send(True, PSH | ACK, b"POST /login HTTP/1.1\r\n\r\nHTTP/1.1 401 in a request body")
    row = meter(tmp_path, c.frames).iloc[0]
    assert (row.app, row.auth_failures) == ("http", 2)


def test_telnet_login_incorrect_split_across_segments(tmp_path: Path) -> None:
    """'Login incorrect' from a telnet server counts once even when cut between segments."""
    c = Conversation(dport=23)
    c.handshake()
    c.send(False, PSH | ACK, b"login: ")
    c.send(True, PSH | ACK, b"admin\r\n")
    c.send(False, PSH | ACK, b"\r\nLogin inco")
    c.send(False, PSH | ACK, b"rrect\r\nlogin: ")
    c.send(True, PSH | ACK, b"I typed incorrect things\r\n")  # the client's words do not count
    c.send(False, PSH | ACK, b"\r\nLogin incorrect\r\n")
    row = meter(tmp_path, c.frames).iloc[0]
    assert (row.app, row.auth_failures) == ("telnet", 2)


# -- capture formats and damage ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("linktype", "nano", "order"),
    [(113, False, "<"), (276, True, "<"), (1, True, ">"), (113, True, ">")],
)
def test_sll_and_nanosecond_captures_give_the_same_table(
    tmp_path: Path, linktype: int, nano: bool, order: str
) -> None:
    """Linux cooked captures (tcpdump -i any), ns timestamps and big-endian files all read alike."""
    frames = modbus_conversation().frames
    reference = flows_from_pcaps(write_pcap(tmp_path / "ref.pcap", frames), EPOCH)
    other = write_pcap(tmp_path / "o.pcap", frames, linktype=linktype, nano=nano, order=order)
    pd.testing.assert_frame_equal(flows_from_pcaps(other, EPOCH), reference)


def test_nanosecond_timestamps_are_kept(tmp_path: Path) -> None:
    """Sub-microsecond times survive the epoch subtraction."""
    frames = [(0.000000250, udp(CLIENT, SERVER, 40000, 53, b"x"))]
    df = flows_from_pcaps(write_pcap(tmp_path / "n.pcap", frames, nano=True), EPOCH)
    assert df.t_start.iloc[0] == pytest.approx(250e-9, abs=1e-9)


def test_garbage_and_truncated_packets_are_skipped_and_counted(tmp_path: Path) -> None:
    """Damage costs the damaged packets only; every skip is counted by reason."""
    good = link_header(1, tcp(CLIENT, SERVER, 50123, 502, 1, SYN))
    eth = bytes(12)
    frames = [
        (1.0, b"\x01\x02\x03"),  # shorter than an Ethernet header
        (1.1, eth + b"\x08\x06" + bytes(28)),  # ARP
        (1.2, eth + b"\x86\xdd" + bytes(40)),  # IPv6
        (1.3, eth + b"\x08\x00" + b"\x45" + bytes(10)),  # IPv4 header cut short
        (1.4, eth + b"\x08\x00" + b"\x65" + bytes(40)),  # version 6 in an IPv4 frame
        (1.5, good[:40]),  # TCP header cut short
        (1.6, good),
        (1.7, b"\xde\xad" * 100),
    ]
    path = write_pcap(tmp_path / "g.pcap", frames, raw=True)
    with path.open("ab") as f:  # a record cut off by a killed capture
        f.write(struct.pack("<IIII", int(EPOCH) + 2, 0, 60, 60) + good[:30])
    df = flows_from_pcaps(path, EPOCH)
    assert df.packets.sum() >= 1 and df.iloc[0].src_ip == CLIENT
    skipped = df.attrs["skipped"]
    assert skipped["truncated_link"] == 1 and skipped["not_ip"] >= 1 and skipped["ipv6"] == 1
    assert skipped["bad_ip_header"] >= 2 and skipped["truncated_tcp"] == 1
    assert skipped["truncated_record"] == 1
    assert df.attrs["packets"] == len(frames)


def test_corrupt_record_length_ends_the_file(tmp_path: Path) -> None:
    """A record claiming gigabytes is corruption: the file stops there, nothing crashes."""
    path = write_pcap(tmp_path / "c.pcap", modbus_conversation().frames)
    with path.open("ab") as f:
        f.write(struct.pack("<IIII", int(EPOCH) + 20, 0, 1 << 30, 1 << 30) + bytes(64))
    df = flows_from_pcaps(path, EPOCH)
    assert df.modbus_reads.sum() == 1 and df.attrs["skipped"] == {"corrupt_record": 1}


@pytest.mark.parametrize(
    ("head", "message"),
    [(b"\x0a\x0d\x0d\x0a" + bytes(20), "pcapng"), (b"hello", "not a pcap"), (b"", "not a pcap")],
)
def test_files_that_are_not_pcaps_are_refused(tmp_path: Path, head: bytes, message: str) -> None:
    """A pcapng or non-capture file raises a BackendError naming the file."""
    path = tmp_path / "x.cap"
    path.write_bytes(head)
    with pytest.raises(BackendError, match=message):
        flows_from_pcaps(path, EPOCH)


def test_several_captures_merge_in_time_order(tmp_path: Path) -> None:
    """Captures from several links are read as one time-ordered stream."""
    frames = modbus_conversation().frames
    a = write_pcap(tmp_path / "a.pcap", frames[0::2])
    b = write_pcap(tmp_path / "b.pcap", frames[1::2], linktype=276)
    merged = flows_from_pcaps([a, b], EPOCH)
    single = flows_from_pcaps(write_pcap(tmp_path / "s.pcap", frames), EPOCH)
    pd.testing.assert_frame_equal(merged, single, check_like=False)
    assert merged.attrs["late"] == 0


def test_no_packets_give_an_empty_table(tmp_path: Path) -> None:
    """An empty capture is an empty flows table with the contract's columns."""
    df = flows_from_pcaps(write_pcap(tmp_path / "e.pcap", []), EPOCH)
    assert df.empty and list(df.columns) == list(FLOW_COLUMNS)


# -- a real capture ---------------------------------------------------------------------------

REAL_CLIENT, REAL_SERVER = "127.77.0.1", "127.77.0.2"  # private corner of loopback


def _recv_adu(conn: socket.socket) -> bytes:
    head = b""
    while len(head) < 7:
        chunk = conn.recv(7 - len(head))
        if not chunk:
            return b""
        head += chunk
    body = b""
    need = struct.unpack("!H", head[4:6])[0] - 1
    while len(body) < need:
        body += conn.recv(need - len(body))
    return head + body


def _serve_modbus(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        while adu := _recv_adu(conn):
            tid, unit, fc = struct.unpack("!H", adu[:2])[0], adu[6], adu[7]
            pdu = {
                3: struct.pack("!BB", 3, 8) + bytes(8),
                6: adu[7:12],
                16: struct.pack("!BB", 0x90, 2),
            }[fc]
            conn.sendall(mbap(tid, unit, pdu))


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on loopback needs root")
def test_real_modbus_exchange_captured_on_loopback(tmp_path: Path) -> None:
    """Real MBAP frames over 127.0.0.0/8, captured by tcpdump, meter into the expected record."""
    listener = socket.create_server((REAL_SERVER, 502))
    server = threading.Thread(target=_serve_modbus, args=(listener,), daemon=True)
    pcap = tmp_path / "lo.pcap"
    capture = subprocess.Popen(
        # --immediate-mode: without it packets of the last second are lost on SIGTERM;
        # -Z root: the default 'tcpdump' user cannot write into pytest's private tmp dir
        ["tcpdump", "-i", "lo", "-w", str(pcap), "-U", "--immediate-mode", "-Z", "root",
         "-n", f"host {REAL_SERVER} and tcp port 502"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    epoch = time.time()
    try:
        assert capture.stderr is not None
        line = capture.stderr.readline()  # "listening on lo ..." once the filter is live
        assert b"listening" in line, line
        server.start()
        with socket.create_connection((REAL_SERVER, 502), source_address=(REAL_CLIENT, 0)) as c:
            sport = c.getsockname()[1]
            for request in (READ_REQ, WRITE_REQ, WRITE_MANY_REQ):
                c.sendall(request)
                assert _recv_adu(c)
        server.join(timeout=5)
        time.sleep(0.2)  # let the FIN exchange reach the capture file
    finally:
        capture.send_signal(signal.SIGTERM)  # this tcpdump, by its PID
        try:
            capture.wait(timeout=10)
        except subprocess.TimeoutExpired:
            capture.kill()
            capture.wait()
        if capture.stderr is not None:
            capture.stderr.close()
        listener.close()
    df = flows_from_pcaps(pcap, epoch)
    assert len(df) == 1, df
    row = df.iloc[0]
    assert (row.src_ip, row.dst_ip, row.src_port, row.dst_port) == (
        REAL_CLIENT, REAL_SERVER, sport, 502
    )  # fmt: skip
    assert (row.proto, row.app, row.tcp_flags) == ("tcp", "modbus", "FSPA")
    assert (row.modbus_reads, row.modbus_writes, row.modbus_fc_set) == (1, 2, "3,6,16")
    assert (row.modbus_unit, row.modbus_exceptions, row.auth_failures) == (7, 1, 0)
    assert row.packets >= 6 and row.packets_rev >= 5
    sent = len(READ_REQ) + len(WRITE_REQ) + len(WRITE_MANY_REQ)
    assert row.bytes >= 54 * row.packets + sent
    assert 0.0 <= row.t_start <= row.t_end < 60.0 and row.t_export == 60.0
