"""Load a scenario file, check all of it, and report every problem at once with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from twin import schema
from twin.errors import Problem, ScenarioError
from twin.facility_checks import check_facility, load_facility, parse_facility, room_names
from twin.problems import (
    NAME_RULE,
    field_path,
    join,
    non_finite_numbers,
    pydantic_problems,
    suggest,
)
from twin.schema import FacilitySpec, ScenarioSpec

__all__ = [
    "NAME_RULE", "check_facility", "facility_of", "field_path", "join", "json_schema",
    "late_steps", "load_facility", "load_scenario", "parse_facility", "parse_scenario",
    "pydantic_problems", "read_yaml", "room_names", "suggest",
]  # fmt: skip

PLACEHOLDER = "<checked separately>"


def read_yaml(path: Path, what: str = "scenario file") -> Any:
    """A YAML file's data through the one bounded loader (twin.loader); ScenarioError if not."""
    from twin.loader import load_yaml

    return load_yaml(path, what)


# --- scenario -------------------------------------------------------------------------------


def late_steps(spec: ScenarioSpec) -> list[str]:
    """Ids of the steps timed to start when the run has ended: they will not run."""
    steps = spec.campaign.steps if spec.campaign else []
    return [s.id for s in steps if s.at is not None and s.at >= spec.duration]


def _check_campaign(
    spec: ScenarioSpec, facility: FacilitySpec, shortened: bool = False
) -> list[Problem]:
    from attacks import TECHNIQUES
    from twin.facility import Facility

    problems: list[Problem] = []
    campaign = spec.campaign
    if campaign is None:
        return problems
    site = Facility.build(facility)
    origin_zone = site.zone_of_ip(campaign.attacker.origin)
    if origin_zone is None or site.zones[origin_zone].purpose != "internet":
        problems.append(
            Problem(
                "campaign.attacker.origin", f"{campaign.attacker.origin} is not in an internet zone"
            )
        )
    ids = [s.id for s in campaign.steps]
    known_ids = set(ids)
    first_index: dict[str, int] = {}
    for i, ident in enumerate(ids):
        first_index.setdefault(ident, i)
    # a step may act from a rogue device planted by an earlier step (named by that step's id)
    positions = set(site.by_name) | {s.id for s in campaign.steps if s.technique == "rogue_device"}
    signals = _signal_names(site, spec)
    for i, step in enumerate(campaign.steps):
        path = f"campaign.steps[{i}]"
        if first_index[step.id] != i:
            problems.append(Problem(f"{path}.id", f"duplicate step id {step.id!r}"))
        technique = TECHNIQUES.get(step.technique)
        if technique is None:
            problems.append(
                Problem(
                    f"{path}.technique",
                    f"unknown technique {step.technique!r}{suggest(step.technique, TECHNIQUES)}",
                )
            )
        if (step.at is None) == (step.after is None and step.when is None):
            problems.append(
                Problem(
                    path,
                    "give 'at', or 'after' and/or 'when' (a step waits for a time, or for another step and/or a signal)",
                )
            )
        if step.when is not None:
            if (step.when.above is None) == (step.when.below is None):
                problems.append(Problem(f"{path}.when", "give exactly one of 'above' and 'below'"))
            if step.when.signal not in signals:
                problems.append(
                    Problem(
                        f"{path}.when.signal",
                        f"unknown signal {step.when.signal!r}{suggest(step.when.signal, signals)}",
                    )
                )
        if (
            step.working_hours is not None
            and not 0 <= step.working_hours[0] < step.working_hours[1] <= 24
        ):
            problems.append(
                Problem(
                    f"{path}.working_hours", f"{step.working_hours} is not a range within 0..24"
                )
            )
        if step.after is not None and step.after not in known_ids:
            problems.append(
                Problem(f"{path}.after", f"unknown step {step.after!r}{suggest(step.after, ids)}")
            )
        if step.at is not None and step.at >= spec.duration and not shortened:
            problems.append(
                Problem(
                    f"{path}.at",
                    f"{step.at:g} s is after the run ends ({spec.duration:g} s): the step "
                    "would never start",
                )
            )
        elif step.at is not None and step.at < spec.warmup:
            problems.append(
                Problem(
                    f"{path}.at",
                    f"{step.at:g} s is inside the attack-free warm-up ({spec.warmup:g} s); "
                    "detectors would learn the attack as normal",
                )
            )
        for field in ("source", "target"):
            ref = getattr(step, field)
            known = positions if field == "source" else site.by_name
            if ref is not None and ref not in known:
                label = "from" if field == "source" else field
                problems.append(
                    Problem(
                        f"{path}.{label}", f"unknown device {ref!r}{suggest(ref, site.by_name)}"
                    )
                )
        if technique is not None:
            try:
                params = technique.params.model_validate(step.params)
            except ValidationError as exc:
                problems.extend(pydantic_problems(exc, f"{path}.params", technique.params))
            else:
                for p in technique.check(step, params, site):
                    problems.append(Problem(join(path, p.path), p.message))
    problems.extend(_after_cycles(campaign.steps))
    return problems


