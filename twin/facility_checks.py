"""Facility files: structure through pydantic, then the cross-references it cannot check.

Cross-reference checks walk only the entries that typed cleanly, so a wrongly typed entry is
one problem and never a crash; the names of mistyped entries still resolve references.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from twin import schema
from twin.errors import Problem, ScenarioError
from twin.loader import load_yaml
from twin.problems import NAME_RULE, join, non_finite_numbers, pydantic_problems, suggest
from twin.schema import FacilitySpec


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
                problems.extend(
                    pydantic_problems(exc, join(prefix, f"devices[{i}].params"), kind.params)
                )
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
        problems.extend(pydantic_problems(exc, prefix, FacilitySpec))
    problems.extend(check_facility(raw, prefix))
    problems = [p for p in problems if p.path not in non_finite or p is non_finite[p.path]]
    return (spec if not problems else None), problems


def load_facility(path: str | Path) -> FacilitySpec:
    path = Path(path)
    spec, problems = parse_facility(load_yaml(path, "facility file"))
    if problems or spec is None:
        raise ScenarioError(problems, str(path))
    return spec
