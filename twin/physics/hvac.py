"""The HVAC plant: AHUs supplying VAV boxes that PI-control their rooms' temperatures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from twin.physics.thermal import CP_AIR, ThermalNetwork, first_order

Array = NDArray[np.float64]
KP = 0.35  # damper fraction per K
KI = 0.35 / 600.0  # damper fraction per K s
KH = 0.5  # reheat fraction per K below the heating setpoint
HEATING_OFFSET = 1.5  # heating setpoint below the cooling setpoint (deadband)
MIN_DAMPER = 0.15
CO2_OUTDOOR = 420.0
CO2_PER_PERSON = 5.0e-6  # m3/s exhaled CO2


@dataclass
class Hvac:
    network: ThermalNetwork
    temp: Array  # true room temperature
    gain_w: Array  # equipment gains
    occupants_peak: Array
    area: Array
    band_lo: Array
    band_hi: Array
    co2: Array
    humidity: Array
    # VAV boxes (one per room)
    setpoint: Array
    measured: Array  # what the controller acts on and reports (the override when enabled)
    override_enable: Array
    override_value: Array
    frozen: NDArray[np.bool_]
    damper: Array
    integral: Array
    max_flow: Array  # kg/s
    reheat_w: Array  # reheat coil capacity
    heating_sp: Array  # reheat target (never above the cooling setpoint less the deadband)
    ahu_of: NDArray[np.int64]
    # AHUs
    sa_setpoint: Array
    sa_temp: Array
    fan: Array
    tau: Array

    def step(
        self, dt: float, outdoor_c: float, occupancy: float, solar: float, noise: Array
    ) -> None:
        self.sa_temp = np.where(
            self.fan > 0, first_order(self.sa_temp, self.sa_setpoint, dt, self.tau), self.sa_temp
        )
        error = self.measured - self.setpoint
        raw = KP * error + KI * self.integral
        saturated = ((raw >= 1.0) & (error > 0)) | ((raw <= MIN_DAMPER) & (error < 0))
        self.integral = np.where(saturated, self.integral, self.integral + error * dt)
        damper = np.clip(KP * error + KI * self.integral, MIN_DAMPER, 1.0)
        # a controller whose network stack is flooded stops its scan: its output holds
        self.damper = np.where(self.frozen, self.damper, damper)
        flow = self.damper * self.max_flow * self.fan[self.ahu_of]
        people = self.occupants_peak * occupancy
        # reheat below the heating setpoint, on what the controller measures (lies included)
        target = np.minimum(self.heating_sp, self.setpoint - HEATING_OFFSET)
        heating = np.clip(KH * (target - self.measured), 0.0, 1.0)
        heating = np.where(self.frozen, 0.0, heating)
        gains = self.gain_w + 100.0 * people + 8.0 * solar * self.area + heating * self.reheat_w
        self.temp = self.network.step(
            self.temp, dt, outdoor_c, gains, flow * CP_AIR, self.sa_temp[self.ahu_of]
        )
        sensed = np.round(self.temp + 0.05 * noise, 1)
        self.measured = np.where(self.override_enable > 0, self.override_value, sensed)
        ventilation = flow / 1.2 + 0.01 * self.area / 50.0  # m3/s incl. infiltration
        volume = self.area * 3.0
        co2_eq = CO2_OUTDOOR + 1e6 * CO2_PER_PERSON * people / ventilation
        self.co2 = first_order(self.co2, co2_eq, dt, volume / ventilation)
        self.humidity = 38.0 + 1.5 * people / np.maximum(self.area / 20.0, 1.0)
