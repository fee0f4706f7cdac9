"""Lifecycle and operations policies applied to a scenario as data, before it runs.

- default credentials: a share of the site's devices left on factory passwords. Devices are
  taken in one fixed order (a hash of their group name), so a larger share always holds the
  smaller one's devices: more default credentials can only add footholds.
- patch lag: a device whose vendor and model match a known exploited vulnerability, with
  firmware older than the fix, runs the fixed firmware when the run starts at least `lag`
  days after the fix was published; devices past their support end get no fixes unless the
  policy replaces them. A lag of -1 leaves the inventory as it is.
- analyst delay: every playbook's time from alert to action.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from typing import Any

from twin.audit import KnownExploited, known_exploited, matches
from twin.schema import DeviceSpec, FacilitySpec, PlaybookSpec, ScenarioSpec


def _rank(name: str) -> str:
    return hashlib.sha256(f"lifecycle/{name}".encode()).hexdigest()


def eligible(facility: FacilitySpec) -> list[DeviceSpec]:
    """The site's own devices (not the internet's), in the fixed order shares are taken in."""
    internet = {z.name for z in facility.zones if z.purpose == "internet"}
    return sorted(
        (d for d in facility.devices if d.zone not in internet and d.kind != "cloud"),
        key=lambda d: _rank(d.name),
    )


def with_default_credentials(facility: FacilitySpec, share: float) -> FacilitySpec:
    """The facility with at least `share` of its devices on factory credentials (nested)."""
    if share <= 0:
        return facility
    groups = eligible(facility)
    total = sum(d.count for d in groups)
    want = math.ceil(share * total - 1e-9)
    chosen: set[str] = set()
    taken = 0
    for d in groups:
        if taken >= want:
            break
        chosen.add(d.name)
        taken += d.count
    devices = [
        d.model_copy(update={"credentials": "default"}) if d.name in chosen else d
        for d in facility.devices
    ]
    return facility.model_copy(update={"devices": devices})


def patched(
    facility: FacilitySpec,
    lag_days: float,
    start: dt.date,
    replace_unsupported: bool,
    table: list[KnownExploited] | None = None,
) -> FacilitySpec:
    """The facility as a site that installs fixes `lag_days` after release would run it."""
    if lag_days < 0 and not replace_unsupported:
        return facility
    rows = known_exploited() if table is None else table
    devices = []
    for d in facility.devices:
        update: dict[str, Any] = {}
        unsupported = d.support_end is not None and d.support_end < start
        if unsupported and replace_unsupported:
            # the replacement is a supported unit of the same model line
            update["support_end"] = start + dt.timedelta(days=5 * 365)
            unsupported = False
        if lag_days >= 0 and not unsupported:
            firmware = d.firmware
            for row in rows:
                if matches(row, d.vendor, d.model, firmware) and start >= row.date_added + (
                    dt.timedelta(days=lag_days)
                ):
                    firmware = row.fixed_in
            if firmware != d.firmware:
                update["firmware"] = firmware
        devices.append(d.model_copy(update=update) if update else d)
    return facility.model_copy(update={"devices": devices})


def apply(
    spec: ScenarioSpec,
    run: dict[str, Any],
    responses: list[PlaybookSpec],
    detector_sets: dict[str, list[str]],
) -> ScenarioSpec:
    """The scenario of one study run: design, detectors, playbooks, lifecycle, seed."""
    facility = spec.facility
    assert isinstance(facility, FacilitySpec)
    facility = with_default_credentials(facility, run["default_credentials"])
    facility = patched(
        facility, run["patch_lag_days"], spec.start.date(), run["replace_unsupported"]
    )
    playbooks = (spec.responses or responses) if run["playbooks"] else []
    if run["analyst_delay_s"] is not None:
        playbooks = [p.model_copy(update={"delay": run["analyst_delay_s"]}) for p in playbooks]
    update: dict[str, Any] = {
        "facility": facility,
        "design": run["design"],
        "seed": run["seed"],
        "responses": playbooks,
    }
    if run["detectors"] is not None:
        update["detectors"] = list(detector_sets[run["detectors"]])
    return spec.model_copy(update=update)
