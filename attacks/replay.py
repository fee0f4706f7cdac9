"""Replay of captured legitimate Modbus commands (T0855; the readings variant is T0856)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from attacks.base import Technique, TechniqueParams
from attacks.control import register_problems
from twin.devices import KINDS
from twin.errors import Problem
from twin.facility import Facility
from twin.network.transactions import ModbusWrite
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext


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
    grace = 1800.0  # the replayed command's effect builds up over tens of minutes
    changes = ("process",)

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
