"""What an attack step works with: the attacker's holdings, its context, its outcome.

Attack techniques (attacks/) import these; the campaign (twin/campaign.py) builds them and
runs the techniques, so the dependency goes one way: campaign -> attacks -> steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from twin.faces import Faces
from twin.facility import Facility
from twin.network.base import Network
from twin.network.policy import Policy
from twin.physics.plant import Plant
from twin.schema import StepSpec
from twin.telemetry import EventLog


@dataclass
class Attacker:
    """What the attacker holds: where they stand, what they found, which secrets they know."""

    name: str
    origin: str  # IP outside the site
    footholds: list[str] = field(
        default_factory=list
    )  # positions (device or rogue names), in order
    positions: dict[str, str] = field(default_factory=dict)  # position name -> IP
    known: dict[str, set[int]] = field(default_factory=dict)  # ip -> open ports found
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # device -> (user, password)
    controlled: list[str] = field(default_factory=list)  # devices whose control they changed
    captured: dict[tuple[str, str], int] = field(default_factory=dict)  # (device, register) -> raw
    bots: list[str] = field(default_factory=list)  # recruited devices, held but not stepped from

    def gain(self, name: str, ip: str, foothold: bool = True) -> None:
        """Hold a position. A foothold becomes where later steps act from; a bot does not."""
        if name not in self.positions:
            (self.footholds if foothold else self.bots).append(name)
        self.positions[name] = ip

    def holds(self, position: str) -> bool:
        """Still there? (The origin is always held; a response may evict the rest.)"""
        return position == self.name or position in self.positions

    def lose(self, name: str) -> bool:
        """Evict the attacker from a position; True if they held it."""
        if name not in self.positions:
            return False
        del self.positions[name]
        for held in (self.footholds, self.bots):
            if name in held:
                held.remove(name)
        return True


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    target: str
    target_ip: str
    blocked_by: str = ""
    detail: str = ""


class PhysicalChannel:
    """Out-of-band access: USB/serial/debug ports and switch ports. No network traffic."""

    def __init__(self, env: simpy.Environment, facility: Facility, faces: Faces, plant: Plant,
                 events: EventLog, policy: Policy) -> None:  # fmt: skip
        self.env = env
        self.facility = facility
        self.faces = faces
        self.plant = plant
        self.events = events
        self.policy = policy

    def reachable(self, device: str) -> str | None:
        """Why a device's ports cannot be reached unseen (None when they can)."""
        d = self.facility.by_name[device]
        if d.physical_access != "unmonitored":
            return f"{d.name} is in a secured area"
        return None

    def flash(self, device: str, version: str, digest: str, implant: str, cause: str) -> None:
        self.faces.firmware[device] = (version, digest)
        self.faces.implants[device] = implant

    def plug(self, zone: str, ip: str, mac: str, cause: str) -> bool:
        """Connect a device to a switch port; False when port security refuses it."""
        t = self.env.now
        if zone in self.policy.port_security:
            self.events.add(
                t,
                f"switch-{zone}",
                "",
                "port_security_violation",
                src_ip=ip,
                detail=mac,
                cause=cause,
            )
            return False
        self.events.add(t, f"switch-{zone}", "", "new_device", src_ip=ip, detail=mac, cause=cause)
        return True

    def open_door(self, door: int, cause: str) -> bool:
        """Walk through a door; True if it was unlocked (a locked door is forced and alarms).

        The door controller logs the opening as access-control systems do, so it is on
        record even when a sampled process table misses a few seconds of 'open'.
        """
        doors = self.plant.doors
        name = self.plant.door_names[door]
        ctrl = self.facility.of_kind("door_controller")[door]
        doors.pending[door] = 1.0  # the door contact sees it open over the next step
        t = self.env.now
        if doors.locked[door] > 0:
            doors.forced_alarm[door] = 1.0
            self.events.add(
                t, ctrl.name, ctrl.ip, "alarm_raised", detail="forced_open", cause=cause
            )
            return False
        doors.unbadged_entries[door] += 1
        self.events.add(
            t, ctrl.name, ctrl.ip, "door_open", detail=f"{name} unlocked, no badge", cause=cause
        )
        return True


@dataclass
class StepContext:
    """What an attack step may use: the network backend, a physical channel, the clock."""

    env: simpy.Environment
    net: Network
    physical: PhysicalChannel
    facility: Facility  # to resolve names the scenario author wrote; not the attacker's knowledge
    attacker: Attacker
    step: StepSpec
    params: Any
    rng: np.random.Generator

    @property
    def source(self) -> tuple[str, str]:
        """(name, ip) the step acts from: its 'from', else the latest foothold, else the origin."""
        name = self.step.source or (
            self.attacker.footholds[-1] if self.attacker.footholds else None
        )
        if name is None:
            return self.attacker.name, self.attacker.origin
        return name, self.attacker.positions[name]

    @property
    def target(self) -> Any:
        return self.facility.by_name[self.step.target or ""]

    def pause(self, seconds: float) -> simpy.Timeout:
        """Wait about `seconds`, randomised by the step's jitter (a quieter, less regular attacker)."""
        j = self.step.jitter
        factor = 1.0 + (float(self.rng.uniform(-j, j)) if j else 0.0)
        return self.env.timeout(max(0.0, seconds * factor))
