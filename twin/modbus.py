"""The one adapter to Modbus/TCP: device faces that serve register maps, and the peer that polls them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import math
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from twin.devices.base import Device, Register, RegisterMap
from twin.errors import BackendError

log = logging.getLogger(__name__)

# exception codes, as the modelled faces (twin.faces) answer them
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4
EXCEPTION_NAMES = {
    ILLEGAL_FUNCTION: "illegal function",
    ILLEGAL_ADDRESS: "illegal data address",
    ILLEGAL_VALUE: "illegal data value",
    DEVICE_FAILURE: "server device failure",
}
# quantity limits of the Modbus application protocol v1.1b3
MAX_READ = 125  # registers per read
MAX_READ_BITS = 2000
MAX_WRITE = 123  # registers per write multiple
MAX_WRITE_BITS = 1968
MAX_PDU = 253  # function code + data; the MBAP length field adds the unit id
MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
BIT_TABLES = frozenset({"coil", "discrete"})
READ_TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
WRITE_TABLES = {5: "coil", 6: "holding", 15: "coil", 16: "holding"}
MEI_DEVICE_ID = 0x0E
REPORT_SERVER_ID, SERVER_ID, RUNNING = 0x11, 0x01, 0xFF
# regular identification (basic + regular objects), stream and individual access
CONFORMITY = 0x82
MAX_OBJECT = 200  # bytes of one identification object, so any one fits a response
MAX_BACKLOG = 256 * 1024  # unsent reply bytes before a client that does not read is dropped
INT16_MIN, INT16_MAX = -0x8000, 0x7FFF


def to_raw(reg: Register, value: float) -> int:
    """The 16-bit word (or bit) a register holds for an engineering value.

    Words are int16 two's complement (a negative temperature reads as 0xFFxx) and
    saturate at the int16 range, as a device's analogue input does.
    """
    if not math.isfinite(value):
        raise ValueError(f"register {reg.name}: value {value} is not finite")
    scaled = round(value * reg.scale)
    if reg.table in BIT_TABLES:
        return 1 if scaled else 0
    return max(INT16_MIN, min(INT16_MAX, scaled)) & 0xFFFF


def to_value(reg: Register, raw: int) -> float:
    """The engineering value of a register's 16-bit word (or bit)."""
    if reg.table in BIT_TABLES:
        return 1.0 if raw else 0.0
    signed = raw - 0x10000 if raw & 0x8000 else raw
    return signed / reg.scale


@dataclass(frozen=True)
class RegisterWrite:
    """One register a Modbus request wrote: the word on the wire and what it means."""

    register: Register
    raw: int
    value: float


class RegisterStore:
    """The live words of one device's registers by (table, address), shared between threads.

    The face reads and writes it; whoever mirrors the plant fills it with `update`.
    """

    def __init__(self, registers: RegisterMap, values: Mapping[str, float] | None = None) -> None:
        self.registers = registers
        self._lock = threading.Lock()
        self._raw: dict[tuple[str, int], int] = {(r.table, r.address): 0 for r in registers}
        if values:
            self.update(values)

    def read(self, table: str, address: int, count: int = 1) -> list[int] | None:
        """`count` words from `address`, or None if any of them is not in the map."""
        with self._lock:
            try:
                return [self._raw[(table, a)] for a in range(address, address + count)]
            except KeyError:
                return None

    def write(self, table: str, address: int, raws: Sequence[int]) -> None:
        """Store words as they are (no limit checks: the face checks what clients send)."""
        keys = [(table, address + i) for i in range(len(raws))]
        missing = [k for k in keys if k not in self._raw]
        if missing:
            raise KeyError(f"no {table} register at {missing[0][1]}")
        with self._lock:
            for key, raw in zip(keys, raws, strict=True):
                self._raw[key] = raw & (1 if table in BIT_TABLES else 0xFFFF)

    def update(self, values: Mapping[str, float]) -> None:
        """Set registers by name from engineering values, all under one lock."""
        raws: dict[tuple[str, int], int] = {}
        for name, value in values.items():
            reg = self._register(name)
            raws[(reg.table, reg.address)] = to_raw(reg, value)
        with self._lock:
            self._raw.update(raws)

    def load(self, raws: Sequence[int]) -> None:
        """Set every register's word at once, in register-map order (a mirror's refresh)."""
        keys = [(r.table, r.address) for r in self.registers]
        if len(raws) != len(keys):
            raise ValueError(f"{len(raws)} words for {len(keys)} registers")
        with self._lock:
            self._raw.update(zip(keys, raws, strict=True))

    def value(self, name: str) -> float:
        reg = self._register(name)
        with self._lock:
            raw = self._raw[(reg.table, reg.address)]
        return to_value(reg, raw)

    def snapshot(self) -> dict[str, float]:
        """Every register's engineering value, read at one instant."""
        with self._lock:
            raws = dict(self._raw)
        return {r.name: to_value(r, raws[(r.table, r.address)]) for r in self.registers}

    def _register(self, name: str) -> Register:
        reg = self.registers.get(name)
        if reg is None:
            raise KeyError(f"no register named {name!r}")
        return reg


