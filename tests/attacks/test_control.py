"""Impact on control: manipulated setpoints, injected false data, replay and suppressed alarms."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.attacks.harness import engine, skipped
from twin.engine import Engine
from twin.errors import ScenarioError
from twin.responses import EnableAlarms
from twin.telemetry import TelemetryBatch

LEVEL = "tank.chw-buffer.level_m"
HALL = "room.server-hall.temp_c"
SAFE_HI, TRIP = 3.7, 3.6  # the PLC's safe band top and interlock trip level (harbour-dc)
FAST: dict[str, Any] = {"export_interval": 300}  # fewer flow exports: these tests look at the plant
FOOTHOLD = {"id": "foothold", "technique": "default_credentials", "at": "1h10m", "target": "cam-lobby"}  # fmt: skip
OVERFILL = [{"register": "level_high_sp", "value": 3.9}, {"register": "interlock_enable", "value": 0}]  # fmt: skip


def recon(subnet: str) -> dict[str, Any]:
    return {"id": "recon", "technique": "network_scan", "after": "foothold", "from": "cam-lobby",
            "params": {"subnets": [subnet], "ports": [502], "rate": 50}}  # fmt: skip


def step(sid: str, technique: str, after: str, target: str | None, **params: Any) -> dict[str, Any]:
    return {"id": sid, "technique": technique, "after": after, "from": "cam-lobby",
            "target": target, "params": params}  # fmt: skip


def play(e: Engine, until: float) -> tuple[pd.DataFrame, TelemetryBatch]:
    """Run to `until`; the truth by step and all the telemetry on the way."""
    batch = e.run_until(until)
    return e.truth().set_index("step_id"), batch


def signal(batch: TelemetryBatch, name: str) -> pd.DataFrame:
    return batch.process[batch.process["signal"] == name].set_index("t")


def alarms(batch: TelemetryBatch, what: str) -> pd.DataFrame:
    ev = batch.events
    return ev[(ev["kind"] == "alarm_raised") & (ev["detail"] == what)]


def overfill_chain(design: str = "flat", suppress: bool = False) -> Engine:
    steps = [FOOTHOLD, recon("10.20.60.0/24")]
    if suppress:
        steps.append(step("mute", "suppress_alarm", "recon", "plc"))
    steps.append(step("overfill", "manipulate_control", steps[-1]["id"], "plc", writes=OVERFILL))
    return engine(steps, design=design, duration="2h45m", **FAST)


# -- manipulate_control -----------------------------------------------------------------------


def test_manipulated_plc_overfills_the_tank_on_flat() -> None:
    """Raised high setpoint and a disabled interlock drive the tank above its safe band."""
    e = overfill_chain()
    truth, batch = play(e, 2.75 * 3600)
    assert list(truth["technique"]) == ["T0812", "T0846", "T0831"]
    assert bool(truth.loc["overfill", "succeeded"])
    assert truth.loc["overfill", "detail"] == "level_high_sp := 3.9 m; interlock_enable := 0"
    assert signal(batch, LEVEL)["value"].max() > SAFE_HI
    assert e.harm.summary()["unsafe_tank_minutes"] > 0


def test_zones_keep_the_plc_out_of_reach() -> None:
    """Zoned: the camera has no conduit to OT, so the PLC is never found nor written."""
    e = overfill_chain("zoned")
    truth, batch = play(e, 2.75 * 3600)
    assert truth.loc["recon", "blocked_by"] == "design zoned: no conduit cameras->ot for port 502"
    assert skipped(e) == {"overfill": "plc (10.20.60.10) was not discovered with Modbus open"}
    assert signal(batch, LEVEL)["value"].max() < SAFE_HI


def test_manipulate_control_checks_each_register() -> None:
    """Unknown, read-only and out-of-range registers are scenario problems, with their paths."""
    writes = [{"register": "level_high_sp", "value": 12}, {"register": "level", "value": 1},
              {"register": "speed", "value": 1}]  # fmt: skip
    with pytest.raises(ScenarioError) as err:
        engine([{**step("m", "manipulate_control", "x", "plc", writes=writes), "after": None,
                 "at": "1h"}])  # fmt: skip
    messages = [str(p) for p in err.value.problems]
    assert any("writes[0].register: level_high_sp=12 is outside" in m for m in messages)
    assert any("writes[1].register: level of plc plc is read-only" in m for m in messages)
    assert any("writes[2].register: plc plc has no register 'speed'" in m for m in messages)


# -- suppress_alarm -----------------------------------------------------------------------------


def test_suppressed_alarm_stays_silent_through_the_overfill() -> None:
    """With alarm_enable cleared the BMS logs no high-level alarm although the tank tripped."""
    e = overfill_chain(suppress=True)
    truth, batch = play(e, 2.75 * 3600)
    assert truth.loc["mute", "technique"] == "T0878" and bool(truth.loc["mute", "succeeded"])
    assert signal(batch, LEVEL)["value"].max() > TRIP
    assert alarms(batch, "high_level").empty


def test_without_suppression_the_overfill_raises_the_alarm() -> None:
    """The same overfill without the suppression step: the BMS raises the high-level alarm."""
    _, batch = play(overfill_chain(), 2.75 * 3600)
    raised = alarms(batch, "high_level")
    assert list(raised["device"]) == ["plc"] and raised["value"].iloc[0] > TRIP


def test_enabling_alarms_on_a_tripped_tank_announces_it() -> None:
    """EnableAlarms while the tank is above trip level: the alarm is raised, the pump stops."""
    e = overfill_chain(suppress=True)
    e.schedule(EnableAlarms(device="plc"), 6200)
    truth, batch = play(e, 2.75 * 3600)
    assert bool(truth.loc["mute", "succeeded"])
    raised = alarms(batch, "high_level")
    assert len(raised) == 1 and raised["t"].iloc[0] >= 6200
    level = signal(batch, LEVEL)["value"]
    assert level.max() < 3.9  # the interlock is back: the pump stopped before the high setpoint


def test_zones_stop_the_alarm_suppression() -> None:
    """Zoned: the write is refused by the firewall, with the design named as the blocker."""
    mute = step("mute", "suppress_alarm", "foothold", "plc", requires_discovery=False)
    truth, _ = play(engine([FOOTHOLD, mute], design="zoned", duration="1h30m", **FAST), 5400)
    assert not bool(truth.loc["mute", "succeeded"])
    assert truth.loc["mute", "blocked_by"] == "design zoned: no conduit cameras->ot for port 502"


# -- false_data_injection ----------------------------------------------------------------------


def test_false_cold_reading_lets_the_server_hall_overheat() -> None:
    """The VAV believes the hall is at 18 degC: it shuts its damper, the hall heats, the lie stays."""
    steps = [
        FOOTHOLD,
        recon("10.20.20.0/24"),
        step("lie", "false_data_injection", "recon", "vav-hall"),
    ]
    e = engine(steps, duration="2h30m", **FAST)
    truth, batch = play(e, 2.5 * 3600)
    assert truth.loc["lie", "technique"] == "T0856" and bool(truth.loc["lie", "succeeded"])
    hall = signal(batch, HALL)
    after = hall[hall.index > truth.loc["lie", "t_end"] + 60]
    assert after["value"].iloc[-1] > 30.0 > 27.0  # well out of its band
    assert (after["reported"] == 18.0).all()
    assert alarms(batch, "high_temperature").empty  # the BMS polls the lie too


def test_zones_stop_the_false_data_injection() -> None:
    """Zoned: no conduit cameras->hvac; the hall keeps its temperature."""
    lie = step("lie", "false_data_injection", "foothold", "vav-hall", requires_discovery=False)
    e = engine([FOOTHOLD, lie], design="zoned", duration="2h", **FAST)
    truth, batch = play(e, 7200)
    assert truth.loc["lie", "blocked_by"] == "design zoned: no conduit cameras->hvac for port 502"
    assert signal(batch, HALL)["value"].max() < 27.0


def test_false_data_injection_needs_an_override() -> None:
    """A kind without a sensed-value override (an AHU) is refused at scenario time."""
    with pytest.raises(ScenarioError, match="ahu ahu has no sensed-value override"):
        engine([{"id": "lie", "technique": "false_data_injection", "at": "1h", "target": "ahu"}])


# -- replay -------------------------------------------------------------------------------------

# Monday 04:00: sniffing 05:10-06:00:40 captures the 06:00 schedule writes (unoccupied, 25 degC);
# they are replayed 40 s after each occupied-hours write (22 degC) at 07:00, 08:00 and 09:00.
# In January the offices sit below both setpoints (the VAVs only cool); the server hall shows it.
EARLY: dict[str, Any] = {"start": "2026-01-12T04:00:00", "duration": "6h", **FAST}
WORKDAY = (4 * 3600, 6 * 3600)  # 08:00-10:00


def replay_chain(
    source: str = "cam-lobby", before: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    replay = {"id": "replay", "technique": "replay", "at": "1h10m", "from": source,
              "params": {"capture_from": "bms-server", "register": "room_setpoint",
                         "capture_s": 3040, "times": 3, "interval_s": 3600}}  # fmt: skip
    return [{**FOOTHOLD, "at": "1h5m"}, *([before] if before else []), replay]


def hall_in_workday(batch: TelemetryBatch) -> pd.Series:
    hall = signal(batch, HALL)["value"]
    return hall[(hall.index > WORKDAY[0]) & (hall.index < WORKDAY[1])]


def test_replayed_night_setpoints_keep_the_server_hall_warm() -> None:
    """Flat: the camera sniffs the BMS's night setpoints and replays them in working hours."""
    e = engine(replay_chain(), **EARLY)
    truth, batch = play(e, WORKDAY[1])
    row = truth.loc["replay"]
    assert row["technique"] == "T0855" and bool(row["succeeded"])
    assert row["detail"] == "captured 7 writes of bms-server; resent 3x, 21 accepted"
    assert row["target"].split(",") == ["vav-hall", *[f"vav-{i}" for i in range(1, 7)]]
    assert (e.plant.hvac.setpoint == 25.0).all()  # the schedule says 22 from 07:00
    assert hall_in_workday(batch).min() > 24.5


