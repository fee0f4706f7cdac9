"""Modbus/TCP device faces and peers over real sockets on 127.0.0.1, hostile clients included."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import socket
import struct
import threading
import time

import pytest

from twin import faces
from twin.devices import KINDS, Register, RegisterMap
from twin.errors import BackendError
from twin.modbus import (
    DeviceFace,
    Identity,
    ModbusExceptionError,
    ModbusPeer,
    RegisterStore,
    RegisterWrite,
    to_raw,
    to_value,
)

HOST = "127.0.0.1"
PLC = KINDS["plc"].registers
PLC_VALUES = {
    "level_low_sp": 1.5, "level_high_sp": 3.0, "level_trip_sp": 3.6, "valve": 0.42,
    "interlock_enable": 1, "alarm_enable": 0, "level": 2.345, "pressure": 118.7,
    "vibration": 3.21, "pump_running": 1, "high_level_alarm": 0,
}  # fmt: skip
ACME = Identity("Acme Controls", "TankMaster 3000", "4.2.1")
DROPPED = b"dropped"  # what `exchange` returns when the face closes without a reply


pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def plc_store() -> RegisterStore:
    return RegisterStore(PLC, PLC_VALUES)


def frame(pdu: bytes, tid: int = 7, unit: int = 1, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def recv_reply(sock: socket.socket) -> tuple[int, int, bytes]:
    """(transaction id, unit, PDU) of the next reply on a raw socket."""
    tid, protocol, length, unit = struct.unpack(">HHHB", recv_exact(sock, 7))
    assert protocol == 0
    return tid, unit, recv_exact(sock, length - 1)


def exchange(port: int, data: bytes, pieces: int = 1) -> bytes:
    """Send raw bytes on a fresh connection: the reply PDU, or DROPPED if the face hangs up."""
    with socket.create_connection((HOST, port), timeout=3.0) as sock:
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            sock.sendall(data[i : i + step])
            if pieces > 1:
                time.sleep(0.01)
        try:
            first = sock.recv(1)
        except ConnectionResetError:
            return DROPPED
        if not first:
            return DROPPED
        header = first + recv_exact(sock, 6)
        (length,) = struct.unpack(">H", header[4:6])
        return recv_exact(sock, length - 1)


def test_exception_codes_match_the_modelled_faces() -> None:
    """Both backends refuse with the same codes and the same read limit."""
    from twin import modbus

    assert (modbus.ILLEGAL_FUNCTION, modbus.ILLEGAL_ADDRESS, modbus.ILLEGAL_VALUE) == (
        faces.ILLEGAL_FUNCTION, faces.ILLEGAL_ADDRESS, faces.ILLEGAL_VALUE,
    )  # fmt: skip
    assert modbus.MAX_READ == faces.MAX_READ


def test_store_and_identity_check_what_they_are_given() -> None:
    """Unknown register names, non-finite values and oversized identities are refused on the spot."""
    store = plc_store()
    with pytest.raises(KeyError, match="nope"):
        store.update({"nope": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        store.update({"level": float("nan")})
    with pytest.raises(ValueError, match="vendor"):
        Identity("x" * 300, "m", "1")
    with pytest.raises(ValueError, match="different register map"):
        DeviceFace(KINDS["ahu"].registers, ACME, port=0, store=store)


def test_reads_return_every_table_of_a_plc() -> None:
    """Holding, input, coil and discrete spans read back as the store's words and scale to the plant's values."""
    store = plc_store()
    with DeviceFace(PLC, ACME, port=0, store=store) as face, ModbusPeer(HOST, face.port) as peer:
        for table in ("holding", "input", "coil", "discrete"):
            span = PLC.span(table)
            assert span is not None
            raws = peer.read(table, *span)
            assert list(raws) == store.read(table, *span)
            for offset, raw in enumerate(raws):
                reg = PLC.at(table, span[0] + offset)
                assert reg is not None
                assert to_value(reg, raw) == pytest.approx(
                    PLC_VALUES[reg.name], abs=0.5 / reg.scale
                )
        assert peer.read("input", 0) == (235,)  # level 2.345 m at scale 100


def test_negative_values_travel_as_twos_complement() -> None:
    """A -5.5 degC reading is the word 0xFFC9 on the wire, and a written 0xFFD8 means -4.0."""
    regs = RegisterMap((
        Register("outdoor", "input", 0, "x.t", 10, "degC"),
        Register("offset", "holding", 0, "x.o", 10, "degC", True, (-10, 10)),
    ))  # fmt: skip
    store = RegisterStore(regs, {"outdoor": -5.5})
    with DeviceFace(regs, ACME, port=0, store=store) as face, ModbusPeer(HOST, face.port) as peer:
        assert peer.read("input", 0) == (0xFFC9,)
        peer.write("holding", 0, [-40])
        assert store.value("offset") == -4.0
    assert to_raw(regs.registers[0], 1e9) == 0x7FFF  # saturates like an analogue input


def test_writes_are_stored_and_reported() -> None:
    """Functions 5, 6, 15 and 16 change the store and tell the callback what was written."""
    store = plc_store()
    heard: list[tuple[RegisterWrite, ...]] = []
    with (
        DeviceFace(
            PLC, ACME, port=0, store=store, on_write=lambda changes, peer: heard.append(changes)
        ) as face,
        ModbusPeer(HOST, face.port) as peer,
    ):
        peer.write("holding", 3, [75])  # valve 75 %
        peer.write("holding", 0, [120, 310])  # low and high setpoints
        peer.write("coil", 0, [0])  # interlock off
        peer.write("coil", 0, [1, 1])
    assert store.value("valve") == 0.75
    assert (store.value("level_low_sp"), store.value("level_high_sp")) == (1.2, 3.1)
    assert store.value("interlock_enable") == 1.0 and store.value("alarm_enable") == 1.0
    assert [[(w.register.name, w.raw, w.value) for w in h] for h in heard] == [
        [("valve", 75, 0.75)],
        [("level_low_sp", 120, 1.2), ("level_high_sp", 310, 3.1)],
        [("interlock_enable", 0, 0.0)],
        [("interlock_enable", 1, 1.0), ("alarm_enable", 1, 1.0)],
    ]


def test_out_of_map_and_out_of_limit_requests_get_exception_codes() -> None:
    """Unmapped or read-only targets get code 2, values past limits code 3, and a refused write stores nothing."""
    store = plc_store()
    heard: list[tuple[RegisterWrite, ...]] = []
    with (
        DeviceFace(
            PLC, ACME, port=0, store=store, on_write=lambda changes, peer: heard.append(changes)
        ) as face,
        ModbusPeer(HOST, face.port) as peer,
    ):
        cases = [
            (lambda: peer.read("holding", 0, 5), 2),  # one past the last setpoint
            (lambda: peer.read("input", 7), 2),
            (lambda: peer.write("holding", 9, [1]), 2),
            (lambda: peer.write("coil", 2, [1]), 2),
            (lambda: peer.write("holding", 3, [101]), 3),  # valve 1.01 > 1
            (lambda: peer.write("holding", 2, [360, 101]), 3),  # trip ok, valve not: neither
            (lambda: peer.write("holding", 0, [-1]), 3),  # -0.01 m
        ]
        for request, code in cases:
            with pytest.raises(ModbusExceptionError) as refused:
                request()
            assert refused.value.code == code
        with pytest.raises(ValueError, match=r"1\.\.125"):
            peer.read("holding", 0, 126)
        with pytest.raises(ValueError, match="cannot write"):
            peer.write("input", 0, [1])
    assert heard == []
    assert store.snapshot() == plc_store().snapshot()


def test_a_failing_write_callback_answers_device_failure() -> None:
    """When the plant side cannot take a write the client gets exception 4 and the store keeps its value."""

    def refuse(_: tuple[RegisterWrite, ...], peer: tuple[str, int]) -> None:
        raise RuntimeError("plant link down")

    store = plc_store()
    with (
        DeviceFace(PLC, ACME, port=0, store=store, on_write=refuse) as face,
        ModbusPeer(HOST, face.port) as peer,
    ):
        with pytest.raises(ModbusExceptionError) as refused:
            peer.write("holding", 3, [10])
        assert refused.value.code == 4
        assert peer.read("holding", 3) == (42,)


def nmap_device_identification(port: int) -> tuple[int, str]:
    """What nmap's modbus-discover does: Report Server ID, then 43/14 basic objects from 0."""
    with socket.create_connection((HOST, port), timeout=3.0) as sock:
        sock.sendall(b"\x00\x00\x00\x00\x00\x02\x01\x11")
        _, _, report = recv_reply(sock)
        sock.sendall(b"\x00\x00\x00\x00\x00\x05\x01\x2b\x0e\x01\x00")
        _, _, pdu = recv_reply(sock)
    objects, offset = [], 7
    for _ in range(pdu[6]):
        size = pdu[offset + 1]
        objects.append(pdu[offset + 2 : offset + 2 + size].decode())
        offset += 2 + size
    return report[0], "DEVICE IDENTIFICATION: " + " ".join(objects)


