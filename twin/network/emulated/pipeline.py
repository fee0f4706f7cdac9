"""Live traffic on a Deployment, recorded: Modbus faces in hosts, router captures, tools.

Capturing: a packet the router forwards crosses two of its interfaces (in on the
source's zone, out on the destination's), so a capture of every interface in both
directions, like `-i any`, holds it twice. `capture` records only what *enters* the
router (`tcpdump -Q in`) on each interface: every packet that reaches the router is in
exactly one file, forwarded or dropped, and `flows_from_pcaps` can merge the files.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from twin.devices.base import Device
from twin.errors import BackendError
from twin.modbus import DeviceFace, Identity, RegisterStore
from twin.network.emulated.deployment import Deployment

StoreFactory = Callable[[Device], RegisterStore]

# libpcap's ring (TPACKET_V3) is made of 256 KiB blocks, and in immediate mode each block
# goes to tcpdump within a millisecond holding whatever came: its default 2 MiB is 8
# blocks, so a tcpdump a few milliseconds late (a busy machine, its first write) dropped
# packets of a burst ("5 packets dropped by kernel": a poll's first round lost two reads
# from the flows). 64 blocks ride out 64 ms.
CAPTURE_BUFFER_KIB = 16384


def start_faces(
    deployment: Deployment, devices: Iterable[Device], store_factory: StoreFactory
) -> list[DeviceFace]:
    """A DeviceFace per device on its address, port 502, serving inside its host.

    Started through `call_in`, so the listening socket and the server thread live in the
    host's namespace. On a failure the faces already started are stopped again.
    """
    faces: list[DeviceFace] = []
    try:
        for device in devices:
            store = store_factory(device)
            face = DeviceFace(
                store.registers,
                Identity.of(device),
                host=str(deployment.host(device.name).ip),
                port=502,
                store=store,
            )
            deployment.call_in(device.name, face.start)
            faces.append(face)
    except BaseException:
        stop_faces(faces)
        raise
    return faces


def stop_faces(faces: Iterable[DeviceFace]) -> None:
    for face in faces:
        face.stop()


@dataclass
class Capture:
    """One running tcpdump, tracked by pid in the deployment's inventory."""

    proc: subprocess.Popen[bytes]
    path: Path
    where: str


def _router_ifaces(deployment: Deployment) -> set[str]:
    return {s.ifname for s in deployment.topology.segments}


def capture(
    deployment: Deployment, host_or_router_iface: str, path: str | Path, *, direction: str = "in"
) -> Capture:
    """Start tcpdump on a router interface (a zone's ifname) or a host's eth0.

    Writes a classic pcap, packet by packet (`--immediate-mode -U`); `-Z root` keeps
    tcpdump from switching to user tcpdump, who could not write a root-owned directory.
    Returns once tcpdump says it is listening; `stop_capture` (or the deployment's
    close) ends it by pid.
    """
    if shutil.which("tcpdump") is None:
        raise BackendError("tcpdump is not installed")
    if direction not in ("in", "out", "inout"):
        raise ValueError(f"direction must be in, out or inout, got {direction!r}")
    path = Path(path)
    if deployment.inventory is None:
        raise BackendError(f"{deployment.prefix} is not deployed")
    if host_or_router_iface in _router_ifaces(deployment):
        where, iface = deployment.router, host_or_router_iface
    else:
        where, iface = host_or_router_iface, "eth0"
    argv = [
        "tcpdump", "-i", iface, "-Q", direction, "-n", "-p", "--immediate-mode", "-U",
        "-B", str(CAPTURE_BUFFER_KIB), "-Z", "root", "-w", str(path),
    ]  # fmt: skip
    proc = deployment.spawn(where, argv, stderr=subprocess.PIPE)
    result = Capture(proc, path, f"{where}:{iface}")
    assert proc.stderr is not None
    said = []
    while line := proc.stderr.readline():  # tcpdump reports when the capture is live
        said.append(line.decode(errors="replace").strip())
        if b"listening on" in line:
            return result
    stop_capture(deployment, result)
    raise BackendError(f"tcpdump on {result.where} did not start: {' | '.join(said)}")


def stop_capture(deployment: Deployment, cap: Capture) -> None:
    """SIGTERM (tcpdump flushes and closes the file), then forget the process."""
    try:
        if deployment.inventory is not None:
            deployment.stop(cap.proc)
    finally:
        if cap.proc.stderr is not None:
            cap.proc.stderr.close()


@contextlib.contextmanager
def capturing(
    deployment: Deployment, ifaces: Iterable[str], directory: str | Path
) -> Iterator[list[Path]]:
    """Inbound captures of several interfaces into `directory`, stopped on leaving."""
    caps: list[Capture] = []
    try:
        for iface in ifaces:
            caps.append(capture(deployment, iface, Path(directory) / f"{iface}.pcap"))
        yield [c.path for c in caps]
    finally:
        for cap in caps:
            stop_capture(deployment, cap)


def run_in(
    deployment: Deployment, host: str, argv: Sequence[str], *, timeout: float
) -> tuple[int, str]:
    """Run a program inside a host to completion: (exit status, stdout and stderr).

    Tracked by pid like any spawned process; killed (and BackendError raised) after
    `timeout` seconds.
    """
    proc = deployment.spawn(host, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendError(f"{argv[0]} in {host} ran over {timeout:g} s") from None
    finally:
        deployment.stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    return proc.returncode, out.decode(errors="replace")
