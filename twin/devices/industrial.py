"""Industrial kinds: a PLC running a tank/pump/valve loop with a safety interlock."""

from __future__ import annotations

from pydantic import Field

from twin.devices.base import DeviceKind, Params, Register, RegisterMap


class PlcParams(Params):
    tank: str | None = Field(default=None, description="tank name (prefix for groups)")
    area_m2: float = Field(default=8.0, gt=0)
    height_m: float = Field(default=4.0, gt=0)
    pump_flow_m3h: float = Field(default=30.0, gt=0)
    outflow_m3h: float = Field(default=15.0, gt=0, description="draw at full valve, 2 m head")
    low_sp_m: float = Field(default=1.5, gt=0)
    high_sp_m: float = Field(default=3.0, gt=0)
    trip_sp_m: float = Field(default=3.6, gt=0, description="safety interlock trip level")
    safe_band_m: tuple[float, float] = Field(default=(0.3, 3.7))


class Plc(DeviceKind):
    name = "plc"
    summary = "PLC: tank level control with pump, outlet valve, safety interlock and alarm"
    services = ("modbus", "http")
    role = "controller"
    params = PlcParams
    registers = RegisterMap((
        Register("level_low_sp", "holding", 0, "tank.low_sp", 100, "m", True, (0, 10)),
        Register("level_high_sp", "holding", 1, "tank.high_sp", 100, "m", True, (0, 10)),
        Register("level_trip_sp", "holding", 2, "tank.trip_sp", 100, "m", True, (0, 10)),
        Register("valve", "holding", 3, "tank.valve", 100, "%", True, (0, 1)),
        Register("interlock_enable", "coil", 0, "tank.interlock", 1, "", True),
        Register("alarm_enable", "coil", 1, "tank.alarm_enable", 1, "", True),
        Register("level", "input", 0, "tank.level", 100, "m"),
        Register("pressure", "input", 1, "tank.pressure", 10, "kPa"),
        Register("vibration", "input", 2, "tank.vibration", 100, "mm/s"),
        Register("pump_running", "discrete", 0, "tank.pump", 1),
        Register("high_level_alarm", "discrete", 1, "tank.alarm", 1),
    ))  # fmt: skip