def test_identification_answers_each_faces_own_vendor_model_and_firmware() -> None:
    """Two faces in one process identify as their own products, to the peer and to nmap's exchange."""
    globex = Identity("Globex", "GX-7 VAV", "1.0.3")
    with (
        DeviceFace(PLC, ACME, port=0) as acme_face,
        DeviceFace(KINDS["vav"].registers, globex, port=0) as globex_face,
    ):
        with ModbusPeer(HOST, acme_face.port) as peer:
            assert peer.identify() == ("Acme Controls", "TankMaster 3000", "4.2.1")
        with ModbusPeer(HOST, globex_face.port) as peer:
            assert peer.identify() == ("Globex", "GX-7 VAV", "1.0.3")
            globex_face.identity = Identity("Globex", "GX-7 VAV", "1.0.4-implant")
            assert peer.identify()[2] == "1.0.4-implant"
        report_fc, line = nmap_device_identification(acme_face.port)
        assert report_fc == 0x11  # Report Server ID answered, then 43/14
        assert line == "DEVICE IDENTIFICATION: Acme Controls TankMaster 3000 4.2.1"
        port = acme_face.port
        regular = exchange(port, frame(b"\x2b\x0e\x02\x00"))
        assert regular[3:7] == b"\x82\x00\x00\x05"  # conformity, no more, 5 objects
        assert b"\x05\x0fTankMaster 3000" in regular  # ModelName
        assert exchange(port, frame(b"\x2b\x0e\x04\x05"))[7:] == b"\x05\x0fTankMaster 3000"
        assert exchange(port, frame(b"\x2b\x0e\x04\x03")) == b"\xab\x02"  # no VendorUrl
        assert exchange(port, frame(b"\x2b\x0e\x09\x00")) == b"\xab\x03"  # bad read code
        assert exchange(port, frame(b"\x2b\x0d\x01\x00")) == b"\xab\x01"  # CANopen MEI


