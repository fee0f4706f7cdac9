"""What the commands share: the consoles, finding scenarios, formatting, running one scenario."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent.parent
SCENARIOS = ROOT / "scenarios"

# wide enough for the score table when the output is a file or a CI log
out = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 132)


def shipped_scenarios() -> dict[str, Path]:
    if not SCENARIOS.is_dir():
        return {}
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.yaml"))}


def resolve_scenario(arg: str) -> Path:
    path = Path(arg)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    shipped = shipped_scenarios()
    if arg in shipped:
        return shipped[arg]
    return path


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def names(text: str | None) -> list[str]:
    return [x for x in (text or "").replace(",", " ").split() if x]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def execute_run(execute: Any, spec: Any, directory: Path, progress: Any, path: Path) -> Any:
    # SIGTERM ends a run as Ctrl-C does: results kept, emulated network torn down
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return execute(spec, directory, progress, str(path))
    except KeyboardInterrupt:
        err.print(
            f"interrupted: partial results kept in {directory} (summary.json says status 'interrupted')"
        )
        raise SystemExit(130) from None
