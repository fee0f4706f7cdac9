"""The `twin` command line: the parser of every command, and the one error boundary."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from twin import __version__
from twin.commands import modules
from twin.commands.common import err, ignore_signals
from twin.errors import InputError, ScenarioError, TwinError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = f"""\
Start with: twin run flagship   (then open the report it names)

exit status:
  {EXIT_OK}    done
  {EXIT_FAILED}    the run or the network backend failed (the message says why)
  {EXIT_INPUT}    invalid input: a scenario, a path, a flag or a data file (nothing ran)
  {EXIT_BUG}    a bug in the twin: a traceback, and a request to report it
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C or SIGTERM): what was computed is kept
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twin",
        description="A cyber-physical digital twin of a facility: attack it, detect, score.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"twin {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in modules():
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, and turn every way it can end into one line and an exit status.

    Expected failures (bad input, a failed run, an interruption) are one clear line; only a
    bug shows a traceback, and then with a request to report it.
    """
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScenarioError as exc:
        err.print(exc.render(), markup=False)
        return EXIT_INPUT
    except InputError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_INPUT
    except TwinError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        ignore_signals()
        err.print("interrupted", markup=False)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `twin schema | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return EXIT_OK
    except MemoryError:
        err.print("error: out of memory; try a smaller site or a shorter run", markup=False)
        return EXIT_FAILED
    except Exception:
        traceback.print_exc()
        err.print(
            f"this is a bug in twin {__version__}: please report it to the twin maintainers, "
            "with the traceback above and the command you ran",
            markup=False,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
