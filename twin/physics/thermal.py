"""Rooms as a thermal RC network, integrated exactly for inputs held constant over a step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

CP_AIR = 1005.0  # J/(kg K)

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ThermalNetwork:
    """C_i dT_i/dt = ua_i (T_out - T_i) + sum_j g_ij (T_j - T_i) + m_i cp (T_sup,i - T_i) + Q_i.

    Each step holds the neighbours' temperatures and all inputs at their start-of-step values,
    so every room is a first-order system solved exactly:
    T_i(t+dt) = T_eq + (T_i - T_eq) exp(-G_i dt / C_i). This is unconditionally stable at any
    dt and exact for an isolated room, which the tests check against the analytic solution.
    """

    capacitance: Array  # J/K per room
    ua_ext: Array  # W/K envelope conductance per room
    edge_a: NDArray[np.int64]  # neighbour pairs (a, b) with conductance g
    edge_b: NDArray[np.int64]
    edge_g: Array

    def __post_init__(self) -> None:
        n = self.capacitance.shape[0]
        if np.any(self.capacitance <= 0):
            raise ValueError("every room needs a positive capacitance")
        if self.ua_ext.shape != (n,):
            raise ValueError(f"ua_ext has shape {self.ua_ext.shape}, expected ({n},)")
        if not (self.edge_a.shape == self.edge_b.shape == self.edge_g.shape):
            raise ValueError("neighbour edge arrays differ in length")

    @property
    def size(self) -> int:
        return int(self.capacitance.shape[0])

    def step(
        self,
        temps: Array,
        dt: float,
        outdoor_c: float,
        gains_w: Array,
        air_w_per_k: Array,
        supply_c: Array,
    ) -> Array:
        if dt <= 0:
            raise ValueError(f"non-positive step {dt}")
        n = self.size
        g_nb = np.bincount(self.edge_a, self.edge_g, n) + np.bincount(self.edge_b, self.edge_g, n)
        flux_nb = np.bincount(self.edge_a, self.edge_g * temps[self.edge_b], n) + np.bincount(
            self.edge_b, self.edge_g * temps[self.edge_a], n
        )
        g_total = self.ua_ext + g_nb + air_w_per_k
        drive = self.ua_ext * outdoor_c + flux_nb + air_w_per_k * supply_c + gains_w
        with np.errstate(divide="ignore", invalid="ignore"):
            t_eq = np.where(g_total > 0, drive / g_total, temps)
            decay = np.exp(-g_total * dt / self.capacitance)
        free = g_total <= 0  # no conductance at all: only the gains act
        out = t_eq + (temps - t_eq) * decay
        if np.any(free):
            out = np.where(free, temps + gains_w * dt / self.capacitance, out)
        return out


def first_order(value: Array, target: Array, dt: float, tau: Array | float) -> Array:
    """Exact step of dx/dt = (target - x) / tau."""
    return target + (value - target) * np.exp(-dt / np.asarray(tau))
