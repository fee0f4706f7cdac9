"""Placing a facility across servers by zone, for Mininet Cluster Edition (no ssh needed).

ssh to localhost is not available on the test machines, so the placement itself is
tested: as a function of the twin's topology, and as the placement class
`mininet.examples.cluster.MininetCluster` calls with a real FacilityTopo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from twin.errors import BackendError
from twin.facility import Facility
from twin.network.emulated import FacilityTopo, Topology
from twin.network.emulated.placement import ZonePlacer, place_topology, place_zones
from twin.scenario import load_facility

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.emulated_deploy import scaled_harbour  # noqa: E402

HARBOUR = ROOT / "scenarios" / "facilities" / "harbour-dc.yaml"
SERVERS = ("kernel", "rack-a", "rack-b")


@pytest.fixture(scope="module")
def big() -> Topology:
    """harbour-dc grown to ~400 devices: too many hosts for one small server."""
    return Topology.of(scaled_harbour(400), "zoned", attacker=("attacker", "198.51.100.66"))


def test_a_zone_stays_whole_and_only_router_legs_cross_servers(big: Topology) -> None:
    """Every host is on its zone switch's server; the router is on the first server; the
    links that cross servers are exactly the router's legs to zones placed elsewhere."""
    placed = place_topology(big, SERVERS)
    assert placed.nodes[big.router] == "kernel"
    for host in big.hosts:
        assert placed.nodes[host.name] == placed.nodes[big.segment(host.zone).ifname]
    remote = {s.ifname for s in big.segments if placed.nodes[s.ifname] != "kernel"}
    assert {switch for _, switch in placed.tunnels} == remote
    assert remote and len(set(placed.nodes.values())) == 3  # the load is spread
    assert sum(placed.load().values()) == len(big.hosts) + len(big.segments) + 1


def test_capacity_is_respected_and_a_zone_too_big_is_refused_with_advice(big: Topology) -> None:
    """No server runs more nodes than its capacity; a zone that fits nowhere is refused,
    naming it and the way out (group hosts)."""
    sizes = {s.ifname: 1 + len(big.hosts_in(s.zone)) for s in big.segments}
    largest = max(sizes.values())
    capacity = dict.fromkeys(SERVERS, largest + 1)
    placed = place_topology(big, SERVERS, capacity)
    assert all(n <= capacity[s] for s, n in placed.load().items())
    with pytest.raises(BackendError, match="hosts: group"):
        place_topology(big, SERVERS, dict.fromkeys(SERVERS, largest - 1))


def test_placement_is_deterministic_and_balanced() -> None:
    """The same zones land on the same servers every time, largest first onto the
    emptiest server."""
    zones = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(6)],
             "c": [f"c{i}" for i in range(5)], "d": ["d0"]}  # fmt: skip
    first = place_zones(zones, "router", ["s1", "s2"])
    assert first == place_zones(zones, "router", ["s1", "s2"])
    # a (11 nodes) beside nothing; b and c beside the router; d onto a's server
    assert {z: first.nodes[z] for z in zones} == {"a": "s2", "b": "s1", "c": "s1", "d": "s2"}
    assert first.load() == {"s1": 1 + 7 + 6, "s2": 11 + 2}


def test_mininet_cluster_can_use_it_on_a_real_facility_topo() -> None:
    """ZonePlacer takes what MininetCluster.placeNodes passes (the Topo's node lists and
    links) and answers each node's server as place_topology does."""
    harbour = Facility.build(load_facility(HARBOUR))
    topo = FacilityTopo(harbour, "zoned", attacker=("attacker", "198.51.100.66"))
    placer = ZonePlacer(
        servers=list(SERVERS), nodes=topo.nodes(), hosts=topo.hosts(),
        switches=topo.switches(), links=topo.links(),
    )  # fmt: skip
    expected = place_topology(
        Topology.of(harbour, "zoned", attacker=("attacker", "198.51.100.66")), SERVERS
    )
    assert {n: placer.place(n) for n in topo.nodes()} == dict(expected.nodes)
