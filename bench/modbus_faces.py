"""Modbus face benchmark: N device faces in one process, M client threads polling them over TCP."""

from __future__ import annotations

import argparse
import json
import resource
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from twin.devices import KINDS
from twin.modbus import DeviceFace, Identity, ModbusPeer, RegisterStore

HOST = "127.0.0.1"
TARGET_TPS = 1000.0  # aggregate Modbus transactions per second the emulated backend needs
PLC_VALUES = {"level_low_sp": 1.5, "level_high_sp": 3.0, "level_trip_sp": 3.6, "valve": 0.4,
              "level": 2.3, "pressure": 118.0, "pump_running": 1}  # fmt: skip
# a BMS poll cycle of a PLC: setpoints, measurements, outputs, and now and then its identity
MIXED = ("holding", "input", "coil", "discrete", "holding", "input", "coil", "identify")


class RawPoller:
    """A minimal blocking Modbus/TCP client: isolates the faces' cost from pymodbus's client."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tid = 0

    def request(self, pdu: bytes) -> bytes:
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, 1) + pdu)
        header = self._exact(7)
        tid, _, length, _ = struct.unpack(">HHHB", header)
        if tid != self.tid:
            raise RuntimeError(f"reply {tid} to request {self.tid}")
        return self._exact(length - 1)

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("face closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def operations(
    port: int, client: str, mix: str
) -> tuple[list[Callable[[], object]], Callable[[], None]]:
    """The requests one client sends one face, in order, and how to hang up."""
    if client == "raw":
        raw = RawPoller(port)
        pdus = {
            "holding": struct.pack(">BHH", 3, 0, 4), "input": struct.pack(">BHH", 4, 0, 3),
            "coil": struct.pack(">BHH", 1, 0, 2), "discrete": struct.pack(">BHH", 2, 0, 2),
            "identify": b"\x2b\x0e\x01\x00",
        }  # fmt: skip
        ops: list[Callable[[], object]] = [
            partial(raw.request, pdus[t]) for t in (MIXED if mix == "mixed" else ("holding",))
        ]
        return ops, raw.close
    peer = ModbusPeer(HOST, port, timeout=5.0).connect()
    registers = KINDS["plc"].registers
    spans = {t: s for t in ("holding", "input", "coil", "discrete") if (s := registers.span(t))}
    ops = [
        peer.identify if t == "identify" else partial(peer.read, t, *spans[t])
        for t in (MIXED if mix == "mixed" else ("holding",))
    ]
    return ops, peer.close


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench(args: argparse.Namespace) -> dict[str, object]:
    registers = KINDS["plc"].registers
    faces = [
        DeviceFace(
            registers,
            Identity("Acme Controls", "TankMaster 3000", f"4.2.{i}"),
            host=HOST,
            port=0,
            store=RegisterStore(registers, PLC_VALUES),
        )
        for i in range(args.faces)
    ]
    started = time.perf_counter()
    for face in faces:
        face.start()
    start_s = time.perf_counter() - started
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors: list[str] = []
    measuring = threading.Event()
    stop = threading.Event()

    def client(k: int) -> None:
        mine = [f.port for i, f in enumerate(faces) if i % args.clients == k]
        sessions = [operations(port, args.client, args.mix) for port in mine]
        out = latencies[k]
        try:
            step = 0
            while not stop.is_set():
                for ops, _ in sessions:  # round-robin over this client's faces
                    op = ops[step % len(ops)]
                    t0 = time.perf_counter()
                    op()
                    if measuring.is_set():
                        out.append(time.perf_counter() - t0)
                step += 1
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            for _, hang_up in sessions:
                hang_up()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    try:
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        cpu0, t0 = time.process_time(), time.perf_counter()
        measuring.set()
        time.sleep(args.seconds)
        measuring.clear()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        stop.set()
        for t in threads:
            t.join()
        for face in faces:
            face.stop()
    samples = sorted(x for per_client in latencies for x in per_client)
    tps = len(samples) / wall
    return {
        "faces": args.faces,
        "clients": args.clients,
        "client": args.client,
        "mix": args.mix,
        "seconds": round(wall, 2),
        "transactions": len(samples),
        "tps": round(tps, 1),
        "p50_ms": round(1e3 * percentile(samples, 0.50), 3),
        "p99_ms": round(1e3 * percentile(samples, 0.99), 3),
        "max_ms": round(1e3 * (samples[-1] if samples else float("nan")), 3),
        "cpu_share": round(cpu / wall, 2),
        "start_all_s": round(start_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "errors": errors,
        "target_tps": TARGET_TPS,
        "meets_target": tps >= TARGET_TPS and not errors,
    }


def report(r: dict[str, object]) -> str:
    verdict = "meets" if r["meets_target"] else "MISSES"
    return "\n".join([
        f"modbus faces: {r['faces']} faces, {r['clients']} client threads ({r['client']} client, "
        f"{r['mix']} requests), one process, {r['seconds']} s measured",
        f"  throughput    {r['tps']:>10,.1f} transactions/s  ({r['transactions']:,} in total)",
        f"  latency       p50 {r['p50_ms']} ms   p99 {r['p99_ms']} ms   max {r['max_ms']} ms",
        f"  cpu           {r['cpu_share']} CPU-seconds per second (faces and clients share one interpreter)",
        f"  start         {r['start_all_s']} s to start every face; peak RSS {r['peak_rss_mib']} MiB",
        f"  errors        {len(r['errors']) if isinstance(r['errors'], list) else r['errors']}",
        f"  target        >= {r['target_tps']:,.0f} transactions/s aggregate: {verdict}",
    ])  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--faces", type=int, default=50, help="device faces to serve (default 50)")
    p.add_argument("--clients", type=int, default=8, help="polling threads (default 8)")
    p.add_argument("--seconds", type=float, default=5.0, help="measured time (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured lead-in (default 1)")
    p.add_argument(
        "--client", choices=("peer", "raw"), default="peer",
        help="peer: twin.modbus.ModbusPeer (pymodbus); raw: a bare socket client (default peer)",
    )  # fmt: skip
    p.add_argument(
        "--mix", choices=("holding", "mixed"), default="mixed",
        help="holding: FC3 only; mixed: FC1-4 reads and 43/14 identification (default mixed)",
    )  # fmt: skip
    p.add_argument("--check", action="store_true", help="exit status 1 when the target is missed")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.faces < 1 or args.clients < 1 or args.seconds <= 0:
        print("faces and clients must be at least 1, seconds positive", file=sys.stderr)
        return 2
    figures = bench(args)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 1 if args.check and not figures["meets_target"] else 0


if __name__ == "__main__":
    sys.exit(main())
