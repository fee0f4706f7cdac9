"""Device kinds by name: the built-in registry."""

from __future__ import annotations

from twin.devices.access import BadgeReader, DoorController
from twin.devices.base import Device, DeviceKind, Register, RegisterMap
from twin.devices.hvac import Ahu, EnvSensor, Vav
from twin.devices.industrial import Plc
from twin.devices.it import Bms, Cloud, Gateway, Workstation
from twin.devices.video import Camera, Nvr

KINDS: dict[str, type[DeviceKind]] = {
    k.name: k
    for k in (
        Ahu, Vav, EnvSensor, DoorController, BadgeReader, Plc, Camera, Nvr, Gateway, Bms,
        Workstation, Cloud,
    )
}  # fmt: skip

__all__ = ["KINDS", "Device", "DeviceKind", "Register", "RegisterMap"]
