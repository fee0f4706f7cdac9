"""On-site access: firmware implants, rogue devices on a switch, doors opened for accomplices."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.attacks.harness import device, engine, facility, skipped
from twin.behaviour import ATTESTATION_INTERVAL
from twin.engine import Engine
from twin.errors import ScenarioError
from twin.responses import ReflashFirmware
from twin.telemetry import TelemetryBatch

C2 = "198.51.100.200"
HALL = "room.server-hall.temp_c"
FAST: dict[str, Any] = {"export_interval": 300}  # fewer flow exports where only the plant matters
FOOTHOLD = {"id": "foothold", "technique": "default_credentials", "at": "1h10m", "target": "cam-lobby"}  # fmt: skip


def play(e: Engine, until: float) -> tuple[pd.DataFrame, TelemetryBatch]:
    """Run to `until`; the truth by step and all the telemetry on the way."""
    batch = e.run_until(until)
    return e.truth().set_index("step_id"), batch


def unmonitored(name: str, egress: bool = False) -> dict[str, Any]:
    """harbour-dc with `name`'s debug port reachable unseen (and HTTPS out of HVAC if egress)."""

    def change(fac: dict[str, Any]) -> None:
        device(fac, name)["physical_access"] = "unmonitored"
        if egress:
            conduit = {"from": "hvac", "to": "internet", "services": ["https"]}
            fac["designs"]["flat"]["conduits"] = [*fac["designs"]["flat"]["conduits"], conduit]

    return facility(change)


def implant(**params: Any) -> dict[str, Any]:
    return {"id": "implant", "technique": "firmware_implant", "at": "1h10m", "target": "vav-hall",
            "params": params}  # fmt: skip


def beacons(batch: TelemetryBatch) -> pd.DataFrame:
    f = batch.flows
    return f[(f["dst_ip"] == C2) & (f["dst_port"] == 443)]


# -- firmware_implant ----------------------------------------------------------------------------


def test_implant_is_flashed_silently_and_beacons_into_a_blocked_perimeter() -> None:
    """No event marks the flash; beacons leave every beacon_s and the perimeter drops them."""
    e = engine([implant(beacon_s=600)], fac=unmonitored("vav-hall"), duration="2h30m")
    truth, batch = play(e, 2.5 * 3600)
    row = truth.loc["implant"]
    assert row["technique"] == "T0839" and bool(row["succeeded"])
    assert row["grace"] == ATTESTATION_INTERVAL + 600
    assert row["event_ids"] == []
    assert e.faces.firmware["vav-hall"][0] == "implant"
    out = beacons(batch)
    assert set(out["flow_id"]) == set(row["flow_ids"])
    assert set(out["src_ip"]) == {e.device("vav-hall").ip} and out["blocked"].all()
    assert 7 <= len(out) <= 9  # one at the flash, then every ~600 s for 80 min


def test_reflash_removes_the_implant_and_its_beacons() -> None:
    """With an egress path the beacons pass, until a ReflashFirmware response removes the implant."""
    e = engine([implant(beacon_s=300)], fac=unmonitored("vav-hall", egress=True), duration="3h")
    e.schedule(ReflashFirmware(device="vav-hall"), 2.5 * 3600)
    _, batch = play(e, 3 * 3600)
    out = beacons(batch)
    assert len(out) > 10 and not out["blocked"].any()
    assert out["t_start"].max() < 2.5 * 3600
    assert e.faces.firmware["vav-hall"] == (e.device("vav-hall").firmware, e.device("vav-hall").firmware_hash)  # fmt: skip
    assert "vav-hall" not in e.faces.implants


def test_secured_device_cannot_be_flashed() -> None:
    """A device in a secured area: the step is attempted and physical security stops it."""
    truth, batch = play(engine([implant()], duration="1h30m", **FAST), 5400)
    assert not bool(truth.loc["implant", "succeeded"])
    assert truth.loc["implant", "blocked_by"] == "physical security: vav-hall is in a secured area"
    assert beacons(batch).empty


