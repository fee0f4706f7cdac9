"""The scenario and facility file formats, declared as pydantic models (structure only)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*-?\s*(?:\d+(?:\.\d+)?\s*(?:d|h|min|m|s)?\s*)+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)?")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as '90s', '15m', '6h', '2d', '3h30m'."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _DURATION.match(value):
        parts = _PART.findall(value)
        if len(parts) == 1 or all(unit for _, unit in parts):
            total = sum(float(n) * _UNITS[unit or "s"] for n, unit in parts)
            return -total if value.strip().startswith("-") else total
    raise ValueError(
        f"expected a duration such as 90, '90s', '15m', '6h' or '3h30m', got {value!r}"
    )


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be positive, got {value:g} s")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must not be negative, got {value:g} s")
    return value


_duration_schema = WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string", "pattern": _DURATION.pattern}]}
)
Duration = Annotated[
    float, BeforeValidator(lambda v: _positive(parse_duration(v))), _duration_schema
]
Delay = Annotated[
    float, BeforeValidator(lambda v: _non_negative(parse_duration(v))), _duration_schema
]


def _subnet(value: Any) -> str:
    return str(ipaddress.ip_network(str(value), strict=True))


def _address(value: Any) -> str:
    return str(ipaddress.ip_address(str(value)))


Subnet = Annotated[str, BeforeValidator(_subnet)]
Address = Annotated[str, BeforeValidator(_address)]

DEVICE_KINDS = (
    "ahu", "vav", "env_sensor", "door_controller", "badge_reader", "plc", "camera",
    "nvr", "gateway", "bms", "workstation", "cloud",
)  # fmt: skip
ZONE_PURPOSES = (
    "internet", "enterprise", "dmz", "bms", "hvac", "access", "cameras", "iot", "ot", "servers",
)  # fmt: skip
SERVICES = ("modbus", "http", "https", "telnet", "ssh", "rtsp", "mqtt", "dns", "ntp", "bacnet")


class Model(BaseModel):
    """Strict base: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneSpec(Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    subnet: Subnet
    purpose: str = Field(json_schema_extra={"enum": list(ZONE_PURPOSES)})
    security_level: int = Field(default=1, ge=0, le=4, description="IEC 62443 SL-T, 0..4")


class DeviceSpec(Model):
    """A device, or a group of `count` identical devices named name-1..name-N."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    kind: str = Field(json_schema_extra={"enum": list(DEVICE_KINDS)})
    zone: str
    count: int = Field(default=1, ge=1, le=100_000)
    ip: Address | None = Field(default=None, description="only for count 1; else allocated")
    vendor: str = "Generic"
    model: str = "unknown"
    firmware: str = "1.0.0"
    firmware_hash: str | None = None
    credentials: Literal["default", "weak", "changed"] = Field(
        default="changed", description="weak: changed, but to a password from common wordlists"
    )
    physical_access: Literal["secured", "unmonitored"] = Field(
        default="secured", description="unmonitored: USB/serial/debug ports reachable unseen"
    )
    services: list[str] | None = Field(default=None, description="default: the kind's services")
    owner: str = "facilities"
    support_end: dt.date | None = None
    update_verification: Literal["signed", "unsigned"] = Field(
        default="signed", description="unsigned: installs firmware without verifying a signature"
    )
    params: dict[str, Any] = Field(default_factory=dict)


class ConduitSpec(Model):
    """An allowed path: from/to name a zone, a device group or a device."""

    from_: str = Field(alias="from")
    to: str
    services: list[str | int] = Field(min_length=1, description="app names or TCP ports")
    note: str = ""


class DesignSpec(Model):
    kind: Literal["flat", "zoned", "micro"]
    description: str = ""
    conduits: list[ConduitSpec] = Field(default_factory=list)
    port_security: list[str] = Field(
        default_factory=list, description="zones whose switch ports refuse unknown devices (NAC)"
    )


class FacilitySpec(Model):
    name: str
    description: str = ""
    zones: list[ZoneSpec] = Field(min_length=1)
    devices: list[DeviceSpec] = Field(min_length=1)
    designs: dict[str, DesignSpec] = Field(min_length=1)
    outdoor: dict[str, float] = Field(
        default_factory=lambda: {"mean_c": 12.0, "swing_c": 6.0},
        description="daily outdoor temperature: mean and half peak-to-peak swing",
    )


class AttackerSpec(Model):
    name: str = "attacker"
    origin: Address = Field(
        description="where the attacker starts: an address in the internet zone"
    )


class ThresholdSpec(Model):
    """Start when a process signal crosses a value (e.g. a tank level above 3 m)."""

    signal: str
    above: float | None = None
    below: float | None = None


class StepSpec(Model):
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    technique: str
    at: Delay | None = Field(default=None, description="start time from run start")
    after: str | None = Field(default=None, description="start when this step has ended")
    when: ThresholdSpec | None = Field(default=None, description="start when a signal crosses")
    jitter: float = Field(default=0.0, ge=0, le=1, description="randomise pauses by +-this share")
    working_hours: tuple[float, float] | None = Field(
        default=None, description="a stealthy attacker acts only in these weekday hours"
    )
    delay: Delay = 0.0
    source: str | None = Field(
        default=None, alias="from", description="device to act from; default the last foothold"
    )
    target: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    grace: Delay | None = Field(default=None, description="scoring grace; default the technique's")


class CampaignSpec(Model):
    attacker: AttackerSpec
    steps: list[StepSpec] = Field(default_factory=list)


SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = (
    "quarantine", "block_conduit", "rotate_credentials", "reflash_firmware",
    "restore_setpoints", "enable_alarms",
)  # fmt: skip


class PlaybookSpec(Model):
    """When a detector raises an alert, an analyst takes an action on its device after a delay."""

    detector: str | None = Field(
        default=None, description="only this detector's alerts; default any"
    )
    min_severity: Literal["low", "medium", "high", "critical"] = "high"
    action: Literal[
        "quarantine", "block_conduit", "rotate_credentials", "reflash_firmware",
        "restore_setpoints", "enable_alarms",
    ]  # fmt: skip
    delay: Delay = Field(default=300.0, description="analyst time from alert to action")
    target: Literal["device", "source", "destination"] = Field(
        default="device", description="which party of the alert the action is taken on"
    )


class DetectorSpec(Model):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, description="name in alerts and scores; default name")

    @property
    def id(self) -> str:
        return self.label or self.name


class ScenarioSpec(Model):
    name: str
    story: str = ""
    facility: str | FacilitySpec = Field(description="a facility file (relative path) or inline")
    design: str
    duration: Duration
    warmup: Delay = Field(default=7200.0, description="attack-free time the detectors learn on")
    seed: int = 0
    backend: Literal["sim", "mininet"] = "sim"
    hosts: Literal["device", "group"] = Field(
        default="device",
        description="mininet backend: a host per device, or one per device group (very large "
        "sites; members of a group then reach each other without crossing the router)",
    )
    speed: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="mininet backend: simulated seconds per wall-clock second (60: an hour a minute)",
    )
    start: dt.datetime = Field(
        default=dt.datetime(2026, 1, 12, 0, 0), description="wall-clock time of t=0 (schedules)"
    )
    campaign: CampaignSpec | None = None
    detectors: list[str | DetectorSpec] = Field(default_factory=list)
    responses: list[PlaybookSpec] = Field(
        default_factory=list, description="playbooks; empty: none"
    )
    export_interval: Duration = Field(default=60.0, description="flow active timeout")
    batch_interval: Duration = Field(default=300.0, description="telemetry streamed per batch")
    physics_step: Duration = 10.0
    sample_interval: Duration = Field(default=60.0, description="process table sampling")
    grace: Delay = Field(default=600.0, description="scoring: detection grace after a step")
