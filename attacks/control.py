"""Impact on control: unauthorised Modbus writes of setpoints and commands (T0836, T0855)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from attacks.base import Technique, TechniqueParams
from twin.campaign import Outcome, StepContext
from twin.devices import KINDS
from twin.errors import Problem
from twin.facility import Facility
from twin.network.transactions import ModbusWrite
from twin.schema import StepSpec


class ModbusWriteParams(TechniqueParams):
    register_name: str = Field(alias="register", description="register name from the target's map")
    value: float
    requires_discovery: bool = Field(
        default=True, description="target must have been found by a scan"
    )


class ModbusWriteSetpoint(Technique):
    name = "modbus_write"
    technique_id = "T0836"
    summary = "write a setpoint or command register over Modbus/TCP from the foothold"
    params = ModbusWriteParams

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        problems = super().check(step, params, facility)
        target = facility.by_name.get(step.target or "")
        if target is None:
            return problems
        reg = KINDS[target.kind].registers.get(params.register_name)
        if reg is None:
            names = ", ".join(KINDS[target.kind].registers.names()) or "none"
            problems.append(
                Problem(
                    "params.register",
                    f"{target.kind} {target.name} has no register {params.register_name!r} (has: {names})",
                )
            )
        elif not reg.writable:
            problems.append(Problem("params.register", f"{reg.name} is read-only"))
        return problems

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        target = ctx.facility.by_name[ctx.step.target or ""]
        if ctx.params.requires_discovery and 502 not in ctx.attacker.known.get(target.ip, set()):
            return f"{target.name} ({target.ip}) was not discovered with Modbus open"
        return None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ModbusWriteParams = ctx.params
        target = ctx.facility.by_name[ctx.step.target or ""]
        reg = KINDS[target.kind].registers.get(p.register_name)
        assert reg is not None and reg.table in ("holding", "coil")
        _, src_ip = ctx.source
        txn = ModbusWrite(
            src_ip,
            target.ip,
            reg.table,
            reg.address,
            (round(p.value * reg.scale),),
            cause=ctx.step.id,
        )
        reply = yield from ctx.net.send(txn)
        if reply.ok:
            ctx.attacker.controlled.append(target.name)
            return Outcome(
                True, target.name, target.ip, detail=f"{reg.name} := {p.value:g} {reg.unit}"
            )
        return Outcome(
            False,
            target.name,
            target.ip,
            blocked_by=reply.detail if reply.status == "blocked" else "",
            detail=reply.detail,
        )
