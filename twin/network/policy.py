"""A segmentation design compiled into allow/deny verdicts, plus live response changes."""

from __future__ import annotations

from dataclasses import dataclass

from twin.devices.base import SERVICE_PORTS
from twin.facility import Facility
from twin.schema import DesignSpec


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: str  # why: the conduit that allowed it, or what denied it


@dataclass(frozen=True)
class Conduit:
    name: str
    src: frozenset[str]  # device names, or zone names (for addresses outside the inventory)
    dst: frozenset[str]
    ports: frozenset[int]
    src_zones: frozenset[str]
    dst_zones: frozenset[str]


def _ports(services: list[str | int]) -> frozenset[int]:
    out = set()
    for s in services:
        out.add(int(s) if isinstance(s, int) else SERVICE_PORTS[s][0])
    return frozenset(out)


class Policy:
    """What the design lets through, as a firewall between (and in 'micro', within) zones.

    - flat: nothing is filtered inside the site; only conduits that touch an internet
      zone are enforced (the perimeter). Other conduits document intent only.
    - zoned: default deny between zones, any traffic inside a zone.
    - micro: default deny everywhere, even inside a zone.
    Responses (quarantine, blocked conduits) are applied on top and bump `version`.
    """

    def __init__(self, facility: Facility, design_name: str, design: DesignSpec) -> None:
        self.facility = facility
        self.design_name = design_name
        self.kind = design.kind
        self.conduits: list[Conduit] = []
        for i, c in enumerate(design.conduits):
            src, src_zones = self._members(c.from_)
            dst, dst_zones = self._members(c.to)
            self.conduits.append(
                Conduit(
                    f"{c.from_}->{c.to}#{i}", src, dst, _ports(c.services), src_zones, dst_zones
                )
            )
        self.port_security = frozenset(design.port_security)
        self.quarantined: set[str] = set()  # IPs
        self.blocked: set[str] = set()  # conduit names
        self.version = 0
        self._cache: dict[tuple[str, str, int], Verdict] = {}

    def _members(self, ref: str) -> tuple[frozenset[str], frozenset[str]]:
        if ref in self.facility.zones:
            return frozenset(), frozenset({ref})
        return frozenset(d.name for d in self.facility.resolve(ref)), frozenset()

    # -- live changes -----------------------------------------------------------------------

    def quarantine(self, ip: str) -> None:
        self.quarantined.add(ip)
        self._changed()

    def release(self, ip: str) -> None:
        self.quarantined.discard(ip)
        self._changed()

    def block_conduit(self, name: str) -> None:
        if name not in {c.name for c in self.conduits}:
            raise KeyError(f"no conduit {name!r}; have {[c.name for c in self.conduits]}")
        self.blocked.add(name)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()

    # -- verdicts ---------------------------------------------------------------------------

    def _matches(self, c: Conduit, name: str | None, zone: str | None, side: str) -> bool:
        names, zones = (c.src, c.src_zones) if side == "src" else (c.dst, c.dst_zones)
        return (name is not None and name in names) or (zone is not None and zone in zones)

    def conduit_for(self, src_ip: str, dst_ip: str, port: int) -> Conduit | None:
        """The first documented conduit covering this flow (enforced or not)."""
        src_dev = self.facility.by_ip.get(src_ip)
        dst_dev = self.facility.by_ip.get(dst_ip)
        src_zone = self.facility.zone_of_ip(src_ip)
        dst_zone = self.facility.zone_of_ip(dst_ip)
        for c in self.conduits:
            if (
                port in c.ports
                and self._matches(c, src_dev.name if src_dev else None, src_zone, "src")
                and self._matches(c, dst_dev.name if dst_dev else None, dst_zone, "dst")
            ):
                return c
        return None

    def conduits_between(self, src_ip: str, dst_ip: str) -> list[str]:
        """Names of the conduits that carry any service from src to dst."""
        found = []
        for c in self.conduits:
            for port in c.ports:
                hit = self.conduit_for(src_ip, dst_ip, port)
                if hit is not None and hit.name == c.name:
                    found.append(c.name)
                    break
        return found

    def verdict(self, src_ip: str, dst_ip: str, port: int) -> Verdict:
        key = (src_ip, dst_ip, port)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._decide(src_ip, dst_ip, port)
        return cached

    def _decide(self, src_ip: str, dst_ip: str, port: int) -> Verdict:
        for ip in (src_ip, dst_ip):
            if ip in self.quarantined:
                name = self.facility.by_ip[ip].name if ip in self.facility.by_ip else ip
                return Verdict(False, f"response: {name} quarantined")
        src_zone = self.facility.zone_of_ip(src_ip)
        dst_zone = self.facility.zone_of_ip(dst_ip)
        internet = set(self.facility.internet_zones())
        crosses_edge = (src_zone in internet) != (dst_zone in internet)
        conduit = self.conduit_for(src_ip, dst_ip, port)
        if conduit is not None and conduit.name in self.blocked:
            return Verdict(False, f"response: conduit {conduit.name} blocked")
        if conduit is not None:
            return Verdict(True, f"conduit {conduit.name}")
        if self.kind == "flat" and not crosses_edge:
            return Verdict(True, "flat network")
        if self.kind == "zoned" and src_zone == dst_zone and src_zone is not None:
            return Verdict(True, f"inside zone {src_zone}")
        return Verdict(
            False, f"design {self.design_name}: no conduit {src_zone}->{dst_zone} for port {port}"
        )
