"""`twin validate`: check scenario files, every problem at once."""

from __future__ import annotations

import argparse
from typing import Any

from twin.commands.common import err, out, resolve_scenario
from twin.errors import ScenarioError

ORDER = 20


def cmd_validate(args: argparse.Namespace) -> int:
    from twin.scenario import load_scenario

    status = 0
    for arg in args.files:
        path = resolve_scenario(arg)
        try:
            spec = load_scenario(path)
        except ScenarioError as exc:
            err.print(exc.render(), markup=False)
            status = 2
        else:
            steps = len(spec.campaign.steps) if spec.campaign else 0
            out.print(
                f"{path}: ok ({spec.name}, design {spec.design}, {steps} attack steps)",
                markup=False,
                soft_wrap=True,
            )
    return status


def register(sub: Any) -> None:
    v = sub.add_parser(
        "validate",
        help="check scenario files, reporting every problem",
        description="Check scenario files; every problem is reported with its field path. Exit status 2 if any is invalid.",
    )
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)
