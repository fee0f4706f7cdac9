"""`twin reap`: remove exactly what emulated runs killed outright left behind."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twin.commands.common import out
from twin.errors import InputError

ORDER = 80


def cmd_reap(args: argparse.Namespace) -> int:
    from twin.network.emulated import STATE_NAME, reap, stale_states

    where = Path(args.dir or "runs")
    try:
        exists = where.is_dir()
    except ValueError:  # a NUL byte in the path
        raise InputError(f"not a valid directory path: {args.dir!r}") from None
    if not exists and args.dir is None:  # no runs yet in this directory: nothing to reap
        out.print(f"nothing to reap: there is no {where} directory here")
        return 0
    if not exists:
        raise InputError(f"{where} is not a directory: give a run directory or a directory of runs")
    states = [where / STATE_NAME] if (where / STATE_NAME).exists() else stale_states(where)
    if not states:
        out.print(f"nothing to reap under {where}: no emulated run there was killed outright")
        return 0
    for state in states:
        done = reap(state)
        out.print(
            f"reaped {state.parent}: {done.processes} processes, {done.namespaces} Mininet nodes"
        )
    return 0


def register(sub: Any) -> None:
    rp = sub.add_parser(
        "reap",
        help="remove what emulated runs killed outright (SIGKILL) left behind",
        description="Every emulated run records the Mininet nodes and processes it makes in its "
        "directory (emulated-state.json) and removes them when it ends, even on Ctrl-C or an "
        "error. A run killed outright cannot: this removes exactly what its record lists. "
        "DIR is one run directory or a directory of runs (default: runs). Needs root.",
    )
    rp.add_argument("dir", nargs="?", default=None, metavar="DIR")
    rp.set_defaults(func=cmd_reap)
