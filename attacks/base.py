"""What an attack technique is: parameters, a precondition, and a SimPy process."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

import simpy
from pydantic import BaseModel, ConfigDict

from twin.errors import Problem
from twin.facility import Facility
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext


def service_problems(step: StepSpec, service: str, facility: Facility) -> list[Problem]:
    """A problem when the step's target does not offer `service`."""
    target = facility.by_name.get(step.target or "")
    if target is None or service in target.services:
        return []
    has = ", ".join(target.services) or "none"
    return [Problem("params.service", f"{target.name} has no {service} (has: {has})")]


class TechniqueParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Technique:
    """One attack technique. It acts only through `ctx.net` (or a declared physical channel)."""

    name: ClassVar[str]
    technique_id: ClassVar[str]  # MITRE ATT&CK for ICS
    summary: ClassVar[str]
    params: ClassVar[type[TechniqueParams]] = TechniqueParams
    needs_target: ClassVar[bool] = True
    grace: ClassVar[float] = 600.0  # scoring: how long after the step a detection still counts
    # does success put the target under the attacker's control (blast radius)? Recon,
    # denial of service and exfiltration do not.
    compromises: ClassVar[bool] = True
    # what success changes beyond the wire, recorded in the truth as signals the step caused:
    # "process" (the target's process signals), "health" (its availability), "firmware"
    # (the image it runs)
    changes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        """Scenario-time checks beyond the parameter model (paths relative to the step)."""
        if cls.needs_target and step.target is None:
            return [Problem("target", f"{cls.name} needs a target device")]
        return []

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        """Why the step cannot be attempted now (None when it can)."""
        return None

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        raise NotImplementedError
