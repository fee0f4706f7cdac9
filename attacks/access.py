"""Initial access: default credentials (T0812), password guessing (T1110), exploits (T0866)."""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field, field_validator

from attacks.base import Technique, TechniqueParams, service_problems
from twin.devices import KINDS
from twin.devices.base import COMMON_PASSWORDS, SERVICE_PORTS
from twin.errors import Problem
from twin.faces import ACCOUNT_LOCKED
from twin.facility import Facility
from twin.network.transactions import Login, Transfer
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext

COMMON_DEFAULTS = (("admin", "admin"), ("admin", "12345"), ("root", "root"), ("admin", "password"))
LOCKED = ACCOUNT_LOCKED
# slower than this a guesser is patient: it sits out a lockout instead of giving up (with the
# usual 5 failures in 300 s policy, one guess per 75 s or slower never trips it at all)
PATIENT_INTERVAL_S = 60.0
LOCKOUT_WAIT_S = 960.0  # the usual 900 s lockout and a minute to spare


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


class BruteForceParams(TechniqueParams):
    service: Literal["http", "telnet"] = "http"
    user: str = "admin"
    wordlist: list[str] | None = Field(
        default=None, min_length=1, description="passwords to try; default the common ones"
    )
    interval_s: float = Field(
        default=1.0,
        ge=0,
        description="between guesses; above 60 s sits out lockouts, above 75 s trips none",
    )
    max_attempts: int | None = Field(default=None, ge=1, description="give up after this many")


class BruteForce(Technique):
    name = "brute_force"
    technique_id = "T1110"  # enterprise ATT&CK: ATT&CK for ICS has no brute-force technique
    summary = (
        "guess a web/telnet admin password from a wordlist; a fast guesser trips the account "
        "lockout, a patient one does not (T1110 is enterprise ATT&CK: ICS has no equivalent)"
    )
    params = BruteForceParams

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: BruteForceParams = ctx.params
        target = ctx.target
        _, src_ip = ctx.source
        words = list(p.wordlist or COMMON_PASSWORDS)[: p.max_attempts]
        patient = p.interval_s > PATIENT_INTERVAL_S
        guessed = 0
        for i, password in enumerate(words):
            if i:
                yield ctx.pause(p.interval_s)
            for _ in range(2):  # a patient guesser retries once after waiting out a lock
                reply = yield from ctx.net.send(
                    Login(src_ip, target.ip, p.service, p.user, password, cause=ctx.step.id)
                )
                if not (reply.status == "denied" and reply.detail == LOCKED and patient):
                    break
                yield ctx.env.timeout(LOCKOUT_WAIT_S)  # not jittered: shorter would waste a guess
            if reply.status == "blocked":
                return Outcome(False, target.name, target.ip, blocked_by=reply.detail)
            if reply.status == "denied" and reply.detail == LOCKED:
                return Outcome(
                    False, target.name, target.ip, detail=f"{LOCKED} after {guessed} guesses"
                )
            if not reply.ok and reply.status != "denied":  # closed, no_host, timeout
                return Outcome(False, target.name, target.ip, detail=reply.detail)
            guessed += 1
            if reply.ok:
                ctx.attacker.gain(target.name, target.ip)
                ctx.attacker.secrets[target.name] = (p.user, password)
                return Outcome(
                    True, target.name, target.ip,
                    detail=f"password of {p.user} guessed after {guessed} tries",
                )  # fmt: skip
        return Outcome(False, target.name, target.ip, detail=f"{guessed} passwords refused")


def version_key(version: str) -> tuple[int, ...]:
    """Dot-separated firmware version as numbers ('5.4.10' > '5.4.9'); trailing text ignored."""
    parts = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def older(version: str, than: str) -> bool:
    """Whether `version` precedes `than` ('1.2' and '1.2.0' are the same version)."""
    a, b = version_key(version), version_key(than)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) < b + (0,) * (width - len(b))


class ExploitParams(TechniqueParams):
    cve: str = Field(pattern=r"^CVE-\d{4}-\d{4,}$", description="the vulnerability exploited")
    service: str = Field(description="the vulnerable service, e.g. http")
    fixed_in: str = Field(description="first firmware version with the fix")
    requires_discovery: bool = Field(
        default=True, description="target must have been found with the port open"
    )

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if value not in SERVICE_PORTS:
            raise ValueError(f"unknown service {value!r} (known: {', '.join(SERVICE_PORTS)})")
        return value

    @field_validator("fixed_in")
    @classmethod
    def _version(cls, value: str) -> str:
        if not version_key(value):
            raise ValueError(f"{value!r} is not a dot-separated version such as 5.5.0")
        return value


class ExploitService(Technique):
    name = "exploit_service"
    technique_id = "T0866"
    summary = "send a crafted request to a vulnerable service; code execution if unpatched"
    params = ExploitParams

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        problems = super().check(step, params, facility)
        problems += service_problems(step, params.service, facility)
        target = facility.by_name.get(step.target or "")
        if target is not None and not version_key(target.firmware):
            problems.append(
                Problem(
                    "target",
                    f"{target.name} firmware {target.firmware!r} is not a numbered version",
                )
            )
        return problems

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        port = SERVICE_PORTS[ctx.params.service][0]
        target = ctx.target
        if ctx.params.requires_discovery and port not in ctx.attacker.known.get(target.ip, set()):
            return f"{target.name} ({target.ip}) was not discovered with port {port} open"
        return None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ExploitParams = ctx.params
        target = ctx.target
        _, src_ip = ctx.source
        payload = int(ctx.rng.integers(200, 700))  # an overlong field plus shellcode
        txn = Transfer(src_ip, target.ip, dst_port=SERVICE_PORTS[p.service][0],
                       bytes_out=payload, bytes_in=120, cause=ctx.step.id)  # fmt: skip
        reply = yield from ctx.net.send(txn)
        if not reply.ok:
            blocked = reply.detail if reply.status == "blocked" else ""
            return Outcome(False, target.name, target.ip, blocked_by=blocked, detail=reply.detail)
        # the device runs what it runs now (a reflash or an implant may have changed it)
        current, _ = ctx.net.faces.firmware[target.name]
        if not older(current, p.fixed_in):
            return Outcome(
                False,
                target.name,
                target.ip,
                detail=f"patched (firmware {current} >= {p.fixed_in})",
            )
        ctx.attacker.gain(target.name, target.ip)
        return Outcome(
            True, target.name, target.ip,
            detail=f"{p.cve} via {p.service}: code execution (firmware {current} < {p.fixed_in})",
        )  # fmt: skip
