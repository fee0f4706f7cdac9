"""Response actions: the same objects for a trainee's click and a detector-driven playbook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from twin.devices import KINDS, Device
from twin.errors import SimulationError
from twin.faces import Faces
from twin.facility import Facility
from twin.network.base import Network
from twin.physics.plant import Plant


class Engine(Protocol):
    """What a response acts on: the running twin (twin.engine.Engine is one), described here
    so responses need not import the engine that applies them."""

    env: Any
    facility: Facility
    plant: Plant
    faces: Faces
    net: Network
    golden: Any

    def device(self, name: str) -> Device: ...
    def evict(self, position: str, how: str) -> bool: ...
    def evict_ip(self, ip: str) -> None: ...


SAFETY_REGISTERS = ("interlock_enable", "alarm_enable", "override_enable")


@dataclass(frozen=True)
class Action:
    reason: str = ""

    def apply(self, engine: Engine) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Quarantine(Action):
    """Cut a device (or an outside address) off the network with a firewall rule."""

    device: str = ""

    def apply(self, engine: Engine) -> str:
        ip = (
            engine.device(self.device).ip if self.device in engine.facility.by_name else self.device
        )
        if not ip[:1].isdigit():
            raise SimulationError(f"no device or address {self.device!r} to quarantine")
        engine.net.policy.quarantine(ip)
        engine.evict(self.device, "isolate")
        engine.evict_ip(ip)
        return f"quarantined {self.device}"


@dataclass(frozen=True)
class BlockConduit(Action):
    conduit: str = ""

    def apply(self, engine: Engine) -> str:
        try:
            engine.net.policy.block_conduit(self.conduit)
        except KeyError as exc:
            raise SimulationError(str(exc.args[0])) from None
        return f"blocked conduit {self.conduit}"


@dataclass(frozen=True)
class RestoreRegister(Action):
    """Put one register back to a given engineering value (e.g. a setpoint)."""

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


def _restore(engine: Engine, device: str, only: tuple[str, ...] | None) -> list[str]:
    d = engine.device(device)
    done = []
    for reg in KINDS[d.kind].registers:
        if reg.writable and (only is None or reg.name in only):
            value = engine.golden[(d.name, reg.name)]
            if engine.plant.read(reg.state, d.index) != value:
                engine.plant.write(reg.state, d.index, value)
                done.append(f"{reg.name}={value:g}")
    return done


@dataclass(frozen=True)
class RestoreSetpoints(Action):
    """Put every writable register of a device back to its commissioned value."""

    device: str = ""

    def apply(self, engine: Engine) -> str:
        done = _restore(engine, self.device, None)
        return f"restored {self.device}: {', '.join(done) or 'nothing had changed'}"


@dataclass(frozen=True)
class EnableAlarms(Action):
    """Re-enable a device's alarm, interlock and sensor inputs (clear overrides)."""

    device: str = ""

    def apply(self, engine: Engine) -> str:
        done = _restore(engine, self.device, SAFETY_REGISTERS)
        return f"re-enabled safety on {self.device}: {', '.join(done) or 'already enabled'}"


@dataclass(frozen=True)
class RotateCredentials(Action):
    """New credentials: an attacker who logged in with the old ones is logged out."""

    device: str = ""

    def apply(self, engine: Engine) -> str:
        device = engine.device(self.device)
        engine.faces.rotate(device.name, f"rotated-{engine.env.now:.0f}")
        evicted = engine.evict(device.name, "logout")
        return f"rotated credentials of {device.name}" + (
            " (attacker logged out)" if evicted else ""
        )


@dataclass(frozen=True)
class ReflashFirmware(Action):
    """Reinstall the inventory's firmware: implants and the attacker's code are gone."""

    device: str = ""

    def apply(self, engine: Engine) -> str:
        device = engine.device(self.device)
        had = engine.faces.implants.get(device.name)
        engine.faces.reflash(device)
        evicted = engine.evict(device.name, "wipe")
        return (
            f"reflashed {device.name} with {device.firmware}"
            + (f" (removed implant: {had})" if had else "")
            + (" (attacker evicted)" if evicted else "")
        )


ACTIONS: dict[str, type[Action]] = {
    "quarantine": Quarantine,
    "block_conduit": BlockConduit,
    "rotate_credentials": RotateCredentials,
    "reflash_firmware": ReflashFirmware,
    "restore_setpoints": RestoreSetpoints,
    "enable_alarms": EnableAlarms,
}