def test_zones_hide_the_bms_writes_from_the_camera() -> None:
    """Zoned: the camera's switch never carries BMS->HVAC traffic; nothing to replay."""
    e = engine(replay_chain(), design="zoned", **EARLY)
    truth, batch = play(e, WORKDAY[1])
    assert truth.loc["replay", "blocked_by"] == (
        "design zoned: no L2 visibility from cam-lobby (cameras) of bms-server's writes"
    )
    assert truth.loc["replay", "detail"] == "7 writes of bms-server in 3040 s, none seen"
    assert hall_in_workday(batch).max() < 22.5


def test_rogue_device_on_the_hvac_switch_replays_despite_zones() -> None:
    """Zoned, but sniffing from inside the HVAC zone: capture and resend both work."""
    rogue = {"id": "tap", "technique": "rogue_device", "at": "1h5m",
             "params": {"zone": "hvac", "ip": "10.20.20.200"}}  # fmt: skip
    e = engine(replay_chain("tap", rogue), design="zoned", **EARLY)
    truth, _ = play(e, 6 * 3600)
    assert bool(truth.loc["replay", "succeeded"])
    assert truth.loc["replay", "attacker_ip"] == "10.20.20.200"
    assert (e.plant.hvac.setpoint == 25.0).all()


def test_replay_checks_its_source_and_register() -> None:
    """An unknown capture device or a register no device has is a scenario problem."""
    bad = {"id": "r", "technique": "replay", "at": "1h",
           "params": {"capture_from": "bms", "register": "room_setpont"}}  # fmt: skip
    with pytest.raises(ScenarioError) as err:
        engine([bad])
    assert [str(p) for p in err.value.problems] == [
        "campaign.steps[0].params.capture_from: unknown device 'bms'",
        "campaign.steps[0].params.register: no device of harbour-dc has a writable register 'room_setpont'",
    ]
