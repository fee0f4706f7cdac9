"""Runs an attack campaign: triggers, preconditions, attacker knowledge and ground truth."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from twin.errors import SimulationError
from twin.evidence import device_signals, firmware, health
from twin.faces import Faces
from twin.facility import Facility
from twin.network.base import Network
from twin.network.policy import Policy
from twin.physics.plant import Plant
from twin.schema import CampaignSpec, StepSpec
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


class Campaign:
    def __init__(
        self,
        env: simpy.Environment,
        net: Network,
        physical: PhysicalChannel,
        facility: Facility,
        spec: CampaignSpec,
        signal: Callable[[str], float],
        clock: Callable[[float], tuple[float, int]],
        rng: np.random.Generator,
        physics_step: float,
        warmup: float = 0.0,
    ) -> None:
        from attacks import TECHNIQUES

        self.env = env
        self.net = net
        self.physical = physical
        self.facility = facility
        self.spec = spec
        self.signal = signal
        self.clock = clock
        self.rng = rng
        self.physics_step = physics_step
        self.warmup = warmup
        self.techniques = TECHNIQUES
        self.attacker = Attacker(spec.attacker.name, spec.attacker.origin)
        self.finished: list[dict[str, Any]] = []  # truth rows of steps that ended
        self._open: dict[str, dict[str, Any]] = {}  # provisional rows of steps under way
        self.skipped: list[dict[str, Any]] = []
        self.running: dict[str, float] = {}
        self._done: dict[str, simpy.Event] = {s.id: env.event() for s in spec.steps}
        self._signals: dict[str, frozenset[str]] | None = None

    def start(self) -> None:
        for step in self.spec.steps:
            self.env.process(self._run(step))

    def add(self, step: StepSpec) -> None:
        """Start one more step in the running campaign (a trainer's inject), checked like
        the file's steps: its id is new, and a step it follows exists."""
        if step.id in self._done:
            raise SimulationError(f"step id {step.id!r} is taken")
        if step.after is not None and step.after not in self._done:
            raise SimulationError(f"step {step.id!r} follows unknown step {step.after!r}")
        self._done[step.id] = self.env.event()
        self.env.process(self._run(step))

    def _trigger(self, step: StepSpec) -> Generator[simpy.Event, Any, None]:
        """Wait for the step's start: a time, or another step's end and/or a signal crossing.

        A signal trigger is armed only after the warm-up, which must stay attack-free.
        """
        if step.at is not None and step.at > self.env.now:
            yield self.env.timeout(step.at - self.env.now)
        if step.after is not None:
            yield self._done[step.after]
        if step.when is not None:
            if self.env.now < self.warmup:
                yield self.env.timeout(self.warmup - self.env.now)
            w = step.when
            while not (
                (w.above is not None and self.signal(w.signal) > w.above)
                or (w.below is not None and self.signal(w.signal) < w.below)
            ):
                yield self.env.timeout(self.physics_step)
        if step.delay:
            yield self.env.timeout(step.delay)
        if step.working_hours is not None:
            lo, hi = step.working_hours
            while True:
                hour, weekday = self.clock(self.env.now)
                if weekday < 5 and lo <= hour < hi:
                    break
                yield self.env.timeout(600.0)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Truth rows: every step that ended, then those still under way (ending now), so a
        step the run's end cut short is scored, not lost."""
        now = self.env.now
        return self.finished + [{**row, "t_end": now} for row in self._open.values()]

    def _changed(self, changes: tuple[str, ...], outcome: Outcome) -> str:
        """The process signals a successful step changed (space-joined, for the truth table)."""
        if not outcome.succeeded or not changes:
            return ""
        if self._signals is None:
            self._signals = device_signals(self.facility)
        names: set[str] = set()
        for target in str(outcome.target).split(","):
            if "process" in changes:
                names |= self._signals.get(target, frozenset())
            if target not in self.facility.by_name:
                continue
            if "health" in changes:
                names.add(health(target))
            if "firmware" in changes:
                names.add(firmware(target))
        return " ".join(sorted(names))

    def _run(self, step: StepSpec) -> Generator[simpy.Event, Any, None]:
        yield from self._trigger(step)
        technique = self.techniques[step.technique]
        params = technique.params.model_validate(step.params)
        ctx = StepContext(
            self.env, self.net, self.physical, self.facility, self.attacker, step, params, self.rng
        )
        if step.source is not None and step.source not in self.attacker.positions:
            unmet: str | None = f"no foothold on {step.source}"
        else:
            unmet = technique.precondition(ctx)
        if unmet is not None:
            self.skipped.append({"step_id": step.id, "technique": technique.technique_id,
                                 "name": technique.name, "t": self.env.now, "reason": unmet})  # fmt: skip
            self._done[step.id].succeed()
            return
        t_start = self.env.now
        self.running[step.id] = t_start
        attacker_name, attacker_ip = ctx.source
        target = self.facility.by_name.get(step.target or "")
        acting = Outcome(True, target.name if target else "", target.ip if target else "")
        self._open[step.id] = {
            "step_id": step.id, "technique": technique.technique_id, "name": technique.name,
            "t_start": t_start, "attacker": attacker_name, "attacker_ip": attacker_ip,
            "target": acting.target, "target_ip": acting.target_ip, "succeeded": False,
            "blocked_by": "", "detail": "still under way when the run ended",
            "grace": step.grace if step.grace is not None else technique.grace,
            # what it is acting on: a flood cut by the end of the run has still taken it down
            "signals": self._changed(technique.changes, acting),
        }  # fmt: skip
        outcome: Outcome = yield from technique.run(ctx)
        del self.running[step.id]
        del self._open[step.id]
        self.finished.append({
            "step_id": step.id, "technique": technique.technique_id, "name": technique.name,
            "t_start": t_start, "t_end": self.env.now, "attacker": attacker_name,
            "attacker_ip": attacker_ip, "target": outcome.target, "target_ip": outcome.target_ip,
            "succeeded": outcome.succeeded, "blocked_by": outcome.blocked_by, "detail": outcome.detail,
            "grace": step.grace if step.grace is not None else technique.grace,
            "signals": self._changed(technique.changes, outcome),
        })  # fmt: skip
        self._done[step.id].succeed()