def read_request(address: int, count: int, function: int = 3) -> bytes:
    return struct.pack(">BHH", function, address, count)


HOSTILE: list[tuple[str, bytes, bytes]] = [
    ("truncated MBAP header, then silence", b"\x00\x01\x00", DROPPED),
    ("length longer than what follows", struct.pack(">HHHB", 1, 0, 60, 1) + read_request(0, 1), DROPPED),
    ("length shorter than the request", struct.pack(">HHHB", 1, 0, 4, 1) + read_request(0, 1), b"\x83\x03"),
    ("length without a function code", struct.pack(">HHHB", 1, 0, 1, 1) + b"\x03", DROPPED),
    ("length zero", struct.pack(">HHHB", 1, 0, 0, 1) + read_request(0, 1), DROPPED),
    ("length past the largest PDU", struct.pack(">HHHB", 1, 0, 0xFFFF, 1) + b"\x03" * 64, DROPPED),
    ("protocol id not zero", frame(read_request(0, 1), protocol=1), DROPPED),
    ("unknown function code", frame(b"\x41\x00\x00\x00\x01"), b"\xc1\x01"),
    ("diagnostics (function 8)", frame(b"\x08\x00\x00\x12\x34"), b"\x88\x01"),
    ("exception-range function code", frame(b"\x83\x02"), b"\x83\x01"),
    ("read of 126 registers", frame(read_request(0, 126)), b"\x83\x03"),
    ("read of 200 input registers", frame(read_request(0, 200, 4)), b"\x84\x03"),
    ("read of no registers", frame(read_request(0, 0)), b"\x83\x03"),
    ("read of 2001 coils", frame(read_request(0, 2001, 1)), b"\x81\x03"),
    ("read past the end of the address space", frame(read_request(0xFFFF, 2)), b"\x83\x02"),
    ("request with trailing bytes", frame(read_request(0, 1) + b"\x00\x00"), b"\x83\x03"),
    ("write multiple with a lying byte count", frame(b"\x10\x00\x00\x00\x02\x06" + b"\x00" * 4), b"\x90\x03"),
    ("coil value neither ON nor OFF", frame(b"\x05\x00\x00\x12\x34"), b"\x85\x03"),
    ("an HTTP request", b"GET / HTTP/1.0\r\n\r\n", DROPPED),
    ("random bytes", random.Random(502).randbytes(64), DROPPED),
    ("a valid read, one byte at a time", frame(read_request(0, 2)), b"\x03\x04\x00\x96\x01\x2c"),
]  # fmt: skip


