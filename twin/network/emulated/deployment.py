"""The one builder: a Topology started as a Mininet network, its router running the firewall.

`FacilityTopo` (mininet_topo) is the network as Mininet sees it: a host per device,
a `LinuxBridge` switch per zone in a namespace of its own (so a SIGKILLed run leaves
nothing in the root namespace once the recorded pids are gone), the router node with
the design's rules. `Deployment` starts it with `mininet.net.Mininet`, without a
controller and without Mininet's global sysctl changes or cleanup-by-name; every node's
shell is recorded in the run's inventory as it is made, and teardown kills exactly those.

Micro-segmentation sets every host port "isolated" (a private VLAN edge: isolated ports
reach only the uplink) and the router answers ARP for the zone (proxy_arp_pvlan), so
traffic between two hosts of one zone hairpins through the router's rules. Flat and
zoned designs bridge a zone's traffic directly; a response that must cut traffic inside
a zone (quarantine, a blocked conduit within it) switches that zone to the same mode.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from mininet.net import Mininet
from mininet.node import Node

from twin.errors import BackendError
from twin.network.emulated import netns as ns
from twin.network.emulated.firewall import Firewall, ruleset
from twin.network.emulated.lifecycle import STATE_NAME, Inventory, Reaped
from twin.network.emulated.mininet_topo import DeviceHost, FacilityTopo, ZoneSwitch, run_lines
from twin.network.emulated.topology import Host, Topology
from twin.network.policy import Policy

T = TypeVar("T")


PARALLEL = 8  # node shells started, or links made, at once


class TrackedMininet(Mininet):
    """Mininet whose every node is recorded in the run's inventory the moment it exists,
    built in parallel where Mininet would go one node at a time.

    `inited` is set so Mininet's one-time init (raising the root namespace's sysctl and
    rlimit values) never runs: the twin changes nothing outside the namespaces it makes.
    """

    inited = True

    def __init__(self, inventory: Inventory, **kwargs: Any) -> None:
        self.inventory = inventory
        super().__init__(**kwargs)

    def addHost(self, name: str, cls: Any = None, **params: Any) -> Node:
        node = super().addHost(name, cls=cls, **params)
        self.inventory.started_node(name, node.shell)
        return node

    def addSwitch(self, name: str, cls: Any = None, **params: Any) -> Node:
        node = super().addSwitch(name, cls=cls, **params)
        self.inventory.started_node(name, node.shell)
        return node

    def buildFromTopo(self, topo: Any = None) -> None:
        """Nodes, then links, as Mininet makes them, a few at a time: a node's shell takes
        tens of milliseconds to start, and a link is a command in its first node's shell.
        Nodes keep the topology's order; links that share a first node go one by one."""
        hosts, switches = topo.hosts(), topo.switches()

        def make(name: str) -> Node:
            params = topo.nodeInfo(name)
            if name in switches:
                return self.addSwitch(name, **params)
            return self.addHost(name, **params)

        names = [*hosts, *switches]
        if names:
            make(names[0])  # alone: a node class checks its setup on first use
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(make, names[1:]))
        self.hosts.sort(key=lambda n: hosts.index(n.name))
        self.switches.sort(key=lambda n: switches.index(n.name))
        by_first: dict[str, list[dict[str, Any]]] = {}
        for _, _, params in topo.links(sort=True, withInfo=True):
            by_first.setdefault(params["node1"], []).append(params)

        def link_all(links: list[dict[str, Any]]) -> None:
            for params in links:
                self.addLink(**params)

        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(link_all, by_first.values()))

    def configHosts(self) -> None:
        """Every host configured at once, each in its shell (see mininet_topo.run_lines)."""
        run_lines({h: h.config_lines() for h in self.hosts})
        for host in self.hosts:
            host.configured()

    def start(self) -> None:
        """The zone switches, all at once; there is no controller."""
        if not self.built:
            self.build()
        run_lines({s: s.start_lines() for s in self.switches})


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
        self.state_file = Path(run_dir) / STATE_NAME
        self.firewall = Firewall(policy, topology)
        self.rules = ruleset(policy, topology)  # what the router starts with
        self.inventory: Inventory | None = None
        self.net: TrackedMininet | None = None
        self._pids: dict[str, int] = {}  # node name -> its shell's pid
        self._routed: set[str] = set()  # zones whose internal traffic crosses the router

    # -- names ------------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        """The Mininet node of a host (or a member device of a shared host), switch or router."""
        net = self._live_net()
        if name in self._pids:
            return net[name]
        return net[self.topology.host(name).name]

    def netns(self, host: str) -> str:
        """Where a host's network namespace is (`/proc/<pid>/ns/net`)."""
        return ns.path_of(self.pid(host))

    def pid(self, name: str) -> int:
        """The pid of a node's shell: `mnexec -a <pid> ...` runs a tool inside it."""
        self._live()
        pid = self._pids.get(name)
        if pid is None:
            pid = self._pids[self.topology.host(name).name]
        return pid

    @property
    def nodes(self) -> list[str]:
        """Every Mininet node of the network: router, switches, hosts."""
        return [self.topology.router, *(s.ifname for s in self.topology.segments)] + [
            h.name for h in self.topology.hosts
        ]

    @property
    def router(self) -> str:
        return self.topology.router

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
        self.inventory = Inventory(self.state_file)
        try:
            topo = FacilityTopo(self.topology.plan(self.rules))
            self.net = TrackedMininet(
                self.inventory,
                topo=topo,
                switch=ZoneSwitch,
                host=DeviceHost,
                controller=None,
                build=False,
            )
            self.net.build()
            self.net.start()
            self._pids = {n.name: n.pid for n in (*self.net.hosts, *self.net.switches)}
            self.firewall.router = self._pids[self.topology.router]
            self._routed = set(self.firewall.routed_zones())
        except BaseException as exc:
            self.close(raising=False)
            if isinstance(exc, Exception) and not isinstance(exc, BackendError):
                raise BackendError(f"{self.topology.facility}: Mininet failed: {exc}") from exc
            raise
        return self

    def close(self, *, raising: bool = True) -> Reaped:
        """Stop every process started here, then every node; safe to repeat."""
        inventory, self.inventory = self.inventory, None
        net, self.net = self.net, None
        self._pids = {}
        self.firewall.router = None
        if inventory is None:
            return Reaped(0, 0)
        try:
            return inventory.close(raising=raising)
        finally:
            if net is not None:
                for node in (*net.hosts, *net.switches):
                    _release(node)

    def _live(self) -> Inventory:
        if self.inventory is None:
            raise BackendError(f"{self.prefix} is not deployed")
        return self.inventory

    def _live_net(self) -> TrackedMininet:
        self._live()
        if self.net is None:
            raise BackendError(f"{self.prefix} is still being built")
        return self.net

    # -- running things inside hosts --------------------------------------------------------

    def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        stdin: int | IO[bytes] = subprocess.DEVNULL,
        stdout: int | IO[bytes] = subprocess.DEVNULL,
        stderr: int | IO[bytes] = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a program inside a node (a host, or the router), tracked by pid until `stop`
        or `close`."""
        inventory = self._live()
        proc = subprocess.Popen(
            ns.inside(self.pid(host), argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: stopped as one, by its pid
        )
        inventory.started(proc, where=host, argv=argv)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        self._live().stop(proc)

    def call_in(self, host: str, fn: Callable[[], T]) -> T:
        """fn() inside a host's namespace (see netns.call_in): sockets it opens are the host's."""
        return ns.call_in(self.netns(host), fn)

    def host(self, name: str) -> Host:
        return self.topology.host(name)

    # -- responses --------------------------------------------------------------------------

    def _route_through_router(self, zones: Iterable[str]) -> None:
        """Turn zones into private-VLAN mode so the router sees (and filters) their traffic."""
        new = sorted(set(zones) - self._routed)
        if not new:
            return
        segments = [self.topology.segment(z) for z in new]
        pvlan = " ".join(f"net.ipv4.conf.{s.ifname}.proxy_arp_pvlan=1" for s in segments)
        ns.run(
            ns.inside(self.pid(self.router), ["sysctl", "-qw", *pvlan.split()]),
            what=f"proxy ARP for {new}",
        )
        hosts = [h for h in self.topology.hosts if h.zone in new]
        jobs = {s.ifname: ns.inside(self.pid(s.ifname), ["ip", "-batch", "-"]) for s in segments}
        batches = {
            s.ifname: "".join(
                f"link set dev {h.port} type bridge_slave isolated on\n"
                for h in hosts
                if h.zone == s.zone
            )
            for s in segments
        }
        for name, argv in jobs.items():
            ns.run(argv, what=f"isolate ports of {name}", stdin=batches[name])
        # forget peers' own MACs, so the next packet asks again and the router answers
        ns.run_all(
            {
                h.name: ns.inside(self.pid(h.name), ["ip", "neigh", "flush", "dev", "eth0"])
                for h in hosts
            },
            what="flush neighbour caches",
        )
        self._routed |= set(new)

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


def _release(node: Node) -> None:
    """Close a dead node's pty (Mininet's own cleanup would wait on, or signal, its shell)."""
    if node.stdin is not None and not node.stdin.closed:
        Node.outToNode.pop(node.stdin.fileno(), None)
        Node.inToNode.pop(node.stdin.fileno(), None)
        node.stdin.close()
    if node.slave is not None:
        with contextlib.suppress(OSError):
            os.close(node.slave)
        node.slave = None
    node.shell = None
