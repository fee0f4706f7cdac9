"""What a device kind is: its register map, services, parameters and default credentials."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Table = Literal["holding", "input", "coil", "discrete"]

SERVICE_PORTS: dict[str, tuple[int, str]] = {
    "modbus": (502, "tcp"),
    "http": (80, "tcp"),
    "https": (443, "tcp"),
    "telnet": (23, "tcp"),
    "ssh": (22, "tcp"),
    "rtsp": (554, "tcp"),
    "mqtt": (8883, "tcp"),
    "dns": (53, "udp"),
    "ntp": (123, "udp"),
    "bacnet": (47808, "udp"),
}
PORT_APPS: dict[int, str] = {port: name for name, (port, _) in SERVICE_PORTS.items()}
ENCRYPTED_APPS = frozenset({"https", "ssh", "mqtt"})
# what 'weak' credentials are drawn from: the head of the wordlists attackers try first
COMMON_PASSWORDS = (
    "123456", "password", "12345678", "qwerty", "123456789", "12345", "1234", "111111",
    "1234567", "dragon", "123123", "baseball", "abc123", "football", "monkey", "letmein",
    "696969", "shadow", "master", "666666", "qwertyuiop", "123321", "mustang", "1234567890",
    "michael", "654321", "superman", "1qaz2wsx", "7777777", "121212", "000000", "qazwsx",
    "123qwe", "killer", "trustno1", "jordan", "jennifer", "zxcvbnm", "asdfgh", "hunter",
    "buster", "soccer", "harley", "batman", "andrew", "tigger", "sunshine", "iloveyou",
    "Summer2024!", "Welcome1",
)  # fmt: skip


@dataclass(frozen=True)
class Register:
    """One Modbus point: where it lives, how it scales and which plant state it mirrors.

    `state` names an array of the plant (e.g. 'ahu.sa_setpoint'); the device's index in
    that subsystem picks its element. Raw register value = round(state * scale).
    Addresses are Modbus protocol (zero-based) addresses.
    """

    name: str
    table: Table
    address: int
    state: str
    scale: float = 1.0
    unit: str = ""
    writable: bool = False
    limits: tuple[float, float] | None = None  # engineering-unit range the device accepts

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"register {self.name}: address {self.address} outside 0..65535")
        if self.scale == 0:
            raise ValueError(f"register {self.name}: scale must not be zero")
        if self.writable and self.table in ("input", "discrete"):
            raise ValueError(f"register {self.name}: {self.table} registers are read-only")
        if self.limits is not None and self.limits[0] > self.limits[1]:
            raise ValueError(f"register {self.name}: limits {self.limits} are reversed")


@dataclass(frozen=True)
class RegisterMap:
    """A device's register layout, declared as data and checked on creation."""

    registers: tuple[Register, ...] = ()
    _by_name: dict[str, Register] = field(init=False, repr=False, compare=False)
    _by_address: dict[tuple[str, int], Register] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Register] = {}
        by_address: dict[tuple[str, int], Register] = {}
        for reg in self.registers:
            if reg.name in by_name:
                raise ValueError(f"duplicate register name {reg.name!r}")
            key = (reg.table, reg.address)
            if key in by_address:
                raise ValueError(
                    f"registers {by_address[key].name!r} and {reg.name!r} share {key[0]} {key[1]}"
                )
            by_name[reg.name] = reg
            by_address[key] = reg
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_address", by_address)

    def __iter__(self) -> Iterator[Register]:
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Register | None:
        return self._by_name.get(name)

    def at(self, table: str, address: int) -> Register | None:
        return self._by_address.get((table, address))

    def span(self, table: str) -> tuple[int, int] | None:
        """First address and count of the contiguous block a poller reads in one request."""
        addrs = sorted(r.address for r in self.registers if r.table == table)
        return (addrs[0], addrs[-1] - addrs[0] + 1) if addrs else None


class Params(BaseModel):
    """Base of each kind's parameter model: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceKind:
    """A kind of device. Subclasses declare data; the plant and engine read it."""

    name: ClassVar[str]
    summary: ClassVar[str]
    services: ClassVar[tuple[str, ...]] = ()
    registers: ClassVar[RegisterMap] = RegisterMap()
    params: ClassVar[type[Params]] = Params
    default_credentials: ClassVar[tuple[tuple[str, str], ...]] = (("admin", "admin"),)
    # params fields that name other devices (device or group names), for validation
    device_refs: ClassVar[tuple[str, ...]] = ()
    # role an NDR would assign from the asset inventory
    role: ClassVar[str] = "field"
    modbus_unit: ClassVar[int] = 1


@dataclass(frozen=True)
class Device:
    """One concrete device of the facility (a group of count N expands into N of these)."""

    name: str
    group: str
    kind: str
    zone: str
    ip: str
    mac: str
    vendor: str
    model: str
    firmware: str
    firmware_hash: str
    credentials: str  # 'default' | 'changed'
    password: str
    physical_access: str  # 'secured' | 'unmonitored'
    services: tuple[str, ...]
    owner: str
    support_end: dt.date | None
    params: Any  # the kind's validated Params
    index: int  # position among devices of the same kind
    member: int  # position within its group (0-based)

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(SERVICE_PORTS[s][0] for s in self.services if s in SERVICE_PORTS)
