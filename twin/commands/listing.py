"""`twin list`: shipped scenarios, device kinds, detectors, techniques."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from twin.commands.common import out, shipped_scenarios
from twin.errors import ScenarioError

ORDER = 90


def cmd_list(args: argparse.Namespace) -> int:
    from attacks import TECHNIQUES
    from detectors import REGISTRY
    from twin.devices import KINDS
    from twin.scenario import read_yaml

    what = args.what
    if what in ("all", "scenarios"):
        t = Table(title="scenarios")
        t.add_column("name")
        t.add_column("story")
        for name, path in shipped_scenarios().items():
            try:
                raw = read_yaml(path)
                story = (
                    str(raw.get("story", "")).strip().split(". ")[0]
                    if isinstance(raw, dict)
                    else ""
                )
            except ScenarioError:
                story = "(does not parse: run twin validate)"
            t.add_row(name, story)
        out.print(t)
    if what in ("all", "kinds"):
        t = Table(title="device kinds")
        for col in ("kind", "services", "registers", "what it is"):
            t.add_column(col)
        for name, kind in KINDS.items():
            t.add_row(name, ",".join(kind.services), str(len(kind.registers)), kind.summary)
        out.print(t)
    if what in ("all", "detectors"):
        t = Table(title="detectors")
        t.add_column("name")
        t.add_column("what it flags")
        for name, cls in REGISTRY.items():
            t.add_row(name, cls.summary)
        out.print(t)
    if what in ("all", "techniques"):
        t = Table(title="attack techniques")
        for col in ("name", "ATT&CK for ICS", "what it does"):
            t.add_column(col)
        for name, tech in TECHNIQUES.items():
            t.add_row(name, tech.technique_id, tech.summary)
        out.print(t)
    return 0


def register(sub: Any) -> None:
    ls = sub.add_parser(
        "list",
        help="list shipped scenarios, device kinds, detectors, techniques",
        description="List what the twin knows.",
    )
    ls.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "scenarios", "kinds", "detectors", "techniques"],
    )
    ls.set_defaults(func=cmd_list)
