"""Application transactions that cross the network, and the replies they get."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ok", "blocked", "no_host", "closed", "exception", "denied", "timeout"]


@dataclass(frozen=True)
class Transaction:
    src_ip: str
    dst_ip: str
    cause: str | None = field(default=None, kw_only=True)  # attack step id, for ground truth
    sport: int | None = field(default=None, kw_only=True)  # reuse a connection's source port

    @property
    def port(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class Probe(Transaction):
    """A TCP connect/SYN probe, as a scanner sends."""

    dst_port: int = 0

    @property
    def port(self) -> int:
        return self.dst_port


@dataclass(frozen=True)
class Ping(Transaction):
    """An ICMP echo request (port 0 stands for ICMP in policy and flow records)."""

    @property
    def port(self) -> int:
        return 0


@dataclass(frozen=True)
class Flood(Transaction):
    """A burst of packets meant to exhaust the target (SYN or UDP flood) over `duration` s."""

    dst_port: int = 502
    packets: int = 10_000
    packet_bytes: int = 60
    duration: float = 10.0

    @property
    def port(self) -> int:
        return self.dst_port


@dataclass(frozen=True)
class ModbusRead(Transaction):
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = 0
    count: int = 1
    unit: int = 1

    @property
    def port(self) -> int:
        return 502


@dataclass(frozen=True)
class ModbusWrite(Transaction):
    table: Literal["holding", "coil"] = "holding"
    address: int = 0
    values: tuple[int, ...] = (0,)
    unit: int = 1

    @property
    def port(self) -> int:
        return 502


@dataclass(frozen=True)
class ModbusIdentify(Transaction):
    """Read Device Identification (function 43, MEI type 14): vendor, product, revision."""

    unit: int = 1

    @property
    def port(self) -> int:
        return 502


@dataclass(frozen=True)
class Login(Transaction):
    service: Literal["http", "telnet", "ssh"] = "http"
    username: str = ""
    password: str = ""

    @property
    def port(self) -> int:
        return {"http": 80, "telnet": 23, "ssh": 22}[self.service]


@dataclass(frozen=True)
class Transfer(Transaction):
    """A bulk exchange on an application port (bytes out from src, bytes back)."""

    dst_port: int = 443
    bytes_out: int = 0
    bytes_in: int = 0

    @property
    def port(self) -> int:
        return self.dst_port


READ_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
WRITE_FC = {("coil", False): 5, ("holding", False): 6, ("coil", True): 15, ("holding", True): 16}


def function_code(txn: Transaction) -> int | None:
    if isinstance(txn, ModbusIdentify):
        return 43
    if isinstance(txn, ModbusRead):
        return READ_FC[txn.table]
    if isinstance(txn, ModbusWrite):
        return WRITE_FC[(txn.table, len(txn.values) > 1)]
    return None


@dataclass(frozen=True)
class Reply:
    status: Status
    detail: str = ""
    values: tuple[float, ...] = ()
    exception_code: int | None = None
    text: tuple[str, ...] = ()  # e.g. device identification objects

    @property
    def ok(self) -> bool:
        return self.status == "ok"
