"""The shipped scenario library: every scenario checks, runs, and its attack does what its story says.

Runs are shortened to the end of the attack plus the time its consequence needs, and flows
are exported every 10 minutes (5 with detectors): attacks and physics do not depend on the
export interval, and the suite stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from attacks import TECHNIQUES
from twin.engine import Engine
from twin.run import execute
from twin.scenario import load_scenario, parse_scenario, read_yaml
from twin.telemetry import read_table

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = {p.stem: p for p in sorted(SCENARIOS.glob("*.yaml"))}
FAST_EXPORT = 600.0
RESPONSE_EXPORT = 300.0  # playbooks act on alerts streamed at this interval
MB = 1024 * 1024


@dataclass
class Outcome:
    """What a short run produced, with the questions the expectations ask of it."""

    truth: pd.DataFrame  # indexed by step_id
    skipped: dict[str, str]
    process: pd.DataFrame
    events: pd.DataFrame
    flows: pd.DataFrame
    harm: dict[str, Any]
    actions: list[str] = field(default_factory=list)

    def ok(self, step: str) -> bool:
        return step in self.truth.index and bool(self.truth.loc[step, "succeeded"])

    def blocked_by(self, step: str) -> str:
        return str(self.truth.loc[step, "blocked_by"])

    def signal(self, name: str) -> pd.DataFrame:
        rows = self.process[self.process["signal"] == name]
        assert not rows.empty, f"no process signal {name!r}"
        return rows

    def peak(self, name: str) -> float:
        return float(self.signal(name)["value"].max())

    def low(self, name: str) -> float:
        return float(self.signal(name)["value"].min())

    def last(self, name: str, column: str = "value") -> float:
        return float(self.signal(name)[column].iloc[-1])

    def alarms(self, device: str, what: str) -> pd.DataFrame:
        e = self.events
        return e[(e["kind"] == "alarm_raised") & (e["device"] == device) & (e["detail"] == what)]

    def step_flows(self, step: str) -> pd.DataFrame:
        ids = list(self.truth.loc[step, "flow_ids"])
        return self.flows[self.flows["flow_id"].isin(ids)]


def simulate(name: str, duration: str, design: str | None = None) -> Outcome:
    """Run a shipped scenario on the engine alone (no detectors, nothing written)."""
    overrides: dict[str, Any] = {"duration": duration, "export_interval": FAST_EXPORT}
    if design is not None:
        overrides["design"] = design
    engine = Engine(load_scenario(SHIPPED[name], overrides))
    with engine.net:
        batch = engine.run_until(engine.spec.duration)
    skipped = engine.campaign.skipped if engine.campaign else []
    return Outcome(
        truth=engine.truth().set_index("step_id"),
        skipped={s["step_id"]: s["reason"] for s in skipped},
        process=batch.process,
        events=batch.events,
        flows=batch.flows,
        harm=engine.harm.summary(),
    )


def respond(name: str, duration: str, out: Path) -> Outcome:
    """Run a scenario with its detectors and playbooks, as `twin run` does."""
    spec = load_scenario(SHIPPED[name], {"duration": duration, "export_interval": RESPONSE_EXPORT})
    result = execute(spec, out, counterfactual=False)
    impact = result.summary["impact"]
    return Outcome(
        truth=read_table(out, "truth").set_index("step_id"),
        skipped={s["step_id"]: s["reason"] for s in impact["steps_not_attempted"]},
        process=read_table(out, "process"),
        events=read_table(out, "events"),
        flows=read_table(out, "flows"),
        harm=impact,
        actions=[a["detail"] for a in result.summary["actions"]],
    )


# -- what each scenario's attack does when it succeeds --------------------------------------


def hall_overheats(o: Outcome) -> None:
    assert o.peak("room.server-hall.temp_c") > 30.0


def mcc_room_overheats_reporting_a_lie(o: Outcome) -> None:
    room = "room.mcc-room.temp_c"
    assert o.peak(room) > 35.0
    assert o.last(room, "reported") == pytest.approx(18.0)
    assert o.alarms("vav-mcc", "high_temperature").empty


def hall_overheats_reporting_a_lie(o: Outcome) -> None:
    hall = "room.server-hall.temp_c"
    assert o.last(hall) > 30.0
    assert o.last(hall, "reported") == pytest.approx(21.0)
    assert o.alarms("vav-hall", "high_temperature").empty


def buffer_runs_dry_then_hall_overheats(o: Outcome) -> None:
    assert o.low("tank.chw-buffer.level_m") < 0.3
    assert o.alarms("plc", "high_level").empty
    assert o.peak("room.server-hall.temp_c") > 27.0


def gateway_leaks_to_the_drop_server(o: Outcome) -> None:
    leaked = o.step_flows("leak")
    assert set(leaked["dst_ip"]) == {"198.51.100.77"}
    assert set(leaked["dst_port"]) == {8883}
    assert leaked["bytes"].sum() >= 12 * MB


def doors_left_unlocked(o: Outcome) -> None:
    for door in ("loading-bay", "comms"):
        assert o.last(f"door.{door}.locked") == 0.0
    assert o.low("door.entrance-1.locked") == 1.0
    assert o.harm["doors_opened_without_badge"] >= 4


def boardroom_overheats_and_alarms(o: Outcome) -> None:
    assert o.peak("room.boardroom.temp_c") > 26.0
    assert not o.alarms("vav-boardroom", "high_temperature").empty
    assert o.peak("room.office-3f-1.temp_c") < 26.0


def cameras_flood_the_victim(o: Outcome) -> None:
    flood = o.step_flows("ddos")
    assert set(flood["dst_ip"]) == {"203.0.113.150"}
    assert flood["src_ip"].nunique() == 5
    assert flood[~flood["blocked"]]["packets"].sum() >= 5 * 3000 * 1800


def comms_room_overheats_reporting_a_lie(o: Outcome) -> None:
    room = "room.comms-room.temp_c"
    assert o.peak(room) > 32.0
    assert o.last(room, "reported") == pytest.approx(19.0)


def playbook_keeps_comms_room_in_band(o: Outcome) -> None:
    assert "quarantined gateway" in o.actions
    assert any(a.startswith("re-enabled safety on vav-comms") for a in o.actions)
    room = "room.comms-room.temp_c"
    assert 23.0 < o.peak(room) < 27.0
    assert o.last(room) < 23.0


def offices_cooled_as_if_empty(o: Outcome) -> None:
    for room in ("office-1f-1", "office-2f-4", "office-3f-8"):
        assert o.peak(f"room.{room}.temp_c") > 26.0
    assert o.peak("room.comms-room.temp_c") < 27.0


def mixing_tank_overflows_silently(o: Outcome) -> None:
    assert o.peak("tank.mix-2.level_m") > 3.7
    assert o.alarms("plc-mix-2", "high_level").empty


def playbook_keeps_mixing_tank_safe(o: Outcome) -> None:
    assert "quarantined gateway" in o.actions
    assert any(a.startswith("re-enabled safety on plc-mix-2") for a in o.actions)
    assert o.blocked_by("silence") == "response: gateway quarantined"
    assert o.peak("tank.mix-2.level_m") < 3.7


def flooded_tank_overflows(o: Outcome) -> None:
    assert o.peak("tank.mix-1.level_m") > 3.7
    assert not o.alarms("plc-mix-1", "comm_loss").empty


def rinse_tank_past_safe_level(o: Outcome) -> None:
    assert o.peak("tank.rinse.level_m") > 2.7
    assert o.alarms("plc-rinse", "high_level").empty


def hall_recovers_after_playbook(o: Outcome) -> None:
    assert "quarantined cam-lobby" in o.actions
    assert o.last("room.server-hall.temp_c") < 27.0


@dataclass(frozen=True)
class Expect:
    duration: str  # long enough for the last step and its consequence
    succeeded: tuple[str, ...]
    consequence: Callable[[Outcome], None]
    responses: bool = False  # needs detectors and playbooks: run as `twin run` does


EXPECT: dict[str, Expect] = {
    "flagship": Expect("4h30m", ("foothold", "recon", "overheat"), hall_overheats),
    "flagship-response": Expect(
        "4h30m", ("foothold", "recon", "overheat"), hall_recovers_after_playbook, responses=True
    ),
    "dc-server-hall-lie": Expect(
        "4h40m", ("foothold", "slow-scan", "lie"), hall_overheats_reporting_a_lie
    ),
    "dc-chiller-drain": Expect(
        "5h15m",
        ("foothold", "sweep", "identify", "drain", "fan-off"),
        buffer_runs_dry_then_hall_overheats,
    ),
    "dc-gateway-exfil": Expect(
        "4h45m",
        ("foothold", "probe-iot", "exploit", "who-is-there", "leak"),
        gateway_leaks_to_the_drop_server,
    ),
    "office-night-entry": Expect(
        "4h40m", ("implant-box", "find-doors", "let-them-in"), doors_left_unlocked
    ),
    "office-boardroom-implant": Expect("6h30m", ("ceiling-tile",), boardroom_overheats_and_alarms),
    "office-camera-botnet": Expect(
        "3h15m", ("recruit", "spread", "ddos"), cameras_flood_the_victim
    ),
    "office-comms-room-lie": Expect(
        "4h", ("guess", "sweep-hvac", "cold-lie"), comms_room_overheats_reporting_a_lie
    ),
    "office-comms-room-response": Expect(
        "4h",
        ("guess", "sweep-hvac", "cold-lie"),
        playbook_keeps_comms_room_in_band,
        responses=True,
    ),
    "office-setback-replay": Expect(
        "10h05m", ("foothold", "record-and-replay"), offices_cooled_as_if_empty
    ),
    "plant-gateway-overflow": Expect(
        "4h",
        ("shell", "list-plcs", "identify", "defeat-interlock", "silence"),
        mixing_tank_overflows_silently,
    ),
    "plant-gateway-response": Expect(
        "4h30m",
        ("shell", "list-plcs", "identify", "defeat-interlock"),
        playbook_keeps_mixing_tank_safe,
        responses=True,
    ),
    "plant-rogue-flood": Expect(
        "5h45m", ("plug-in", "find-plcs", "stall-plc"), flooded_tank_overflows
    ),
    "plant-insider-lie": Expect(
        "5h40m",
        ("gate-camera", "look-for-ssh", "pivot", "find-mcc-vav", "lie-to-mcc"),
        mcc_room_overheats_reporting_a_lie,
    ),
    "plant-integrator-pivot": Expect(
        "5h",
        ("gate-camera", "look-for-ssh", "pivot", "find-rinse-plc", "identify", "move-setpoints"),
        rinse_tank_past_safe_level,
    ),
}


# -- (a) every shipped scenario checks --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_scenario_validates_with_a_story(name: str) -> None:
    """Each shipped file passes the checker and opens its story with a one-line summary."""
    spec = load_scenario(SHIPPED[name])
    first = spec.story.strip().split(". ")[0]
    assert 20 < len(first) < 240, first
    assert spec.campaign is not None and spec.campaign.steps
    assert 4 * 3600 <= spec.duration <= 12 * 3600
    assert {"conduit_policy", "allowlist"} <= {
        d if isinstance(d, str) else d.name for d in spec.detectors
    }


def test_every_shipped_scenario_has_an_expectation() -> None:
    """A new scenario must say here what its attack does (and the list holds no stale names)."""
    assert set(EXPECT) == set(SHIPPED)


# -- (b) every shipped scenario runs, and succeeds with a visible consequence -----------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_scenario_attack_succeeds_with_visible_consequence(
    name: str, tmp_path: Path
) -> None:
    """On its own design, the scenario's steps succeed and the harm shows in the tables."""
    expect = EXPECT[name]
    run = (
        respond(name, expect.duration, tmp_path)
        if expect.responses
        else simulate(name, expect.duration)
    )
    failed = {s: run.truth.loc[s, "detail"] for s in expect.succeeded if not run.ok(s)}
    assert not failed, f"steps did not succeed: {failed}; skipped: {run.skipped}"
    expect.consequence(run)


