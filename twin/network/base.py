"""What a network backend offers the kernel: the one interface 'sim' and 'mininet' share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from twin.network.flows import Chunk, StandingFlow
from twin.network.transactions import ModbusWrite, Reply, Transaction

if TYPE_CHECKING:
    from twin.devices import Device
    from twin.faces import Faces
    from twin.network.policy import Policy

ScanResult = tuple[dict[str, set[int]], Counter[str], int]  # open ports by host, blocks, probes


class Network(Protocol):
    """A network backend: carries transactions under the design's policy and meters flows.

    `send` takes the transaction's time on the wire (`yield from` it in a process);
    `exchange` carries it at once. `close()` always runs (the backend is a context manager).
    """

    name: str
    policy: Policy
    faces: Faces
    closed: bool
    observed_writes: list[tuple[float, ModbusWrite]]  # what a sniffer on the path captured

    def send(self, txn: Transaction) -> Generator[simpy.Event, Any, Reply]: ...
    def exchange(self, txn: Transaction) -> Reply: ...
    def reachable(self, src_ip: str, dst_ip: str, port: int) -> bool: ...
    def ephemeral_port(self) -> int: ...
    def add_standing(self, flow: StandingFlow) -> None: ...
    def poll(
        self, poller: Device, device: Device, every: float, blocks: list[tuple[str, int, int]]
    ) -> int: ...
    def scan(
        self, src_ip: str, subnets: list[str], ports: list[int], rate: float, method: str,
        cause: str,
    ) -> Generator[simpy.Event, Any, ScanResult]: ...  # fmt: skip
    def export(self, t_end: float) -> Chunk: ...
    def begin(self) -> None: ...
    def after_step(self) -> None: ...
    def apply_policy(self) -> None: ...
    def stop_capture(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Network: ...
    def __exit__(self, *exc: object) -> None: ...
