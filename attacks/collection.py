"""Collection: slow, encrypted theft of operational information to an outside server (T0882)."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from attacks.availability import Port, holds, outside_address
from attacks.base import Technique, TechniqueParams
from twin.errors import Problem
from twin.facility import Facility
from twin.network.transactions import Transfer
from twin.schema import Address, StepSpec
from twin.steps import Outcome, StepContext

KB = 1024
MB = 1024 * KB
ACK_BYTES = 600  # the drop server's TLS records and HTTP answer per upload


class ExfiltrationParams(TechniqueParams):
    destination: Address = Field(description="the attacker's server, in an internet zone")
    total_mb: float = Field(default=50.0, gt=0)
    chunk_kb: float = Field(default=256.0, gt=0, description="bytes per upload")
    interval_s: float = Field(default=300.0, ge=0, description="pause between uploads")
    port: Port = 443


class Exfiltration(Technique):
    name = "exfiltration"
    compromises = False
    technique_id = "T0882"
    summary = "upload stolen operational data in small encrypted chunks, slowly, to the internet"
    params = ExfiltrationParams
    needs_target = False

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        return [
            *super().check(step, params, facility),
            *outside_address(facility, params.destination, "params.destination"),
        ]

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ExfiltrationParams = ctx.params
        position, src_ip = ctx.source
        dst = p.destination
        total = max(1, round(p.total_mb * MB))
        chunk = max(1, round(p.chunk_kb * KB))
        chunks = math.ceil(total / chunk)
        sent = 0
        for i in range(chunks):
            if i:
                yield ctx.pause(p.interval_s)
            if not holds(ctx, position):
                return Outcome(False, dst, dst, detail=cls._left(sent, total, "lost foothold"))
            size = min(chunk, total - sent)
            reply = yield from ctx.net.send(
                Transfer(src_ip, dst, dst_port=p.port, bytes_out=size, bytes_in=ACK_BYTES,
                         cause=ctx.step.id)
            )  # fmt: skip
            if not reply.ok:
                return Outcome(
                    False, dst, dst, blocked_by=reply.detail if reply.status == "blocked" else "",
                    detail=cls._left(sent, total, reply.detail),
                )  # fmt: skip
            sent += size
        return Outcome(True, dst, dst, detail=f"{sent / MB:.2f} MB in {chunks} uploads to {dst}")

    @staticmethod
    def _left(sent: int, total: int, why: str) -> str:
        return f"{sent / MB:.2f} MB sent, {(total - sent) / MB:.2f} MB left: {why}"
