"""Impact on availability: floods that stall controllers, a Mirai-style botnet and its DDoS."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Generator
from typing import Annotated, Any, Literal

import simpy
from pydantic import AfterValidator, Field

from attacks.base import Technique, TechniqueParams
from twin.errors import Problem
from twin.faces import ACCOUNT_LOCKED
from twin.facility import Facility
from twin.network.transactions import Flood, Login, Probe
from twin.schema import Address, StepSpec
from twin.steps import Outcome, StepContext

MAX_HOSTS = 65536
TRIES_PER_HOST = 10  # Mirai's scanner gives up on a host after this many credential pairs
BOT_KINDS = frozenset({"camera", "gateway"})
# from Mirai's table (scanner.c), the camera/DVR factory pairs first, as they recruit most
MIRAI_WORDLIST: tuple[tuple[str, str], ...] = (
    ("root", "xc3511"), ("root", "vizxv"), ("admin", "admin"), ("root", "root"),
    ("admin", "12345"), ("root", "admin"), ("root", "888888"), ("root", "xmhdipc"),
    ("root", "default"), ("admin", "password"), ("root", "123456"), ("support", "support"),
    ("root", "juantech"), ("user", "user"), ("admin", ""), ("root", "12345"),
)  # fmt: skip


def _within_limit(value: list[str]) -> list[str]:
    nets = [ipaddress.ip_network(v, strict=False) for v in value]
    if sum(n.num_addresses for n in nets) > MAX_HOSTS:
        raise ValueError(f"more than {MAX_HOSTS} addresses to sweep")
    return [str(n) for n in nets]


Subnets = Annotated[list[str], Field(min_length=1), AfterValidator(_within_limit)]
Port = Annotated[int, Field(ge=1, le=65535)]


def holds(ctx: StepContext, position: str) -> bool:
    """The attacker still stands at `position` (their own origin is never taken from them)."""
    return ctx.attacker.holds(position)


def outside_address(facility: Facility, ip: str, path: str) -> list[Problem]:
    """A problem unless `ip` lies in one of the facility's internet zones."""
    if facility.zone_of_ip(ip) in facility.internet_zones():
        return []
    return [Problem(path, f"{ip} is not in an internet zone")]


def _bursts(duration_s: float, burst_s: float) -> list[float]:
    """Lengths of the bursts that fill `duration_s` (the last one may be shorter)."""
    n = math.ceil(duration_s / burst_s - 1e-9)
    return [min(burst_s, duration_s - i * burst_s) for i in range(n)]


class FloodParams(TechniqueParams):
    port: Port = 502
    pps: float = Field(default=20_000.0, gt=0, description="packets per second")
    duration_s: float = Field(default=600.0, gt=0)
    burst_s: float = Field(default=10.0, gt=0, description="one flood transaction per burst")
    packet_bytes: int = Field(default=60, ge=40, le=9000)


class DenialOfService(Technique):
    name = "flood"
    compromises = False
    changes = ("health", "process")  # it stops answering, and a controller stalls
    technique_id = "T0814"
    summary = "SYN-flood a device past its capacity: it stops answering and a controller stalls"
    params = FloodParams

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: FloodParams = ctx.params
        target = ctx.target
        position, src_ip = ctx.source
        packets = overloaded = bursts = 0
        cut = ""
        for span in _bursts(p.duration_s, p.burst_s):
            if not holds(ctx, position):
                break
            reply = ctx.net.exchange(
                Flood(src_ip, target.ip, dst_port=p.port, packets=round(p.pps * span),
                      packet_bytes=p.packet_bytes, duration=span, cause=ctx.step.id)
            )  # fmt: skip
            if reply.status == "blocked":
                cut = reply.detail  # dropped at the first hop: nothing more to gain
                break
            packets += round(p.pps * span)
            bursts += 1
            # no answer from the target: its stack (and a controller's scan) is overwhelmed
            overloaded += reply.status == "timeout"
            yield ctx.pause(span)
        why = cut or ("" if holds(ctx, position) else f"lost foothold on {position}")
        detail = f"{packets:,} packets in {bursts} bursts, {overloaded} overloaded the target"
        if why:
            detail += f"; stopped: {why}"
        elif not overloaded:
            detail += "; the target absorbed it"
        # a flood cut short after it took the target down still did its harm
        return Outcome(overloaded > 0, target.name, target.ip, "" if overloaded else cut, detail)


class BotnetRecruitParams(TechniqueParams):
    subnets: Subnets
    service: Literal["telnet", "http"] = "telnet"
    wordlist: list[tuple[str, str]] | None = Field(
        default=None, description="default: Mirai's table; at most 10 pairs tried per host"
    )
    rate: float = Field(default=20.0, gt=0, description="probes (and login attempts) per second")
    max_bots: int = Field(default=100, ge=1)