def test_biasing_implant_overheats_the_hall_and_survives_schedule_writes() -> None:
    """'bias' adds 6 K to every commanded setpoint: the hall drifts out of band; a reflash ends it."""
    e = engine([implant(effect="bias", bias_c=6.0)], fac=unmonitored("vav-hall"), duration="4h", **FAST)  # fmt: skip
    e.schedule(ReflashFirmware(device="vav-hall"), 3.5 * 3600)
    truth, batch = play(e, 3.4 * 3600)
    assert bool(truth.loc["implant", "succeeded"])
    vav = e.device("vav-hall").index
    assert e.plant.hvac.setpoint[vav] == 28.0  # the BMS wrote 22 at 3h: the implant shifted it
    hall = batch.process[batch.process["signal"] == HALL]
    assert hall["value"].max() > 27.0 and (hall["value"] - hall["reported"]).abs().max() < 0.2
    e.run_until(3.6 * 3600)
    assert e.plant.hvac.setpoint[vav] == 22.0  # clean firmware: the commanded value again


def test_next_attestation_reports_the_implant() -> None:
    """The implant stays invisible until the next firmware report, which carries its hash."""
    e = engine([implant()], fac=unmonitored("vav-hall"), duration="5h", physics_step=60,
               export_interval=3600, sample_interval=3600)  # fmt: skip
    batch = e.run_until(ATTESTATION_INTERVAL + 60)
    ev = batch.events
    reports = ev[(ev["kind"] == "firmware_report") & (ev["device"] == "vav-hall")]
    assert list(reports["t"]) == [0.0, ATTESTATION_INTERVAL]
    version, digest = e.faces.firmware["vav-hall"]
    assert reports["detail"].iloc[0] != f"{version} {digest}"
    assert reports["detail"].iloc[1] == f"implant {digest}"


def test_implant_params_are_checked() -> None:
    """A C2 inside the site, and a bias on a device without a setpoint, are scenario problems."""
    steps = [implant(c2="10.20.10.5"), {**implant(effect="bias"), "id": "i2", "target": "plc"}]
    with pytest.raises(ScenarioError) as err:
        engine(steps)
    assert [str(p) for p in err.value.problems] == [
        "campaign.steps[0].params.c2: 10.20.10.5 is not in an internet zone",
        "campaign.steps[1].params.effect: 'bias' needs a setpoint (vav, ahu); plc has none",
    ]


# -- rogue_device --------------------------------------------------------------------------------

ROGUE = {"id": "rogue", "technique": "rogue_device", "at": "1h10m",
         "params": {"zone": "hvac", "ip": "10.20.20.99"}}  # fmt: skip
WRITE_AHU = {"id": "write", "technique": "modbus_write", "after": "rogue", "from": "rogue",
             "target": "ahu", "params": {"register": "supply_air_setpoint", "value": 35,
                                         "requires_discovery": False}}  # fmt: skip


@pytest.mark.parametrize("design", ["flat", "zoned"])
def test_rogue_device_in_the_hvac_zone_reaches_the_ahu(design: str) -> None:
    """From a device plugged into the HVAC switch, a write to the AHU stays inside the zone."""
    e = engine([ROGUE, WRITE_AHU], design=design, duration="1h30m", **FAST)
    truth, batch = play(e, 5400)
    assert truth.loc["rogue", "technique"] == "T0848" and bool(truth.loc["rogue", "succeeded"])
    assert (truth.loc["write", "attacker"], truth.loc["write", "attacker_ip"]) == ("rogue", "10.20.20.99")  # fmt: skip
    assert bool(truth.loc["write", "succeeded"])
    assert e.plant.hvac.sa_setpoint[0] == 35.0
    seen = batch.events[batch.events["kind"] == "new_device"]
    assert list(seen["src_ip"]) == ["10.20.20.99"] and list(seen["device"]) == ["switch-hvac"]


def test_port_security_refuses_the_rogue_device() -> None:
    """A design with port security on the HVAC switch refuses the device; the write never runs."""

    def secure(fac: dict[str, Any]) -> None:
        fac["designs"]["zoned"]["port_security"] = ["hvac"]

    e = engine([ROGUE, WRITE_AHU], design="zoned", fac=facility(secure), duration="1h30m", **FAST)
    truth, batch = play(e, 5400)
    assert not bool(truth.loc["rogue", "succeeded"])
    assert truth.loc["rogue", "blocked_by"] == "port security on hvac"
    assert skipped(e) == {"write": "no foothold on rogue"}
    assert e.plant.hvac.sa_setpoint[0] == 13.0
    assert "port_security_violation" in set(batch.events["kind"])


