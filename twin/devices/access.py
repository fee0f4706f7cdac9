"""Access-control kinds: door controllers (lock, contact, alarms) and badge readers."""

from __future__ import annotations

from pydantic import Field

from twin.devices.base import DeviceKind, Params, Register, RegisterMap


class DoorParams(Params):
    door: str | None = Field(default=None, description="door name (prefix for groups)")
    swipes_per_hour: float = Field(default=12.0, ge=0, description="in occupied hours")
    held_open_s: float = Field(default=30.0, gt=0, description="door-held alarm threshold")


class DoorController(DeviceKind):
    name = "door_controller"
    summary = "door controller: lock output, door contact, door-held and forced-open alarms"
    services = ("modbus", "http")
    role = "controller"
    params = DoorParams
    registers = RegisterMap((
        Register("lock", "coil", 0, "door.locked", 1, "", True),
        Register("door_open", "discrete", 0, "door.open", 1),
        Register("held_alarm", "discrete", 1, "door.held_alarm", 1),
        Register("forced_alarm", "discrete", 2, "door.forced_alarm", 1),
        Register("swipes", "input", 0, "door.swipes", 1, "count"),
    ))  # fmt: skip


class ReaderParams(Params):
    controller: str = Field(description="door controller (device or group) it reports to")


class BadgeReader(DeviceKind):
    name = "badge_reader"
    summary = "badge reader wired to a door controller; announces swipes"
    services = ("http",)
    role = "sensor"
    params = ReaderParams
    device_refs = ("controller",)
