"""A small harness for technique tests: the harbour-dc site, a campaign, an engine, the truth."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from twin.engine import Engine
from twin.errors import ScenarioError
from twin.responses import Action
from twin.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[2]
HARBOUR = yaml.safe_load((ROOT / "scenarios" / "facilities" / "harbour-dc.yaml").read_text())
ORIGIN = "198.51.100.66"


def facility(change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """A fresh copy of the harbour-dc facility, optionally changed in place by `change`."""
    fac = copy.deepcopy(HARBOUR)
    if change is not None:
        change(fac)
    return fac


def device(fac: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in fac["devices"] if d["name"] == name)


def engine(
    steps: list[dict[str, Any]],
    design: str = "flat",
    fac: dict[str, Any] | None = None,
    duration: str = "4h",
    warmup: str = "1h",
    seed: int = 1,
    **fields: Any,
) -> Engine:
    """An engine for a scenario built from `steps` (checked exactly like a user's file)."""
    raw = {
        "name": "technique-test",
        "facility": fac if fac is not None else facility(),
        "design": design,
        "duration": duration,
        "warmup": warmup,
        "seed": seed,
        "start": "2026-01-12T08:00:00",
        "campaign": {"attacker": {"name": "intruder", "origin": ORIGIN}, "steps": steps},
        **fields,
    }
    spec, problems = parse_scenario(raw, ROOT / "scenarios")
    if problems or spec is None:
        raise ScenarioError(problems, "technique-test")
    return Engine(spec)


def run(
    e: Engine, until: float | None = None, actions: Sequence[tuple[float, Action]] = ()
) -> pd.DataFrame:
    """Run to `until` (default the end), applying actions at their times; return truth by step."""
    for t, action in actions:
        e.schedule(action, t)
    e.run_until(until if until is not None else e.spec.duration)
    return e.truth().set_index("step_id")


def skipped(e: Engine) -> dict[str, str]:
    """Steps whose precondition failed: step id -> reason."""
    return {s["step_id"]: s["reason"] for s in (e.campaign.skipped if e.campaign else [])}