# -- (c) the same campaign on a stricter design is stopped, and the harm is absent ------------


def test_zones_stop_the_server_hall_lie() -> None:
    """Zoned: the camera's slow scan is blocked, the lie never runs, the hall stays in band."""
    run = simulate("dc-server-hall-lie", "4h40m", design="zoned")
    assert run.blocked_by("slow-scan").startswith("design zoned: no conduit cameras->hvac")
    assert "lie" in run.skipped
    assert run.peak("room.server-hall.temp_c") < 27.0


def test_zones_stop_the_chiller_drain() -> None:
    """Zoned: the sweep finds nothing beyond the camera zone; the buffer and the hall are fine."""
    run = simulate("dc-chiller-drain", "5h15m", design="zoned")
    assert not run.ok("sweep")
    assert {"identify", "drain"} <= set(run.skipped)
    assert run.low("tank.chw-buffer.level_m") > 1.0
    assert run.peak("room.server-hall.temp_c") < 27.0


def test_port_security_refuses_the_desk_box_and_the_doors_stay_locked() -> None:
    """Micro (with port security on corp): the rogue box is refused; no door opens unbadged."""
    run = simulate("office-night-entry", "4h40m", design="micro")
    assert run.blocked_by("implant-box") == "port security on corp"
    assert {"find-doors", "let-them-in"} <= set(run.skipped)
    assert run.low("door.loading-bay.locked") == 1.0
    assert run.harm["doors_opened_without_badge"] == 0
    assert (run.events["kind"] == "port_security_violation").sum() == 1


