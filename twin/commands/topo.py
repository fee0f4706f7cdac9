"""`twin topo`: write a scenario's network as a Mininet topology file `mn --custom` opens."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from twin.commands.common import out, resolve_scenario
from twin.errors import InputError

ORDER = 75

MARK = "(written by `twin topo`)"  # on the first line: what may be replaced
HEADER = '''"""{facility} under design {design!r}, as a Mininet topology (written by `twin topo`).

Open it on its own with Mininet (root):

    sudo mn --custom {name} --topo facility --switch lxbr --controller none

then, at the mininet> prompt: `nodes`, `net`, `{example} ping ...`, `py net.hosts`.
The hosts carry the devices' addresses and MACs; the router holds the design's
iptables rules (`{router} iptables -S`). The devices' services are not running here:
`twin run SCENARIO --backend mininet --cli` opens the same prompt on a live run.
"""

'''

FOOTER = """

PLAN = json.loads({plan!r})

topos = {{"facility": lambda: FacilityTopo(PLAN)}}
"""


def topology_file(plan: dict[str, Any], name: str) -> str:
    """A self-contained Python file: the FacilityTopo module's code, then the plan as data."""
    from twin.network.emulated import mininet_topo

    source = Path(mininet_topo.__file__).read_text(encoding="utf-8")
    # the module's own docstring gives way to one saying what this file is
    body = source.split('"""', 2)[2].lstrip("\n")
    example = next((h["name"] for h in plan["hosts"] if h["role"] == "device"), "h1")
    head = HEADER.format(
        facility=plan["facility"], design=plan["design"], name=name, example=example,
        router=plan["router"]["name"],
    )  # fmt: skip
    plan_text = json.dumps(plan, separators=(",", ":"), sort_keys=True)
    return (
        head
        + body.replace("import subprocess\n", "import json\nimport subprocess\n", 1)
        + (FOOTER.format(plan=plan_text))
    )


def written_by_us(path: Path) -> bool:
    """Whether `path` is a topology file this command wrote (its first line says so)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            first = f.readline(500)
    except OSError:
        return False
    return first.startswith('"""') and MARK in first


def cmd_topo(args: argparse.Namespace) -> int:
    from twin.facility import Facility
    from twin.network.emulated.firewall import plan_of
    from twin.scenario import facility_of, load_scenario

    overrides = {"design": args.design, "hosts": args.hosts}
    spec = load_scenario(
        resolve_scenario(args.scenario), {k: v for k, v in overrides.items() if v is not None}
    )
    facility = Facility.build(facility_of(spec))
    campaign = spec.campaign
    attacker = (campaign.attacker.name, campaign.attacker.origin) if campaign else None
    plan = plan_of(facility, spec.design, attacker=attacker, share_groups=spec.hosts == "group")
    target = Path(args.output)
    try:
        if target.is_dir():
            raise InputError(f"{target} is a directory; give a file name for the topology")
        if target.exists() and not written_by_us(target):
            raise InputError(
                f"{target} exists and is not a topology twin topo wrote: "
                "give a new file name (twin topo never replaces other files)"
            )
        # whole or not at all: a topology cut short would not open in mn
        part = target.with_name(target.name + ".part")
        part.write_text(topology_file(plan, target.name), encoding="utf-8")
        os.replace(part, target)
    except ValueError:  # a NUL byte in the path
        raise InputError(f"not a valid file path: {args.output!r}") from None
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    out.print(
        f"wrote {target}: {len(plan['hosts'])} hosts, {len(plan['segments'])} zone switches "
        f"and router {plan['router']['name']!r} ({facility.name}, design {spec.design}); open it "
        f"with: sudo mn --custom {target} --topo facility --switch lxbr --controller none"
    )
    return 0


def register(sub: Any) -> None:
    tp = sub.add_parser(
        "topo",
        help="write the scenario's network as a Mininet topology file (mn --custom)",
        description="Write the facility and design of a scenario as a Mininet topology: a host "
        "per device (and the attacker's origin), a Linux bridge per zone, the firewall router "
        "with the design's iptables rules. The file needs only Mininet: `sudo mn --custom FILE "
        "--topo facility --switch lxbr --controller none` opens it.",
    )
    tp.add_argument(
        "scenario",
        help="scenario file, or the name of a shipped scenario (see: twin list scenarios)",
    )
    tp.add_argument("--design", help="segmentation design to use (overrides the scenario)")
    tp.add_argument(
        "--hosts",
        choices=["device", "group"],
        help="a host per device (default), or one per device group",
    )
    tp.add_argument(
        "-o", "--output", default="facility_topo.py", metavar="FILE",
        help="where to write it (default facility_topo.py)",
    )  # fmt: skip
    tp.set_defaults(func=cmd_topo)
