"""`twin fidelity`: the modelled and the emulated network compared on one scenario."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from twin.commands.common import (
    add_scenario_args,
    err,
    execute_run,
    given_overrides,
    out,
    resolve_scenario,
)
from twin.errors import InputError, TwinError
from twin.rundir import claim_results, fresh_path

ORDER = 70


def cmd_fidelity(args: argparse.Namespace) -> int:
    from functools import partial

    from twin.fidelity import compare
    from twin.run import execute

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if bool(args.scenario) == bool(args.compare):
        err.print("give a SCENARIO to run, or --compare MODELLED_DIR EMULATED_DIR (not both)")
        return 2
    if args.compare:
        modelled, emulated = (Path(d) for d in args.compare)
        target = Path(args.out) if args.out else fresh_path(Path("runs"), "fidelity", stamp)
    else:
        from twin.scenario import load_scenario

        path = resolve_scenario(args.scenario)
        overrides = given_overrides(args)
        speed = {"speed": args.speed} if args.speed is not None else {}
        # both checked before either runs; the emulated run goes first: it is the one
        # that needs root and can fail at once, the modelled one takes seconds
        specs = {
            "emulated": load_scenario(path, {**overrides, **speed, "backend": "mininet"}),
            "modelled": load_scenario(path, {**overrides, "backend": "sim"}),
        }
        spec = specs["modelled"]
        target = claim_results(
            Path(args.out)
            if args.out
            else fresh_path(
                Path("runs"), "fidelity", stamp, spec.name, spec.design, f"s{spec.seed}"
            ),
            "fidelity",
        )
        # no counterfactual run: it would emulate the whole scenario a second time
        run = partial(execute, counterfactual=False)
        for side, side_spec in specs.items():
            if not args.quiet:
                err.print(f"{side} run ({side_spec.backend}) into {target / side}")
            execute_run(run, side_spec, target / side, None, path, args.force)
        modelled, emulated = target / "modelled", target / "emulated"
    try:
        fidelity = compare(modelled, emulated)
    except InputError:
        raise
    except TwinError as exc:
        if args.compare:  # the directories were given: what is wrong with them is bad input
            raise InputError(str(exc)) from None
        raise
    fidelity.write(claim_results(target, "fidelity"))  # its own, or new: no user's file
    if not args.quiet:
        out.print(fidelity.text(), markup=False, soft_wrap=True)
        out.print(
            f"results: {target}  (fidelity.html, fidelity.json, fidelity-devices.csv, "
            "fidelity-signals.csv)",
            markup=False,
        )
    return 0


def register(sub: Any) -> None:
    fd = sub.add_parser(
        "fidelity",
        help="compare the modelled and the emulated network on one scenario",
        description="Run a scenario on the modelled (sim) and the emulated (mininet, needs root) "
        "backend with the same design and seed, and compare flow statistics per device and the "
        "physics traces; or, with --compare, compare two finished runs. Writes fidelity.json, "
        "fidelity-devices.csv, fidelity-signals.csv and fidelity.html.",
    )
    add_scenario_args(fd, optional=True, example="2h")
    fd.add_argument(
        "--speed",
        type=float,
        help="emulated run: simulated seconds per wall-clock second, e.g. 60 (default 1)",
    )
    fd.add_argument(
        "--compare",
        nargs=2,
        metavar=("MODELLED_DIR", "EMULATED_DIR"),
        help="compare two finished run directories instead of running the scenario",
    )
    fd.add_argument(
        "--out",
        metavar="DIR",
        help="results directory; the runs go to DIR/modelled and DIR/emulated "
        "(default runs/fidelity-<time>[-<name>-<design>-s<seed>])",
    )
    fd.add_argument(
        "--force",
        action="store_true",
        help="replace previous twin runs in DIR/modelled and DIR/emulated",
    )
    fd.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    fd.set_defaults(func=cmd_fidelity)
