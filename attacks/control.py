"""Impact on control over Modbus: manipulation, false data, replay, alarm suppression."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from attacks.base import Technique, TechniqueParams
from twin.devices import KINDS, Device
from twin.errors import Problem
from twin.facility import Facility
from twin.network.transactions import ModbusWrite
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext


class ModbusWriteParams(TechniqueParams):
    register_name: str = Field(alias="register", description="register name from the target's map")
    value: float
    requires_discovery: bool = Field(
        default=True, description="target must have been found by a scan"
    )


class ModbusWriteSetpoint(Technique):
    name = "modbus_write"
    technique_id = "T0836"
    changes = ("process",)
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
        else:  # the same coil and limit checks as manipulate_control's writes
            problems += register_problems(
                step, facility, [("params.value", reg.name, params.value)]
            )
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


# -- shared by the techniques below ---------------------------------------------------------

# (path in the step for problems, register name, engineering value)
Planned = tuple[str, str, float | None]  # value None: any value


def register_problems(step: StepSpec, facility: Facility, planned: list[Planned]) -> list[Problem]:
    """Registers a step would write that its target's kind lacks, cannot write or would refuse."""
    target = facility.by_name.get(step.target or "")
    if target is None:
        return []
    regs = KINDS[target.kind].registers
    problems = []
    for path, name, value in planned:
        reg = regs.get(name)
        if reg is None:
            have = ", ".join(r.name for r in regs if r.writable) or "none"
            problems.append(
                Problem(
                    path, f"{target.kind} {target.name} has no register {name!r} (writable: {have})"
                )
            )
        elif not reg.writable:
            problems.append(
                Problem(path, f"{reg.name} of {target.kind} {target.name} is read-only")
            )
        elif value is None:
            continue
        elif reg.table == "coil" and value not in (0, 1):
            problems.append(Problem(path, f"{reg.name} is a coil: write 0 or 1, not {value:g}"))
        elif reg.limits and not reg.limits[0] <= value <= reg.limits[1]:
            refused = f"{reg.name}={value:g} is outside {reg.limits}: the device would refuse it"
            problems.append(Problem(path, refused))
    return problems


def undiscovered(ctx: StepContext, device: Device) -> str | None:
    """Why the attacker cannot address `device` yet: no scan found its Modbus port."""
    if 502 not in ctx.attacker.known.get(device.ip, set()):
        return f"{device.name} ({device.ip}) was not discovered with Modbus open"
    return None


def write_registers(
    ctx: StepContext, device: Device, writes: list[tuple[str, float]]
) -> Generator[simpy.Event, Any, Outcome]:
    """Write registers of `device` in order, one request each; stop at the first refusal."""
    _, src_ip = ctx.source
    regs = KINDS[device.kind].registers
    done: list[str] = []
    for name, value in writes:
        reg = regs.get(name)
        assert reg is not None and reg.table in ("holding", "coil")
        raw = (round(value * reg.scale),)
        txn = ModbusWrite(src_ip, device.ip, reg.table, reg.address, raw, cause=ctx.step.id)
        reply = yield from ctx.net.send(txn)
        if not reply.ok:
            done.append(f"{reg.name} refused: {reply.detail}")
            blocked = reply.detail if reply.status == "blocked" else ""
            return Outcome(
                False, device.name, device.ip, blocked_by=blocked, detail="; ".join(done)
            )
        done.append(f"{reg.name} := {value:g} {reg.unit}".rstrip())
    if device.name not in ctx.attacker.controlled:
        ctx.attacker.controlled.append(device.name)
    return Outcome(True, device.name, device.ip, detail="; ".join(done))


class RegisterWrites(Technique):
    """A fixed list of register writes on the target (a base: it has no name, so no entry)."""

    # manipulated control shows in the physics only as the process drifts: a tank passes
    # its old setpoint, a room its band, tens of minutes after the write
    grace = 1800.0
    changes = ("process",)

    @classmethod
    def planned(cls, params: Any) -> list[Planned]:
        raise NotImplementedError

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        problems = super().check(step, params, facility)
        return problems + register_problems(step, facility, cls.planned(params))

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        return undiscovered(ctx, ctx.target) if ctx.params.requires_discovery else None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        writes = [(name, value or 0.0) for _, name, value in cls.planned(ctx.params)]
        return (yield from write_registers(ctx, ctx.target, writes))


DISCOVERY = Field(default=True, description="target must have been found by a scan")


class RegisterValue(TechniqueParams):
    register_name: str = Field(alias="register", description="register name from the target's map")
    value: float


class ManipulateParams(TechniqueParams):
    writes: list[RegisterValue] = Field(min_length=1, description="written in this order")
    requires_discovery: bool = DISCOVERY


class ManipulateControl(RegisterWrites):
    name = "manipulate_control"
    technique_id = "T0831"
    summary = "rewrite several setpoints/commands of a controller (e.g. raise a trip point and disable its interlock) so the process runs unsafely"
    params = ManipulateParams

    @classmethod
    def planned(cls, params: ManipulateParams) -> list[Planned]:
        writes = enumerate(params.writes)
        return [(f"params.writes[{i}].register", w.register_name, w.value) for i, w in writes]


class FalseDataParams(TechniqueParams):
    value: float = Field(default=18.0, description="the sensed value the controller will act on")
    requires_discovery: bool = DISCOVERY


class FalseDataInjection(RegisterWrites):
    name = "false_data_injection"
    technique_id = "T0856"
    summary = "force a controller's sensed input to a lie through its commissioning override: it acts on the lie and reports it"
    params = FalseDataParams
    OVERRIDE = ("room_temp_override", "override_enable")

    @classmethod
    def planned(cls, params: FalseDataParams) -> list[Planned]:
        # value first, then the switch: the controller never acts on a stale override value
        return [("params.value", cls.OVERRIDE[0], params.value), ("target", cls.OVERRIDE[1], 1.0)]

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        target = facility.by_name.get(step.target or "")
        if target is not None and any(
            KINDS[target.kind].registers.get(n) is None for n in cls.OVERRIDE
        ):
            lacks = f"{target.kind} {target.name} has no sensed-value override"
            return [Problem("target", f"{lacks} ({', '.join(cls.OVERRIDE)})")]
        return super().check(step, params, facility)


class SuppressParams(TechniqueParams):
    register_name: str = Field(
        default="alarm_enable", alias="register", description="the alarm's enable coil"
    )
    requires_discovery: bool = DISCOVERY


class SuppressAlarm(RegisterWrites):
    name = "suppress_alarm"
    technique_id = "T0878"
    summary = "clear a controller's alarm enable so a later unsafe state raises no alarm"
    params = SuppressParams

    @classmethod
    def planned(cls, params: SuppressParams) -> list[Planned]:
        return [("params.register", params.register_name, 0.0)]