def answers(sock: socket.socket, request: bytes) -> bool:
    """Whether an open connection answers a request (False: the face had hung up on it)."""
    try:
        sock.sendall(request)
        return sock.recv(1) != b""
    except OSError:
        return False


def test_hostile_clients_do_not_disturb_a_polling_client() -> None:
    """Bad framing is dropped, bad PDUs get exceptions, idle and surplus clients are shed, and a poller is answered correctly throughout."""
    store = plc_store()
    expected_inputs = tuple(store.read("input", 0, 3) or ())
    with DeviceFace(PLC, ACME, port=0, store=store, idle_timeout=0.5, max_connections=6) as face:
        polls, failures = [0], []
        stop = threading.Event()

        def poll() -> None:
            with ModbusPeer(HOST, face.port, timeout=2.0) as peer:
                while not stop.is_set():
                    try:
                        assert peer.read("input", 0, 3) == expected_inputs
                        assert peer.read("coil", 0, 2) == (1, 0)
                        assert peer.identify() == (ACME.vendor, ACME.model, ACME.revision)
                        polls[0] += 1
                    except Exception as exc:
                        failures.append(repr(exc))

        poller = threading.Thread(target=poll, name="test-poller")
        poller.start()
        idle = socket.create_connection((HOST, face.port), timeout=3.0)
        try:
            for name, data, expected in HOSTILE:
                pieces = len(data) if name.endswith("one byte at a time") else 1
                assert exchange(face.port, data, pieces) == expected, name
            assert idle.recv(1) == b"", "an idle client is closed after idle_timeout"
            started = polls[0]
            settle = time.monotonic() + 2.0
            while face.connections > 1 and time.monotonic() < settle:  # only the poller left
                time.sleep(0.01)
            flood = [socket.create_connection((HOST, face.port), timeout=3.0) for _ in range(10)]
            try:
                answered = sum(answers(sock, frame(read_request(3, 1))) for sock in flood)
                assert answered == face.max_connections - 1, "the connection table is full"
                assert polls[0] > started, "the poller kept its connection through the flood"
            finally:
                for sock in flood:
                    sock.close()
        finally:
            idle.close()
            stop.set()
            poller.join()
    assert failures == []
    assert polls[0] >= 20


