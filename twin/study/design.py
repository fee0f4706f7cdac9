"""Static analysis of a segmentation design, from the facility alone, with networkx.

The reachability graph has a node per device (plus `internet` for addresses outside the
inventory) and an edge a -> b when the design lets a reach some service b offers; each
edge says whether a conduit allowed it or the design's defaults did (flat network, inside
a zone). The IEC 62443-3-2 style separation checks count flows that separation should
have stopped: allowed without any conduit naming them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import networkx as nx

from twin.facility import Facility
from twin.network.policy import Policy
from twin.schema import FacilitySpec

CONTROL = ("bms", "hvac", "access", "ot")  # zone purposes that control the physical process
BUSINESS = ("enterprise",)
SAFETY_CRITICAL_KINDS = ("plc", "ahu", "door_controller")  # compromise has physical effect
TEMPORARY_KINDS = ("workstation",)  # engineering laptops and workstations come and go
WIRELESS_PURPOSES = ("iot",)
OUTSIDE = "internet"


def safety_critical(site: Facility) -> list[str]:
    return [d.name for d in site.devices if d.kind in SAFETY_CRITICAL_KINDS]


def reachability(site: Facility, design: str) -> nx.DiGraph:
    """Who may reach whom under the design (edges carry `conduit`: True if one allowed it)."""
    policy = Policy(site, design, site.designs[design])
    g = nx.DiGraph()
    internet = set(site.internet_zones())
    own = [d for d in site.devices if d.zone not in internet]
    g.add_node(OUTSIDE)
    g.add_nodes_from(d.name for d in own)
    outside_ip = next(
        (str(site.zones[z].subnet.network_address + 66) for z in sorted(internet)), None
    )
    sources = [(d.name, d.ip) for d in own] + ([(OUTSIDE, outside_ip)] if outside_ip else [])
    for src, sip in sources:
        for dst in own:
            if dst.name == src:
                continue
            for port in dst.ports:
                v = policy.verdict(sip, dst.ip, port)
                if v.allowed:
                    g.add_edge(src, dst.name, conduit=v.rule.startswith("conduit"))
                    break
    return g


@lru_cache(maxsize=64)
def _cached(spec_json: str, design: str) -> tuple[Facility, nx.DiGraph]:
    site = Facility.build(FacilitySpec.model_validate_json(spec_json))
    return site, reachability(site, design)


def graph_of(spec: FacilitySpec, design: str) -> tuple[Facility, nx.DiGraph]:
    """The facility and its reachability graph, computed once per process and design."""
    return _cached(spec.model_dump_json(by_alias=True), design)


def hops_to_safety(g: nx.DiGraph, start: str, targets: list[str]) -> int | None:
    """Fewest allowed hops from `start` to any safety-critical device (None: unreachable)."""
    if start not in g:
        return None
    lengths = nx.single_source_shortest_path_length(g, start)
    found = [lengths[t] for t in targets if t in lengths]
    return min(found) if found else None


def conduits_to_open(site: Facility, g: nx.DiGraph, start: str, targets: list[str]) -> int | None:
    """Fewest new conduits an attacker at `start` needs opened before reaching a
    safety-critical device: a path over allowed edges costs 0, each missing device-to-device
    link costs 1 (networkx Dijkstra over the complete graph)."""
    if start not in g or not targets:
        return None
    h = nx.DiGraph()
    nodes = list(g.nodes)
    for a in nodes:
        for b in nodes:
            if a != b and b != OUTSIDE:
                h.add_edge(a, b, weight=0 if g.has_edge(a, b) else 1)
    dist = nx.single_source_dijkstra_path_length(h, start, weight="weight")
    return int(min(dist[t] for t in targets if t in dist))


def takeable(site: Facility) -> set[str]:
    """Devices an attacker who reaches them can take: factory or wordlist passwords, or
    firmware with a listed known exploited vulnerability."""
    from twin.audit import known_exploited, matches

    rows = known_exploited()
    return {
        d.name
        for d in site.devices
        if d.credentials in ("default", "weak")
        or any(matches(r, d.vendor, d.model, d.firmware) for r in rows)
    }


def attacker_reach(site: Facility, g: nx.DiGraph) -> set[str]:
    """Devices an attacker from the internet can send to, pivoting through every device it
    can take on the way (see `takeable`)."""
    can_take = takeable(site)
    reached: set[str] = set()
    frontier = [OUTSIDE]
    held = {OUTSIDE}
    while frontier:
        node = frontier.pop()
        for nxt in g.successors(node):
            reached.add(nxt)
            if nxt in can_take and nxt not in held:
                held.add(nxt)
                frontier.append(nxt)
    return reached


def analyse(spec: FacilitySpec, design: str) -> dict[str, Any]:
    """The static figures of one design (see the module docstring)."""
    site, g = graph_of(spec, design)
    zone = {d.name: d.zone for d in site.devices}
    kind = {d.name: d.kind for d in site.devices}
    purpose = {z.name: z.purpose for z in site.zones.values()}
    ds = site.designs[design]
    critical = set(safety_critical(site))

    def p(n: str) -> str:
        return purpose[zone[n]] if n in zone else "internet"

    inter_zone = sorted(
        {
            (zone.get(a, OUTSIDE), zone.get(b, OUTSIDE))
            for a, b in g.edges
            if zone.get(a, OUTSIDE) != zone.get(b, OUTSIDE)
        }
    )
    unconduited = [(a, b) for a, b, c in g.edges(data="conduit") if not c]
    checks = {
        "business_to_control": sum(p(a) in BUSINESS and p(b) in CONTROL for a, b in unconduited),
        "into_safety": sum(b in critical and a not in critical for a, b in unconduited),
        "temporary_devices": sum(kind.get(a) in TEMPORARY_KINDS for a, _ in unconduited),
        "wireless": sum(p(a) in WIRELESS_PURPOSES for a, _ in unconduited),
        "externally_reached": 0,
    }
    exposed = set(g.successors(OUTSIDE))
    checks["externally_reached"] = sum(a in exposed for a, _ in unconduited)
    # SL gap: a zone's target SL minus the lowest target SL of a zone the design lets reach
    # it (by a conduit or by default): what its boundary actually holds out
    sl = {z.name: z.security_level for z in site.zones.values()}
    gaps: dict[str, int] = {}
    for a, b in g.edges:
        za, zb = zone.get(a, next(iter(site.internet_zones()), "")), zone[b]
        if za != zb:
            gaps[zb] = max(gaps.get(zb, 0), sl[zb] - sl.get(za, 0))
    # paths from the internet or business zones to control that cross no DMZ device
    no_dmz = g.subgraph(n for n in g if n == OUTSIDE or p(n) != "dmz")
    entry = [n for n in no_dmz if n == OUTSIDE or p(n) in BUSINESS]
    reached = set()
    for e in entry:
        reached |= {n for n in nx.descendants(no_dmz, e) if p(n) in CONTROL}
    own = [n for n in g if n != OUTSIDE]
    return {
        "design": design,
        "kind": ds.kind,
        "zones": len({zone[n] for n in own}),
        "conduits": len(ds.conduits),
        "allowed_flows": g.number_of_edges(),
        "allowed_inter_zone_flows": len(inter_zone),
        "reachable_share": round(
            g.subgraph(own).number_of_edges() / max(1, len(own) * (len(own) - 1)), 4
        ),
        "exposed_to_internet": len(exposed),
        "separation": checks,
        "separation_failures": sum(v > 0 for v in checks.values()),
        "security_level_gaps": {z: v for z, v in sorted(gaps.items()) if v > 0},
        "control_reached_skipping_dmz": len(reached),
        "internet_hops_to_safety": hops_to_safety(g, OUTSIDE, sorted(critical)),
        "attacker_reach": len(attacker_reach(site, g)),
    }