def test_rogue_device_address_is_checked() -> None:
    """An address outside the zone, or one a device already holds, is a scenario problem."""
    taken = {**ROGUE, "id": "r2", "params": {"zone": "hvac", "ip": "10.20.20.10"}}
    outside = {**ROGUE, "params": {"zone": "hvac", "ip": "10.20.30.99"}}
    with pytest.raises(ScenarioError) as err:
        engine([outside, taken])
    assert [str(p) for p in err.value.problems] == [
        "campaign.steps[0].params.ip: 10.20.30.99 is not in hvac (10.20.20.0/24)",
        "campaign.steps[1].params.ip: 10.20.20.10 is taken by ahu",
    ]


# -- unlock_doors --------------------------------------------------------------------------------

EVENING: dict[str, Any] = {
    "start": "2026-01-12T17:00:00",
    "duration": "3h",
    **FAST,
}  # 19:30 is after hours
SCAN_ACCESS = {"id": "recon", "technique": "network_scan", "after": "foothold", "from": "cam-lobby",
               "params": {"subnets": ["10.20.30.0/24"], "ports": [502], "rate": 50}}  # fmt: skip


def unlock(**params: Any) -> dict[str, Any]:
    return {"id": "unlock", "technique": "unlock_doors", "at": "2h30m", "from": "cam-lobby",
            "params": {"doors": ["door-1", "door-2"], "entries": 2, **params}}  # fmt: skip


def door_signal(batch: TelemetryBatch, name: str) -> pd.Series:
    p = batch.process
    return p[p["signal"] == name].set_index("t")["value"]


def test_unlocked_doors_let_accomplices_in_after_hours() -> None:
    """Lock coils cleared over Modbus at 19:30; two accomplices walk through each door unbadged."""
    e = engine([FOOTHOLD, SCAN_ACCESS, unlock()], **EVENING)
    truth, batch = play(e, 3 * 3600)
    row = truth.loc["unlock"]
    assert row["technique"] == "T0855" and bool(row["succeeded"])
    assert row["target"] == "door-1,door-2"
    doors = e.plant.doors
    one, two, three = (e.device(f"door-{i}").index for i in (1, 2, 3))
    assert doors.unbadged_entries[one] >= 2 and doors.unbadged_entries[two] >= 2
    assert doors.unbadged_entries[three] == 0
    assert door_signal(batch, "door.door-1.locked").iloc[-1] == 0.0
    assert door_signal(batch, "door.door-3.locked").iloc[-1] == 1.0
    assert e.harm.summary()["doors_opened_without_badge"] >= 4


def test_zones_keep_the_doors_locked() -> None:
    """Zoned: the camera has no conduit to the access zone; no door opens without a badge."""
    e = engine([FOOTHOLD, unlock(requires_discovery=False)], design="zoned", **EVENING)
    truth, batch = play(e, 3 * 3600)
    assert not bool(truth.loc["unlock", "succeeded"])
    assert truth.loc["unlock", "blocked_by"] == "design zoned: no conduit cameras->access for port 502"  # fmt: skip
    assert e.plant.doors.unbadged_entries.sum() == 0
    assert door_signal(batch, "door.door-1.locked").min() == 1.0


def test_unlock_doors_needs_door_controllers() -> None:
    """Naming a device that is not a door controller is a scenario problem."""
    with pytest.raises(ScenarioError, match=r"doors\[0\]: plc is a plc, not a door controller"):
        engine([{**unlock(doors=["plc"]), "at": "1h"}])


def test_an_accomplice_entry_shows_as_an_open_door() -> None:
    """A walk-in through an unlocked door reads door.<name>.open = 1 in the next sample."""
    e = engine([])
    e.run_until(600)
    door = e.plant.door_names.index("door-2")
    e.plant.doors.locked[door] = 0.0
    assert e.physical.open_door(door, cause="test")
    batch = e.run_until(700)
    opened = batch.process[
        (batch.process.signal == "door.door-2.open") & (batch.process.value == 1.0)
    ]
    assert len(opened) >= 1 and e.plant.doors.unbadged_entries[door] == 1
