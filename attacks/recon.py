"""Reconnaissance: host and service sweeps (T0846) and Modbus device identification (T0888)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field, field_validator

from attacks.base import Technique, TechniqueParams
from twin.errors import Problem
from twin.facility import Facility
from twin.network.transactions import ModbusIdentify
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext

MAX_HOSTS = 65536
MODBUS = 502


class ScanParams(TechniqueParams):
    subnets: list[str] = Field(min_length=1)
    ports: list[int] = Field(default=[23, 80, 102, 443, 502, 554, 47808], min_length=1)
    rate: float = Field(default=200.0, gt=0, description="probes per second")
    method: Literal["tcp", "icmp"] = Field(
        default="tcp", description="tcp: probe each port; icmp: ping sweep for live hosts only"
    )

    @field_validator("subnets")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        nets = [ipaddress.ip_network(v, strict=False) for v in value]
        if sum(n.num_addresses for n in nets) > MAX_HOSTS:
            raise ValueError(f"more than {MAX_HOSTS} addresses to scan")
        return [str(n) for n in nets]

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [p for p in value if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"ports outside 1..65535: {bad}")
        return value


class NetworkScan(Technique):
    name = "network_scan"
    compromises = False
    technique_id = "T0846"
    summary = "sweep subnets for hosts (ping) or open services (nmap -sS style) from the foothold"
    params = ScanParams
    needs_target = False

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ScanParams = ctx.params
        _, src_ip = ctx.source
        found, blocks, sent = yield from ctx.net.scan(
            src_ip, p.subnets, p.ports, p.rate, p.method, ctx.step.id
        )
        for ip, ports in found.items():
            ctx.attacker.known.setdefault(ip, set()).update(ports)
        target = ",".join(p.subnets)
        if p.method == "icmp":
            detail = f"{sent} pings, {len(found)} hosts up"
        else:
            services = sum(len(v) for v in found.values())
            detail = f"{sent} probes, {len(found)} hosts, {services} open services"
        if found:
            return Outcome(True, target, target, detail=detail)
        return Outcome(
            False,
            target,
            target,
            blocked_by=blocks.most_common(1)[0][0] if blocks else "",
            detail=detail,
        )


class IdentifyParams(TechniqueParams):
    targets: list[str] | None = Field(
        default=None, description="device names; default every known host with Modbus open"
    )
    rate: float = Field(default=1.0, gt=0, description="identification requests per second")


class ModbusIdentifyDevices(Technique):
    name = "modbus_identify"
    compromises = False
    technique_id = "T0888"
    summary = "read vendor, model and firmware (Modbus function 43/14) of Modbus devices"
    params = IdentifyParams
    needs_target = False

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        unknown = [t for t in params.targets or () if t not in facility.by_name]
        if unknown:
            return [Problem("params.targets", f"unknown devices: {', '.join(unknown)}")]
        return []

    @classmethod
    def _addresses(cls, ctx: StepContext) -> list[str]:
        if ctx.params.targets is not None:
            return [ctx.facility.by_name[t].ip for t in ctx.params.targets]
        return [ip for ip, ports in ctx.attacker.known.items() if MODBUS in ports]

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        if not cls._addresses(ctx):
            return "no target: no known host with Modbus open and no targets given"
        return None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: IdentifyParams = ctx.params
        _, src_ip = ctx.source
        addresses = cls._addresses(ctx)
        answers: list[str] = []
        blocks: Counter[str] = Counter()
        for i, ip in enumerate(addresses):
            if i:
                yield ctx.pause(1.0 / p.rate)
            reply = yield from ctx.net.send(ModbusIdentify(src_ip, ip, cause=ctx.step.id))
            if reply.ok:
                device = ctx.facility.by_ip.get(ip)
                label = f"{device.name} {ip}" if device else ip
                answers.append(f"{label}: {' '.join(reply.text)}")
            elif reply.status == "blocked":
                blocks[reply.detail] += 1
        # '/32' keeps alerts matching by address while impact does not count recon as compromise
        where = ",".join(f"{ip}/32" for ip in addresses)
        detail = f"{len(answers)}/{len(addresses)} answered" + (
            ": " + "; ".join(answers) if answers else ""
        )
        if answers:
            return Outcome(True, where, where, detail=detail)
        blocked = blocks.most_common(1)[0][0] if blocks else ""
        return Outcome(False, where, where, blocked_by=blocked, detail=detail)