@dataclass(frozen=True)
class Identity:
    """What Read Device Identification (function 43, MEI 14) reports."""

    vendor: str
    model: str
    revision: str

    def __post_init__(self) -> None:
        for field_name in ("vendor", "model", "revision"):
            size = len(getattr(self, field_name).encode())
            if size > MAX_OBJECT:
                raise ValueError(f"identity {field_name} is {size} bytes, at most {MAX_OBJECT}")

    @classmethod
    def of(cls, device: Device) -> Identity:
        return cls(device.vendor, device.model, device.firmware)

    def objects(self) -> dict[int, bytes]:
        """Object id -> value: VendorName, ProductCode, MajorMinorRevision, ProductName, ModelName."""
        vendor, model, revision = (s.encode() for s in (self.vendor, self.model, self.revision))
        return {0: vendor, 1: model, 2: revision, 4: model, 5: model}


class _Refusal(Exception):
    """A request the face answers with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


Peer = tuple[str, int]  # a client's address and port
WriteCallback = Callable[[tuple[RegisterWrite, ...], Peer], None]
NO_PEER: Peer = ("", 0)


class DeviceFace:
    """A device's Modbus/TCP server: its register map on (host, port), in a thread of its own.

    Reads must fall inside the map; writes must hit writable registers within their
    limits and are all-or-nothing; `on_write` hears each accepted write (and the client's
    address) before it is
    stored (if it raises, the client gets exception 4 and nothing is stored). Every
    unit id is answered, as a Modbus/TCP end device does. The server is ours rather
    than pymodbus's: see `answer` and the framing in `_Connection`.
    """

    def __init__(
        self,
        registers: RegisterMap,
        identity: Identity,
        *,
        host: str = "127.0.0.1",
        port: int = 502,
        store: RegisterStore | None = None,
        on_write: WriteCallback | None = None,
        idle_timeout: float = 60.0,
        max_connections: int = 16,
    ) -> None:
        ipaddress.ip_address(host)  # a literal address: one socket, one port, even for port 0
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port} outside 0..65535")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if store is not None and store.registers is not registers:
            raise ValueError("the store holds a different register map")
        self.registers = registers
        self.identity = identity  # replaced whole when firmware changes; reads are atomic
        self.host = host
        self.store = store if store is not None else RegisterStore(registers)
        self.on_write = on_write
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._requested_port = port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        # wall-clock time until which requests go unanswered (a device overwhelmed by a flood)
        self.mute_until = 0.0

    @classmethod
    def for_device(cls, device: Device, **kwargs: Any) -> DeviceFace:
        from twin.devices import KINDS

        return cls(KINDS[device.kind].registers, Identity.of(device), **kwargs)

    @property
    def port(self) -> int:
        """The bound port (the kernel's choice when asked for port 0)."""
        if self._port is None:
            raise RuntimeError("the face is not serving; call start() first")
        return self._port

    @property
    def connections(self) -> int:
        """Clients connected right now."""
        return len(self._connections)

    def start(self) -> DeviceFace:
        if self._thread is not None:
            raise RuntimeError(f"face on {self.host}:{self._port} is already serving")
        self._closing = False
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._serve, args=(ready,), name=f"modbus-face-{self.host}", daemon=True
        )
        thread.start()
        try:
            self._port = ready.result()
        except Exception as exc:
            thread.join()
            raise BackendError(
                f"cannot serve Modbus on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self._thread = thread
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket, end the loop and its thread."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = self._port = None

    def __enter__(self) -> DeviceFace:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, ready: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                server = loop.run_until_complete(
                    loop.create_server(
                        lambda: _Connection(self, loop),
                        self.host,
                        self._requested_port,
                        reuse_address=True,
                    )
                )
            except Exception as exc:
                ready.set_exception(exc)
                return
            self._loop = loop
            ready.set_result(server.sockets[0].getsockname()[1])
            loop.run_forever()
            loop.run_until_complete(self._close(server))
        finally:
            loop.close()

    async def _close(self, server: asyncio.Server) -> None:
        self._closing = True  # a connection accepted from here on is dropped on arrival
        server.close()
        accepting = asyncio.all_tasks() - {asyncio.current_task()}
        if accepting:
            await asyncio.wait(accepting, timeout=1.0)
        for conn in list(self._connections):
            conn.drop()
        await server.wait_closed()
        for _ in range(100):  # aborted transports close their sockets a turn later
            await asyncio.sleep(0)
            if not self._connections:
                break

    # --- the protocol data unit: what a request gets, with no sockets involved -------------

    def answer(self, pdu: bytes, peer: Peer = NO_PEER) -> bytes:
        """The response PDU to a request PDU (function code first).

        Hand-written for functions 1-6, 15, 16, 17 and 43/14 rather than pymodbus's server,
        which in 3.16 keeps one device identity per process, stalls on a non-zero
        protocol id, drops pipelined requests and answers bad quantities with the wrong
        function and exception code.
        """
        if not pdu:
            raise ValueError("empty PDU: a request starts with its function code")
        function = pdu[0]
        try:
            if function in READ_TABLES:
                return self._read(function, pdu[1:])
            if function in WRITE_TABLES:
                return self._write(function, pdu[1:], peer)
            if function == 0x2B:
                return self._identify(pdu[1:])
            if function == REPORT_SERVER_ID:
                return self._server_id(pdu[1:])
            raise _Refusal(ILLEGAL_FUNCTION)
        except _Refusal as refusal:
            return bytes((function | 0x80, refusal.code))
        except Exception:
            log.exception("Modbus face failed to answer %s", pdu.hex())
            return bytes((function | 0x80, DEVICE_FAILURE))

    def _read(self, function: int, data: bytes) -> bytes:
        if len(data) != 4:
            raise _Refusal(ILLEGAL_VALUE)
        address, count = struct.unpack(">HH", data)
        table = READ_TABLES[function]
        bits = table in BIT_TABLES
        if not 1 <= count <= (MAX_READ_BITS if bits else MAX_READ):
            raise _Refusal(ILLEGAL_VALUE)
        values = self.store.read(table, address, count)
        if values is None:
            raise _Refusal(ILLEGAL_ADDRESS)
        if bits:
            packed = _pack_bits(values)
            return bytes((function, len(packed))) + packed
        return struct.pack(f">BB{count}H", function, 2 * count, *values)

    def _write(self, function: int, data: bytes, peer: Peer) -> bytes:
        table = WRITE_TABLES[function]
        if function in (5, 6):
            if len(data) != 4:
                raise _Refusal(ILLEGAL_VALUE)
            address, word = struct.unpack(">HH", data)
            if function == 5 and word not in (0x0000, 0xFF00):
                raise _Refusal(ILLEGAL_VALUE)
            raws = [1 if word else 0] if function == 5 else [word]
            reply = bytes((function,)) + data  # single writes echo the request
        else:
            if len(data) < 5:
                raise _Refusal(ILLEGAL_VALUE)
            address, count, size = struct.unpack(">HHB", data[:5])
            limit, expected = (
                (MAX_WRITE_BITS, (count + 7) // 8) if function == 15 else (MAX_WRITE, 2 * count)
            )
            if not 1 <= count <= limit or size != expected or len(data) != 5 + size:
                raise _Refusal(ILLEGAL_VALUE)
            raws = (
                _unpack_bits(data[5:], count)
                if function == 15
                else list(struct.unpack(f">{count}H", data[5:]))
            )
            reply = struct.pack(">BHH", function, address, count)
        changes = []
        for offset, raw in enumerate(raws):
            reg = self.registers.at(table, address + offset)
            if reg is None or not reg.writable:
                raise _Refusal(ILLEGAL_ADDRESS)
            value = to_value(reg, raw)
            if reg.limits and not reg.limits[0] <= value <= reg.limits[1]:
                raise _Refusal(ILLEGAL_VALUE)
            changes.append(RegisterWrite(reg, raw, value))
        if self.on_write is not None:
            try:
                self.on_write(tuple(changes), peer)
            except Exception:
                log.exception("write callback refused %s", [c.register.name for c in changes])
                raise _Refusal(DEVICE_FAILURE) from None
        self.store.write(table, address, raws)
        return reply

    def _server_id(self, data: bytes) -> bytes:
        """Report Server ID (function 17): an id byte, 'running', then the product string."""
        if data:
            raise _Refusal(ILLEGAL_VALUE)
        product = " ".join((self.identity.vendor, self.identity.model, self.identity.revision))
        body = bytes((SERVER_ID, RUNNING)) + product.encode()[: MAX_PDU - 4]
        return bytes((REPORT_SERVER_ID, len(body))) + body

    def _identify(self, data: bytes) -> bytes:
        if not data:
            raise _Refusal(ILLEGAL_VALUE)
        if data[0] != MEI_DEVICE_ID:
            raise _Refusal(ILLEGAL_FUNCTION)
        if len(data) != 3:
            raise _Refusal(ILLEGAL_VALUE)
        code, start = data[1], data[2]
        objects = self.identity.objects()
        if code == 4:  # one object by id
            if start not in objects:
                raise _Refusal(ILLEGAL_ADDRESS)
            wanted = [start]
        elif code in (1, 2, 3):  # stream: basic, regular, extended (we have no extended)
            category = [i for i in objects if i <= 2] if code == 1 else list(objects)
            start = start if start in category else 0  # unknown start: from the beginning
            wanted = [i for i in category if i >= start]
        else:
            raise _Refusal(ILLEGAL_VALUE)
        body = bytearray()
        more, next_id, room = 0x00, 0x00, MAX_PDU - 7
        for n, oid in enumerate(wanted):
            value = objects[oid]
            if 2 + len(value) > room:  # the client asks again from next_id
                more, next_id, wanted = 0xFF, oid, wanted[:n]
                break
            body += bytes((oid, len(value))) + value
            room -= 2 + len(value)
        head = bytes((0x2B, MEI_DEVICE_ID, code, CONFORMITY, more, next_id, len(wanted)))
        return head + body


def _pack_bits(bits: Sequence[int]) -> bytes:
    packed = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            packed[i >> 3] |= 1 << (i & 7)
    return bytes(packed)


def _unpack_bits(packed: bytes, count: int) -> list[int]:
    return [(packed[i >> 3] >> (i & 7)) & 1 for i in range(count)]


class _Connection(asyncio.Protocol):
    """One client of a face: MBAP framing, idle timeout, and dropping what cannot be framed.

    A frame with a non-zero protocol id or a length outside 2..254 cannot be answered
    or resynchronised, so the connection is dropped; a well-framed request always gets
    one reply (a Modbus exception if its PDU is bad). Pipelined requests are answered
    in order.
    """

    def __init__(self, face: DeviceFace, loop: asyncio.AbstractEventLoop) -> None:
        self.face = face
        self.loop = loop
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.last_seen = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer: Peer = (str(peername[0]), int(peername[1])) if peername else NO_PEER
        if self.face._closing or len(self.face._connections) >= self.face.max_connections:
            transport.abort()  # a device's connection table is small; the rest are refused
            return
        self.face._connections.add(self)
        self.last_seen = self.loop.time()
        self.timer = self.loop.call_later(self.face.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        buffer = self.buffer
        buffer += data
        while len(buffer) >= MBAP.size:
            tid, protocol, length, unit = MBAP.unpack_from(buffer)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                self.drop()
                return
            end = 6 + length
            if len(buffer) < end:
                break
            if self.face.mute_until > time.time():  # overwhelmed: the request is lost
                del buffer[:end]
                continue
            reply = self.face.answer(bytes(buffer[MBAP.size : end]), self.peer)
            del buffer[:end]
            transport.write(MBAP.pack(tid, 0, len(reply) + 1, unit) + reply)
            self.last_seen = self.loop.time()
        if transport.get_write_buffer_size() > MAX_BACKLOG:
            self.drop()

    def _check_idle(self) -> None:
        left = self.last_seen + self.face.idle_timeout - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._check_idle)
        elif self.transport is not None:
            self.transport.close()

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.face._connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()


# --- the client side ---------------------------------------------------------------------


class ModbusExceptionError(BackendError):
    """A device answered a request with a Modbus exception response."""

    def __init__(self, message: str, code: int, function: int) -> None:
        super().__init__(message)
        self.code = code
        self.function = function


class _TcpClient(ModbusTcpClient):
    """pymodbus's blocking TCP client, receiving without select().

    select() cannot watch a descriptor numbered 1024 or more, so in a process holding
    many sockets (a poller of hundreds of devices) the stock client reports every
    reply as a closed connection (pymodbus issue #873). A socket timeout waits with
    poll() instead.
    """

    def recv(self, size: int | None) -> bytes:
        sock = self.socket
        if sock is None:
            raise ConnectionException(str(self))
        timeout = self.comm_params.timeout_connect or 0.0
        deadline = time.monotonic() + timeout
        want = 4096 if size is None else size
        data = b""
        while len(data) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(want - len(data))
            except TimeoutError:
                break
            if not chunk:
                self.close()
                if data:
                    return data
                raise ConnectionException(f"{self}: connection closed before a reply")
            data += chunk
            if size is None:  # any bytes will do; the framer asks again for the rest
                break
        return data


class ModbusPeer:
    """A Modbus/TCP client of one device, as pollers and attacks use it.

    Values are raw words (and 0/1 bits); `to_value` turns them into engineering
    units. Failures raise BackendError; exception responses raise
    ModbusExceptionError carrying the code. A dropped connection is reopened by
    the next request.
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        *,
        unit: int = 1,
        timeout: float = 2.0,
        source: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self._client = _TcpClient(
            host,
            port=port,
            timeout=timeout,
            retries=0,
            # from this address, on a host that holds several (a shared device group's)
            source_address=(source, 0) if source else None,
        )

    def __str__(self) -> str:
        return f"Modbus peer {self.host}:{self.port} unit {self.unit}"

    def connect(self) -> ModbusPeer:
        if not self._client.connect():
            raise BackendError(
                f"{self}: cannot connect (refused or no answer in {self.timeout:g} s)"
            )
        return self

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ModbusPeer:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read(self, table: str, address: int, count: int = 1) -> tuple[int, ...]:
        """`count` raw words (or bits as 0/1) from one table."""
        client, unit = self._client, self.unit
        calls: dict[str, Callable[[], ModbusPDU]] = {
            "holding": lambda: client.read_holding_registers(address, count=count, device_id=unit),
            "input": lambda: client.read_input_registers(address, count=count, device_id=unit),
            "coil": lambda: client.read_coils(address, count=count, device_id=unit),
            "discrete": lambda: client.read_discrete_inputs(address, count=count, device_id=unit),
        }
        if table not in calls:
            raise ValueError(f"unknown table {table!r}; one of {sorted(calls)}")
        limit = MAX_READ_BITS if table in BIT_TABLES else MAX_READ
        if not 1 <= count <= limit:
            raise ValueError(f"read of {count} {table} values; 1..{limit} per request")
        response = self._execute(f"read {table} {address}+{count}", calls[table])
        if table in BIT_TABLES:
            return tuple(int(b) for b in response.bits[:count])
        return tuple(response.registers)

    def write(self, table: str, address: int, values: Sequence[int]) -> None:
        """Write raw words (holding) or 0/1 bits (coil): one value uses function 6/5, more 16/15."""
        if table not in ("holding", "coil"):
            raise ValueError(f"cannot write the {table!r} table; holding or coil")
        if not values:
            raise ValueError("nothing to write")
        if table == "holding" and not all(INT16_MIN <= v <= 0xFFFF for v in values):
            raise ValueError(f"register values {list(values)} outside -32768..65535")
        client, unit = self._client, self.unit
        words = [v & 0xFFFF for v in values]
        bits = [bool(v) for v in values]
        call: Callable[[], ModbusPDU]
        if table == "coil":
            call = (
                (lambda: client.write_coil(address, bits[0], device_id=unit))
                if len(bits) == 1
                else (lambda: client.write_coils(address, bits, device_id=unit))
            )
        else:
            call = (
                (lambda: client.write_register(address, words[0], device_id=unit))
                if len(words) == 1
                else (lambda: client.write_registers(address, words, device_id=unit))
            )
        self._execute(f"write {table} {address}+{len(values)}", call)

    def identify(self) -> tuple[str, str, str]:
        """(vendor, model, revision) from Read Device Identification, basic objects."""
        info: dict[int, Any] = {}
        start = 0
        while True:
            response = self._execute(
                "read device identification",
                partial(
                    self._client.read_device_information,
                    read_code=1,
                    object_id=start,
                    device_id=self.unit,
                ),
            )
            info.update(response.information)
            if response.more_follows != 0xFF or not response.next_object_id:
                break
            start = response.next_object_id

        def text(oid: int) -> str:
            value = info.get(oid, b"")
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

        return text(0), text(1), text(2)

    def _execute(self, what: str, call: Callable[[], ModbusPDU]) -> Any:
        try:
            response = call()
        except ModbusIOException as exc:
            self._client.close()  # a late reply must not be taken for the next request's
            raise BackendError(f"{self}: {what}: no answer in {self.timeout:g} s") from exc
        except ConnectionException as exc:
            raise BackendError(f"{self}: {what}: connection failed ({exc})") from exc
        except ModbusException as exc:
            raise BackendError(f"{self}: {what}: {exc}") from exc
        if response.isError():
            code = response.exception_code
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusExceptionError(
                f"{self}: {what}: exception {code} ({name})", code, response.function_code & 0x7F
            )
        return response
