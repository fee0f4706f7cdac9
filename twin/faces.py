"""What each device answers on the network (Modbus registers, logins, open ports)."""

from __future__ import annotations

from collections.abc import Callable

from twin.devices import KINDS, Device
from twin.facility import Facility
from twin.network.transactions import (
    Login,
    ModbusRead,
    ModbusWrite,
    Probe,
    Reply,
    Transaction,
    Transfer,
)
from twin.physics.plant import Plant
from twin.telemetry import EventLog

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
MAX_READ = 125  # registers per read request (Modbus application protocol)


class Faces:
    """The network faces of every device, answering from the plant's live state.

    The modelled backend calls them in-process; the emulated backend serves the same
    answers from real server processes.
    """

    def __init__(
        self, facility: Facility, plant: Plant, events: EventLog, now: Callable[[], float]
    ) -> None:
        self.facility = facility
        self.plant = plant
        self.events = events
        self.now = now
        self.credentials: dict[str, tuple[str, str]] = {}
        for d in facility.devices:
            kind = KINDS[d.kind]
            user = kind.default_credentials[0][0]
            self.credentials[d.name] = (user, d.password)

    def answer(self, txn: Transaction) -> Reply:
        device = self.facility.by_ip.get(txn.dst_ip)
        if device is None:
            return Reply("no_host", f"nothing answers at {txn.dst_ip}")
        if txn.port not in device.ports:
            return Reply("closed", f"{device.name} has no service on port {txn.port}")
        if isinstance(txn, Probe | Transfer):
            return Reply("ok")
        if isinstance(txn, ModbusRead):
            return self._read(device, txn)
        if isinstance(txn, ModbusWrite):
            return self._write(device, txn)
        if isinstance(txn, Login):
            return self._login(device, txn)
        raise TypeError(f"no face answers {type(txn).__name__}")

    def _read(self, device: Device, txn: ModbusRead) -> Reply:
        regs = KINDS[device.kind].registers
        if not 1 <= txn.count <= MAX_READ:
            return Reply(
                "exception", f"read of {txn.count} registers", exception_code=ILLEGAL_VALUE
            )
        values = []
        for address in range(txn.address, txn.address + txn.count):
            reg = regs.at(txn.table, address)
            if reg is None:
                return Reply(
                    "exception",
                    f"no {txn.table} register {address}",
                    exception_code=ILLEGAL_ADDRESS,
                )
            raw = round(self.plant.read(reg.state, device.index) * reg.scale)
            values.append(raw / reg.scale)
        return Reply("ok", values=tuple(values))

    def _write(self, device: Device, txn: ModbusWrite) -> Reply:
        regs = KINDS[device.kind].registers
        changes = []
        for offset, raw in enumerate(txn.values):
            reg = regs.at(txn.table, txn.address + offset)
            if reg is None or not reg.writable:
                return Reply(
                    "exception", f"no writable {txn.table} register {txn.address + offset}",
                    exception_code=ILLEGAL_ADDRESS,
                )  # fmt: skip
            value = raw / reg.scale
            if reg.limits and not reg.limits[0] <= value <= reg.limits[1]:
                return Reply(
                    "exception",
                    f"{reg.name}={value:g} outside {reg.limits}",
                    exception_code=ILLEGAL_VALUE,
                )
            changes.append((reg, value))
        for reg, value in changes:
            self.plant.write(reg.state, device.index, value)
        return Reply("ok", values=tuple(v for _, v in changes))

    def _login(self, device: Device, txn: Login) -> Reply:
        ok = (txn.username, txn.password) == self.credentials[device.name]
        self.events.add(
            self.now(), device.name, device.ip, "login_ok" if ok else "login_failed",
            user=txn.username, src_ip=txn.src_ip, detail=txn.service, cause=txn.cause,
        )  # fmt: skip
        return Reply("ok" if ok else "denied", "" if ok else "wrong credentials")

    def rotate(self, device: str, password: str) -> None:
        user, _ = self.credentials[device]
        self.credentials[device] = (user, password)
