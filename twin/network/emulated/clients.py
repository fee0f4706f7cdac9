"""The kernel's real clients, run in a thread inside the source host's namespace.

Probes, bulk transfers, pings and SYN floods over plain sockets; nmap's command lines,
and its reports read back. Each answers as the modelled network does: ok, closed (a reset), timeout (a
drop, or no answer).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import re
import socket
import struct
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from twin.errors import BackendError
from twin.network.emulated.faceproc import XFER_HEADER
from twin.network.policy import Policy
from twin.network.transactions import Flood, ModbusIdentify, Reply, Transfer

CONNECT_TIMEOUT = 1.0  # wall s before an unanswered connection counts as dropped
PROBE_TIMEOUT = 0.3
MAX_FLOOD_PACKETS = 5_000  # real SYNs one flood sends; the consequence follows the model


def failure(exc: BackendError) -> Reply:
    text = str(exc)
    if "refused" in text:
        return Reply("closed", text)
    return Reply("timeout", text)


def connect(src: str, ip: str, port: int, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.bind((src, 0))  # the device's own address, on a host that may hold several
        sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def tcp(
    src: str, ip: str, port: int, timeout: float, talk: Callable[[socket.socket], None]
) -> Reply:
    """Connect from src and `talk`: ok, closed (reset) or timeout (dropped, no answer)."""
    try:
        with connect(src, ip, port, timeout) as sock:
            talk(sock)
    except ConnectionRefusedError:
        return Reply("closed", f"{ip} has no service on port {port}")
    except OSError as exc:
        return Reply("timeout", f"{ip}:{port}: {exc}")
    return Reply("ok")


def probe(src: str, ip: str, port: int) -> Reply:
    return tcp(src, ip, port, PROBE_TIMEOUT, lambda sock: None)


def transfer(txn: Transfer) -> Reply:
    """Send bytes_out (starting with how many bytes are wanted back), then read them."""

    def bulk(sock: socket.socket) -> None:
        sock.settimeout(10.0)
        head = XFER_HEADER.pack(txn.bytes_in)
        sock.sendall(head)
        left = max(0, txn.bytes_out - len(head))
        while left > 0:
            n = min(left, 1 << 16)
            sock.sendall(bytes(n))
            left -= n
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(1 << 16):
            pass

    return tcp(txn.src_ip, txn.dst_ip, txn.dst_port, CONNECT_TIMEOUT, bulk)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(src: str, ip: str, timeout: float = 1.0) -> Reply:
    ident = random.getrandbits(16)
    body = b"twin-ping" + bytes(47)
    head = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, 1) + body
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.bind((src, 0))
        sock.settimeout(timeout)
        sock.sendto(packet, (ip, 0))
        deadline = time.time() + timeout
        while (left := deadline - time.time()) > 0:
            sock.settimeout(left)
            try:
                data, (sender, _) = sock.recvfrom(2048)
            except TimeoutError:
                break
            ihl = (data[0] & 0x0F) * 4
            if (
                sender == ip
                and data[ihl] == 0
                and struct.unpack("!H", data[ihl + 4 : ihl + 6])[0] == ident
            ):
                return Reply("ok")
    return Reply("timeout", f"no echo reply from {ip}")


def syn_flood(txn: Flood, speed: float) -> None:
    """Real SYNs at the flood's rate (wall time at the run's speed), at most MAX_FLOOD_PACKETS."""
    count = min(txn.packets, MAX_FLOOD_PACKETS)
    duration = max(txn.duration / speed, 0.05)
    src = socket.inet_aton(txn.src_ip)
    dst = socket.inet_aton(txn.dst_ip)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as sock:
        sock.bind((txn.src_ip, 0))
        start = time.time()
        for i in range(count):
            sport = 1024 + (i * 7919) % 64000
            head = struct.pack("!HHIIBBHHH", sport, txn.dst_port, i, 0, 5 << 4, 0x02, 1024, 0, 0)
            pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(head))
            head = head[:16] + struct.pack("!H", checksum(pseudo + head)) + head[18:]
            with contextlib.suppress(OSError):
                sock.sendto(head, (txn.dst_ip, 0))
            ahead = start + duration * (i + 1) / count - time.time()
            if ahead > 0.001:
                time.sleep(ahead)


def nmap_found(path: Path, method: str) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BackendError(f"nmap wrote no readable report at {path}: {exc}") from exc
    for host in root.iter("host"):
        status = host.find("status")
        address = host.find("address[@addrtype='ipv4']")
        if address is None or status is None or status.get("state") != "up":
            continue
        ip = address.get("addr", "")
        ports = {
            int(p.get("portid", 0))
            for p in host.iter("port")
            if (s := p.find("state")) is not None and s.get("state") == "open"
        }
        if method == "icmp" or ports:
            found[ip] = ports
    return found


def sweep_argv(
    out: Path, src_ip: str, subnets: list[str], ports: list[int], wall_rate: float, method: str
) -> list[str]:
    """nmap from a host: a SYN scan of `ports`, or a ping sweep (method icmp), XML to `out`."""
    # fast timing: inside a site answers come in well under a millisecond, and a
    # dropped probe is the design working, not congestion worth backing off for
    argv = ["nmap", "-n", "-T5", "-oX", str(out), "--exclude", src_ip, "-S", src_ip, "-e", "eth0",
            "--max-rate", f"{wall_rate:.0f}", "--max-retries", "0",
            "--max-rtt-timeout", "100ms", "--initial-rtt-timeout", "50ms",
            "--min-hostgroup", "256", "--min-parallelism", "256",
            "--host-timeout", "10s"]  # fmt: skip
    if method == "icmp":
        argv += ["-sn", "-PE"]
    else:
        argv += ["-Pn", "-sS", "-p", ",".join(str(p) for p in ports)]
    return argv + subnets


def sweep_blocks(
    policy: Policy,
    src_ip: str,
    subnets: list[str],
    ports: list[int],
    method: str,
    found: dict[str, set[int]],
) -> Counter[str]:
    """Why the probes that found nothing were dropped, by the policy's rule: a sweep's
    blocked probes, counted as the modelled network counts them."""
    blocks: Counter[str] = Counter()
    for subnet in subnets:
        for addr in ipaddress.ip_network(subnet).hosts():
            ip = str(addr)
            if ip == src_ip or ip in found:
                continue
            for port in [0] if method == "icmp" else ports:
                verdict = policy.verdict(src_ip, ip, port)
                if not verdict.allowed:
                    blocks[verdict.rule] += 1
    return blocks


def identify_argv(txn: ModbusIdentify) -> list[str]:
    """nmap's modbus-discover, not aggressive: the first unit id that answers, as the
    modelled step reads one."""
    return ["nmap", "-n", "-Pn", "-sT", "-p", "502", "--max-retries", "0",
            "-S", txn.src_ip, "-e", "eth0", "--host-timeout", "20s",
            "--script", "modbus-discover", txn.dst_ip]  # fmt: skip


def identification(txn: ModbusIdentify, out: str) -> Reply:
    """The reply an identification gets, read from modbus-discover's output."""
    found = re.search(r"Device identification: ([^\r\n]+)", out)
    if found:
        return Reply("ok", "nmap modbus-discover", text=(found.group(1).strip(),))
    state = re.search(r"502/tcp\s+(\S+)", out)
    if state and state.group(1) == "closed":
        return Reply("closed", f"{txn.dst_ip} has no service on port 502")
    if state and state.group(1) == "open":
        return Reply("exception", "modbus-discover read no identification")
    return Reply(
        "timeout",
        f"nmap saw port 502 of {txn.dst_ip} {state.group(1) if state else 'not at all'}",
    )
