"""IT-side kinds: BMS/SCADA server, engineering workstation, IoT gateway, cloud services."""

from __future__ import annotations

from pydantic import Field

from twin.devices.base import DeviceKind, Params


class BmsParams(Params):
    polls: list[str] = Field(description="zones, groups or devices it polls over Modbus")
    interval_s: float = Field(default=10.0, gt=0)
    occupied_hours: tuple[float, float] = Field(default=(7.0, 19.0))
    occupied_setpoint_c: float = 22.0
    unoccupied_setpoint_c: float = 25.0
    high_temp_alarm_c: float = Field(default=30.0, description="alarm on any polled room")


class Bms(DeviceKind):
    name = "bms"
    summary = "BMS/SCADA server: polls devices, writes schedule setpoints, raises alarms"
    services = ("https",)
    role = "engineering"
    params = BmsParams


class WorkstationParams(Params):
    targets: list[str] = Field(default_factory=list, description="devices it programs (Modbus)")
    browses: list[str] = Field(default_factory=list, description="devices whose web UI it uses")
    sessions_per_day: float = Field(default=4.0, ge=0)


class Workstation(DeviceKind):
    name = "workstation"
    summary = "engineering workstation: occasional Modbus sessions and web logins, work hours"
    services = ("ssh",)
    role = "engineering"
    params = WorkstationParams
    device_refs = ("targets", "browses")


class GatewayParams(Params):
    sensors: list[str] = Field(default_factory=list, description="devices it reads over Modbus")
    cloud: str = Field(description="cloud service it publishes to (MQTT over TLS)")
    interval_s: float = Field(default=30.0, gt=0)


class Gateway(DeviceKind):
    name = "gateway"
    summary = "IoT gateway: reads local sensors, publishes to a cloud broker over MQTT/TLS"
    services = ("http", "telnet")
    role = "gateway"
    params = GatewayParams
    device_refs = ("sensors", "cloud")
    default_credentials = (("admin", "admin"), ("root", "root"), ("admin", "1234"))


class Cloud(DeviceKind):
    name = "cloud"
    summary = "a service on the internet: vendor cloud, MQTT broker"
    services = ("https", "mqtt")
    role = "external"
