"""Response actions: the same objects for a trainee's click and a detector-driven playbook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twin.devices import KINDS
from twin.errors import SimulationError

if TYPE_CHECKING:
    from twin.engine import Engine


@dataclass(frozen=True)
class Action:
    reason: str = ""

    def apply(self, engine: Engine) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Quarantine(Action):
    """Cut a device off the network (a firewall rule at its zone's edge and port)."""

    device: str = ""

    def apply(self, engine: Engine) -> str:
        engine.net.policy.quarantine(engine.device(self.device).ip)
        return f"quarantined {self.device}"


@dataclass(frozen=True)
class BlockConduit(Action):
    conduit: str = ""

    def apply(self, engine: Engine) -> str:
        try:
            engine.net.policy.block_conduit(self.conduit)
        except KeyError as exc:
            raise SimulationError(str(exc)) from None
        return f"blocked conduit {self.conduit}"


@dataclass(frozen=True)
class RestoreRegister(Action):
    """Put a register back to a known-good engineering value (e.g. a setpoint)."""

    device: str = ""
    register: str = ""
    value: float = 0.0

    def apply(self, engine: Engine) -> str:
        device = engine.device(self.device)
        reg = KINDS[device.kind].registers.get(self.register)
        if reg is None or not reg.writable:
            raise SimulationError(f"{device.name} has no writable register {self.register!r}")
        engine.plant.write(reg.state, device.index, self.value)
        return f"restored {device.name}.{reg.name} = {self.value:g}"


@dataclass(frozen=True)
class RotateCredentials(Action):
    device: str = ""

    def apply(self, engine: Engine) -> str:
        device = engine.device(self.device)
        engine.faces.rotate(device.name, f"rotated-{engine.env.now:.0f}")
        return f"rotated credentials of {device.name}"
