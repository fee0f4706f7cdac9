"""The scenario and facility file formats, declared as pydantic models (structure and bounds).

Every number is finite, and every duration, interval and count has a bound (BOUNDS, printed
by `twin schema`) chosen so that any valid scenario finishes in bounded time and memory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from twin.rundir import NAME as RUN_NAME

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
# each part but the last must end in a unit, so there is one way to split a string into
# parts: matching takes linear time (a pattern that let digits split freely took
# exponential time on a long run of digits)
_DURATION = re.compile(r"^\s*-?\s*(?:\d+(?:\.\d+)?\s*(?:min|d|h|m|s)\s*)*(?:\d+(?:\.\d+)?\s*)?$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(min|d|h|m|s)?")
_MAX_DURATION_TEXT = 64

DAY = 86400.0
MAX_DURATION = 366 * DAY  # a run, and any time within one (a step's start, a delay)
MAX_PHYSICS_STEPS = 5_000_000  # duration / physics_step: a year at the default 10 s is 3.2 M
MAX_INTERVALS = 1_000_000  # duration / each of export, sample and batch interval
MAX_STEPS = 10_000  # attack steps in a campaign
MAX_DEVICES = 100_000  # devices in a facility, counting every member of a group
MAX_SEED = 2**63 - 1
NAME = RUN_NAME.pattern  # names that become paths

BOUNDS = {
    "numbers": "finite everywhere (no .nan, .inf)",
    "duration": f"more than 0, at most {MAX_DURATION / DAY:g} d; any time in a run too",
    "physics_step": "0.1 s to 1 h",
    "export_interval, sample_interval, batch_interval": "1 s to 1 d",
    "duration / physics_step": f"at most {MAX_PHYSICS_STEPS:,} steps",
    "duration / each interval": f"at most {MAX_INTERVALS:,} intervals",
    "campaign.steps": f"at most {MAX_STEPS:,}",
    "devices (members of groups counted)": f"at most {MAX_DEVICES:,}",
    "seed": f"0 to {MAX_SEED}",
    "name, design names": "1-64 letters, digits, '.', '_' or '-' (they name run directories)",
}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as '90s', '15m', '6h', '2d', '3h30m'."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"expected a finite duration, got {value!r}")
        return float(value)
    if isinstance(value, str) and len(value) <= _MAX_DURATION_TEXT and _DURATION.match(value):
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
    return _within_a_run(value)


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must not be negative, got {value:g} s")
    return _within_a_run(value)


def _within_a_run(value: float) -> float:
    if value > MAX_DURATION:
        raise ValueError(
            f"{value:g} s is longer than the longest run, {MAX_DURATION / DAY:g} d "
            f"({MAX_DURATION:g} s)"
        )
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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    conduits: list[ConduitSpec] = Field(default_factory=list, max_length=10_000)
    port_security: list[str] = Field(
        default_factory=list, description="zones whose switch ports refuse unknown devices (NAC)"
    )


OUTDOOR = {"mean_c": (-60.0, 60.0), "swing_c": (0.0, 40.0)}


def _outdoor(value: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(value) - set(OUTDOOR))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; outdoor takes {', '.join(OUTDOOR)}")
    for key, (low, high) in OUTDOOR.items():
        if key in value and not low <= value[key] <= high:
            raise ValueError(f"{key} must be within {low:g}..{high:g}, got {value[key]:g}")
    return {"mean_c": 12.0, "swing_c": 6.0, **value}


class FacilitySpec(Model):
    name: str
    description: str = ""
    zones: list[ZoneSpec] = Field(min_length=1, max_length=1000)
    devices: list[DeviceSpec] = Field(min_length=1, max_length=MAX_DEVICES)
    designs: dict[str, DesignSpec] = Field(min_length=1, max_length=100)
    outdoor: Annotated[dict[str, float], AfterValidator(_outdoor)] = Field(
        default_factory=lambda: {"mean_c": 12.0, "swing_c": 6.0},
        description="daily outdoor temperature: mean_c (-60..60) and swing_c, the half "
        "peak-to-peak swing (0..40)",
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
    steps: list[StepSpec] = Field(default_factory=list, max_length=MAX_STEPS)


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
    name: str = Field(pattern=NAME, description="names the default run directory")
    story: str = ""
    facility: str | FacilitySpec = Field(description="a facility file (relative path) or inline")
    design: str
    duration: Duration
    warmup: Delay = Field(default=7200.0, description="attack-free time the detectors learn on")
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
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
        default=dt.datetime(2026, 1, 12, 0, 0),
        ge=dt.datetime(1900, 1, 1),
        le=dt.datetime(2999, 12, 31),
        description="wall-clock time of t=0 (schedules)",
    )
    campaign: CampaignSpec | None = None
    detectors: list[str | DetectorSpec] = Field(default_factory=list, max_length=100)
    responses: list[PlaybookSpec] = Field(
        default_factory=list, max_length=100, description="playbooks; empty: none"
    )
    export_interval: Duration = Field(
        default=60.0, ge=1, le=DAY, description="flow active timeout (1 s to 1 d)"
    )
    batch_interval: Duration = Field(
        default=300.0, ge=1, le=DAY, description="telemetry streamed per batch (1 s to 1 d)"
    )
    physics_step: Duration = Field(default=10.0, ge=0.1, le=3600, description="0.1 s to 1 h")
    sample_interval: Duration = Field(
        default=60.0, ge=1, le=DAY, description="process table sampling (1 s to 1 d)"
    )
    grace: Delay = Field(default=600.0, description="scoring: detection grace after a step")
