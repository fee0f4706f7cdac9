"""Physics: the thermal model against its analytic solution, the tank interlock, register maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.devices import KINDS, Register, RegisterMap
from twin.physics.tank import TankLoop
from twin.physics.thermal import CP_AIR, ThermalNetwork


def single_room(c: float = 2.0e6, ua: float = 60.0) -> ThermalNetwork:
    empty_i = np.zeros(0, dtype=np.int64)
    return ThermalNetwork(np.array([c]), np.array([ua]), empty_i, empty_i.copy(), np.zeros(0))


def test_step_response_matches_analytic_solution() -> None:
    """A room fed constant supply air follows T_eq + (T0 - T_eq) exp(-t/tau) at every step."""
    c, ua, flow, t_out, t_sup, gain = 2.0e6, 60.0, 0.3, 5.0, 14.0, 1500.0
    net = single_room(c, ua)
    g = ua + flow * CP_AIR
    t_eq = (ua * t_out + flow * CP_AIR * t_sup + gain) / g
    tau = c / g
    temp = np.array([22.0])
    for k in range(1, 361):  # an hour in 10 s steps
        temp = net.step(
            temp, 10.0, t_out, np.array([gain]), np.array([flow * CP_AIR]), np.array([t_sup])
        )
        analytic = t_eq + (22.0 - t_eq) * math.exp(-10.0 * k / tau)
        assert temp[0] == pytest.approx(analytic, abs=1e-9)


def test_step_size_does_not_change_an_isolated_room() -> None:
    """Exact integration: one 600 s step lands where sixty 10 s steps do."""
    net = single_room()
    args = (4.0, np.array([800.0]), np.array([300.0]), np.array([13.0]))
    coarse = net.step(np.array([25.0]), 600.0, *args)
    fine = np.array([25.0])
    for _ in range(60):
        fine = net.step(fine, 10.0, *args)
    assert coarse[0] == pytest.approx(fine[0], abs=1e-9)


def test_neighbours_exchange_heat_towards_each_other() -> None:
    """Two coupled rooms with no other inputs converge to their capacity-weighted mean.

    Neighbours are coupled explicitly (each room sees the other's start-of-step temperature),
    so energy is conserved to O(dt): within 0.01 K at 10 s steps.
    """
    net = ThermalNetwork(
        np.array([1e6, 3e6]), np.zeros(2), np.array([0]), np.array([1]), np.array([200.0])
    )
    temps = np.array([30.0, 18.0])
    for _ in range(20000):
        temps = net.step(temps, 10.0, 0.0, np.zeros(2), np.zeros(2), np.zeros(2))
    assert temps == pytest.approx([21.0, 21.0], abs=0.01)
    assert temps[0] == pytest.approx(temps[1], abs=1e-6)


def test_step_rejects_a_non_positive_dt() -> None:
    """Misuse shows the bad value."""
    with pytest.raises(ValueError, match="non-positive step -1"):
        single_room().step(np.array([20.0]), -1, 0.0, np.zeros(1), np.zeros(1), np.zeros(1))


def tank(level: float, interlock: float = 1.0) -> TankLoop:
    one = lambda v: np.array([float(v)])  # noqa: E731
    return TankLoop(
        level=one(level), area=one(8), height=one(4), pump_flow=one(30 / 3600),
        outlet_k=one(0.0), valve=one(0.5), low_sp=one(1.5), high_sp=one(3.0), trip_sp=one(3.6),
        interlock=one(interlock), pump=one(1), alarm=one(0), pressure=one(0), vibration=one(0),
        safe_lo=one(0.3), safe_hi=one(3.7),
    )  # fmt: skip


def test_interlock_trips_the_pump_at_the_trip_level() -> None:
    """With the interlock on, a tank at its trip level stops the pump and raises the alarm."""
    t = tank(3.65)
    t.high_sp = np.array([9.0])  # a tampered high setpoint would otherwise keep pumping
    t.step(10.0, np.zeros(1))
    assert t.pump[0] == 0 and t.alarm[0] == 1


def test_without_interlock_the_tank_overfills() -> None:
    """With the interlock disabled and a tampered high setpoint, the level climbs past safe."""
    t = tank(3.5, interlock=0.0)
    t.high_sp = np.array([9.0])
    for _ in range(200):
        t.step(10.0, np.zeros(1))
    assert t.level[0] > 3.7 and t.alarm[0] == 1


def test_register_maps_reject_overlaps() -> None:
    """Two registers at one address are refused when the map is created."""
    with pytest.raises(ValueError, match="share holding 0"):
        RegisterMap((Register("a", "holding", 0, "x.a"), Register("b", "holding", 0, "x.b")))


def test_input_registers_cannot_be_writable() -> None:
    """A writable input register is a declaration error."""
    with pytest.raises(ValueError, match="read-only"):
        Register("t", "input", 0, "x.t", writable=True)


def test_every_kind_declares_a_valid_map() -> None:
    """Each device kind's register map is contiguous enough to poll and names plant state."""
    for kind in KINDS.values():
        for reg in kind.registers:
            assert "." in reg.state, (kind.name, reg.name)
        if "modbus" in kind.services:
            assert len(kind.registers) > 0, kind.name
