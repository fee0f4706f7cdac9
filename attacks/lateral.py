"""Lateral movement: logging into another device from a foothold over remote services (T0886)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field

from attacks.base import Technique, TechniqueParams, service_problems
from twin.devices import KINDS
from twin.devices.base import SERVICE_PORTS
from twin.errors import Problem
from twin.faces import ACCOUNT_LOCKED
from twin.facility import Facility
from twin.network.transactions import Login
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext

RETRY_S = 3.0  # between credential pairs: an operator typing, not a tool


class LateralParams(TechniqueParams):
    service: Literal["http", "telnet", "ssh"] = "telnet"
    credentials: Literal["reuse", "default"] = Field(
        default="reuse", description="reuse: secrets already held; default: the kind's defaults"
    )
    requires_discovery: bool = Field(
        default=True, description="target must have been found with the service's port open"
    )


def _candidates(ctx: StepContext) -> list[tuple[str, str]]:
    if ctx.params.credentials == "default":
        return list(KINDS[ctx.target.kind].default_credentials)
    return list(dict.fromkeys(ctx.attacker.secrets.values()))  # in the order they were won


class LateralMovement(Technique):
    name = "lateral_movement"
    technique_id = "T0886"
    summary = "log into another device from the foothold (web, telnet or SSH) with held or default credentials"
    params = LateralParams

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        return super().check(step, params, facility) + service_problems(
            step, params.service, facility
        )

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        if not ctx.attacker.footholds:
            return "no foothold to move from"
        target = ctx.target
        port = SERVICE_PORTS[ctx.params.service][0]
        if ctx.params.requires_discovery and port not in ctx.attacker.known.get(target.ip, set()):
            return f"{target.name} ({target.ip}) was not discovered with port {port} open"
        if not _candidates(ctx):
            return "no credentials held to reuse"
        return None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: LateralParams = ctx.params
        target = ctx.target
        source, src_ip = ctx.source
        tried = 0
        for user, password in _candidates(ctx):
            if tried:
                yield ctx.pause(RETRY_S)
            txn = (
                Login(src_ip, target.ip, "ssh", user, password, cause=ctx.step.id)
                if p.service == "ssh"
                else Login(src_ip, target.ip, p.service, user, password, cause=ctx.step.id)
            )
            reply = yield from ctx.net.send(txn)
            tried += 1
            if reply.status == "blocked":
                return Outcome(False, target.name, target.ip, blocked_by=reply.detail)
            if reply.ok:
                ctx.attacker.gain(target.name, target.ip)
                ctx.attacker.secrets[target.name] = (user, password)
                how = "held" if p.credentials == "reuse" else "default"
                return Outcome(
                    True, target.name, target.ip,
                    detail=f"{source} -> {target.name} over {p.service} as {user} ({how} credentials)",
                )  # fmt: skip
            if reply.status != "denied" or reply.detail == ACCOUNT_LOCKED:
                return Outcome(False, target.name, target.ip, detail=reply.detail)
        kind = "held" if p.credentials == "reuse" else "default"
        return Outcome(False, target.name, target.ip, detail=f"{tried} {kind} credentials refused")
