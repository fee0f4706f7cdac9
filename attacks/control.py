"""Impact on control over Modbus: manipulation, false data, replay, alarm suppression."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from attacks.base import Technique, TechniqueParams
from twin.campaign import Outcome, StepContext
from twin.devices import KINDS, Device
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


class ReplayParams(TechniqueParams):
    capture_from: str = Field(description="device whose legitimate Modbus writes are sniffed")
    register_name: str | None = Field(
        default=None, alias="register", description="only writes to this register"
    )
    capture_s: float = Field(default=3600.0, gt=0, description="how long to sniff")
    times: int = Field(default=1, ge=1, description="how often the captured writes are resent")
    interval_s: float = Field(
        default=60.0, ge=0, description="pause before each resend (the first follows the capture)"
    )


class Replay(Technique):
    name = "replay"
    technique_id = "T0855"
    summary = "sniff a master's legitimate Modbus writes, resend them later from the foothold (T0855; the replayed messages spoof the master, T0856)"
    params = ReplayParams
    needs_target = False  # optional: only writes to the target are replayed

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        p: ReplayParams = params
        problems = []
        if p.capture_from not in facility.by_name:
            problems.append(Problem("params.capture_from", f"unknown device {p.capture_from!r}"))
        if p.register_name is not None and step.target is not None:
            problems += register_problems(
                step, facility, [("params.register", p.register_name, None)]
            )
        elif p.register_name is not None and not any(
            (r := KINDS[d.kind].registers.get(p.register_name)) is not None and r.writable
            for d in facility.devices
        ):
            lacks = f"no device of {facility.name} has a writable register {p.register_name!r}"
            problems.append(Problem("params.register", lacks))
        return problems

    @classmethod
    def _wanted(cls, ctx: StepContext, w: ModbusWrite) -> bool:
        p: ReplayParams = ctx.params
        if ctx.step.target is not None and w.dst_ip != ctx.target.ip:
            return False
        if p.register_name is None:
            return True
        regs = KINDS[ctx.facility.by_ip[w.dst_ip].kind].registers
        return any(
            (r := regs.at(w.table, w.address + k)) is not None and r.name == p.register_name
            for k in range(len(w.values))
        )

    @classmethod
    def _visible(cls, ctx: StepContext, at_ip: str, w: ModbusWrite) -> bool:
        """A sniffer sees a write on its own switch, or anywhere in one flat broadcast domain."""
        fac = ctx.facility
        zone = fac.zone_of_ip(at_ip)
        if zone is None or zone in fac.internet_zones() or at_ip in ctx.net.policy.quarantined:
            return False
        ends = (fac.zone_of_ip(w.src_ip), fac.zone_of_ip(w.dst_ip))
        return ctx.net.policy.kind == "flat" or zone in ends

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ReplayParams = ctx.params
        master = ctx.facility.by_name[p.capture_from]
        position, src_ip = ctx.source
        t0 = ctx.env.now
        yield ctx.env.timeout(p.capture_s)  # passive sniffing: the window is what it is
        window = [w for t, w in ctx.net.observed_writes if t0 <= t <= ctx.env.now]
        sent = [w for w in window if w.src_ip == master.ip and cls._wanted(ctx, w)]
        seen = [w for w in sent if cls._visible(ctx, src_ip, w)]
        written = list(dict.fromkeys(ctx.facility.by_ip[w.dst_ip] for w in seen or sent))
        target = ctx.target if ctx.step.target else None
        names = target.name if target else ",".join(d.name for d in written) or master.name
        ips = target.ip if target else ",".join(d.ip for d in written) or master.ip
        if not seen:
            zone = ctx.facility.zone_of_ip(src_ip)
            policy = ctx.net.policy
            why = (
                f"response: {position} quarantined"
                if src_ip in policy.quarantined
                else f"design {policy.design_name}: no L2 visibility from {position} ({zone})"
                f" of {master.name}'s writes"
            )
            detail = f"{len(sent)} writes of {master.name} in {p.capture_s:g} s, none seen"
            return Outcome(False, names, ips, blocked_by=why if sent else "", detail=detail)
        for w in seen:
            reg = KINDS[ctx.facility.by_ip[w.dst_ip].kind].registers.at(w.table, w.address)
            if reg is not None:
                ctx.attacker.captured[(ctx.facility.by_ip[w.dst_ip].name, reg.name)] = w.values[0]
        accepted, blocks = 0, Counter[str]()
        for _ in range(p.times):
            yield ctx.pause(p.interval_s)
            for w in seen:
                again = ModbusWrite(
                    src_ip, w.dst_ip, w.table, w.address, w.values, unit=w.unit, cause=ctx.step.id
                )
                reply = yield from ctx.net.send(again)
                accepted += reply.ok
                if reply.status == "blocked":
                    blocks[reply.detail] += 1
        detail = (
            f"captured {len(seen)} writes of {master.name}; resent {p.times}x, {accepted} accepted"
        )
        if accepted:
            ctx.attacker.controlled.extend(
                d.name for d in written if d.name not in ctx.attacker.controlled
            )
            return Outcome(True, names, ips, detail=detail)
        blocked = blocks.most_common(1)[0][0] if blocks else ""
        return Outcome(False, names, ips, blocked_by=blocked, detail=detail)