def test_zones_keep_the_desk_box_away_from_the_door_controllers() -> None:
    """Zoned: only the reception PC may reach the entrance doors; the sweep is blocked."""
    run = simulate("office-night-entry", "4h40m", design="zoned")
    assert run.ok("implant-box")
    assert run.blocked_by("find-doors").startswith("design zoned: no conduit corp->access")
    assert run.low("door.comms.locked") == 1.0


def test_micro_segmentation_contains_the_botnet() -> None:
    """Micro: the forwarded camera is recruited, but it can neither spread nor flood outside."""
    run = simulate("office-camera-botnet", "3h15m", design="micro")
    assert run.ok("recruit") and not run.ok("spread")
    assert not run.ok("ddos")
    assert run.blocked_by("ddos").startswith("design micro: no conduit cameras->internet")
    assert run.step_flows("ddos")["blocked"].all()


def test_micro_segmentation_keeps_the_gateway_off_the_comms_room_vav() -> None:
    """Micro: the gateway reaches only its sensors, so the VAV is never found or lied to."""
    run = simulate("office-comms-room-lie", "4h", design="micro")
    assert run.ok("guess")
    assert "cold-lie" in run.skipped
    assert run.peak("room.comms-room.temp_c") < 27.0


def test_port_security_on_the_line_refuses_the_flooding_box() -> None:
    """Micro (port security on the line): the box is refused and the tank cycles normally."""
    run = simulate("plant-rogue-flood", "5h45m", design="micro")
    assert run.blocked_by("plug-in") == "port security on line"
    assert run.peak("tank.mix-1.level_m") < 3.1


