"""Attack techniques by name: the built-in registry."""

from __future__ import annotations

from attacks.access import DefaultCredentials
from attacks.base import Technique
from attacks.control import ModbusWriteSetpoint
from attacks.recon import NetworkScan

TECHNIQUES: dict[str, type[Technique]] = {
    t.name: t for t in (DefaultCredentials, NetworkScan, ModbusWriteSetpoint)
}

__all__ = ["TECHNIQUES", "Technique"]
