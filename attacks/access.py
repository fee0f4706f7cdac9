"""Initial access: logging in with vendor default credentials (T0812)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field

from attacks.base import Technique, TechniqueParams
from twin.campaign import Outcome, StepContext
from twin.devices import KINDS
from twin.network.transactions import Login

COMMON_DEFAULTS = (("admin", "admin"), ("admin", "12345"), ("root", "root"), ("admin", "password"))


class DefaultCredentialsParams(TechniqueParams):
    service: Literal["http", "telnet"] = "http"
    wordlist: list[tuple[str, str]] | None = Field(
        default=None, description="default: vendor defaults"
    )
    interval_s: float = Field(default=2.0, ge=0, description="pause between attempts")


class DefaultCredentials(Technique):
    name = "default_credentials"
    technique_id = "T0812"
    summary = (
        "log into a device's web/telnet admin with vendor default credentials; gain a foothold"
    )
    params = DefaultCredentialsParams

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: DefaultCredentialsParams = ctx.params
        target = ctx.facility.by_name[ctx.step.target or ""]
        words = p.wordlist or list(
            dict.fromkeys([*KINDS[target.kind].default_credentials, *COMMON_DEFAULTS])
        )
        _, src_ip = ctx.source
        tried = 0
        for user, password in words:
            reply = yield from ctx.net.send(
                Login(src_ip, target.ip, p.service, user, password, cause=ctx.step.id)
            )
            tried += 1
            if reply.status == "blocked":
                return Outcome(False, target.name, target.ip, blocked_by=reply.detail)
            if reply.status in ("closed", "no_host"):
                return Outcome(False, target.name, target.ip, detail=reply.detail)
            if reply.ok:
                ctx.attacker.gain(target.name, target.ip)
                ctx.attacker.secrets[target.name] = (user, password)
                return Outcome(
                    True, target.name, target.ip, detail=f"logged in as {user} after {tried} tries"
                )
            yield ctx.env.timeout(p.interval_s)
        return Outcome(False, target.name, target.ip, detail=f"{tried} default credentials refused")
