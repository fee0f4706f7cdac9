"""On-site access: firmware flashed over a debug port, rogue devices, doors opened for accomplices."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field, field_validator

from attacks.base import Technique, TechniqueParams
from attacks.control import undiscovered, write_registers
from twin.behaviour import ATTESTATION_INTERVAL
from twin.devices import KINDS, Device
from twin.errors import Problem
from twin.facility import Facility
from twin.network.transactions import Transfer
from twin.schema import StepSpec
from twin.steps import Outcome, StepContext

# the setpoint a 'bias' implant shifts, per kind: the device's own temperature setpoint
BIASED = {"vav": "room_setpoint", "ahu": "supply_air_setpoint"}
BIAS_SCAN_S = 10.0  # the implant runs in the controller's scan: it sees each new command at once
REACH_S = 120.0  # walking to the device and opening its enclosure
FLASH_S = 300.0  # connecting to the debug port and writing the image
WALK_IN_S = 20.0  # between accomplices going through a door
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class ImplantParams(TechniqueParams):
    version: str = Field(default="implant", description="firmware version the implant reports")
    effect: Literal["beacon", "bias"] = "beacon"
    c2: str = Field(default="198.51.100.200", description="command server (internet address)")
    beacon_s: float = Field(default=900.0, gt=0, description="seconds between beacons")
    bias_c: float = Field(default=3.0, description="'bias': shift of the device's own setpoint")

    @field_validator("c2")
    @classmethod
    def _c2(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))


class FirmwareImplant(Technique):
    name = "firmware_implant"
    technique_id = "T0839"
    summary = (
        "flash implanted firmware through an unmonitored debug/USB port (T0839, T0857): silent on "
        "the network; it beacons to a C2 server or biases the device's own setpoint"
    )
    params = ImplantParams
    grace = ATTESTATION_INTERVAL + 600.0  # seen only at the next firmware attestation
    changes = ("process", "firmware")  # the image it runs; a biasing implant moves a setpoint

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        p: ImplantParams = params
        problems = super().check(step, params, facility)
        zone = facility.zone_of_ip(p.c2)
        if p.effect == "beacon" and (zone is None or zone not in facility.internet_zones()):
            problems.append(Problem("params.c2", f"{p.c2} is not in an internet zone"))
        target = facility.by_name.get(step.target or "")
        if p.effect == "bias" and target is not None and target.kind not in BIASED:
            kinds = ", ".join(BIASED)
            problems.append(
                Problem(
                    "params.effect", f"'bias' needs a setpoint ({kinds}); {target.kind} has none"
                )
            )
        return problems

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: ImplantParams = ctx.params
        device: Device = ctx.target
        yield ctx.pause(REACH_S)
        reason = ctx.physical.reachable(device.name)
        if reason is not None:
            return Outcome(False, device.name, device.ip, blocked_by=f"physical security: {reason}")
        yield ctx.pause(FLASH_S)
        digest = hashlib.sha256(f"{device.name}/{p.version}/{ctx.step.id}".encode()).hexdigest()
        if p.effect == "beacon":
            implant = f"{ctx.step.id}: beacon to {p.c2} every {p.beacon_s:g} s"
            behaviour = _beacon(ctx, device, implant)
        else:
            implant = f"{ctx.step.id}: {BIASED[device.kind]} {p.bias_c:+g}"
            behaviour = _bias(ctx, device, implant)
        ctx.physical.flash(device.name, p.version, digest[:32], implant, ctx.step.id)
        ctx.env.process(behaviour)
        detail = f"flashed {p.version} ({digest[:12]}); implant: {implant}"
        return Outcome(True, device.name, device.ip, detail=detail)


def _beacon(ctx: StepContext, device: Device, implant: str) -> Generator[simpy.Event, Any, None]:
    """Small HTTPS check-ins to the C2 server until a reflash removes the implant."""
    p: ImplantParams = ctx.params
    implants = ctx.net.faces.implants
    while implants.get(device.name) == implant:
        size = int(ctx.rng.integers(200, 600))
        # sent whatever the firewall says: a blocked beacon still leaves a flow record
        ctx.net.exchange(
            Transfer(device.ip, p.c2, dst_port=443, bytes_out=size, bytes_in=180, cause=ctx.step.id)
        )
        yield ctx.pause(p.beacon_s)


def _bias(ctx: StepContext, device: Device, implant: str) -> Generator[simpy.Event, Any, None]:
    """Shift every commanded setpoint by bias_c; the clean firmware restores the command."""
    p: ImplantParams = ctx.params
    reg = KINDS[device.kind].registers.get(BIASED[device.kind])
    assert reg is not None
    plant, implants = ctx.physical.plant, ctx.net.faces.implants
    lo, hi = reg.limits or (float("-inf"), float("inf"))
    commanded = applied = None
    while implants.get(device.name) == implant:
        now = plant.read(reg.state, device.index)
        if now != applied:  # a new command arrived (or this is the first scan)
            commanded, applied = now, min(max(now + p.bias_c, lo), hi)
            plant.write(reg.state, device.index, applied)
        yield ctx.env.timeout(BIAS_SCAN_S)
    if commanded is not None and plant.read(reg.state, device.index) == applied:
        plant.write(reg.state, device.index, commanded)


class RogueParams(TechniqueParams):
    zone: str = Field(description="zone whose switch gets the device")
    ip: str = Field(description="a free address in that zone")
    mac: str = "02:00:5e:10:00:99"

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))


class RogueDevice(Technique):
    name = "rogue_device"
    technique_id = "T0848"
    compromises = False  # the attacker's own box on a switch port: no site device is theirs
    summary = "plug a small computer into a zone's switch; later steps act 'from' it (its step id)"
    params = RogueParams
    needs_target = False

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        p: RogueParams = params
        zone = facility.zones.get(p.zone)
        problems = []
        if zone is None:
            problems.append(Problem("params.zone", f"unknown zone {p.zone!r}"))
        elif p.zone in facility.internet_zones():
            problems.append(Problem("params.zone", f"{p.zone} is outside the site"))
        elif ipaddress.ip_address(p.ip) not in zone.subnet:
            problems.append(Problem("params.ip", f"{p.ip} is not in {p.zone} ({zone.subnet})"))
        if p.ip in facility.by_ip:
            problems.append(Problem("params.ip", f"{p.ip} is taken by {facility.by_ip[p.ip].name}"))
        if not MAC.match(p.mac.lower()):
            problems.append(Problem("params.mac", f"{p.mac!r} is not a MAC address"))
        return problems

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: RogueParams = ctx.params
        switch = f"switch-{p.zone}"
        yield ctx.pause(REACH_S)
        if not ctx.physical.plug(p.zone, p.ip, p.mac.lower(), ctx.step.id):
            return Outcome(False, switch, p.ip, blocked_by=f"port security on {p.zone}")
        ctx.attacker.gain(ctx.step.id, p.ip)
        return Outcome(True, switch, p.ip, detail=f"{p.mac} at {p.ip} on {p.zone}")


class UnlockParams(TechniqueParams):
    doors: list[str] | None = Field(
        default=None, description="door controllers (devices or groups); default the target"
    )
    entries: int = Field(default=1, ge=0, description="accomplices who walk in through each door")
    requires_discovery: bool = Field(default=True, description="doors must have been scanned")


class UnlockDoors(Technique):
    name = "unlock_doors"
    technique_id = "T0855"
    changes = ("process",)
    summary = "release door locks with Modbus coil writes, then let accomplices walk in unbadged"
    params = UnlockParams
    needs_target = False

    @classmethod
    def _refs(cls, step: StepSpec, params: UnlockParams) -> list[str]:
        return params.doors or ([step.target] if step.target else [])

    @classmethod
    def check(cls, step: StepSpec, params: Any, facility: Facility) -> list[Problem]:
        refs = cls._refs(step, params)
        if not refs:
            return [Problem("params.doors", "name door controllers, or give a target")]
        problems = []
        for i, ref in enumerate(refs):
            found = facility.resolve(ref)
            if not found:
                problems.append(Problem(f"params.doors[{i}]", f"unknown device or group {ref!r}"))
            for d in found:
                lock = KINDS[d.kind].registers.get("lock")
                if lock is None or not lock.writable:
                    why = f"{d.name} is a {d.kind}, not a door controller (no lock coil)"
                    problems.append(Problem(f"params.doors[{i}]", why))
        return problems

    @classmethod
    def _controllers(cls, ctx: StepContext) -> list[Device]:
        return ctx.facility.resolve_all(cls._refs(ctx.step, ctx.params))

    @classmethod
    def precondition(cls, ctx: StepContext) -> str | None:
        if not ctx.params.requires_discovery:
            return None
        return next(filter(None, (undiscovered(ctx, d) for d in cls._controllers(ctx))), None)

    @classmethod
    def run(cls, ctx: StepContext) -> Generator[simpy.Event, Any, Outcome]:
        p: UnlockParams = ctx.params
        doors = cls._controllers(ctx)
        names, ips = ",".join(d.name for d in doors), ",".join(d.ip for d in doors)
        unlocked: list[Outcome] = []
        refused: list[Outcome] = []
        for d in doors:
            outcome = yield from write_registers(ctx, d, [("lock", 0.0)])
            (unlocked if outcome.succeeded else refused).append(outcome)
        forced = 0
        for _ in range(p.entries):
            for o in unlocked:
                yield ctx.pause(WALK_IN_S)
                # a response may have re-locked it meanwhile: then the door is forced (and alarms)
                door = ctx.facility.by_name[o.target].index
                forced += not ctx.physical.open_door(door, ctx.step.id)
        detail = f"unlocked {len(unlocked)}/{len(doors)} doors, {p.entries} accomplices walked in"
        if forced:
            detail += f", {forced} doors forced"
        if refused:
            first = refused[0]
            detail = f"{detail}; {first.target}: {first.detail}"
            return Outcome(False, names, ips, blocked_by=first.blocked_by, detail=detail)
        return Outcome(True, names, ips, detail=detail)
