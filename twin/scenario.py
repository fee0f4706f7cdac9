"""Load a scenario file, check all of it, and report every problem at once with its path."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from twin import schema
from twin.errors import Problem, ScenarioError
from twin.schema import FacilitySpec, ScenarioSpec

NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

PLACEHOLDER = "<checked separately>"


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for model in vars(schema).values():
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, info in model.model_fields.items():
                words.add(info.alias or name)
    return sorted(words)


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def field_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    vocabulary = _vocabulary()
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            msg = f"unknown field {name!r}{suggest(name, vocabulary)}"
        elif kind == "missing":
            msg = "required field is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            given = err.get("input")
            if kind not in ("value_error",) and isinstance(given, str | int | float):
                msg += f" (got {given!r})"
        problems.append(Problem(join(prefix, field_path(loc)), msg))
    return problems


def read_yaml(path: Path, what: str = "scenario file") -> Any:
    """A YAML file's data through the one bounded loader (twin.loader); ScenarioError if not."""
    from twin.loader import load_yaml

    return load_yaml(path, what)


# --- facility -------------------------------------------------------------------------------


def _expanded_names(name: str, count: int) -> list[str]:
    return [name] if count == 1 else [f"{name}-{i + 1}" for i in range(count)]


def _dicts(raw: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    items = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _typed(raw: Any, key: str, model: type[BaseModel]) -> list[tuple[int, dict[str, Any]]]:
    """The entries of raw[key] that type cleanly as `model`: cross-reference checks walk only
    these, so a wrongly typed entry is reported once (by pydantic) and never crashes them."""
    typed = []
    for i, item in _dicts(raw, key):
        try:
            model.model_validate(item)
        except ValidationError:
            continue
        typed.append((i, item))
    return typed


def _names_readable(raw: Any, key: str) -> bool:
    """Whether every entry of raw[key] is a mapping with a text name."""
    items = raw.get(key) if isinstance(raw, dict) else None
    return not isinstance(items, list) or all(
        isinstance(x, dict) and isinstance(x.get("name"), str) for x in items
    )


def _count(d: dict[str, Any]) -> int:
    c = d.get("count", 1)
    return c if isinstance(c, int) and 1 <= c <= 100_000 else 1


def room_names(raw: Any) -> tuple[set[str], set[str]]:
    """(room names, room prefixes) declared by the VAV boxes of a raw facility."""
    rooms: set[str] = set()
    prefixes: set[str] = set()
    for _, d in _dicts(raw, "devices"):  # mistyped entries too: references to them resolve
        if d.get("kind") != "vav":
            continue
        params: dict[str, Any] = d["params"] if isinstance(d.get("params"), dict) else {}
        prefix = str(params.get("room") or d.get("name"))
        prefixes.add(prefix)
        rooms.update(_expanded_names(prefix, _count(d)))
    return rooms, prefixes


def check_facility(raw: Any, prefix: str = "") -> list[Problem]:
    """Cross-reference checks pydantic cannot do; tolerant of structurally broken input."""
    from twin.devices import KINDS

    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(Problem(join(prefix, path), message))

    zones: dict[str, Any] = {}
    for i, z in _typed(raw, "zones", schema.ZoneSpec):
        name = z.get("name")
        if name in zones:
            bad(f"zones[{i}].name", f"duplicate zone {name!r}")
        try:
            net = ipaddress.ip_network(str(z.get("subnet")), strict=True)
        except ValueError:
            zones.setdefault(str(name), None)
            continue
        for other, other_net in zones.items():
            if other_net is not None and net.overlaps(other_net):
                bad(f"zones[{i}].subnet", f"{net} overlaps zone {other!r} ({other_net})")
        zones[str(name)] = net

    # a mistyped zone or device still has its name, so references to it are not "unknown";
    # only when some name cannot be read at all are those reference checks left out
    zones_named = _names_readable(raw, "zones")
    for _, z in _dicts(raw, "zones"):
        if isinstance(z.get("name"), str):
            zones.setdefault(z["name"], None)

    groups: dict[str, int] = {}
    devices: set[str] = set()
    addresses: dict[str, str] = {}
    per_zone: dict[str, int] = {}
    entries = _typed(raw, "devices", schema.DeviceSpec)
    total = sum(_count(d) for _, d in entries)
    if total > schema.MAX_DEVICES:
        bad(
            "devices", f"{total:,} devices (counting group members); at most {schema.MAX_DEVICES:,}"
        )
    for i, d in entries:
        name, count = str(d.get("name")), _count(d)
        if name in groups or name in devices:
            bad(f"devices[{i}].name", f"duplicate device name {name!r}")
        groups[name] = count
        for member in _expanded_names(name, count):
            if member in devices and member != name:
                bad(f"devices[{i}].name", f"device name {member!r} is used twice")
            devices.add(member)
    names = set(groups) | devices
    for _, d in _dicts(raw, "devices"):
        if isinstance(d.get("name"), str):
            names.update([d["name"], *_expanded_names(d["name"], _count(d))])
    refs_known = zones_named and _names_readable(raw, "devices")
    rooms, room_prefixes = room_names(raw)

    for i, d in entries:
        zone, kind_name = d.get("zone"), d.get("kind")
        if isinstance(zone, str) and zone not in zones and zones_named:
            bad(f"devices[{i}].zone", f"unknown zone {zone!r}{suggest(zone, zones)}")
        per_zone[str(zone)] = per_zone.get(str(zone), 0) + _count(d)
        kind = KINDS.get(str(kind_name))
        if isinstance(kind_name, str) and kind is None:
            bad(
                f"devices[{i}].kind",
                f"unknown device kind {kind_name!r}{suggest(kind_name, KINDS)}; "
                f"known: {', '.join(KINDS)}",
            )
        ip = d.get("ip")
        if ip is not None:
            try:
                addr = ipaddress.ip_address(str(ip))
            except ValueError:
                addr = None
            if addr is not None:
                if _count(d) > 1:
                    bad(f"devices[{i}].ip", "a fixed address needs count 1")
                if str(addr) in addresses:
                    bad(
                        f"devices[{i}].ip",
                        f"duplicate address {addr} (also {addresses[str(addr)]})",
                    )
                addresses[str(addr)] = str(d.get("name"))
                zone_net = zones.get(str(zone))
                if zone_net is not None and addr not in zone_net:
                    bad(f"devices[{i}].ip", f"{addr} is outside zone {zone!r} ({zone_net})")
        for j, svc in enumerate(d.get("services") or []):
            if svc not in schema.SERVICES:
                bad(
                    f"devices[{i}].services[{j}]",
                    f"unknown service {svc!r}{suggest(svc, schema.SERVICES)}",
                )
        params = d.get("params", {})
        if kind is not None and isinstance(params, dict):
            try:
                kind.params.model_validate(params)
            except ValidationError as exc:
                problems.extend(pydantic_problems(exc, join(prefix, f"devices[{i}].params")))
                continue  # references are checked on parameters that typed cleanly
            for key, value in params.items():  # a band is (low, high)
                if "band" in key and isinstance(value, list | tuple) and len(value) == 2:
                    low, high = value
                    numbers = isinstance(low, int | float) and isinstance(high, int | float)
                    if numbers and not low < high:
                        bad(
                            f"devices[{i}].params.{key}",
                            f"a band is [low, high] with low below high, got {list(value)}",
                        )
            for ref in kind.device_refs:
                value = params.get(ref)
                for k, target in enumerate(value if isinstance(value, list) else [value]):
                    if target is None or target in names or target in zones or not refs_known:
                        continue
                    where = f"[{k}]" if isinstance(value, list) else ""
                    bad(
                        f"devices[{i}].params.{ref}{where}",
                        f"unknown device {target!r}{suggest(str(target), names)}",
                    )
            if kind.name == "env_sensor":
                room = params.get("room")
                unknown = room not in rooms and room not in room_prefixes
                if isinstance(room, str) and unknown and refs_known:
                    bad(
                        f"devices[{i}].params.room",
                        f"unknown room {room!r}{suggest(room, rooms | room_prefixes)}",
                    )
            if kind.name == "bms":
                for k, target in enumerate(params.get("polls") or []):
                    if target not in names and target not in zones and refs_known:
                        bad(f"devices[{i}].params.polls[{k}]", f"unknown zone or device {target!r}")

    for zone, n in per_zone.items():
        capacity = zones.get(zone)
        if capacity is not None and n > capacity.num_addresses - 12:
            bad("devices", f"zone {zone!r} ({capacity}) is too small for its {n} devices")

    designs = raw.get("designs") if isinstance(raw, dict) else None
    endpoints = names | set(zones)
    for dname, design in (designs or {}).items() if isinstance(designs, dict) else []:
        if not isinstance(dname, str) or not re.match(schema.NAME, dname):
            bad(f"designs.{dname}", f"design name {dname!r} must be {NAME_RULE}")
            continue
        try:
            schema.DesignSpec.model_validate(design)
        except ValidationError:
            continue  # pydantic reports it; the checks below need a well-typed design
        for j, c in _dicts(design, "conduits"):
            for end in ("from", "to"):
                endpoint = c.get(end)
                if isinstance(endpoint, str) and endpoint not in endpoints and refs_known:
                    bad(
                        f"designs.{dname}.conduits[{j}].{end}",
                        f"unknown zone or device {endpoint!r}{suggest(endpoint, endpoints)}",
                    )
            for k, svc in enumerate(c.get("services") or []):
                if isinstance(svc, int) and not 1 <= svc <= 65535:
                    bad(
                        f"designs.{dname}.conduits[{j}].services[{k}]",
                        f"port {svc} outside 1..65535",
                    )
                elif isinstance(svc, str) and svc not in schema.SERVICES:
                    bad(
                        f"designs.{dname}.conduits[{j}].services[{k}]",
                        f"unknown service {svc!r}{suggest(svc, schema.SERVICES)}",
                    )
    return problems


def parse_facility(raw: Any, prefix: str = "") -> tuple[FacilitySpec | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [Problem(prefix, "a facility must be a mapping")]
    non_finite = {p.path: p for p in non_finite_numbers(raw, prefix)}
    problems: list[Problem] = list(non_finite.values())
    spec = None
    try:
        spec = FacilitySpec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, prefix))
    problems.extend(check_facility(raw, prefix))
    problems = [p for p in problems if p.path not in non_finite or p is non_finite[p.path]]
    return (spec if not problems else None), problems


def load_facility(path: str | Path) -> FacilitySpec:
    path = Path(path)
    spec, problems = parse_facility(read_yaml(path, "facility file"))
    if problems or spec is None:
        raise ScenarioError(problems, str(path))
    return spec


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
                problems.extend(pydantic_problems(exc, f"{path}.params"))
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


def non_finite_numbers(raw: Any, prefix: str = "") -> list[Problem]:
    """A problem for every NaN or infinity in a raw document, at its field path."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(prefix, raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(path, f"{value} is not a finite number"))
        elif isinstance(value, dict):
            stack.extend((join(path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
    return sorted(problems, key=lambda p: p.path)


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
        problems.extend(pydantic_problems(exc))

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