def test_zones_stop_the_pivot_to_the_engineering_workstation() -> None:
    """Zoned: the camera finds no SSH in the SCADA subnet; the rinse tank stays safe."""
    run = simulate("plant-integrator-pivot", "5h", design="zoned")
    assert not run.ok("look-for-ssh")
    assert "pivot" in run.skipped
    assert run.peak("tank.rinse.level_m") < 2.7


def test_zones_keep_the_insider_off_the_workstation() -> None:
    """Zoned: the gate camera cannot reach the SCADA subnet, so the MCC room stays in band."""
    run = simulate("plant-insider-lie", "5h40m", design="zoned")
    assert not run.ok("look-for-ssh") and "pivot" in run.skipped
    assert run.peak("room.mcc-room.temp_c") < 35.0


def test_only_the_physics_sees_the_insider_lie(tmp_path: Path) -> None:
    """An engineer's host writing on a documented conduit: policy and allowlist stay quiet, physics does not."""
    from twin.run import execute

    result = execute(
        load_scenario(SHIPPED["plant-insider-lie"], {"duration": "5h40m"}),
        tmp_path,
        counterfactual=False,
    )
    truth = pd.read_parquet(tmp_path / "truth.parquet").set_index("step_id")
    alerts = pd.read_parquet(tmp_path / "alerts.parquet")
    step = truth.loc["lie-to-mcc"]
    window = alerts[(alerts.t >= step.t_start) & (alerts.t <= step.t_end + step.grace)]
    assert set(window.detector) == {"physics"}
    assert result.summary["impact"]["rooms_outside_band"]["mcc-room"] > 0