class BotnetRecruit(Technique):
    name = "botnet_recruit"
    technique_id = "T0812"
    summary = "Mirai-style botnet: sweep for telnet/web admin, log in with default credentials"
    params = BotnetRecruitParams
    needs_target = False

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: BotnetRecruitParams = ctx.params
        _, src_ip = ctx.source
        port = 23 if p.service == "telnet" else 80
        gap = 1.0 / p.rate
        held = set(ctx.attacker.positions.values())
        open_hosts: list[str] = []
        blocks: Counter[str] = Counter()
        for subnet in p.subnets:
            for host in ipaddress.ip_network(subnet).hosts():
                ip = str(host)
                if ip == src_ip or ip in held:
                    continue
                yield ctx.pause(gap)
                reply = ctx.net.exchange(Probe(src_ip, ip, dst_port=port, cause=ctx.step.id))
                if reply.ok:
                    open_hosts.append(ip)
                    ctx.attacker.known.setdefault(ip, set()).add(port)
                elif reply.status == "blocked":
                    blocks[reply.detail] += 1
        bots: list[str] = []
        for ip in open_hosts:
            if len(bots) >= p.max_bots:
                break
            creds = yield from cls._crack(ctx, src_ip, ip, p, gap)
            if creds is not None:
                name = ctx.facility.by_ip[ip].name  # the answering device, for bookkeeping
                ctx.attacker.gain(name, ip, foothold=False)
                ctx.attacker.secrets[name] = creds
                bots.append(name)
        target = ",".join(p.subnets)
        detail = f"{len(open_hosts)} hosts with {p.service} open, {len(bots)} bots"
        if bots:
            return Outcome(True, target, target, detail=f"{detail}: {', '.join(bots)}")
        blocked_by = blocks.most_common(1)[0][0] if blocks and not open_hosts else ""
        return Outcome(False, target, target, blocked_by=blocked_by, detail=detail)

    @classmethod
    def _crack(
        cls, ctx: StepContext, src_ip: str, ip: str, p: BotnetRecruitParams, gap: float
    ) -> Generator[simpy.Event, Any, tuple[str, str] | None]:
        """Try the wordlist on one host; the pair that worked, or None."""
        for user, password in (p.wordlist or MIRAI_WORDLIST)[:TRIES_PER_HOST]:
            yield ctx.pause(gap)
            reply = ctx.net.exchange(
                Login(src_ip, ip, p.service, user, password, cause=ctx.step.id)
            )
            if reply.ok:
                return user, password
            if reply.status != "denied" or reply.detail == ACCOUNT_LOCKED:
                return None  # unreachable now, or locked out: move on to the next host
        return None


class OutboundFloodParams(TechniqueParams):
    victim: Address = Field(description="an address in an internet zone")
    port: Port = 80
    pps_per_bot: float = Field(default=2_000.0, gt=0)
    duration_s: float = Field(default=600.0, gt=0)
    burst_s: float = Field(default=10.0, gt=0)
    bots: list[str] | None = Field(
        default=None, description="positions to flood from; default every held camera/gateway"
    )


class OutboundFlood(Technique):
    name = "outbound_flood"
    compromises = False
    technique_id = "T0814"
    summary = "the botnet's DDoS: every bot floods an outside victim, the site's egress carries it"
    params = OutboundFloodParams
    needs_target = False

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        return [
            *super().check(step, params, facility),
            *outside_address(facility, params.victim, "params.victim"),
        ]

    @classmethod
    def _bots(cls, ctx: StepContext) -> list[str]:
        if ctx.params.bots is not None:
            return list(ctx.params.bots)
        devices = ctx.facility.by_name
        held = [*ctx.attacker.bots, *ctx.attacker.footholds]
        return [b for b in dict.fromkeys(held) if b in devices and devices[b].kind in BOT_KINDS]

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        bots = cls._bots(ctx)
        if not bots:
            return "the attacker holds no camera or gateway to flood from"
        missing = [b for b in bots if b not in ctx.attacker.positions]
        return f"no foothold on {', '.join(missing)}" if missing else None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: OutboundFloodParams = ctx.params
        active = {b: ctx.attacker.positions[b] for b in cls._bots(ctx)}
        stopped: dict[str, str] = {}  # bot -> why it stopped flooding
        packets = 0
        for span in _bursts(p.duration_s, p.burst_s):
            for bot, ip in list(active.items()):
                n = round(p.pps_per_bot * span)
                if not holds(ctx, bot):
                    stopped[bot] = "lost foothold"
                    continue
                reply = ctx.net.exchange(
                    Flood(
                        ip, p.victim, dst_port=p.port, packets=n, duration=span, cause=ctx.step.id
                    )
                )
                if reply.status == "blocked":
                    stopped[bot] = reply.detail
                else:  # also 'no_host': the packets left the site whatever the victim is
                    packets += n
            active = {b: ip for b, ip in active.items() if b not in stopped}
            if not active:
                break
            yield ctx.pause(span)
        detail = f"{packets:,} packets to {p.victim}:{p.port}"
        detail += "".join(f"; {bot} stopped: {why}" for bot, why in stopped.items())
        # a design or response that dropped every bot's first burst stopped the whole DDoS
        blocks = Counter(w for w in stopped.values() if w != "lost foothold")
        blocked_by = blocks.most_common(1)[0][0] if blocks and not packets else ""
        return Outcome(packets > 0, p.victim, p.victim, blocked_by=blocked_by, detail=detail)
