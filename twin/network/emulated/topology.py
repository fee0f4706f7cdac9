"""A facility and design as an emulated network, as data: zones become segments, devices hosts.

Nothing here touches the kernel; `Deployment` (the one builder) makes a Topology real.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from twin.devices import Device
from twin.errors import BackendError
from twin.facility import Facility

HOST_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")  # as device names: safe in namespace names
IFNAMSIZ = 15  # longest Linux interface name
SWITCH_NAME_MAX = 9  # a port is "<switch>-h<n>": room for up to 9,999 hosts in a zone
ROUTER_NAMES = ("router", "fw-router")
# interface names that would clash with /proc/sys/net/ipv4/conf/{all,default}
RESERVED_IFNAMES = frozenset({"lo", "all", "default"})
FIRST_HOST = 10  # Facility allocates from .10; .1 is the router's


def _mac(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    octets = [(digest[0] | 0x02) & 0xFE, *digest[1:6]]  # locally administered, unicast
    return ":".join(f"{o:02x}" for o in octets)


@dataclass(frozen=True)
class Segment:
    """A zone: one bridge (a Mininet switch of its own), and the router's leg on it."""

    zone: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address  # the router's address in the zone: .1
    internet: bool
    ifname: str  # the switch (and its bridge) and the router's interface on it share it
    uplink: str  # the router's port on the bridge (switch namespace)
    router_mac: str

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{self.subnet.prefixlen}"


@dataclass(frozen=True)
class Host:
    """One emulated machine: a device of the facility, or the attacker's origin.

    A host shared by a device group (very large sites) is named after the group and
    holds every member's address; `members` lists (device, address) in order.
    """

    name: str
    zone: str
    ip: ipaddress.IPv4Address
    mac: str
    port: str  # its port on the zone's bridge (switch's namespace); its own side is eth0
    role: Literal["device", "attacker"]
    members: tuple[tuple[str, ipaddress.IPv4Address], ...] = ()

    @property
    def devices(self) -> tuple[tuple[str, ipaddress.IPv4Address], ...]:
        """(device name, address) of everything this host is: itself, or its group."""
        if self.members:
            return self.members
        return ((self.name, self.ip),) if self.role == "device" else ()


