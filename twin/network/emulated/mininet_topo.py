"""The facility as a Mininet topology: a `Topo` of device hosts, zone bridges and a firewall router.

This module imports nothing of the twin's at load time (only Mininet and the standard
library), so `twin topo` can copy it, with the plan appended, into a file that
`sudo mn --custom facility_topo.py --topo facility --switch lxbr --controller none` opens
on its own. The plan is plain data (see `Topology.plan`):

    hosts     one per device (or device group) and the attacker: eth0 with the device's
              address and MAC, default route via the zone's router address
    switches  one Linux bridge per zone, in a namespace of its own (a SIGKILLed run
              leaves nothing in the root namespace once the recorded pids are gone);
              micro-segmentation isolates every host port, so same-zone traffic
              hairpins through the router
    router    a node with forwarding on, a leg per zone holding its .1, and the
              iptables rules compiled from the design's conduits
"""

from __future__ import annotations

import subprocess
from typing import Any

from mininet.cli import CLI
from mininet.link import Intf
from mininet.node import Host, Node
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

NO_IPV6 = ("all", "default")
LINE_MAX = 3000  # a pty reads at most 4,095 characters of one line: stay well below
LINKS_UP_TRIES = 150  # looks 20 ms apart: the kernel's link watch defers a change <= 1 s


def ip_batch(commands: list[str]) -> list[str]:
    """Shell lines feeding `ip -batch -`: one ip process per line, not one per command."""
    lines: list[str] = []
    chunk: list[str] = []
    for command in [*commands, ""]:
        size = sum(len(c) + 3 for c in chunk) + len(command)
        if chunk and (not command or size > LINE_MAX):
            quoted = " ".join(f"'{c}'" for c in chunk)
            lines.append(f"printf '%s\\n' {quoted} | ip -batch -")
            chunk = []
        if command:
            chunk.append(command)
    return lines


def sysctls(settings: dict[str, str]) -> list[str]:
    """Shell lines writing /proc/sys directly: builtins, no process per setting."""
    return [f"echo {v} > /proc/sys/{k.replace('.', '/')}" for k, v in settings.items()]


def no_ipv6(*intfs: str) -> dict[str, str]:
    return {f"net.ipv6.conf.{i}.disable_ipv6": "1" for i in (*NO_IPV6, *intfs)}


def links_up_lines(tries: int = LINKS_UP_TRIES) -> list[str]:
    """Shell lines that return once every interface of the node but lo is operationally up,
    and print the ones that are not if that never happens (run_lines takes it as an error).

    Mininet makes each veth pair inside the two nodes' namespaces, so both ends get small
    ifindexes: every host's eth0 is 2, and so is the port a zone's switch makes first. A
    switch's ports come up after their peers, and the kernel's link watch handles the
    carrier change of a port whose ifindex equals its peer's as not urgent, up to a second
    late; until then the bridge keeps the port disabled. A run's first frames died there
    (the BMS's first ARP, and with it the kernel's first Modbus write, which held the
    real-time clock for its 1 s connect timeout). Asking for such a link by name settles it
    at once on this kernel (measured on 6.18; a dump of all links does not); where that
    does not, the loop waits the link watch out.
    """
    pending = (
        "ip -o link | awk -F': ' '$2 != \"lo\" && !/ state UP / {sub(/@.*/, \"\", $2); print $2}'"
    )
    return [
        f'n=0; while down=$({pending}); [ -n "$down" ] && [ $n -lt {tries} ]; do '
        "for i in $down; do ip link show dev $i > /dev/null; done; n=$((n+1)); sleep 0.02; "
        'done; [ -z "$down" ] || echo "links not up: $down"'
    ]


class QuietIntf(Intf):
    """An interface Mininet records but does not configure: the node brings it up itself,
    in one shell command with everything else, rather than an ifconfig per interface."""

    def config(self, **_params: Any) -> dict[str, Any]:
        return {}


class DeviceHost(Host):
    """A device's host: its address(es), MAC and default route set in one shell command."""

    def config_lines(self) -> list[str]:
        device = self.params["device"]
        return sysctls(no_ipv6("eth0")) + ip_batch(
            [
                "link set lo up",
                f"addr add {device['ip']} dev eth0",
                # /32: one connected route, the first address's
                *(f"addr add {ip}/32 dev eth0" for ip in device["extra_ips"]),
                "link set eth0 up",
                f"route add default via {device['gateway']} dev eth0",
            ]
        )

    def configured(self) -> None:
        """Tell Mininet what the shell set, so `net`, `dump` and the CLI's names work."""
        device = self.params["device"]
        intf = self.defaultIntf()
        ip, prefix = device["ip"].split("/")
        intf.ip, intf.prefixLen, intf.mac = ip, int(prefix), device["mac"]

    def config(self, **_params: Any) -> dict[str, Any]:
        run_lines({self: self.config_lines()})
        self.configured()
        return {}