def test_random_well_framed_requests_each_get_exactly_one_reply() -> None:
    """Pipelined frames with random PDUs are answered in order, each by a response or an exception."""
    rng = random.Random(43)
    functions = [1, 2, 3, 4, 5, 6, 15, 16, 0x2B, 0x11, 0x08, 0x17, rng.randrange(256)]
    with (
        DeviceFace(PLC, ACME, port=0, store=plc_store()) as face,
        socket.create_connection((HOST, face.port), timeout=3.0) as sock,
    ):
        for batch in range(30):
            requests = []
            for i in range(10):
                function = rng.choice(functions)
                data = bytes([function]) + rng.randbytes(rng.randrange(0, 12))
                requests.append((batch * 10 + i, rng.randrange(256), function))
                sock.sendall(frame(data, tid=batch * 10 + i, unit=requests[-1][1]))
            for tid, unit, function in requests:
                got_tid, got_unit, pdu = recv_reply(sock)
                assert (got_tid, got_unit) == (tid, unit)
                assert pdu[0] in (function, function | 0x80)
                if pdu[0] & 0x80:
                    assert len(pdu) == 2 and pdu[1] in (1, 2, 3, 4)
        assert face.connections == 1


def test_stop_closes_clients_and_frees_the_port() -> None:
    """After stop() connected clients see the connection end, and a new face binds the same port."""
    face = DeviceFace(PLC, ACME, port=0, store=plc_store()).start()
    port = face.port
    peer = ModbusPeer(HOST, port, timeout=0.5).connect()
    idle = socket.create_connection((HOST, port), timeout=2.0)
    try:
        assert peer.read("holding", 3) == (42,)
        face.stop()
        face.stop()  # a second stop is harmless
        with pytest.raises(RuntimeError, match="not serving"):
            _ = face.port
        with contextlib.suppress(ConnectionResetError):  # closed or reset: either ends it
            assert idle.recv(1) == b""
        with pytest.raises(BackendError):
            peer.read("holding", 3)
    finally:
        idle.close()
        peer.close()
    with DeviceFace(PLC, ACME, port=port, store=plc_store()) as again, ModbusPeer(HOST, port) as p:
        assert again.port == port
        assert p.read("holding", 3) == (42,)


def test_a_busy_port_raises_a_backend_error() -> None:
    """Serving on a port someone else holds fails with BackendError and leaves no thread behind."""
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BackendError, match=f"{HOST}:{port}"):
            DeviceFace(PLC, ACME, port=port).start()


def test_peer_reports_refused_connections_and_silent_devices() -> None:
    """A closed port and a device that never answers both raise BackendError saying which."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(BackendError, match="cannot connect"):
        ModbusPeer(HOST, closed_port, timeout=0.5).connect()
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen()  # the kernel accepts; nobody ever answers
        with ModbusPeer(HOST, silent.getsockname()[1], timeout=0.3) as peer:
            with pytest.raises(BackendError, match=r"no answer in 0\.3 s") as failed:
                peer.read("holding", 0)
            assert not isinstance(failed.value, ModbusExceptionError)


def test_peer_works_with_descriptors_past_select_limit() -> None:
    """A poller holding over a thousand descriptors still reads (pymodbus's select() fails there)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(soft, hard) < 1100:
        pytest.skip(f"open-files limit {soft} too low to reach descriptor 1024")
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    try:
        with (
            DeviceFace(PLC, ACME, port=0, store=plc_store()) as face,
            ModbusPeer(HOST, face.port) as peer,
        ):
            sock = peer._client.socket
            assert sock is not None and sock.fileno() >= 1024
            assert peer.read("holding", 3) == (42,)
    finally:
        for fd in fillers:
            os.close(fd)


def test_report_server_id_names_the_product() -> None:
    """Function 17, the older identification a scanner also tries: id, running, product."""
    face = DeviceFace(PLC, ACME, port=0)
    reply = face.answer(bytes((0x11,)))
    product = b"Acme Controls TankMaster 3000 4.2.1"
    assert reply == bytes((0x11, 2 + len(product), 0x01, 0xFF)) + product
    assert face.answer(bytes((0x11, 0x00))) == bytes((0x91, 3))  # no data is expected
