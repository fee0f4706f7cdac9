"""What the commands share: the consoles, finding scenarios, formatting, running one scenario."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent.parent
SCENARIOS = ROOT / "scenarios"

# wide enough for the score table when the output is a file or a CI log
out = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
# problems are one line each, whatever the width: a log or a pipe gets them unwrapped
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 100_000)


def shipped_scenarios() -> dict[str, Path]:
    if not SCENARIOS.is_dir():
        return {}
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.yaml"))}


def resolve_scenario(arg: str) -> Path:
    """A scenario file's path: `arg` itself, or the shipped scenario of that name."""
    from twin.errors import InputError

    path = Path(arg)
    try:
        exists = path.exists()
    except ValueError:  # a NUL byte in the path
        raise InputError(f"not a valid file path: {arg!r}") from None
    if exists or path.suffix in (".yaml", ".yml"):
        return path
    shipped = shipped_scenarios()
    if arg in shipped:
        return shipped[arg]
    return path


OVERRIDES = ("design", "duration", "seed", "warmup")  # what every scenario command overrides


def add_scenario_args(parser: Any, *, optional: bool = False, example: str = "6h") -> None:
    """The scenario argument and the overrides every command that runs one accepts."""
    parser.add_argument(
        "scenario",
        nargs="?" if optional else None,
        help="scenario file, or the name of a shipped scenario (see: twin list scenarios)",
    )
    parser.add_argument("--design", help="segmentation design to use (overrides the scenario)")
    parser.add_argument(
        "--duration", help=f"simulated duration, e.g. {example}, 90m (overrides the scenario)"
    )
    parser.add_argument("--seed", type=int, help="random seed (overrides the scenario)")
    parser.add_argument(
        "--warmup", help="attack-free learning time, e.g. 1h (overrides the scenario)"
    )


def given_overrides(args: Any, *extra: str) -> dict[str, Any]:
    """The overrides given on the command line (OVERRIDES plus `extra`), by scenario field."""
    return {k: getattr(args, k) for k in (*OVERRIDES, *extra) if getattr(args, k, None) is not None}


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def names(text: str | None) -> list[str]:
    return [x for x in (text or "").replace(",", " ").split() if x]


def execute_run(
    execute: Any, spec: Any, directory: Path, progress: Any, path: Path, force: bool = False
) -> Any:
    """One run through `execute`; Ctrl-C or SIGTERM finish it in order, exit status 130.

    The first signal interrupts the run, which then writes what it computed; signals after
    it only hurry the user, never break that writing (twin.rundir.interruptible).
    """
    from twin.rundir import interruptible

    try:
        with interruptible():
            return execute(spec, directory, progress, str(path), force=force)
    except KeyboardInterrupt:
        ignore_signals()
        err.print(f"interrupted: {interrupted_outcome(directory)}", markup=False)
        raise SystemExit(130) from None


def ignore_signals() -> None:
    """On the way out after an interruption: a late SIGINT or SIGTERM must not kill the
    process (exit status 130, not death by signal), even during interpreter shutdown, which
    resets Python-level handlers but leaves ignored signals ignored."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def interrupted_outcome(directory: Path) -> str:
    """What an interrupted run left in `directory`, said as it is."""
    import json

    try:
        summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
        status = summary["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"the run had not started writing results; nothing was kept in {directory}"
    return (
        f"partial results kept in {directory} "
        f"(summary.json says status {status!r}, {summary.get('simulated_s', 0) / 3600:.2f} h "
        "simulated)"
    )
