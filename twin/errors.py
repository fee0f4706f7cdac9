"""The one error hierarchy of the twin: bad input, run-time failures, backend failures."""

from __future__ import annotations

from dataclasses import dataclass


class TwinError(Exception):
    """Base of every error the twin raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, located by its field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(TwinError):
    """Bad input other than a scenario's content: a path, a data file, a flag (exit status 2)."""


class ScenarioError(InputError):
    """A scenario (or facility) is invalid; raised before anything runs, listing every problem."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        n = len(self.problems)
        lines = [f"{head}{n} problem{'s' if n != 1 else ''} found"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class SimulationError(TwinError):
    """Something went wrong while a run was under way."""


class BackendError(TwinError):
    """The network backend (modelled or emulated) failed."""