def _after_cycles(steps: list[schema.StepSpec]) -> list[Problem]:
    """Steps whose 'after' chain never ends (it runs into a cycle); each is walked once."""
    after = {s.id: s.after for s in steps}
    ends: dict[str, bool] = {}  # id -> does its chain end (True) or cycle (False)
    for start in after:
        path: list[str] = []
        on_path: set[str] = set()
        cur: str | None = start
        while cur is not None and cur in after and cur not in ends and cur not in on_path:
            path.append(cur)
            on_path.add(cur)
            cur = after[cur]
        ends_ok = ends.get(cur, True) if cur is not None and cur in after else True
        if cur is not None and cur in on_path:
            ends_ok = False
        for ident in path:
            ends[ident] = ends_ok
    return [
        Problem(f"campaign.steps[{i}].after", f"steps wait on each other in a cycle ({s.after!r})")
        for i, s in enumerate(steps)
        if s.after is not None and not ends.get(s.id, True)
    ]


def _signal_names(site: Any, spec: ScenarioSpec) -> set[str]:
    import numpy as np

    from twin.physics.plant import Plant

    plant = Plant(site, spec.start, 0.0, 0.0, np.random.default_rng(0))
    return {n for block in plant.signals() for n in block.names}


def _check_responses(spec: ScenarioSpec) -> list[Problem]:
    names = {d if isinstance(d, str) else d.name for d in spec.detectors}
    return [
        Problem(
            f"responses[{i}].detector",
            f"{p.detector!r} is not one of this scenario's detectors ({', '.join(sorted(names)) or 'none'})",
        )
        for i, p in enumerate(spec.responses)
        if p.detector is not None and p.detector not in names
    ]


def _check_detectors(raw: Any, backend: Any = "sim") -> list[Problem]:
    """Detector names and parameters, checked on the raw list so other errors don't hide them."""
    from detectors import REGISTRY, check_params

    problems: list[Problem] = []
    ids: list[str] = []
    for i, entry in enumerate(raw if isinstance(raw, list) else []):
        name = (
            entry
            if isinstance(entry, str)
            else entry.get("name")
            if isinstance(entry, dict)
            else None
        )
        params = entry.get("params", {}) if isinstance(entry, dict) else {}
        ident = (entry.get("label") if isinstance(entry, dict) else None) or name
        if isinstance(ident, str):
            if ident in ids:
                problems.append(
                    Problem(
                        f"detectors[{i}]", f"two detectors are called {ident!r}; give one a 'label'"
                    )
                )
            ids.append(ident)
        if not isinstance(name, str):
            continue  # structural problem: pydantic reports it
        cls = REGISTRY.get(name)
        if cls is None:
            problems.append(
                Problem(f"detectors[{i}]", f"unknown detector {name!r}{suggest(name, REGISTRY)}")
            )
        elif cls.needs_captures and backend != "mininet":
            problems.append(
                Problem(
                    f"detectors[{i}]",
                    f"{name} reads packet captures, which only the emulated network makes: "
                    "run with --backend mininet (as root)",
                )
            )
        elif isinstance(params, dict):
            problems.extend(
                Problem(f"detectors[{i}].params{p.path}", p.message)
                for p in check_params(cls, params)
            )
    return problems


def _check_run_length(spec: ScenarioSpec) -> list[Problem]:
    """Work per run within the bounds of twin.schema: physics steps and intervals."""
    problems = []
    steps = spec.duration / spec.physics_step
    if steps > schema.MAX_PHYSICS_STEPS:
        problems.append(
            Problem(
                "physics_step",
                f"{spec.duration:g} s in steps of {spec.physics_step:g} s is {steps:,.0f} "
                f"physics steps; at most {schema.MAX_PHYSICS_STEPS:,} (a longer step or a "
                "shorter run)",
            )
        )
    for name in ("export_interval", "sample_interval", "batch_interval"):
        n = spec.duration / getattr(spec, name)
        if n > schema.MAX_INTERVALS:
            problems.append(
                Problem(
                    name,
                    f"{n:,.0f} intervals in {spec.duration:g} s; at most "
                    f"{schema.MAX_INTERVALS:,} (a longer interval or a shorter run)",
                )
            )
    return problems


