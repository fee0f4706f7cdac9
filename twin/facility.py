"""A facility built from its spec: zones, concrete devices with addresses, and designs."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from twin.devices import KINDS, Device
from twin.devices.base import COMMON_PASSWORDS
from twin.schema import DesignSpec, FacilitySpec


@dataclass(frozen=True)
class Zone:
    name: str
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    purpose: str
    security_level: int


def _digest(*parts: str, n: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def _mac(vendor: str, serial: int) -> str:
    oui = _digest("oui", vendor, n=6)
    # locally administered, unicast
    first = (int(oui[:2], 16) | 0x02) & 0xFE
    tail = f"{serial & 0xFFFFFF:06x}"
    octets = [f"{first:02x}", oui[2:4], oui[4:6], tail[0:2], tail[2:4], tail[4:6]]
    return ":".join(octets)


@dataclass(frozen=True)
class Facility:
    """The site as an NDR's asset inventory would describe it, plus its designs."""

    spec: FacilitySpec
    zones: dict[str, Zone]
    devices: tuple[Device, ...]
    by_name: dict[str, Device]
    by_ip: dict[str, Device]
    groups: dict[str, tuple[Device, ...]]

    @classmethod
    def build(cls, spec: FacilitySpec) -> Facility:
        zones = {
            z.name: Zone(z.name, ipaddress.ip_network(z.subnet), z.purpose, z.security_level)
            for z in spec.zones
        }
        taken = {d.ip for d in spec.devices if d.ip}
        next_host = {name: 10 for name in zones}
        devices: list[Device] = []
        groups: dict[str, tuple[Device, ...]] = {}
        per_kind: dict[str, int] = {}
        for ds in spec.devices:
            kind = KINDS[ds.kind]
            params = kind.params.model_validate(ds.params)
            members = []
            for m in range(ds.count):
                name = ds.name if ds.count == 1 else f"{ds.name}-{m + 1}"
                if ds.ip:
                    ip = ds.ip
                else:
                    net = zones[ds.zone].subnet
                    while True:
                        candidate = str(net.network_address + next_host[ds.zone])
                        next_host[ds.zone] += 1
                        if candidate not in taken:
                            break
                    ip = candidate
                taken.add(ip)
                index = per_kind.get(ds.kind, 0)
                per_kind[ds.kind] = index + 1
                firmware_hash = ds.firmware_hash or _digest(
                    "fw", ds.vendor, ds.model, ds.firmware, n=32
                )
                default_pw = kind.default_credentials[0][1]
                if ds.credentials == "default":
                    password = default_pw
                elif ds.credentials == "weak":
                    pick = int(_digest("weak", name, n=8), 16)
                    password = COMMON_PASSWORDS[pick % len(COMMON_PASSWORDS)]
                else:
                    password = _digest("pw", name, n=12)
                device = Device(
                    name=name,
                    group=ds.name,
                    kind=ds.kind,
                    zone=ds.zone,
                    ip=ip,
                    mac=_mac(ds.vendor, len(devices) + 1),
                    vendor=ds.vendor,
                    model=ds.model,
                    firmware=ds.firmware,
                    firmware_hash=firmware_hash,
                    credentials=ds.credentials,
                    password=password,
                    physical_access=ds.physical_access,
                    services=tuple(ds.services if ds.services is not None else kind.services),
                    owner=ds.owner,
                    support_end=ds.support_end,
                    params=params,
                    index=index,
                    member=m,
                )
                members.append(device)
                devices.append(device)
            groups[ds.name] = tuple(members)
        return cls(
            spec=spec,
            zones=zones,
            devices=tuple(devices),
            by_name={d.name: d for d in devices},
            by_ip={d.ip: d for d in devices},
            groups=groups,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def designs(self) -> dict[str, DesignSpec]:
        return self.spec.designs

    def of_kind(self, kind: str) -> list[Device]:
        return [d for d in self.devices if d.kind == kind]

    def resolve(self, ref: str) -> tuple[Device, ...]:
        """Devices named by a zone, group or device name."""
        if ref in self.by_name:
            return (self.by_name[ref],)
        if ref in self.groups:
            return self.groups[ref]
        if ref in self.zones:
            return tuple(d for d in self.devices if d.zone == ref)
        return ()

    def resolve_all(self, refs: Iterable[str]) -> list[Device]:
        seen: dict[str, Device] = {}
        for ref in refs:
            for d in self.resolve(ref):
                seen.setdefault(d.name, d)
        return list(seen.values())

    def pick(self, ref: str, member: int) -> Device:
        """The member-th device of a group reference (wrapping), or the device itself."""
        targets = self.resolve(ref)
        if not targets:
            raise KeyError(ref)
        return targets[member % len(targets)]

    @cached_property
    def _networks(self) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
        return [(z.subnet, z.name) for z in self.zones.values()]

    def zone_of_ip(self, ip: str) -> str | None:
        device = self.by_ip.get(ip)
        if device is not None:
            return device.zone
        addr = ipaddress.ip_address(ip)
        for net, name in self._networks:
            if addr in net:
                return name
        return None

    def internet_zones(self) -> list[str]:
        return [z.name for z in self.zones.values() if z.purpose == "internet"]