class FirewallRouter(Node):
    """The zone router: forwarding on, a leg per zone, the design's iptables rules."""

    def config_lines(self) -> list[str]:
        router = self.params["router"]
        settings = no_ipv6() | {
            "net.ipv4.ip_forward": "1",
            # hairpinned traffic leaves by the interface it came in on: no redirects for it
            "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv4.conf.default.send_redirects": "0",
        }
        commands = ["link set lo up"]
        for leg in router["legs"]:
            name = leg["intf"]
            settings |= no_ipv6(name) | {
                f"net.ipv4.neigh.{name}.proxy_delay": "0",  # answer proxy ARP at once
                f"net.ipv4.conf.{name}.proxy_arp_pvlan": "1" if leg["isolated"] else "0",
            }
            commands += [f"addr add {leg['gateway']} dev {name}", f"link set {name} up"]
        return sysctls(settings) + ip_batch(commands)

    def configured(self) -> None:
        """Load the design's rules, and tell Mininet the legs' addresses."""
        router = self.params["router"]
        for leg in router["legs"]:
            intf = self.intf(leg["intf"])
            ip, prefix = leg["gateway"].split("/")
            intf.ip, intf.prefixLen, intf.mac = ip, int(prefix), leg["mac"]
        restore = self.popen(
            ["iptables-restore", "-w"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, err = restore.communicate(router["rules"].encode())
        if restore.returncode != 0:
            raise RuntimeError(f"{self.name}: iptables-restore failed: {err.decode().strip()}")

    def config(self, **_params: Any) -> dict[str, Any]:
        run_lines({self: self.config_lines()})
        self.configured()
        return {}


class ZoneSwitch(LinuxBridge):
    """A zone's Linux bridge, built with iproute2 in one shell command: no STP, no forwarding
    delay, bridged frames kept away from iptables (filtering is the router's job alone),
    and every host port isolated where the zone is routed (micro-segmentation)."""

    @classmethod
    def setup(cls) -> None:
        """Nothing to check: iproute2 builds the bridge, and bridged frames skip iptables
        in the switch's own namespace (LinuxBridge warns about the root namespace's)."""

    def start_lines(self) -> list[str]:
        isolated = bool(self.params.get("isolated"))
        commands = [
            f"link add name {self.name} type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
        ]
        for intf in self.intfList():
            if intf.name == "lo":
                continue
            commands.append(f"link set {intf.name} master {self.name}")
            if isolated and not intf.name.endswith("-up"):
                commands.append(f"link set dev {intf.name} type bridge_slave isolated on")
            commands.append(f"link set {intf.name} up")
        commands.append(f"link set {self.name} up")
        # present only where br_netfilter is loaded
        nf = "for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e $f ] && echo 0 > $f; done"
        # started means forwarding: every port up, not merely set up
        return [*sysctls(no_ipv6()), nf, *ip_batch(commands), *links_up_lines()]

    def start(self, _controllers: Any) -> None:
        run_lines({self: self.start_lines()})

    def stop(self, deleteIntfs: bool = True) -> None:
        self.cmd(f"ip link del {self.name}")
        Node.stop(self, deleteIntfs)


def run_lines(work: dict[Any, list[str]]) -> None:
    """Run each node's lines in its shell, all nodes at once (a command is sent to every
    shell before any answer is awaited); any output is an error message."""
    pending = {node: _commands(lines) for node, lines in work.items()}
    while pending:
        for node, commands in pending.items():
            node.sendCmd(commands[0])
        failures = []
        for node, commands in pending.items():
            out = node.waitOutput()
            if out.strip():
                failures.append(f"{node.name}: {out.strip()}")
            commands.pop(0)
        if failures:
            raise RuntimeError("; ".join(failures[:5]))
        pending = {node: commands for node, commands in pending.items() if commands}


def _commands(lines: list[str]) -> list[str]:
    """Lines joined into as few commands as fit one pty line."""
    out: list[str] = []
    for line in lines:
        if out and len(out[-1]) + len(line) + 2 <= LINE_MAX:
            out[-1] += "; " + line
        else:
            out.append(line)
    return out


class FacilityTopo(Topo):
    """A facility under a design as a Mininet topology.

    `FacilityTopo(facility, design)` builds it from the twin's Facility (the twin must be
    importable then); `FacilityTopo(plan)` from the plan as plain data, which is how a
    written topology file (`twin topo`) builds it without the twin.
    """

    def __init__(self, facility: Any, design: str | None = None, **options: Any) -> None:
        if isinstance(facility, dict):
            plan = facility
        else:
            from twin.network.emulated.firewall import plan_of

            if design is None:
                raise ValueError("FacilityTopo(facility, design): which design?")
            plan = plan_of(facility, design, **options)
        self.plan = plan
        # device names hold hyphens (bms-server, cam-lobby): the CLI must read them whole,
        # or `bms-server ip addr` runs `-server ip addr` on the switch named bms
        if "-" not in CLI.identchars:
            CLI.identchars += "-"
        super().__init__(plan=plan)

    def build(self, *_args: Any, **params: Any) -> None:
        plan = params["plan"]
        router = plan["router"]
        self.addHost(router["name"], cls=FirewallRouter, router=router, inNamespace=True)
        for j, seg in enumerate(plan["segments"]):
            # LinuxBridge ignores the dpid, but Mininet's Switch wants one it can't derive
            self.addSwitch(
                seg["switch"], cls=ZoneSwitch, inNamespace=True, dpid=f"{j + 1:016x}",
                isolated=seg["isolated"],
            )  # fmt: skip
        for host in plan["hosts"]:
            self.addHost(host["name"], cls=DeviceHost, device=host, inNamespace=True)
        for seg, leg in zip(plan["segments"], router["legs"], strict=True):
            self.addLink(
                router["name"], seg["switch"], intfName1=leg["intf"], intfName2=seg["uplink"],
                addr1=leg["mac"], intf=QuietIntf,
            )  # fmt: skip
        for host in plan["hosts"]:
            self.addLink(
                host["name"], host["switch"], intfName1="eth0", intfName2=host["port"],
                addr1=host["mac"], intf=QuietIntf,
            )  # fmt: skip