def parse_scenario(
    raw: Any, base: Path, overrides: dict[str, Any] | None = None
) -> tuple[ScenarioSpec | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [Problem("", "a scenario must be a mapping of fields")]
    raw = {**raw, **(overrides or {})}  # None sets a field to null (e.g. campaign: no attack)
    problems: list[Problem] = []

    # one walk finds every .nan and .inf, wherever it is (free-form params too); the
    # typed layer's own complaint about the same field is then left out
    non_finite = {
        p.path: p for p in non_finite_numbers({k: v for k, v in raw.items() if k != "facility"})
    }
    problems.extend(non_finite.values())

    facility_raw = raw.get("facility")
    facility: FacilitySpec | None = None
    if isinstance(facility_raw, str):
        try:
            loaded = read_yaml((base / facility_raw).resolve(), "facility file")
        except ValueError:  # a NUL byte in the path
            problems.append(Problem("facility", f"not a valid file path: {facility_raw!r}"))
        except ScenarioError as exc:
            problems.extend(
                Problem(join(f"facility({facility_raw})", p.path), p.message) for p in exc.problems
            )
        else:
            facility, fp = parse_facility(loaded, f"facility({facility_raw})")
            problems.extend(fp)
    elif isinstance(facility_raw, dict):
        facility, fp = parse_facility(facility_raw, "facility")
        problems.extend(fp)
    elif "facility" in raw:
        problems.append(Problem("facility", "give a facility file path or an inline facility"))

    scenario_raw = {**raw, "facility": PLACEHOLDER}
    if "facility" not in raw:
        scenario_raw.pop("facility")
    spec = None
    try:
        spec = ScenarioSpec.model_validate(scenario_raw)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, model=ScenarioSpec))

    problems.extend(_check_detectors(raw.get("detectors"), raw.get("backend", "sim")))
    if spec is not None:
        problems.extend(_check_run_length(spec))
        if spec.warmup >= spec.duration:
            problems.append(
                Problem(
                    "warmup",
                    f"warm-up ({spec.warmup:g} s) must be shorter than the duration ({spec.duration:g} s)",
                )
            )
        for name in ("export_interval", "sample_interval"):
            value = getattr(spec, name)
            if abs(value / spec.physics_step - round(value / spec.physics_step)) > 1e-9:
                problems.append(
                    Problem(
                        name,
                        f"{value:g} s is not a multiple of physics_step ({spec.physics_step:g} s)",
                    )
                )
    if spec is not None and facility is not None:
        if spec.design not in facility.designs:
            problems.append(
                Problem(
                    "design",
                    f"unknown design {spec.design!r}{suggest(spec.design, facility.designs)}; "
                    f"the facility has: {', '.join(facility.designs)}",
                )
            )
        # a run cut short by an override may end before late steps: the CLI says so
        shortened = "duration" in (overrides or {})
        problems.extend(_check_campaign(spec, facility, shortened))
        problems.extend(_check_responses(spec))
    problems = [p for p in problems if p.path not in non_finite or p is non_finite[p.path]]
    if problems or spec is None or facility is None:
        return None, problems
    return spec.model_copy(update={"facility": facility}), []


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> ScenarioSpec:
    """Read and check a scenario file; raise one ScenarioError listing every problem."""
    path = Path(path)
    raw = read_yaml(path)
    spec, problems = parse_scenario(raw, path.parent, overrides)
    if problems or spec is None:
        raise ScenarioError(problems, str(path))
    return spec


def facility_of(spec: ScenarioSpec) -> FacilitySpec:
    if not isinstance(spec.facility, FacilitySpec):
        raise TypeError("scenario was not loaded through load_scenario")
    return spec.facility


def json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, for editors."""
    out = ScenarioSpec.model_json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "twin scenario"
    out["description"] = (
        "A twin scenario. Bounds, so that any valid scenario finishes in bounded time and "
        "memory: " + "; ".join(f"{k}: {v}" for k, v in schema.BOUNDS.items()) + "."
    )
    out["x-twin-bounds"] = dict(schema.BOUNDS)
    return out
