"""The emulated network backend, on Mininet: device hosts, zone bridges and an iptables router.

`Topology.of(facility, design)` is the plan as data and `FacilityTopo` the same as a
Mininet `Topo`; `Deployment` is the one builder that starts it with `mininet.net.Mininet`
(a context manager that always tears down); `Firewall` compiles the Policy into the
router's rules and applies responses live; `Inventory` and `reap` make sure nothing a
run made outlives it, even a run killed with SIGKILL.
"""

from __future__ import annotations

import os
import shutil

from twin.network.emulated.deployment import Deployment
from twin.network.emulated.firewall import Firewall, ruleset
from twin.network.emulated.lifecycle import STATE_NAME, Inventory, Reaped, reap, stale_states
from twin.network.emulated.mininet_topo import FacilityTopo
from twin.network.emulated.topology import Host, Segment, Topology

TOOLS = {
    "mnexec": "mininet",
    "ip": "iproute2",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "setpriv": "util-linux",
}

__all__ = [
    "STATE_NAME",
    "Deployment",
    "FacilityTopo",
    "Firewall",
    "Host",
    "Inventory",
    "Reaped",
    "Segment",
    "Topology",
    "missing_requirements",
    "reap",
    "ruleset",
    "stale_states",
]


def missing_requirements() -> list[str]:
    """Why this machine cannot emulate (empty when it can): root, and the tools it runs."""
    missing = []
    if os.geteuid() != 0:
        missing.append("needs root (network namespaces and iptables)")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            missing.append(f"no {tool} (Debian package {package}; scripts/setup-system)")
    return missing
