"""Doors with lock state, badge swipes and alarms, driven by an occupancy schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass
class Doors:
    locked: Array  # 1 locked (normal); the controller releases it for a granted badge
    open: Array  # 1 open during this step
    held_alarm: Array
    forced_alarm: Array
    swipes: Array  # running count of granted swipes
    rate_per_h: Array  # swipes per hour at full occupancy
    held_s: Array
    open_for: Array  # seconds the door has been open continuously
    unbadged_entries: Array  # openings while unlocked without a swipe (harm)
    pending: Array  # openings by someone on site (an accomplice) for the next step

    def step(
        self, dt: float, occupancy: float, rng: np.random.Generator
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Advance one step; return (door indices with swipes, number of swipes) for events."""
        rate = self.rate_per_h * max(occupancy, 0.05) * dt / 3600.0
        n = rng.poisson(rate)
        walk_ins = rng.poisson(rate * 0.5) * (self.locked < 0.5)
        was_open = self.open
        self.open = ((n > 0) | (walk_ins > 0) | (self.pending > 0)).astype(float)
        self.pending = np.zeros_like(self.pending)
        self.open_for = np.where(self.open > 0, np.where(was_open > 0, self.open_for + dt, dt), 0.0)
        self.held_alarm = (self.open_for > self.held_s).astype(float)
        self.swipes = self.swipes + n
        self.unbadged_entries = self.unbadged_entries + np.where(n == 0, walk_ins, 0)
        idx = np.flatnonzero(n)
        return idx, n[idx]
