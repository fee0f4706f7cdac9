"""Runs an attack campaign: triggers, preconditions, attacker knowledge and ground truth."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from twin.facility import Facility
from twin.network.sim import SimNetwork
from twin.schema import CampaignSpec, StepSpec


@dataclass
class Attacker:
    """What the attacker holds: where they stand, what they found, which secrets they know."""

    name: str
    origin: str  # IP outside the site
    footholds: list[str] = field(default_factory=list)  # device names, in order gained
    known: dict[str, set[int]] = field(default_factory=dict)  # ip -> open ports found
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # device -> (user, password)
    controlled: list[str] = field(default_factory=list)  # devices whose control they changed


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    target: str
    target_ip: str
    blocked_by: str = ""
    detail: str = ""


@dataclass
class StepContext:
    """What an attack step may use: the network backend, the attacker, the clock."""

    env: simpy.Environment
    net: SimNetwork
    facility: Facility  # to resolve names the scenario author wrote; not the attacker's knowledge
    attacker: Attacker
    step: StepSpec
    params: Any

    @property
    def source(self) -> tuple[str, str]:
        """(name, ip) the step acts from: its 'from', else the latest foothold, else the origin."""
        name = self.step.source or (
            self.attacker.footholds[-1] if self.attacker.footholds else None
        )
        if name is None:
            return self.attacker.name, self.attacker.origin
        return name, self.facility.by_name[name].ip


class Campaign:
    def __init__(
        self, env: simpy.Environment, net: SimNetwork, facility: Facility, spec: CampaignSpec
    ) -> None:
        from attacks import TECHNIQUES

        self.env = env
        self.net = net
        self.facility = facility
        self.spec = spec
        self.techniques = TECHNIQUES
        self.attacker = Attacker(spec.attacker.name, spec.attacker.origin)
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.running: dict[str, float] = {}
        self._done: dict[str, simpy.Event] = {s.id: env.event() for s in spec.steps}

    def start(self) -> None:
        for step in self.spec.steps:
            self.env.process(self._run(step))

    def _run(self, step: StepSpec) -> Generator[simpy.Event, Any, None]:
        if step.after is not None:
            yield self._done[step.after]
        elif step.at is not None and step.at > self.env.now:
            yield self.env.timeout(step.at - self.env.now)
        if step.delay:
            yield self.env.timeout(step.delay)
        technique = self.techniques[step.technique]
        ctx = StepContext(
            self.env,
            self.net,
            self.facility,
            self.attacker,
            step,
            technique.params.model_validate(step.params),
        )
        unmet = (
            technique.precondition(ctx)
            if step.source is None or step.source in self.attacker.footholds
            else f"no foothold on {step.source}"
        )
        if unmet is not None:
            self.skipped.append(
                {
                    "step_id": step.id,
                    "technique": technique.technique_id,
                    "name": technique.name,
                    "t": self.env.now,
                    "reason": unmet,
                }
            )
            self._done[step.id].succeed()
            return
        t_start = self.env.now
        self.running[step.id] = t_start
        attacker_name, attacker_ip = ctx.source
        outcome: Outcome = yield from technique.run(ctx)
        del self.running[step.id]
        self.rows.append({
            "step_id": step.id, "technique": technique.technique_id, "name": technique.name,
            "t_start": t_start, "t_end": self.env.now, "attacker": attacker_name,
            "attacker_ip": attacker_ip, "target": outcome.target, "target_ip": outcome.target_ip,
            "succeeded": outcome.succeeded, "blocked_by": outcome.blocked_by, "detail": outcome.detail,
            "grace": step.grace if step.grace is not None else technique.grace,
        })  # fmt: skip
        self._done[step.id].succeed()
