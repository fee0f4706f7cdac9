"""The study file: its schema, its checks (every problem at once), and its expansion into runs."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from twin import __version__
from twin.errors import Problem, ScenarioError
from twin.schema import Delay, DesignSpec, Duration, Model, PlaybookSpec, ScenarioSpec


class Range(Model):
    """A numeric factor's range, for sampled designs (Latin hypercube, Morris, Sobol)."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max:g}) must be above min ({self.min:g})")
        return self


class LifecycleFactors(Model):
    """Lifecycle and operations policies, applied to the facility and scenario before a run."""

    default_credentials: list[float] | Range = Field(
        default_factory=lambda: [0.0],
        description="share of devices (0..1) left on their factory credentials, on top of "
        "those the inventory already lists",
    )
    patch_lag_days: list[float] | Range = Field(
        default_factory=lambda: [-1.0],
        description="days from a fix's release to its installation; -1: the inventory as it is",
    )
    replace_unsupported: list[bool] = Field(
        default_factory=lambda: [False],
        description="whether devices past their support end are replaced (else never patched)",
    )
    analyst_delay: list[Delay] | Range = Field(
        default_factory=list,
        description="analyst time from alert to action for every playbook; default the "
        "playbooks' own",
    )


NUMERIC = ("default_credentials", "patch_lag_days", "analyst_delay")
BOUNDS = {"default_credentials": (0.0, 1.0), "patch_lag_days": (-1.0, 3650.0)}


class SamplingSpec(Model):
    method: Literal["factorial", "lhs", "morris", "sobol"] = "factorial"
    samples: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="lhs: points; morris: trajectories; sobol: base samples (a power of 2)",
    )
    levels: int = Field(default=4, ge=2, le=16, description="morris: grid levels")


