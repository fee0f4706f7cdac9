"""Placing a facility too large for one machine across servers (Mininet Cluster Edition).

A zone is the unit of placement: its switch and every host on it go to one server, so
traffic inside a zone never leaves that server, and the only links that cross servers
are the router's legs to the zones placed away from it (one tunnel per remote zone).
The router stays on the first server, beside the twin's kernel and its captures.
Zones are packed largest first onto the server with the most room left (each server
holds at most its capacity of hosts); a zone larger than any server's room is refused,
with the advice to give it group hosts (`hosts: group`).

`ZonePlacer` is this rule as a placement class for `mininet.examples.cluster`
(`MininetCluster(..., placement=ZonePlacer)`); see docs/cluster.md for what the twin
itself needs beyond that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mininet.examples.cluster import Placer

from twin.errors import BackendError
from twin.network.emulated.topology import Topology


@dataclass(frozen=True)
class Placement:
    """Which server runs each Mininet node, and the links that must cross between servers."""

    servers: tuple[str, ...]
    nodes: Mapping[str, str]  # node name -> server
    tunnels: tuple[tuple[str, str], ...]  # (router, zone switch) links between servers

    def load(self) -> dict[str, int]:
        """Nodes per server."""
        out = dict.fromkeys(self.servers, 0)
        for server in self.nodes.values():
            out[server] += 1
        return out


def place_zones(
    zones: Mapping[str, Sequence[str]],
    router: str,
    servers: Sequence[str],
    capacity: Mapping[str, int] | None = None,
) -> Placement:
    """Place each zone (switch name -> its hosts) whole on a server; the router on the first.

    `capacity` is the most nodes a server may run (unbounded if not given); the router
    counts on the first server, a zone's switch on its own.
    """
    if not servers:
        raise BackendError("a placement needs at least one server")
    if len(set(servers)) != len(servers):
        raise BackendError(f"servers are named twice: {list(servers)}")
    room = {s: (capacity or {}).get(s, 1 << 30) for s in servers}
    nodes = {router: servers[0]}
    room[servers[0]] -= 1
    # largest first, each onto the server with the most room left (ties: listed first)
    for switch, hosts in sorted(zones.items(), key=lambda z: (-len(z[1]), z[0])):
        size = 1 + len(hosts)
        server = max(servers, key=lambda s: (room[s], -servers.index(s)))
        if room[server] < size:
            raise BackendError(
                f"zone {switch!r} needs {size} nodes on one server; the most room left is "
                f"{room[server]} (on {server}): add servers, or give device groups one host "
                "each (hosts: group)"
            )
        room[server] -= size
        nodes[switch] = server
        nodes.update(dict.fromkeys(hosts, server))
    tunnels = tuple((router, switch) for switch in sorted(zones) if nodes[switch] != nodes[router])
    return Placement(tuple(servers), nodes, tunnels)


def place_topology(
    topology: Topology, servers: Sequence[str], capacity: Mapping[str, int] | None = None
) -> Placement:
    """The twin's topology placed by zones (see `place_zones`)."""
    zones = {
        seg.ifname: [h.name for h in topology.hosts if h.zone == seg.zone]
        for seg in topology.segments
    }
    return place_zones(zones, topology.router, servers, capacity)


class ZonePlacer(Placer):
    """`place_zones` as MininetCluster's placement class: hosts go where their switch is.

    MininetCluster gives it the topology's nodes, hosts, switches and links; the node
    linked to every switch is taken for the router.
    """

    capacity: Mapping[str, int] | None = None

    def __init__(
        self,
        servers: Sequence[str] | None = None,
        nodes: Iterable[str] | None = None,
        hosts: Iterable[str] | None = None,
        switches: Iterable[str] | None = None,
        controllers: Iterable[str] | None = None,
        links: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(servers, nodes, hosts, switches, controllers, links)
        switch_names = set(self.switches)
        zones: dict[str, list[str]] = {s: [] for s in self.switches}
        legs: dict[str, set[str]] = {}
        for a, b in self.links:
            if a in switch_names and b in switch_names:
                raise BackendError(f"switches {a} and {b} are linked: not a zoned facility")
            switch, other = (a, b) if a in switch_names else (b, a)
            if switch not in switch_names:
                continue
            legs.setdefault(other, set()).add(switch)
        routers = [n for n, s in legs.items() if s == switch_names and len(switch_names) > 1]
        router = routers[0] if routers else ""
        for node, switches in legs.items():
            if node != router:
                (switch,) = switches  # a host hangs off exactly one zone switch
                zones[switch].append(node)
        self.placement = place_zones(zones, router or "-", self.servers, self.capacity)

    def place(self, node: str) -> Any:
        return self.placement.nodes.get(node, self.servers[0])
