"""Tank, pump and outlet valve under a PLC's level control with a safety interlock."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
G = 9.81


@dataclass
class TankLoop:
    """State and parameters of every tank loop; `step` runs one PLC scan plus the physics."""

    level: Array
    area: Array
    height: Array
    pump_flow: Array  # m3/s at full speed
    outlet_k: Array  # m3/s per sqrt(m) at full valve
    valve: Array  # 0..1
    low_sp: Array
    high_sp: Array
    trip_sp: Array
    interlock: Array  # 1 enabled
    pump: Array  # 1 running
    alarm: Array  # 1 raised
    pressure: Array  # kPa at the bottom
    vibration: Array  # mm/s at the pump
    safe_lo: Array
    safe_hi: Array
    alarm_enable: Array | None = None  # 1 the alarm output is live (an attacker may clear it)
    latched: Array | None = None  # the alarm condition, whether or not it is announced

    def __post_init__(self) -> None:
        if self.alarm_enable is None:
            self.alarm_enable = np.ones_like(self.level)
        if self.latched is None:
            self.latched = np.zeros_like(self.level)

    def step(self, dt: float, noise: Array, frozen: NDArray[np.bool_] | None = None) -> None:
        """One scan: hysteresis control, interlock and alarm, then integrate the level.

        A `frozen` PLC (its network stack flooded, its scan stalled) holds its outputs:
        the pump keeps doing what it did, and the interlock does not act.
        """
        level = self.level
        held = self.pump
        self.pump = np.where(
            level <= self.low_sp, 1.0, np.where(level >= self.high_sp, 0.0, self.pump)
        )
        tripped = level >= self.trip_sp
        assert self.latched is not None and self.alarm_enable is not None
        # clears only well below the trip level, even if the high setpoint was raised above it
        clear = level < np.minimum(self.high_sp, self.trip_sp - 0.2)
        self.latched = np.where(tripped, 1.0, np.where(clear, 0.0, self.latched))
        self.alarm = self.latched * (self.alarm_enable > 0)
        self.pump = np.where(tripped & (self.interlock > 0), 0.0, self.pump)
        if frozen is not None and frozen.any():
            self.pump = np.where(frozen, held, self.pump)
        q_out = self.valve * self.outlet_k * np.sqrt(np.maximum(level, 0.0))
        self.level = np.clip(
            level + dt * (self.pump * self.pump_flow - q_out) / self.area, 0.0, self.height
        )
        self.pressure = G * self.level
        dry = self.level < 0.3
        self.vibration = self.pump * (2.0 + 0.1 * noise + 6.0 * dry)
