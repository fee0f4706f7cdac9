"""The one builder: a Topology made real in network namespaces, its router running the firewall.

Layout, all in namespaces named twin-<run>-* (the root namespace is never changed):

    twin-<run>-<host>   one per device (and the attacker): lo, eth0 with the device's
                        address and MAC, default route via the zone's router address
    twin-<run>.switch   one Linux bridge per zone, a port per host and the router's uplink
    twin-<run>.router   one interface per zone holding its .1, forwarding, the firewall

Micro-segmentation sets every host port "isolated" (a private VLAN edge: isolated ports
reach only the uplink) and the router answers ARP for the zone (proxy_arp_pvlan), so
traffic between two hosts of one zone hairpins through the router's rules. Flat and
zoned designs bridge a zone's traffic directly; a response that must cut traffic inside
a zone (quarantine, a blocked conduit within it) switches that zone to the same mode.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from twin.errors import BackendError
from twin.network.emulated import netns as ns
from twin.network.emulated.firewall import Firewall
from twin.network.emulated.lifecycle import STATE_NAME, Inventory, Reaped
from twin.network.emulated.topology import Host, Topology
from twin.network.policy import Policy

T = TypeVar("T")
NO_IPV6 = {"net/ipv6/conf/all/disable_ipv6": "1", "net/ipv6/conf/default/disable_ipv6": "1"}


class Deployment:
    """A live emulated network: deploy with `start()` or `with`, always ends in `close()`."""

    def __init__(
        self, topology: Topology, policy: Policy, run_dir: str | Path, *, run_id: str = ""
    ) -> None:
        if run_id and not run_id.isalnum():
            raise ValueError(f"run_id must be letters and digits, got {run_id!r}")
        self.topology = topology
        self.run_id = run_id or secrets.token_hex(3)
        self.prefix = f"twin-{self.run_id}"
        self.router_netns = f"{self.prefix}.router"  # '.' never appears in a host name
        self.switch_netns = f"{self.prefix}.switch"
        self.state_file = Path(run_dir) / STATE_NAME
        self.firewall = Firewall(policy, topology, self.router_netns)
        self.inventory: Inventory | None = None
        self._routed: set[str] = set()  # zones whose internal traffic crosses the router

    # -- names ------------------------------------------------------------------------------

    def netns(self, host: str) -> str:
        """The network namespace of a host (`ip netns exec <it> ...` reaches inside)."""
        return f"{self.prefix}-{self.topology.host(host).name}"

    @property
    def namespaces(self) -> list[str]:
        return [self.switch_netns, self.router_netns] + [
            self.netns(h.name) for h in self.topology.hosts
        ]

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raising=exc is None)

    def start(self) -> Deployment:
        if self.inventory is not None:
            raise BackendError(f"{self.prefix} is deployed already")
        clashes = [n for n in self.namespaces if ns.exists(n)]
        if clashes:  # someone else's: never record (and so never delete) them as ours
            raise BackendError(f"network namespaces exist already: {clashes[:5]}")
        self.inventory = Inventory(self.state_file)
        try:
            self.inventory.will_create_namespaces(self.namespaces)
            ns.ip_batch(
                (f"netns add {n}" for n in self.namespaces), what="create network namespaces"
            )
            self._configure_kernels()
            self._wire()
            self._configure_router_legs()
            self._address()
            self.firewall.install()
            self._routed = set(self.firewall.routed_zones())
        except BaseException:
            self.close(raising=False)
            raise
        return self

    def close(self, *, raising: bool = True) -> Reaped:
        """Stop every process started here, then delete every namespace; safe to repeat."""
        inventory, self.inventory = self.inventory, None
        if inventory is None:
            return Reaped(0, 0)
        return inventory.close(raising=raising)

    def _live(self) -> Inventory:
        if self.inventory is None:
            raise BackendError(f"{self.prefix} is not deployed")
        return self.inventory

    # -- building ---------------------------------------------------------------------------

    def _configure_kernels(self) -> None:
        """Sysctls set before any interface exists, so new interfaces inherit them."""
        router = {
            **NO_IPV6,
            "net/ipv4/ip_forward": "1",
            # hairpinned traffic leaves by the interface it came in on: no redirects for it
            "net/ipv4/conf/all/send_redirects": "0",
            "net/ipv4/conf/default/send_redirects": "0",
        }
        switch = {
            **NO_IPV6,
            # bridged frames must not meet iptables: filtering is the router's job alone
            "net/bridge/bridge-nf-call-iptables": "0",
            "net/bridge/bridge-nf-call-ip6tables": "0",
            "net/bridge/bridge-nf-call-arptables": "0",
        }
        settings = {self.router_netns: router, self.switch_netns: switch}
        settings |= {self.netns(h.name): NO_IPV6 for h in self.topology.hosts}
        ns.write_sysctls(settings)

    def _wire(self) -> None:
        """veth pairs made directly in their namespaces: no end ever appears in the root."""
        links = [
            f"link add eth0 address {h.mac} netns {self.netns(h.name)}"
            f" type veth peer name {h.port} netns {self.switch_netns}"
            for h in self.topology.hosts
        ]
        links += [
            f"link add {s.ifname} address {s.router_mac} netns {self.router_netns}"
            f" type veth peer name {s.uplink} netns {self.switch_netns}"
            for s in self.topology.segments
        ]
        ns.ip_batch(links, what="create links")
        isolate = self.topology.kind == "micro"
        switch = []
        for seg in self.topology.segments:
            switch += [
                f"link add {seg.ifname} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                f"link set {seg.ifname} up",
                f"link set {seg.uplink} master {seg.ifname}",
                f"link set {seg.uplink} up",
            ]
        for host in self.topology.hosts:
            bridge = self.topology.segment(host.zone).ifname
            switch.append(f"link set {host.port} master {bridge}")
            if isolate:
                switch.append(f"link set dev {host.port} type bridge_slave isolated on")
            switch.append(f"link set {host.port} up")
        ns.ip_batch(switch, netns=self.switch_netns, what="build the zone switches")

    def _configure_router_legs(self) -> None:
        pvlan = "1" if self.topology.kind == "micro" else "0"
        legs: dict[str, str] = {}
        for seg in self.topology.segments:
            # a namespace has no neigh/default of its own: set each interface
            legs[f"net/ipv4/neigh/{seg.ifname}/proxy_delay"] = "0"  # answer proxy ARP at once
            legs[f"net/ipv4/conf/{seg.ifname}/proxy_arp_pvlan"] = pvlan
        ns.write_sysctls({self.router_netns: legs})

    def _address(self) -> None:
        router = ["link set lo up"]
        for seg in self.topology.segments:
            router += [f"addr add {seg.gateway_cidr} dev {seg.ifname}", f"link set {seg.ifname} up"]
        ns.ip_batch(router, netns=self.router_netns, what="address the router")
        hosts: dict[str, list[str]] = {}
        for host in self.topology.hosts:
            seg = self.topology.segment(host.zone)
            hosts[self.netns(host.name)] = [
                "link set lo up",
                f"addr add {host.ip}/{seg.subnet.prefixlen} dev eth0",
                *(
                    f"addr add {ip}/32 dev eth0"  # /32: one connected route, the first's
                    for _, ip in host.members[1:]
                ),
                "link set eth0 up",
                f"route add default via {seg.gateway} dev eth0",
            ]
        ns.ip_batches(hosts, what="address the hosts")

    def _route_through_router(self, zones: Iterable[str]) -> None:
        """Turn zones into private-VLAN mode so the router sees (and filters) their traffic."""
        new = sorted(set(zones) - self._routed)
        if not new:
            return
        segments = [self.topology.segment(z) for z in new]
        ns.write_sysctls(
            {
                self.router_netns: {
                    f"net/ipv4/conf/{s.ifname}/proxy_arp_pvlan": "1" for s in segments
                }
            }
        )
        hosts = [h for h in self.topology.hosts if h.zone in new]
        ns.ip_batch(
            (f"link set dev {h.port} type bridge_slave isolated on" for h in hosts),
            netns=self.switch_netns,
            what=f"isolate ports in {new}",
        )
        # forget peers' own MACs, so the next packet asks again and the router answers
        ns.ip_batches(
            {self.netns(h.name): ["neigh flush dev eth0"] for h in hosts},
            what="flush neighbour caches",
        )
        self._routed |= set(new)

    # -- running things inside hosts --------------------------------------------------------

    def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        stdout: int | IO[bytes] = subprocess.DEVNULL,
        stderr: int | IO[bytes] = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a program inside a host, tracked by pid until `stop` or `close`."""
        inventory = self._live()
        where = self.netns(host)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", where, *argv],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: stopped as one, by its pid
        )
        inventory.started(proc, where=where, argv=argv)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        self._live().stop(proc)

    def call_in(self, host: str, fn: Callable[[], T]) -> T:
        """fn() inside a host's namespace (see netns.call_in): sockets it opens are the host's."""
        self._live()
        return ns.call_in(self.netns(host), fn)

    def host(self, name: str) -> Host:
        return self.topology.host(name)

    # -- responses --------------------------------------------------------------------------

    def quarantine(self, ip: str) -> None:
        """Cut every flow to and from `ip`, inside its zone too, from now on."""
        self._live()
        self.firewall.quarantine(ip)
        self._route_through_router(self.firewall.routed_zones())

    def release(self, ip: str) -> None:
        """Lift a quarantine. Its zone stays routed through the router, whose design rules
        pass the zone's own traffic as the bridge did."""
        self._live()
        self.firewall.release(ip)

    def refresh_policy(self) -> None:
        """Rules for the policy's quarantines and blocked conduits as they stand now (a
        response changed the policy itself); zones they cut inside go through the router."""
        self._live()
        self.firewall.refresh()
        self._route_through_router(self.firewall.routed_zones())

    def block_conduit(self, name: str) -> None:
        self._live()
        self.firewall.block_conduit(name)
        self._route_through_router(self.firewall.routed_zones())