class StudySpec(Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    facility: str = Field(description="the base facility file, relative to the study file")
    scenarios: list[str] = Field(
        min_length=1, description="scenario files (relative to the study file) or shipped names"
    )
    designs: list[str] = Field(
        default_factory=list, description="designs to compare; default every design"
    )
    extra_designs: dict[str, DesignSpec] = Field(
        default_factory=dict, description="designs written in the study, added to the facility's"
    )
    baseline: str = Field(default="flat", description="the design differences are taken against")
    detector_sets: dict[str, list[str]] = Field(
        default_factory=dict, description="name -> detectors; default the scenario's own"
    )
    playbooks: list[bool] = Field(
        default_factory=lambda: [False], description="responses off (false) and/or on (true)"
    )
    responses: list[PlaybookSpec] = Field(
        default_factory=list, description="playbooks for scenarios that have none of their own"
    )
    lifecycle: LifecycleFactors = Field(default_factory=LifecycleFactors)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    duration: Duration | None = None
    warmup: Delay | None = None


@dataclass(frozen=True)
class Study:
    """A checked study: its spec, its scenarios (on the base facility), and where it came from."""

    spec: StudySpec
    scenarios: dict[str, ScenarioSpec]  # by scenario name, facility inline with extra designs
    source: Path

    @property
    def designs(self) -> list[str]:
        fac = next(iter(self.scenarios.values())).facility
        assert not isinstance(fac, str)
        return self.spec.designs or list(fac.designs)


def _resolve(ref: str, base: Path) -> Path:
    from twin.commands.common import shipped_scenarios

    path = base / ref
    if path.exists() or ref.endswith((".yaml", ".yml")):
        return path
    return shipped_scenarios().get(ref, path)


def load_study(path: str | Path) -> Study:
    """Read and check a study file; one ScenarioError listing every problem (exit 2)."""
    from twin.loader import load_yaml
    from twin.scenario import join, parse_facility, parse_scenario, pydantic_problems

    path = Path(path)
    raw = load_yaml(path, "study file")
    if not isinstance(raw, dict):
        raise ScenarioError([Problem("", "a study must be a mapping of fields")], str(path))
    problems: list[Problem] = []
    spec: StudySpec | None = None
    partial: StudySpec | None = None
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, model=StudySpec))
        # check the rest too, with the broken fields left at their defaults
        broken = {e["loc"][0] for e in exc.errors() if e["loc"]}
        try:
            partial = StudySpec.model_validate({k: v for k, v in raw.items() if k not in broken})
        except ValidationError:
            partial = None
    checked = spec or partial
    scenarios: dict[str, ScenarioSpec] = {}
    fac_raw: Any = None
    if isinstance(raw.get("facility"), str):
        try:
            fac_raw = load_yaml(path.parent / raw["facility"], "facility file")
        except ScenarioError as exc:
            problems.extend(Problem(join("facility", p.path), p.message) for p in exc.problems)
    if checked is not None and isinstance(fac_raw, dict):
        extra = {k: v.model_dump(by_alias=True) for k, v in checked.extra_designs.items()}
        clash = sorted(set(extra) & set(fac_raw.get("designs") or {}))
        problems.extend(
            Problem(f"extra_designs.{n}", "the facility already has a design of this name")
            for n in clash
        )
        fac_raw = {**fac_raw, "designs": {**(fac_raw.get("designs") or {}), **extra}}
        facility, fp = parse_facility(fac_raw, "facility")
        problems.extend(fp)
        known = list(fac_raw["designs"])
        for i, d in enumerate(checked.designs):
            if d not in known:
                problems.append(
                    Problem(f"designs[{i}]", f"unknown design {d!r}; known: {', '.join(known)}")
                )
        wanted = checked.designs or known
        if checked.baseline not in wanted:
            problems.append(
                Problem("baseline", f"{checked.baseline!r} is not among the designs compared")
            )
        overrides: dict[str, Any] = {"facility": fac_raw}
        if checked.duration is not None:
            overrides["duration"] = checked.duration
        if checked.warmup is not None:
            overrides["warmup"] = checked.warmup
        for i, ref in enumerate(checked.scenarios):
            spath = _resolve(ref, path.parent)
            try:
                sraw = load_yaml(spath, "scenario file")
            except ScenarioError as exc:
                problems.extend(
                    Problem(join(f"scenarios[{i}]", p.path), p.message) for p in exc.problems
                )
                continue
            if facility is None:
                continue
            sc, sp = parse_scenario(sraw, spath.parent, overrides)
            problems.extend(Problem(join(f"scenarios[{i}]({ref})", p.path), p.message) for p in sp)
            if sc is not None:
                if sc.name in scenarios:
                    problems.append(Problem(f"scenarios[{i}]", f"{sc.name!r} is listed twice"))
                scenarios[sc.name] = sc
    if checked is not None:
        problems.extend(_check_factors(checked))
    if problems or spec is None:
        raise ScenarioError(problems, str(path))
    return Study(spec, scenarios, path)


def _check_factors(spec: StudySpec) -> list[Problem]:
    from detectors import REGISTRY

    problems = []
    for name, dets in spec.detector_sets.items():
        for j, d in enumerate(dets):
            if d not in REGISTRY:
                problems.append(Problem(f"detector_sets.{name}[{j}]", f"unknown detector {d!r}"))
    ranges = [n for n in NUMERIC if isinstance(getattr(spec.lifecycle, n), Range)]
    lists = [n for n in NUMERIC if isinstance(getattr(spec.lifecycle, n), list)]
    if spec.sampling.method == "factorial" and ranges:
        problems += [
            Problem(f"lifecycle.{n}", "a range needs sampling.method lhs, morris or sobol")
            for n in ranges
        ]
    if spec.sampling.method != "factorial" and not ranges:
        problems.append(
            Problem("sampling.method", "sampled designs need at least one factor given as a range")
        )
    for n in lists:
        lo, hi = BOUNDS.get(n, (0.0, float("inf")))
        for j, v in enumerate(getattr(spec.lifecycle, n)):
            if not lo <= v <= hi:
                problems.append(Problem(f"lifecycle.{n}[{j}]", f"{v:g} is outside {lo:g}..{hi:g}"))
    for n in ranges:
        r = getattr(spec.lifecycle, n)
        lo, hi = BOUNDS.get(n, (0.0, float("inf")))
        if r.min < lo or r.max > hi:
            problems.append(Problem(f"lifecycle.{n}", f"the range must lie within {lo:g}..{hi:g}"))
    if spec.sampling.method == "sobol" and spec.sampling.samples & (spec.sampling.samples - 1):
        problems.append(Problem("sampling.samples", "Sobol sampling needs a power of 2"))
    if len(set(spec.seeds)) != len(spec.seeds):
        problems.append(Problem("seeds", "a seed is listed twice"))
    return problems


