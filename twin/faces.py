"""What each device answers on the network (Modbus registers, logins, open ports)."""

from __future__ import annotations

from collections.abc import Callable

from twin.devices import KINDS, Device
from twin.facility import Facility
from twin.network.transactions import (
    Flood,
    Login,
    ModbusIdentify,
    ModbusRead,
    ModbusWrite,
    Ping,
    Probe,
    Reply,
    Transaction,
    Transfer,
)
from twin.physics.plant import Plant
from twin.telemetry import EventLog

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
MAX_READ = 125  # registers per read request (Modbus application protocol)
# packets per second a device's network stack absorbs before it stops answering
CAPACITY_PPS = {"field": 2_000.0, "controller": 3_000.0, "sensor": 1_000.0, "camera": 5_000.0}
DEFAULT_CAPACITY_PPS = 50_000.0
LOCKOUT_FAILURES = 5  # failed logins within LOCKOUT_WINDOW lock the account
LOCKOUT_WINDOW = 300.0
LOCKOUT_TIME = 900.0
ACCOUNT_LOCKED = "account locked"


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
        # device state an attacker or a response can change
        self.firmware: dict[str, tuple[str, str]] = {
            d.name: (d.firmware, d.firmware_hash) for d in facility.devices
        }
        self.failures: dict[str, list[float]] = {}
        self.locked_until: dict[str, float] = {}
        self.overloaded_until: dict[str, float] = {}
        self.implants: dict[str, str] = {}  # device -> what the implant does

    def answer(self, txn: Transaction) -> Reply:
        device = self.facility.by_ip.get(txn.dst_ip)
        if device is None:
            if isinstance(txn, Transfer | Ping | Probe) and self._internet(txn.dst_ip):
                # a server out on the internet (e.g. the attacker's own): it answers
                return Reply("ok", f"internet host {txn.dst_ip}")
            return Reply("no_host", f"nothing answers at {txn.dst_ip}")
        if isinstance(txn, Ping):
            return Reply("ok")
        if isinstance(txn, Flood):
            return self._flood(device, txn)
        if txn.port not in device.ports:
            return Reply("closed", f"{device.name} has no service on port {txn.port}")
        if self.overloaded_until.get(device.name, -1.0) > self.now():
            return Reply("timeout", f"{device.name} does not answer (overloaded)")
        if isinstance(txn, ModbusIdentify):
            version, _ = self.firmware[device.name]
            return Reply("ok", text=(device.vendor, device.model, version))
        if isinstance(txn, Probe | Transfer):
            return Reply("ok")
        if isinstance(txn, ModbusRead):
            return self._read(device, txn)
        if isinstance(txn, ModbusWrite):
            return self._write(device, txn)
        if isinstance(txn, Login):
            return self._login(device, txn)
        raise TypeError(f"no face answers {type(txn).__name__}")

    def _internet(self, ip: str) -> bool:
        zone = self.facility.zone_of_ip(ip)
        return zone is not None and self.facility.zones[zone].purpose == "internet"

    def _flood(self, device: Device, txn: Flood) -> Reply:
        rate = txn.packets / max(txn.duration, 1e-3)
        capacity = CAPACITY_PPS.get(KINDS[device.kind].role, DEFAULT_CAPACITY_PPS)
        if rate <= capacity:
            return Reply("ok", f"{device.name} absorbed {rate:.0f} packets/s")
        until = self.now() + txn.duration + 5.0
        self.overloaded_until[device.name] = max(self.overloaded_until.get(device.name, 0.0), until)
        self.plant.stall(device.kind, device.index, until)
        return Reply("timeout", f"{device.name} overloaded at {rate:.0f} packets/s")

    def overloaded(self, device: str) -> bool:
        return self.overloaded_until.get(device, -1.0) > self.now()

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
            before = self.plant.read(reg.state, device.index)
            self.plant.write(reg.state, device.index, value)
            # the device's log of the write (a Modbus-aware NDR reads the same request off the
            # wire): which point, from whom, what it held and holds now
            self.events.add(
                self.now(), device.name, device.ip, "register_write", src_ip=txn.src_ip,
                detail=f"{reg.name}: {before:.6g} -> {value:.6g}", value=value, cause=txn.cause,
            )  # fmt: skip
        return Reply("ok", values=tuple(v for _, v in changes))

    def _login(self, device: Device, txn: Login) -> Reply:
        now = self.now()
        if self.locked_until.get(device.name, -1.0) > now:
            self.events.add(now, device.name, device.ip, "login_failed", user=txn.username,
                            src_ip=txn.src_ip, detail=f"{txn.service} account locked", cause=txn.cause)  # fmt: skip
            return Reply("denied", ACCOUNT_LOCKED)
        ok = (txn.username, txn.password) == self.credentials[device.name]
        if not ok:
            recent = [t for t in self.failures.get(device.name, []) if now - t <= LOCKOUT_WINDOW]
            recent.append(now)
            self.failures[device.name] = recent
            if len(recent) >= LOCKOUT_FAILURES:
                self.locked_until[device.name] = now + LOCKOUT_TIME
                self.failures[device.name] = []
                self.events.add(now, device.name, device.ip, "account_locked", user=txn.username,
                                src_ip=txn.src_ip, detail=f"{len(recent)} failures", cause=txn.cause)  # fmt: skip
        self.events.add(
            now, device.name, device.ip, "login_ok" if ok else "login_failed",
            user=txn.username, src_ip=txn.src_ip, detail=txn.service, cause=txn.cause,
        )  # fmt: skip
        return Reply("ok" if ok else "denied", "" if ok else "wrong credentials")

    def rotate(self, device: str, password: str) -> None:
        user, _ = self.credentials[device]
        self.credentials[device] = (user, password)

    def reflash(self, device: Device) -> None:
        """Back to the inventory's firmware: implants are gone."""
        self.firmware[device.name] = (device.firmware, device.firmware_hash)
        self.implants.pop(device.name, None)
