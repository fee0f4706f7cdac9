"""Evidence: what an alert cites and what an attack step caused, in one vocabulary of tokens.

A token is `flow:<flow_id>`, `event:<event_id>` or `signal:<name>`. Detectors put the
tokens of what they saw into `Alert.evidence`; the truth table records, per step, the flows
and events it caused and the process signals it changed (`signal:health.<device>` is the
device's availability, which a flood takes away). Scoring joins the two.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from twin.facility import Facility
from twin.physics.plant import member_name

MAX_TOKENS = 200  # per kind and alert: enough to name what it saw, bounded on a flood


def flows(ids: Iterable[int] | pd.Series) -> tuple[str, ...]:
    """Tokens for flow ids (the first MAX_TOKENS distinct ones, in order)."""
    return tuple(f"flow:{int(i)}" for i in list(dict.fromkeys(ids))[:MAX_TOKENS])


def events(ids: Iterable[int] | pd.Series) -> tuple[str, ...]:
    return tuple(f"event:{int(i)}" for i in list(dict.fromkeys(ids))[:MAX_TOKENS])


def signals(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(f"signal:{n}" for n in list(dict.fromkeys(names))[:MAX_TOKENS])


def health(device: str) -> str:
    """The pseudo-signal of a device's availability (answers its polls or not)."""
    return f"health.{device}"


def firmware(device: str) -> str:
    """The pseudo-signal of the image a device runs (its attestation reports it)."""
    return f"firmware.{device}"


def join(tokens: Iterable[str]) -> str:
    return " ".join(tokens)


def split(cell: object) -> frozenset[str]:
    """Tokens of a stored cell (space-joined, or still a sequence), tolerating missing values."""
    if isinstance(cell, str):
        return frozenset(cell.split())
    if isinstance(cell, (tuple, list, set, frozenset)):
        return frozenset(str(x) for x in cell)
    return frozenset()


def caused(flow_ids: Iterable[int], event_ids: Iterable[int], names: object) -> frozenset[str]:
    """Every token a step caused, from its truth row's columns."""
    return frozenset(
        [f"flow:{int(i)}" for i in flow_ids]
        + [f"event:{int(i)}" for i in event_ids]
        + [f"signal:{n}" for n in split(names)]
    )


def device_signals(facility: Facility) -> dict[str, frozenset[str]]:
    """The process signals each device's control acts on (by the same layout as the plant).

    A VAV moves its room's temperature and its damper; an AHU its supply air and every room
    it feeds; a PLC its tank; a door controller its door; an environment sensor reports its
    room. A write to a device changes these, so an alert on them is evidence of that write.
    """
    size = {g: len(m) for g, m in facility.groups.items()}
    out: dict[str, set[str]] = {}
    for v in facility.of_kind("vav"):
        room = member_name(v.params.room or v.group, v.member, size[v.group])
        mine = {f"room.{room}.temp_c", f"room.{room}.co2_ppm", f"vav.{v.name}.damper_pct"}
        out.setdefault(v.name, set()).update(mine)
        ahu = facility.pick(v.params.ahu, v.member).name
        out.setdefault(ahu, set()).update(mine)
    for a in facility.of_kind("ahu"):
        out.setdefault(a.name, set()).update(
            {f"ahu.{a.name}.supply_air_c", f"ahu.{a.name}.supply_air_setpoint_c"}
        )
    for p in facility.of_kind("plc"):
        tank = member_name(p.params.tank or p.group, p.member, size[p.group])
        out[p.name] = {f"tank.{tank}.{s}" for s in ("level_m", "pump_on", "alarm")}
    for c in facility.of_kind("door_controller"):
        door = member_name(c.params.door or c.group, c.member, size[c.group])
        out[c.name] = {f"door.{door}.open", f"door.{door}.locked"}
    for s in facility.of_kind("env_sensor"):
        room = member_name(s.params.room, s.member, size[s.group])
        out[s.name] = {f"room.{room}.temp_c", f"room.{room}.co2_ppm"}
    return {k: frozenset(v) for k, v in out.items()}
