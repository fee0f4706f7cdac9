"""Reconnaissance: TCP sweep and service scan of subnets (T0846)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field, field_validator

from attacks.base import Technique, TechniqueParams
from twin.campaign import Outcome, StepContext
from twin.network.transactions import Probe

MAX_HOSTS = 65536


class ScanParams(TechniqueParams):
    subnets: list[str] = Field(min_length=1)
    ports: list[int] = Field(default=[23, 80, 102, 443, 502, 554, 47808], min_length=1)
    rate: float = Field(default=200.0, gt=0, description="probes per second")

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
    technique_id = "T0846"
    summary = "sweep subnets for hosts and open services (nmap -sS style) from the foothold"
    params = ScanParams
    needs_target = False

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ScanParams = ctx.params
        _, src_ip = ctx.source
        found: dict[str, set[int]] = {}
        blocks: Counter[str] = Counter()
        probes = 0
        gap = 1.0 / p.rate
        for subnet in p.subnets:
            for host in ipaddress.ip_network(subnet).hosts():
                ip = str(host)
                if ip == src_ip:
                    continue
                for port in p.ports:
                    yield ctx.env.timeout(gap)
                    reply = ctx.net.exchange(Probe(src_ip, ip, dst_port=port, cause=ctx.step.id))
                    probes += 1
                    if reply.ok:
                        found.setdefault(ip, set()).add(port)
                    elif reply.status == "blocked":
                        blocks[reply.detail] += 1
        for ip, ports in found.items():
            ctx.attacker.known.setdefault(ip, set()).update(ports)
        target = ",".join(p.subnets)
        services = sum(len(v) for v in found.values())
        detail = f"{probes} probes, {len(found)} hosts, {services} open services"
        if found:
            return Outcome(True, target, target, detail=detail)
        return Outcome(
            False,
            target,
            target,
            blocked_by=blocks.most_common(1)[0][0] if blocks else "",
            detail=detail,
        )
