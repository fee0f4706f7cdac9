"""The `twin` command line: the parser of every command, and the one error boundary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from twin import __version__
from twin.commands import modules
from twin.commands.common import err
from twin.errors import ScenarioError, TwinError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twin",
        description="A cyber-physical digital twin of a facility: attack it, detect, score.",
        epilog="Start with: twin run flagship   (then open the report it names)",
    )
    p.add_argument("--version", action="version", version=f"twin {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in modules():
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScenarioError as exc:
        err.print(exc.render(), markup=False)
        return 2
    except TwinError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
