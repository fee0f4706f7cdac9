"""Emulated backend benchmark: deploy and tear down harbour-dc scaled to ~200 devices, per design.

Needs root (network namespaces, iptables). Each host also gets one tracked process
(a `sleep`, standing in for a device face) so teardown has processes to end. Prints
seconds per phase against the targets (deploy <= 20 s, teardown <= 10 s on a 2-core
machine) and checks that nothing is left behind.
"""

from __future__ import annotations

import argparse
import math
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.facility import Facility  # noqa: E402
from twin.network.emulated import Deployment, Topology, missing_requirements  # noqa: E402
from twin.network.policy import Policy  # noqa: E402
from twin.scenario import parse_facility  # noqa: E402

HARBOUR = ROOT / "scenarios" / "facilities" / "harbour-dc.yaml"
ATTACKER = ("attacker", "198.51.100.66")
TARGET_DEPLOY_S = 20.0
TARGET_TEARDOWN_S = 10.0


def scaled_harbour_spec(devices: int) -> dict[str, Any]:
    """harbour-dc's YAML with its device groups (count > 1) grown to about `devices` devices."""
    raw: dict[str, Any] = yaml.safe_load(HARBOUR.read_text())
    groups = [d for d in raw["devices"] if d.get("count", 1) > 1]
    singles = len(raw["devices"]) - len(groups)
    base = sum(d["count"] for d in groups)
    factor = max(1.0, (devices - singles) / base)
    for d in groups:
        d["count"] = max(1, math.floor(d["count"] * factor))
    return raw


def scaled_harbour(devices: int) -> Facility:
    """harbour-dc with its device groups grown until about `devices` devices."""
    spec, problems = parse_facility(scaled_harbour_spec(devices))
    if spec is None:
        raise SystemExit("generated facility is invalid:\n" + "\n".join(map(str, problems)))
    return Facility.build(spec)


def reachable(dep: Deployment, src: str, dst: str, port: int) -> bool:
    """A connect that is refused got through the firewall (nothing listens); a drop times out."""
    ip = str(dep.host(dst).ip)

    def attempt() -> bool:
        try:
            socket.create_connection((ip, port), timeout=2.0).close()
        except ConnectionRefusedError:
            return True
        except TimeoutError:
            return False
        return True

    return dep.call_in(src, attempt)


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=200, help="about this many devices")
    parser.add_argument("--design", action="append", choices=["flat", "zoned", "micro"])
    args = parser.parse_args()
    missing = missing_requirements()
    if missing:
        raise SystemExit("emulated bench cannot run: " + "; ".join(missing))
    facility = scaled_harbour(args.devices)
    print(f"facility: {len(facility.devices)} devices in {len(facility.zones)} zones (+ attacker)")
    print(
        f"{'design':<8}{'hosts':>7}{'rules':>7}{'deploy s':>10}{'spawn s':>9}{'teardown s':>12}"
        "  checks"
    )
    worst_deploy = worst_teardown = 0.0
    for design in args.design or ["flat", "zoned", "micro"]:
        before = set(namespaces())
        topo = Topology.of(facility, design, attacker=ATTACKER)
        policy = Policy(facility, design, facility.designs[design])
        with tempfile.TemporaryDirectory(prefix="twin-bench-") as run_dir:
            dep = Deployment(topo, policy, run_dir)
            t0 = time.perf_counter()
            dep.start()
            t1 = time.perf_counter()
            try:
                for host in topo.hosts:
                    dep.spawn(host.name, ["sleep", "600"])
                spawn_s = time.perf_counter() - t1
                rules = dep.firewall.rules().count("\n-A ")
                ok = reachable(dep, "bms-server", "ahu", 502)
                blocked = not reachable(dep, "attacker", "bms-server", 502)
            finally:
                t2 = time.perf_counter()
                dep.close()
                t3 = time.perf_counter()
        leftovers = set(namespaces()) - before
        deploy_s, teardown_s = t1 - t0, t3 - t2
        worst_deploy, worst_teardown = max(worst_deploy, deploy_s), max(worst_teardown, teardown_s)
        checks = "bms->ahu open, attacker->bms dropped" if ok and blocked else "REACHABILITY WRONG"
        if leftovers:
            checks += f", LEFT BEHIND {sorted(leftovers)}"
        print(
            f"{design:<8}{len(topo.hosts):>7}{rules:>7}{deploy_s:>10.2f}{spawn_s:>9.2f}"
            f"{teardown_s:>12.2f}  {checks}"
        )
    print(
        f"worst deploy {worst_deploy:.2f} s (target <= {TARGET_DEPLOY_S:g}), "
        f"worst teardown {worst_teardown:.2f} s (target <= {TARGET_TEARDOWN_S:g})"
    )


if __name__ == "__main__":
    main()