# --- expansion into runs ----------------------------------------------------------------------


def canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


RECORD_FORMAT = 2  # bumped when a run's record changes, so old records are not taken for new


def run_key(params: dict[str, Any], scenario: ScenarioSpec) -> str:
    """The hash of a run's canonical parameters, its scenario as checked, and the twin version.

    The scenario (with its facility) is part of it, so editing a file makes new runs.
    """
    digest = hashlib.sha256()
    digest.update(canonical(params).encode())
    digest.update(scenario.model_dump_json().encode())
    digest.update(f"{__version__}/{RECORD_FORMAT}".encode())
    return digest.hexdigest()[:20]


def problem_of(spec: StudySpec) -> dict[str, Any]:
    """SALib's problem dict for the numeric factors given as ranges."""
    names = [n for n in NUMERIC if isinstance(getattr(spec.lifecycle, n), Range)]
    bounds = [[getattr(spec.lifecycle, n).min, getattr(spec.lifecycle, n).max] for n in names]
    return {"num_vars": len(names), "names": names, "bounds": bounds}


def numeric_points(spec: StudySpec) -> tuple[list[str], np.ndarray]:
    """The sampled points of the ranged numeric factors (rows), reproducible (seeded)."""
    problem = problem_of(spec)
    s = spec.sampling
    if s.method == "lhs":
        from SALib.sample import latin

        x = latin.sample(problem, s.samples, seed=0)
    elif s.method == "morris":
        from SALib.sample import morris

        x = morris.sample(problem, s.samples, num_levels=s.levels, seed=0)
    elif s.method == "sobol":
        from SALib.sample import sobol

        x = sobol.sample(problem, s.samples, calc_second_order=False, seed=0)
    else:
        x = np.empty((1, 0))
    return problem["names"], np.asarray(x, dtype=float)


def expand(study: Study) -> list[dict[str, Any]]:
    """Every run of the study as canonical parameters (full factorial, or the sampled points)."""
    spec = study.spec
    life = spec.lifecycle
    names, points = numeric_points(spec)
    fixed = {
        n: getattr(life, n)
        for n in NUMERIC
        if n not in names and isinstance(getattr(life, n), list)
    }
    if not fixed.get("analyst_delay"):
        fixed["analyst_delay"] = [None]
    det_sets: list[str | None] = list(spec.detector_sets) or [None]
    runs = []
    for scenario, design, dets, pb, replace, (i, row) in itertools.product(
        study.scenarios,
        study.designs,
        det_sets,
        spec.playbooks,
        life.replace_unsupported,
        enumerate(points),
    ):
        sampled = {n: round(float(v), 6) for n, v in zip(names, row, strict=True)}
        for combo in itertools.product(*(fixed[n] for n in fixed)):
            levels = {**dict(zip(fixed, combo, strict=True)), **sampled}
            for seed in spec.seeds:
                runs.append({
                    "scenario": scenario, "design": design, "detectors": dets, "playbooks": pb,
                    "default_credentials": float(levels["default_credentials"]),
                    "patch_lag_days": float(levels["patch_lag_days"]),
                    "analyst_delay_s": None if levels["analyst_delay"] is None
                    else float(levels["analyst_delay"]),
                    "replace_unsupported": replace,
                    "sample": i if names else None, "seed": seed,
                })  # fmt: skip
    return runs
