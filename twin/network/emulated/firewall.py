"""The zone firewall as iptables rules compiled from a Policy, and its live response changes.

The rules mirror `Policy.verdict` rule for rule, in the router node's namespace:

    FORWARD (policy DROP)
      QUARANTINE   a quarantined address, either way        -> deny (cuts live flows too)
      BLOCKED      first covering conduit is blocked        -> deny (cuts live flows too)
      ESTABLISHED,RELATED                                   -> accept
      CONDUITS     one rule per conduit, ends and ports     -> accept
      DESIGN       flat: same side of the internet edge; zoned: same zone; micro: nothing
      DENY-DESIGN  NFLOG "twin deny: design", DROP

Verdicts look at the port only, so each conduit port is opened for TCP and UDP alike.
Responses come before ESTABLISHED because the modelled network re-checks a standing
flow against the policy each export: a quarantine there ends connections already open.
Denied packets go to NFLOG group 1 with a prefix naming why, so a capture on
`nflog:1` in the router's namespace can mark them blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from twin.errors import BackendError
from twin.facility import Facility
from twin.network.emulated import netns as ns
from twin.network.emulated.topology import Topology
from twin.network.policy import Conduit, Policy

NFLOG_GROUP = 1
MULTIPORT_MAX = 15  # ports one multiport match may list


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addresses(
    policy: Policy, topology: Topology, names: Iterable[str], zones: Iterable[str]
) -> list[str]:
    out = [str(topology.segment(z).subnet) for z in sorted(zones)]
    out += [f"{policy.facility.by_name[n].ip}/32" for n in sorted(names)]
    return out


def _conduit_rules(
    chain: str, conduit: Conduit, target: str, policy: Policy, topology: Topology
) -> Iterator[str]:
    sources = _addresses(policy, topology, conduit.src, conduit.src_zones)
    targets = _addresses(policy, topology, conduit.dst, conduit.dst_zones)
    ports = sorted(conduit.ports)
    chunks = [ports[i : i + MULTIPORT_MAX] for i in range(0, len(ports), MULTIPORT_MAX)]
    comment = f"-m comment --comment {_quote(conduit.name)}"
    for src in sources:
        for dst in targets:
            for proto in ("tcp", "udp"):
                for chunk in chunks:
                    match = (
                        f"--dport {chunk[0]}"
                        if len(chunk) == 1
                        else f"-m multiport --dports {','.join(map(str, chunk))}"
                    )
                    yield f"-A {chain} -s {src} -d {dst} -p {proto} {match} {comment} -j {target}"


def _design_rules(policy: Policy, topology: Topology) -> Iterator[str]:
    segments = topology.segments
    if policy.kind == "flat":  # everything on the same side of the internet edge
        for a in segments:
            for b in segments:
                if a.internet == b.internet:
                    yield f"-A DESIGN -s {a.subnet} -d {b.subnet} -j ACCEPT"
    elif policy.kind == "zoned":  # inside a zone (bridged, or routed when a response needs)
        for seg in segments:
            yield f"-A DESIGN -s {seg.subnet} -d {seg.subnet} -j ACCEPT"


def response_rules(policy: Policy, topology: Topology) -> list[str]:
    """The QUARANTINE and BLOCKED chains for the policy's current responses."""
    lines = [":QUARANTINE - [0:0]", ":BLOCKED - [0:0]"]
    for ip in sorted(policy.quarantined):
        comment = f"-m comment --comment {_quote(f'quarantine {ip}')}"
        lines.append(f"-A QUARANTINE -s {ip}/32 {comment} -j DENY-RESPONSE")
        lines.append(f"-A QUARANTINE -d {ip}/32 {comment} -j DENY-RESPONSE")
    if policy.blocked:
        # first covering conduit decides, as in Policy.conduit_for: an earlier open one
        # returns the flow to the accepting chains, a blocked one denies it
        last = max(i for i, c in enumerate(policy.conduits) if c.name in policy.blocked)
        for conduit in policy.conduits[: last + 1]:
            target = "DENY-RESPONSE" if conduit.name in policy.blocked else "RETURN"
            lines += _conduit_rules("BLOCKED", conduit, target, policy, topology)
    return lines


