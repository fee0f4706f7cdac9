"""Device faces as processes: one pre-imported parent forks a child per emulated host.

Each child enters its host's network namespace and serves there what the device has
open: Modbus/TCP (a `DeviceFace` over a mirror of the device's registers), HTTP and
telnet logins, and a plain service on every other TCP port. The physics and the device
logic stay in the kernel; a child exchanges messages with it over one Unix socket
(SOCK_SEQPACKET on a filesystem path, which every network namespace reaches):

    child -> kernel   {"hello": name, "pid": pid}                      once, when serving
    kernel -> child   {"regs": [word, ...]}                            register-map order
    kernel -> child   {"identity": [vendor, model, revision]}          firmware changed
    kernel -> child   {"mute": wall_time}                              overwhelmed until
    child -> kernel   {"id": n, "write": [table, address, [word..]], "peer": [ip, port]}
    child -> kernel   {"id": n, "login": [service, user, password], "peer": [ip, port]}
    kernel -> child   {"id": n, "ok": bool, "code": int}               the kernel's answer

A write is applied by the kernel's own device model (limits, events, the plant) before
the client gets its answer, so both backends decide the same way. Forking from one
parent that has imported everything makes a face cost a few MB, not a fresh interpreter.

Run as `python -m twin.network.emulated.faceproc SOCKET < hosts.json`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twin import logins
from twin.devices import KINDS
from twin.logins import Banner, LoginAttempt, serve_http, serve_telnet
from twin.modbus import DeviceFace, Identity, Peer, RegisterStore, RegisterWrite
from twin.network.emulated.netns import enter

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024
ANSWER_TIMEOUT = 5.0  # s the kernel has to decide a write or a login
SINK_LIMIT = 64 * 1024 * 1024  # bytes a plain service reads from one client
XFER_HEADER = struct.Struct(">Q")  # what the twin's bulk clients ask back: bytes wanted


@dataclass(frozen=True)
class HostSpec:
    """What one child serves: the host, its namespace and address, and its device."""

    name: str
    netns: str
    ip: str
    kind: str | None  # None: not a device (the attacker's own server)
    vendor: str
    model: str
    firmware: str
    ports: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ports": list(self.ports)}


class KernelLink:
    """The child's end of its socket to the kernel: requests wait for their answers."""

    def __init__(self, path: str, name: str, on_message: Callable[[dict[str, Any]], None]) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self.name = name
        self.on_message = on_message
        self._ids = itertools.count(1)
        self._waiting: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.closed = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        self.sock.send(json.dumps(message, separators=(",", ":")).encode())

    def request(self, message: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            n = next(self._ids)
            self._waiting[n] = future
        self.send({"id": n, **message})
        return future

    def listen(self) -> None:
        """Read the kernel's messages until it hangs up (then the child ends)."""
        try:
            while data := self.sock.recv(MAX_MESSAGE):
                message = json.loads(data)
                n = message.get("id")
                if n is None:
                    self.on_message(message)
                    continue
                with self._lock:
                    future = self._waiting.pop(n, None)
                if future is not None:
                    future.set_result(message)
        except OSError:
            pass
        finally:
            self.closed.set()
            with self._lock:
                for future in self._waiting.values():
                    future.set_exception(ConnectionError("the kernel hung up"))
                self._waiting.clear()


class _Sink(asyncio.Protocol):
    """A plain TCP service: reads what a client sends; a bulk client's ask is answered.

    The twin's bulk transfers start with an 8-byte count of the bytes wanted back and
    half-close when done sending; anything else is read and dropped.
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self.total = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if len(self.received) < XFER_HEADER.size:
            self.received += data[: XFER_HEADER.size - len(self.received)]
        self.total += len(data)
        if self.total > SINK_LIMIT and self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        if self.transport is not None and len(self.received) == XFER_HEADER.size:
            (wanted,) = XFER_HEADER.unpack(self.received)
            self.transport.write(bytes(min(wanted, SINK_LIMIT)))
        if self.transport is not None:
            self.transport.close()
        return True


class Child:
    """Everything one host serves, in its namespace, for as long as the kernel is there."""

    def __init__(self, spec: HostSpec, link_path: str) -> None:
        self.spec = spec
        self.link = KernelLink(link_path, spec.name, self._on_message)
        self.face: DeviceFace | None = None
        self.store: RegisterStore | None = None
        if spec.kind is not None and 502 in spec.ports:
            registers = KINDS[spec.kind].registers
            self.store = RegisterStore(registers)
            self.face = DeviceFace(
                registers,
                Identity(spec.vendor, spec.model, spec.firmware),
                host=spec.ip,
                port=502,
                store=self.store,
                on_write=self._write,
            )

    def _on_message(self, message: dict[str, Any]) -> None:
        if "regs" in message and self.store is not None:
            self.store.load(message["regs"])
        elif "identity" in message and self.face is not None:
            self.face.identity = Identity(*message["identity"])
        elif "mute" in message and self.face is not None:
            self.face.mute_until = float(message["mute"])

    def _write(self, changes: tuple[RegisterWrite, ...], peer: Peer) -> None:
        """Ask the kernel; raising refuses the write (the client gets an exception)."""
        first = changes[0].register
        answer = self.link.request(
            {"write": [first.table, first.address, [c.raw for c in changes]], "peer": list(peer)}
        ).result(ANSWER_TIMEOUT)
        if not answer.get("ok"):
            raise PermissionError(f"kernel refused: code {answer.get('code')}")

    async def _check(self, attempt: LoginAttempt) -> bool:
        future = self.link.request(
            {
                "login": [attempt.service, attempt.username, attempt.password],
                "peer": [attempt.peer_ip, attempt.peer_port],
            }
        )
        answer = await asyncio.wait_for(asyncio.wrap_future(future), ANSWER_TIMEOUT)
        return bool(answer.get("ok"))

    def serve(self) -> None:
        threading.Thread(target=self.link.listen, name="kernel-link", daemon=True).start()
        if self.face is not None:
            self.face.start()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        banner = Banner(spec.vendor, spec.model, spec.firmware)
        servers = []
        for port in spec.ports:
            if port == 502 and self.face is not None:
                continue
            if port == 80:
                servers.append(await serve_http(spec.ip, port, banner, self._check))
            elif port == 23:
                servers.append(await serve_telnet(spec.ip, port, banner, self._check))
            else:
                servers.append(await loop.create_server(_Sink, spec.ip, port, reuse_address=True))
        self.link.send({"hello": spec.name, "pid": os.getpid()})
        await loop.run_in_executor(None, self.link.closed.wait)
        for server in servers:
            await logins.close(server)
        if self.face is not None:
            self.face.stop()


def _child(spec: HostSpec, link_path: str) -> None:
    enter(spec.netns)
    Child(spec, link_path).serve()


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print(
            "usage: python -m twin.network.emulated.faceproc SOCKET < hosts.json", file=sys.stderr
        )
        return 2
    link_path = argv[1]
    specs = [HostSpec(**{**h, "ports": tuple(h["ports"])}) for h in json.load(sys.stdin)]
    children: dict[int, str] = {}
    for spec in specs:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(spec, link_path)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = spec.name
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        name = children.pop(pid, "?")
        print(
            json.dumps({"exited": name, "pid": pid, "code": os.waitstatus_to_exitcode(status)}),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