@dataclass(frozen=True)
class Topology:
    """Segments and hosts of one facility under one design; the builder's only input."""

    facility: str
    design: str
    kind: Literal["flat", "zoned", "micro"]
    segments: tuple[Segment, ...]
    hosts: tuple[Host, ...]
    router: str = "router"  # the router node's name: never a host's or a switch's

    @classmethod
    def of(
        cls,
        facility: Facility,
        design: str,
        *,
        attacker: tuple[str, str] | None = None,
        share_groups: bool = False,
    ) -> Topology:
        """The topology of `facility` under `design`; `attacker` is (name, origin address).

        `share_groups` gives each device group (a device entry with a count) one host
        holding all its members' addresses: fewer namespaces for very large sites, at the
        price that members of a group reach each other without crossing the router.

        Every problem is reported at once in one BackendError.
        """
        problems: list[str] = []
        if design not in facility.designs:
            raise BackendError(f"facility {facility.name!r} has no design {design!r}")
        internet = set(facility.internet_zones())
        segments: list[Segment] = []
        # switches are nodes too: their names may not be a host's (nor the router's)
        hosts_named = {d.name for d in facility.devices} | {d.group for d in facility.devices}
        if attacker is not None:
            hosts_named.add(attacker[0])
        router = next((n for n in ROUTER_NAMES if n not in hosts_named), "twin-router")
        taken_ifnames: set[str] = hosts_named | {router}
        for j, zone in enumerate(facility.zones.values()):
            if not isinstance(zone.subnet, ipaddress.IPv4Network):
                problems.append(f"zone {zone.name!r}: {zone.subnet} is not IPv4")
                continue
            if zone.subnet.num_addresses < 4:
                problems.append(f"zone {zone.name!r}: {zone.subnet} has no room for a router")
                continue
            ifname = zone.name
            if (
                len(ifname) > SWITCH_NAME_MAX
                or ifname in RESERVED_IFNAMES
                or ifname in taken_ifnames
            ):
                ifname = f"zone{j}"
            taken_ifnames.add(ifname)
            segments.append(
                Segment(
                    zone=zone.name,
                    subnet=zone.subnet,
                    gateway=zone.subnet.network_address + 1,
                    internet=zone.name in internet,
                    ifname=ifname,
                    uplink=f"{ifname}-up",
                    router_mac=_mac("router", facility.name, zone.name),
                )
            )
        by_zone = {s.zone: s for s in segments}
        hosts: list[Host] = []
        groups: dict[str, list[Device]] = {}
        for device in facility.devices:
            groups.setdefault(device.group, []).append(device)
        shared: dict[str, list[tuple[str, ipaddress.IPv4Address]]] = {}
        ports: dict[str, int] = {}

        def port(zone: str) -> str:
            ports[zone] = ports.get(zone, 0) + 1
            return f"{by_zone[zone].ifname}-h{ports[zone]}"

        for device in facility.devices:
            seg = by_zone.get(device.zone)
            if seg is None:
                continue  # its zone's problem is reported already
            ip = ipaddress.IPv4Address(device.ip)  # inside an IPv4 zone, checked on load
            problems += _address_problems(f"device {device.name!r}", ip, seg)
            group = groups[device.group]
            if not share_groups or len(group) < 2 or device.group in facility.by_name:
                hosts.append(
                    Host(device.name, device.zone, ip, device.mac, port(device.zone), "device")
                )
            elif device.group not in shared:
                shared[device.group] = [(device.name, ip)]
                hosts.append(
                    Host(device.group, device.zone, ip, device.mac, port(device.zone), "device")
                )
            else:
                shared[device.group].append((device.name, ip))
        hosts = [
            dataclasses.replace(h, members=tuple(shared[h.name])) if h.name in shared else h
            for h in hosts
        ]
        if attacker is not None:
            name, origin = attacker
            addr = ipaddress.ip_address(origin)
            seg = next((s for s in segments if s.internet and addr in s.subnet), None)
            v4 = addr if isinstance(addr, ipaddress.IPv4Address) else None
            if not HOST_NAME.match(name):
                problems.append(f"attacker name {name!r} must match {HOST_NAME.pattern}")
            elif name in facility.by_name:
                problems.append(f"attacker name {name!r} is also a device's")
            if seg is None or v4 is None:
                problems.append(f"attacker origin {origin} is not in an internet zone")
            elif origin in facility.by_ip:
                problems.append(f"attacker origin {origin} is {facility.by_ip[origin].name}'s")
            else:
                problems += _address_problems(f"attacker {name!r}", v4, seg)
                mac = _mac("attacker", facility.name, name)
                hosts.append(Host(name, seg.zone, v4, mac, port(seg.zone), "attacker"))
        if problems:
            raise BackendError(
                f"{facility.name} cannot be emulated:\n" + "\n".join(f"  {p}" for p in problems)
            )
        return cls(
            facility=facility.name,
            design=design,
            kind=facility.designs[design].kind,
            segments=tuple(segments),
            hosts=tuple(hosts),
            router=router,
        )

    def plan(self, rules: str) -> dict[str, Any]:
        """The topology as plain data for `FacilityTopo`, with the router's iptables rules."""
        routed = self.kind == "micro"
        by_zone = {s.zone: s for s in self.segments}
        return {
            "facility": self.facility,
            "design": self.design,
            "kind": self.kind,
            "router": {
                "name": self.router,
                "rules": rules,
                "legs": [
                    {
                        "intf": s.ifname,
                        "gateway": s.gateway_cidr,
                        "mac": s.router_mac,
                        "isolated": routed,
                    }
                    for s in self.segments
                ],
            },
            "segments": [
                {
                    "zone": s.zone,
                    "switch": s.ifname,
                    "uplink": s.uplink,
                    "subnet": str(s.subnet),
                    "internet": s.internet,
                    "isolated": routed,
                }
                for s in self.segments
            ],
            "hosts": [
                {
                    "name": h.name,
                    "zone": h.zone,
                    "switch": by_zone[h.zone].ifname,
                    "port": h.port,
                    "ip": f"{h.ip}/{by_zone[h.zone].subnet.prefixlen}",
                    "extra_ips": [str(ip) for _, ip in h.members[1:]],
                    "mac": h.mac,
                    "gateway": str(by_zone[h.zone].gateway),
                    "role": h.role,
                    "devices": [name for name, _ in h.devices],
                }
                for h in self.hosts
            ],
        }

    @cached_property
    def _hosts(self) -> dict[str, Host]:
        """Hosts by name, and shared hosts also by each member device's name."""
        out = {name: h for h in self.hosts for name, _ in h.members}
        return out | {h.name: h for h in self.hosts}

    @cached_property
    def _segments(self) -> dict[str, Segment]:
        return {s.zone: s for s in self.segments}

    def host(self, name: str) -> Host:
        try:
            return self._hosts[name]
        except KeyError:
            raise KeyError(f"no host {name!r} in {self.facility}") from None

    def segment(self, zone: str) -> Segment:
        try:
            return self._segments[zone]
        except KeyError:
            raise KeyError(f"no zone {zone!r} in {self.facility}") from None

    def hosts_in(self, zone: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.zone == zone)


def _address_problems(what: str, ip: ipaddress.IPv4Address, seg: Segment) -> list[str]:
    if ip not in seg.subnet:
        return [f"{what}: {ip} is outside zone {seg.zone!r} ({seg.subnet})"]
    if ip in (seg.subnet.network_address, seg.subnet.broadcast_address, seg.gateway):
        return [f"{what}: {ip} is reserved in {seg.subnet} (network, broadcast or router)"]
    return []