def ruleset(policy: Policy, topology: Topology) -> str:
    """The router's whole filter table, as iptables-restore reads it."""
    lines = [
        "*filter",
        ":INPUT DROP [0:0]",
        ":FORWARD DROP [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":CONDUITS - [0:0]",
        ":DESIGN - [0:0]",
        ":DENY-DESIGN - [0:0]",
        ":DENY-RESPONSE - [0:0]",
        *response_rules(policy, topology),
        # the router itself answers nothing, as the modelled network has no router host
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A FORWARD -j QUARANTINE",
        "-A FORWARD -j BLOCKED",
        "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A FORWARD -j CONDUITS",
        "-A FORWARD -j DESIGN",
        "-A FORWARD -j DENY-DESIGN",
        f'-A DENY-DESIGN -j NFLOG --nflog-group {NFLOG_GROUP} --nflog-prefix "twin deny: design"',
        "-A DENY-DESIGN -j DROP",
        f'-A DENY-RESPONSE -j NFLOG --nflog-group {NFLOG_GROUP} --nflog-prefix "twin deny: response"',
        "-A DENY-RESPONSE -j DROP",
    ]
    for conduit in policy.conduits:
        lines += _conduit_rules("CONDUITS", conduit, "ACCEPT", policy, topology)
    lines += _design_rules(policy, topology)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


class Firewall:
    """The design's rules live in the router's namespace; responses change them in place.

    The Policy stays the one source of truth: each response changes it first, then the
    response chains are rewritten from it atomically (iptables-restore --noflush).
    """

    def __init__(self, policy: Policy, topology: Topology, router: int | None = None) -> None:
        if policy.design_name != topology.design:
            raise ValueError(
                f"policy is for design {policy.design_name!r}, topology for {topology.design!r}"
            )
        self.policy = policy
        self.topology = topology
        self.router = router  # the pid of the router node's shell, once it runs

    def _in_router(self, argv: list[str]) -> list[str]:
        if self.router is None:
            raise BackendError(f"the router of {self.topology.facility} is not running")
        return ns.inside(self.router, argv)

    def _restore(self, text: str, *, noflush: bool) -> None:
        argv = ["iptables-restore", "-w"]
        if noflush:
            argv.append("--noflush")
        ns.run(self._in_router(argv), what=f"firewall in {self.topology.router}", stdin=text)

    def install(self) -> None:
        self._restore(ruleset(self.policy, self.topology), noflush=False)

    def refresh(self) -> None:
        text = "\n".join(["*filter", *response_rules(self.policy, self.topology), "COMMIT"])
        self._restore(text + "\n", noflush=True)

    def quarantine(self, ip: str) -> None:
        self.policy.quarantine(ip)
        self.refresh()

    def release(self, ip: str) -> None:
        self.policy.release(ip)
        self.refresh()

    def block_conduit(self, name: str) -> None:
        self.policy.block_conduit(name)  # KeyError for an unknown conduit, before any change
        self.refresh()

    def rules(self) -> str:
        """The filter table as the kernel holds it now (iptables-save), for checks and reports."""
        return ns.run(
            self._in_router(["iptables-save", "-t", "filter"]),
            what=f"read firewall in {self.topology.router}",
        )

    def routed_zones(self) -> frozenset[str]:
        """Zones whose traffic inside the zone must cross the router for the policy to hold.

        Micro-segmentation filters inside every zone; otherwise a zone needs it only
        once a response targets traffic within it (a quarantined host, or a blocked
        conduit with both ends in the zone).
        """
        zones = {seg.zone for seg in self.topology.segments}
        if self.policy.kind == "micro":
            return frozenset(zones)
        fac = self.policy.facility
        out = set()
        for ip in self.policy.quarantined:
            zone = fac.zone_of_ip(ip)
            if zone in zones:
                out.add(zone)
        for conduit in self.policy.conduits:
            if conduit.name in self.policy.blocked:
                src = {fac.by_name[n].zone for n in conduit.src} | conduit.src_zones
                dst = {fac.by_name[n].zone for n in conduit.dst} | conduit.dst_zones
                out |= src & dst & zones
        return frozenset(out)


def plan_of(
    facility: Facility,
    design: str,
    *,
    attacker: tuple[str, str] | None = None,
    share_groups: bool = False,
) -> dict[str, Any]:
    """The Mininet plan of a facility under a design, its router holding the design's rules
    (what `FacilityTopo(facility, design)` builds and `twin topo` writes)."""
    topology = Topology.of(facility, design, attacker=attacker, share_groups=share_groups)
    return topology.plan(ruleset(Policy(facility, design, facility.designs[design]), topology))
