"""Pcap flow meter benchmark: a generated capture of ~1M packets, metered into the flows table."""

from __future__ import annotations

import argparse
import random
import resource
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/pcapflows.py` from a checkout without install

from twin.network.pcapflows import flows_from_pcaps, read_pcap  # noqa: E402

EPOCH = 1_700_000_000
DURATION_S = 600  # ten export intervals
POLL_S = 2  # each poller reads once every two seconds
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
FRAME = struct.Struct("!12sH BBHHHBBH4s4s HHIIBBHHH")  # Ethernet, IPv4, TCP without options
UDP_FRAME = struct.Struct("!12sH BBHHHBBH4s4s HHHH")
RECORD = struct.Struct("<IIII")
MACS = bytes(range(12))
READ_REQ = struct.pack("!HHHBBHH", 1, 0, 6, 1, 3, 0, 10)
READ_RESP = struct.pack("!HHHBBB", 1, 0, 23, 1, 3, 20) + bytes(20)
HTTP_REQ = b"GET / HTTP/1.1\r\nHost: cam\r\n\r\n"
HTTP_RESP = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"


def ip(n: int, net: int) -> bytes:
    return socket.inet_aton(f"10.{net}.{n // 250 % 250}.{n % 250 + 1}")


def tcp_frame(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, flags: int, payload: bytes = b""
) -> bytes:
    return FRAME.pack(
        MACS, 0x0800, 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst,
        sport, dport, seq & 0xFFFFFFFF, 0, 0x50, flags, 65535, 0, 0,
    ) + payload  # fmt: skip


def udp_frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    return UDP_FRAME.pack(
        MACS, 0x0800, 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, src, dst,
        sport, dport, 8 + len(payload), 0,
    ) + payload  # fmt: skip


def traffic(scale: float, rng: random.Random) -> Iterator[tuple[float, bytes]]:
    """Time-ordered frames: persistent Modbus pollers, short web logins, DNS lookups."""
    pollers = max(1, int(1000 * scale))
    web_per_s = max(1, int(100 * scale))
    dns_per_s = max(1, int(33 * scale))
    poll_seq = [[1000, 9000] for _ in range(pollers)]
    scada = socket.inet_aton("10.10.0.2")
    web = 0
    for second in range(DURATION_S):
        bucket: list[tuple[float, bytes]] = []
        for i in range(second % POLL_S, pollers, POLL_S):
            t = second + 0.005 + rng.random() * 0.98
            plc, sport, seq = ip(i, 60), 40000 + i % 20000, poll_seq[i]
            if second < POLL_S:  # the connection opens on the first poll
                bucket.append((t - 0.002, tcp_frame(scada, plc, sport, 502, seq[0] - 1, SYN)))
                bucket.append((t - 0.001, tcp_frame(plc, scada, 502, sport, seq[1] - 1, SYN | ACK)))
            bucket.append((t, tcp_frame(scada, plc, sport, 502, seq[0], PSH | ACK, READ_REQ)))
            bucket.append(
                (t + 0.003, tcp_frame(plc, scada, 502, sport, seq[1], PSH | ACK, READ_RESP))
            )
            seq[0] += len(READ_REQ)
            seq[1] += len(READ_RESP)
        for _ in range(web_per_s):
            t, web = second + rng.random() * 0.9, web + 1
            client, cam, sport = ip(web % 5000, 50), ip(web % 200, 40), 32768 + web % 28000
            steps = [
                (True, SYN, b""), (False, SYN | ACK, b""), (True, ACK, b""),
                (True, PSH | ACK, HTTP_REQ), (False, PSH | ACK, HTTP_RESP), (True, FIN | ACK, b""),
            ]  # fmt: skip
            seqs = {True: 100, False: 700}
            for k, (outbound, flags, payload) in enumerate(steps):
                src, dst = (client, cam) if outbound else (cam, client)
                ports = (sport, 80) if outbound else (80, sport)
                frame = tcp_frame(src, dst, *ports, seqs[outbound], flags, payload)
                bucket.append((t + k * 0.001, frame))
                seqs[outbound] += len(payload) + bool(flags & (SYN | FIN))
        for _ in range(dns_per_s):
            t, host, sport = second + rng.random() * 0.99, ip(rng.randrange(5000), 50), 0
            sport = rng.randrange(1024, 65535)
            dns = socket.inet_aton("10.10.0.53")
            bucket.append((t, udp_frame(host, dns, sport, 53, bytes(32))))
            bucket.append((t + 0.0005, udp_frame(dns, host, 53, sport, bytes(96))))
        bucket.sort(key=lambda p: p[0])
        yield from bucket


def write_capture(path: Path, scale: float) -> int:
    n = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for t, frame in traffic(scale, random.Random(7)):
            sec = int(t)
            f.write(RECORD.pack(EPOCH + sec, int((t - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 is about 1M packets")
    parser.add_argument("--pcap", type=Path, help="keep the generated capture here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.pcap or Path(tmp) / "bench.pcap"
        t0 = time.perf_counter()
        packets = write_capture(path, args.scale)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        for _ in read_pcap(path):
            pass
        read_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        df = flows_from_pcaps(path, EPOCH)
        meter_s, meter_cpu = time.perf_counter() - t0, time.process_time() - c0
    conversations = df.groupby(["src_ip", "dst_ip", "src_port", "dst_port", "proto"]).ngroups
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"capture:          {packets:,} packets, {size_mb:.1f} MB (generated in {gen_s:.1f} s)")
    print(f"read only:        {read_s:.2f} s  ({packets / read_s:,.0f} packets/s)")
    print(f"meter:            {meter_s:.2f} s  ({packets / meter_s:,.0f} packets/s, "
          f"{size_mb / meter_s:.1f} MB/s; CPU {meter_cpu:.2f} s, "
          f"{packets / meter_cpu:,.0f} packets per CPU-s)")  # fmt: skip
    print(f"flow records:     {len(df):,}  ({len(df) / meter_s:,.0f} records/s)")
    print(f"conversations:    {conversations:,}  ({conversations / meter_s:,.0f} flows/s)")
    print(f"modbus reads:     {int(df.modbus_reads.sum()):,}   "
          f"auth failures: {int(df.auth_failures.sum()):,}   skipped: {df.attrs['skipped']}")  # fmt: skip
    print(f"peak RSS:         {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