def test_a_read_conduit_carries_writes_even_under_micro_segmentation() -> None:
    """Micro: the gateway's Modbus conduit is per port, so its writes still overflow the tank."""
    run = simulate("plant-gateway-overflow", "4h", design="micro")
    assert run.ok("defeat-interlock") and run.ok("silence")
    assert run.peak("tank.mix-2.level_m") > 3.7


# -- (d) together, the library exercises every registered technique --------------------------


def test_the_library_uses_every_registered_technique() -> None:
    """The union of techniques in shipped scenarios is the registry: nothing goes untried."""
    used = {
        step["technique"]
        for path in SHIPPED.values()
        for step in read_yaml(path)["campaign"]["steps"]
    }
    assert used == set(TECHNIQUES)


def test_zones_stop_the_gateway_data_tap() -> None:
    """Zoned: the camera cannot reach the IoT zone, so nothing leaks to the drop server."""
    run = simulate("dc-gateway-exfil", "7h", design="zoned")
    assert not run.ok("probe-iot")
    assert "leak" not in run.truth.index
    assert run.flows[run.flows["dst_ip"] == "198.51.100.77"]["bytes"].sum() == 0


def test_zones_hide_the_bms_commands_from_the_replayer() -> None:
    """Zoned: a camera cannot see the BMS's writes, so there is nothing to replay; offices stay cool."""
    run = simulate("office-setback-replay", "11h", design="zoned")
    assert not run.ok("record-and-replay")
    assert "visibility" in run.blocked_by("record-and-replay")
    for room in ("office-1f-1", "office-2f-4", "office-3f-8"):
        assert run.peak(f"room.{room}.temp_c") < 26.0


def test_a_secured_ceiling_stops_the_usb_implant() -> None:
    """With the boardroom VAV in a secured area, the flash fails and the room stays in band."""
    raw = yaml.safe_load(SHIPPED["office-boardroom-implant"].read_text())
    fac = yaml.safe_load((SCENARIOS / raw["facility"]).read_text())
    next(d for d in fac["devices"] if d["name"] == "vav-boardroom")["physical_access"] = "secured"
    spec, problems = parse_scenario({**raw, "facility": fac}, SCENARIOS)
    assert not problems and spec is not None
    engine = Engine(spec)
    batch = engine.run_until(spec.duration)
    truth = engine.truth().set_index("step_id")
    assert not bool(truth.loc["ceiling-tile", "succeeded"])
    assert truth.loc["ceiling-tile", "blocked_by"].startswith("physical security")
    temps = batch.process[batch.process["signal"] == "room.boardroom.temp_c"]["value"]
    assert temps.max() < 26.0
