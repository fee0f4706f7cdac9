"""Runs an attack campaign: triggers, preconditions, attacker knowledge and ground truth."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from twin.errors import SimulationError
from twin.evidence import device_signals, firmware, health
from twin.facility import Facility
from twin.network.base import Network
from twin.schema import CampaignSpec, StepSpec
from twin.steps import Attacker, Outcome, PhysicalChannel, StepContext


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
