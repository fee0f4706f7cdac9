"""HVAC kinds: air handling units, VAV boxes (one thermal zone each) and room sensors."""

from __future__ import annotations

from pydantic import Field

from twin.devices.base import DeviceKind, Params, Register, RegisterMap


class AhuParams(Params):
    supply_air_setpoint_c: float = Field(default=13.0, ge=5, le=45)
    time_constant_s: float = Field(default=120.0, gt=0, description="supply-air response")


class Ahu(DeviceKind):
    name = "ahu"
    summary = "air handling unit: supplies conditioned air at a setpoint to its VAV boxes"
    services = ("modbus", "http")
    role = "controller"
    params = AhuParams
    registers = RegisterMap((
        Register("supply_air_setpoint", "holding", 0, "ahu.sa_setpoint", 10, "degC", True, (5, 45)),
        Register("fan_enable", "coil", 0, "ahu.fan", 1, "", True),
        Register("supply_air_temp", "input", 0, "ahu.sa_temp", 10, "degC"),
    ))  # fmt: skip


class VavParams(Params):
    ahu: str = Field(description="the AHU (device or group) feeding this box")
    room: str | None = Field(default=None, description="room name (prefix for groups)")
    area_m2: float = Field(default=50.0, gt=0)
    internal_gain_w: float = Field(default=400.0, ge=0, description="equipment heat")
    occupants_peak: float = Field(default=4.0, ge=0)
    setpoint_c: float = Field(default=22.0, ge=10, le=35)
    max_airflow_kg_s: float = Field(default=0.4, gt=0)
    reheat_w: float | None = Field(default=None, ge=0, description="reheat coil; default 60 W/m2")
    heating_setpoint_c: float = Field(default=20.0, ge=5, le=30, description="reheat target")
    band_c: tuple[float, float] = Field(default=(18.0, 27.0), description="comfort/safety band")
    capacitance_kj_per_m2k: float = Field(default=50.0, gt=0, description="thermal mass")


class Vav(DeviceKind):
    name = "vav"
    summary = "VAV box controller: PI control of a damper to a room setpoint (one thermal zone)"
    services = ("modbus",)
    role = "controller"
    params = VavParams
    device_refs = ("ahu",)
    registers = RegisterMap((
        Register("room_setpoint", "holding", 0, "vav.setpoint", 10, "degC", True, (10, 35)),
        # commissioning override of the sensed temperature (BACnet-style out-of-service value)
        Register("room_temp_override", "holding", 1, "vav.override_value", 10, "degC", True, (0, 60)),
        Register("override_enable", "coil", 0, "vav.override_enable", 1, "", True),
        Register("room_temp", "input", 0, "vav.measured", 10, "degC"),
        Register("damper", "input", 1, "vav.damper", 100, "%"),
    ))  # fmt: skip


class EnvSensorParams(Params):
    room: str = Field(description="room name, or room prefix for a group of sensors")


class EnvSensor(DeviceKind):
    name = "env_sensor"
    summary = "room sensor: temperature, humidity and CO2 over Modbus"
    services = ("modbus",)
    role = "sensor"
    params = EnvSensorParams
    registers = RegisterMap((
        Register("temperature", "input", 0, "sensor.temp", 10, "degC"),
        Register("humidity", "input", 1, "sensor.humidity", 10, "%RH"),
        Register("co2", "input", 2, "sensor.co2", 1, "ppm"),
    ))  # fmt: skip
