"""Availability techniques: a flood stalls controllers, a Mirai-style botnet recruits and DDoSes."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from attacks.availability import MIRAI_WORDLIST
from tests.attacks.harness import engine, facility, run, skipped
from twin.responses import Quarantine

H = 3600.0
FOOTHOLD = {"id": "foothold", "technique": "default_credentials", "at": "1h", "target": "cam-lobby"}
CAMERA_NET = "10.20.40.0/24"
VICTIM = "198.51.100.250"
LEVEL = "tank.chw-buffer.level_m"


def flood(target: str, **params: Any) -> dict[str, Any]:
    return {"id": "dos", "technique": "flood", "after": "foothold", "from": "cam-lobby",
            "target": target, "params": params}  # fmt: skip


def conduit(fac: dict[str, Any], src: str, dst: str, services: list[str], note: str) -> None:
    """Add a conduit to every design (a new list, so designs sharing a YAML anchor stay apart)."""
    for design in fac["designs"].values():
        design["conduits"] = [
            *design["conduits"],
            {"from": src, "to": dst, "services": services, "note": note},
        ]


def mirai_cameras(fac: dict[str, Any]) -> None:
    """Every camera on its factory password with telnet enabled (cheap models ship so)."""
    for d in fac["devices"]:
        if d["kind"] == "camera":
            d["credentials"] = "default"
            d["services"] = ["http", "rtsp", "telnet"]


def recruit(**params: Any) -> dict[str, Any]:
    return {"id": "recruit", "technique": "botnet_recruit", "after": "foothold",
            "params": {"subnets": [CAMERA_NET], "rate": 100, **params}}  # fmt: skip


# -- flood ----------------------------------------------------------------------------------


def test_flooding_the_plc_holds_its_pump_past_the_high_setpoint() -> None:
    """A stalled PLC keeps its pump running: the tank fills past 3.0 m, up to the trip alarm."""
    e = engine([FOOTHOLD, flood("plc", duration_s=2400)], duration="3h")
    levels, batches = [], []
    for t in range(int(H), int(H) + 2460, 300):  # the last burst ends just after 2400 s
        batches.append(e.run_until(t))
        levels.append((e.signal(LEVEL), e.signal("tank.chw-buffer.pump_on")))
    batches.append(e.run_until(H + 2460))
    batches.append(e.run_until(H + 2700))  # the flood is over: the BMS hears the PLC again
    truth = e.truth().set_index("step_id")
    assert bool(truth.loc["dos", "succeeded"]) and truth.loc["dos", "blocked_by"] == ""
    assert e.signal(LEVEL) > 3.5
    assert all(pump == 1.0 for level, pump in levels if level > 3.0)
    events = pd.concat([b.events for b in batches])
    plc = events[events.device == "plc"]
    # blind while flooded (comm_loss), then the level alarm once the PLC answers again
    raised = plc[plc.kind == "alarm_raised"]
    assert list(raised.detail)[:2] == ["comm_loss", "high_level"]
    flows = pd.concat([b.flows for b in batches])
    flood_flows = flows[(flows.src_ip == e.device("cam-lobby").ip) & (flows.dst_port == 502)]
    assert flood_flows.packets.sum() >= 20_000 * 2400


def test_flooding_a_vav_holds_its_damper() -> None:
    """While vav-hall is flooded its damper does not move, though the room's load changes."""
    e = engine([FOOTHOLD, flood("vav-hall", duration_s=1800)], duration="3h")
    dampers = []
    for t in range(int(H) + 60, int(H) + 1800, 600):
        e.run_until(t)
        dampers.append(e.signal("vav.vav-hall.damper_pct"))
    assert len(set(dampers)) == 1
    e.run_until(H + 1800 + 600)  # the flood is over: the controller scans again
    assert e.signal("vav.vav-hall.damper_pct") != dampers[0]


def test_flood_raises_comm_loss_at_the_bms() -> None:
    """The BMS stops getting answers from a flooded VAV and raises a comm_loss alarm."""
    e = engine([FOOTHOLD, flood("vav-hall", duration_s=300)], duration="3h")
    batch = e.run_until(H + 600)
    events = batch.events
    lost = events[(events.device == "vav-hall") & (events.detail == "comm_loss")]
    assert (lost.kind == "alarm_raised").any()
    flows = batch.flows
    polls = flows[
        (flows.dst_ip == e.device("vav-hall").ip) & (flows.src_ip == e.device("bms-server").ip)
    ]
    assert (polls.packets_rev == 0).any()  # polls went unanswered while it was flooded


def test_zoned_design_blocks_the_flood_and_the_tank_stays_controlled() -> None:
    """Zones: the camera has no conduit to the OT zone, every burst is dropped, the PLC keeps control."""
    e = engine([FOOTHOLD, flood("plc", duration_s=2400)], design="zoned", duration="3h")
    truth = run(e, until=H + 1800)  # flooded, the tank would pass 3.0 m by H + 1400
    assert not bool(truth.loc["dos", "succeeded"])
    assert truth.loc["dos", "blocked_by"] == "design zoned: no conduit cameras->ot for port 502"
    assert e.plant.tanks.level.max() < 3.1


def test_quarantined_foothold_cannot_flood() -> None:
    """A quarantine of the camera before the flood: the first burst is dropped, truth names it."""
    e = engine([FOOTHOLD, {**flood("plc", duration_s=600), "delay": "5m"}], duration="2h")
    truth = run(e, until=H + 1200, actions=[(H + 60, Quarantine(device="cam-lobby"))])
    assert not bool(truth.loc["dos", "succeeded"])
    assert truth.loc["dos", "blocked_by"] == "response: cam-lobby quarantined"


def test_quarantine_midway_cuts_the_flood_short() -> None:
    """Quarantined mid-flood, the attack ends at the next burst; it did overload the PLC first."""
    e = engine([FOOTHOLD, flood("plc", duration_s=600)], duration="2h")
    truth = run(e, until=H + 400, actions=[(H + 300, Quarantine(device="cam-lobby"))])
    assert bool(truth.loc["dos", "succeeded"]) and truth.loc["dos", "blocked_by"] == ""
    assert truth.loc["dos", "detail"].endswith("stopped: response: cam-lobby quarantined")
    assert truth.loc["dos", "t_end"] == pytest.approx(H + 300, abs=10)


def test_a_slow_flood_is_absorbed() -> None:
    """Below the controller's capacity the PLC answers on: the flood fails without a block."""
    e = engine([FOOTHOLD, flood("plc", pps=500, duration_s=60)], duration="2h")
    truth = run(e, until=H + 120)
    assert not bool(truth.loc["dos", "succeeded"]) and truth.loc["dos", "blocked_by"] == ""
    assert truth.loc["dos", "detail"].endswith("the target absorbed it")


# -- botnet_recruit -------------------------------------------------------------------------


def test_mirai_recruits_cameras_across_the_camera_zone() -> None:
    """From the lobby camera, telnet with factory passwords turns every other camera into a bot."""
    e = engine([FOOTHOLD, recruit()], fac=facility(mirai_cameras), duration="2h")
    batch_events = e.run_until(H + 300).events
    truth = e.truth().set_index("step_id")
    bots = [f"cam-{i}" for i in range(1, 7)]
    assert bool(truth.loc["recruit", "succeeded"])
    assert truth.loc["recruit", "detail"].endswith(", ".join(bots))
    assert e.campaign is not None
    attacker = e.campaign.attacker
    assert set(bots) <= set(attacker.positions) and attacker.secrets["cam-1"] == ("admin", "admin")
    ok = batch_events[(batch_events.kind == "login_ok") & (batch_events.detail == "telnet")]
    assert set(ok.device) == set(bots)


def test_mirai_from_the_internet_through_a_telnet_conduit() -> None:
    """A conduit internet->cameras for telnet (a DMZ mistake) lets an outside Mirai recruit."""

    def exposed(fac: dict[str, Any]) -> None:
        mirai_cameras(fac)
        conduit(fac, "internet", "cameras", ["telnet"], "DMZ misconfiguration")

    step = {**recruit(max_bots=3), "after": None, "at": "1h"}
    e = engine([step], design="zoned", fac=facility(exposed), duration="2h")
    truth = run(e, until=H + 300)
    assert bool(truth.loc["recruit", "succeeded"])
    assert truth.loc["recruit", "detail"].startswith("7 hosts with telnet open, 3 bots")
    assert e.campaign is not None and len(e.campaign.attacker.positions) == 3


def test_mirai_from_the_internet_is_stopped_at_the_edge() -> None:
    """Without a telnet conduit even the flat design's internet edge drops every probe."""
    step = {**recruit(), "after": None, "at": "1h"}
    e = engine([step], design="flat", fac=facility(mirai_cameras), duration="2h")
    truth = run(e, until=H + 300)
    assert not bool(truth.loc["recruit", "succeeded"])
    assert (
        truth.loc["recruit", "blocked_by"]
        == "design flat: no conduit internet->cameras for port 23"
    )


def test_changed_passwords_leave_mirai_without_bots() -> None:
    """Telnet open but passwords changed: no bot, no block, failed logins in the events."""

    def telnet_only(fac: dict[str, Any]) -> None:
        for d in fac["devices"]:
            if d["kind"] == "camera":
                d["services"] = ["http", "rtsp", "telnet"]

    e = engine([FOOTHOLD, recruit()], fac=facility(telnet_only), duration="2h")
    events = e.run_until(H + 600).events
    truth = e.truth().set_index("step_id")
    assert not bool(truth.loc["recruit", "succeeded"]) and truth.loc["recruit", "blocked_by"] == ""
    assert (events.kind == "account_locked").sum() == 6


def test_mirai_wordlist_holds_the_camera_defaults() -> None:
    """The default table carries the camera kind's factory credentials."""
    assert {("admin", "admin"), ("root", "vizxv"), ("root", "root")} <= set(MIRAI_WORDLIST)


# -- outbound_flood -------------------------------------------------------------------------


def ddos(fac: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Foothold, recruit the cameras, then a 2-minute DDoS: truth and the flows to the victim."""
    steps = [
        FOOTHOLD,
        recruit(),
        {"id": "ddos", "technique": "outbound_flood", "after": "recruit",
         "params": {"victim": VICTIM, "duration_s": 120}},
    ]  # fmt: skip
    e = engine(steps, fac=fac, duration="2h")
    flows = e.run_until(H + 600).flows
    return e.truth().set_index("step_id"), flows[flows.dst_ip == VICTIM]


def test_botnet_floods_an_outside_victim_through_a_cloud_conduit() -> None:
    """With a cameras->internet 'P2P cloud' conduit, seven bots send millions of packets out."""

    def p2p(fac: dict[str, Any]) -> None:
        mirai_cameras(fac)
        conduit(fac, "cameras", "internet", ["https", "http"], "P2P cloud service")

    truth, flows = ddos(facility(p2p))
    assert bool(truth.loc["ddos", "succeeded"])
    assert truth.loc["ddos", "detail"] == f"{7 * 2000 * 120:,} packets to {VICTIM}:80"
    assert flows.src_ip.nunique() == 7 and flows.packets.sum() == 7 * 2000 * 120
    assert not flows.blocked.any() and (flows.packets_rev == 0).all()


def test_site_edge_blocks_the_ddos_without_an_egress_conduit() -> None:
    """harbour-dc has no cameras->internet conduit: the flat edge drops each bot's first burst."""
    truth, flows = ddos(facility(mirai_cameras))
    assert bool(truth.loc["recruit", "succeeded"]) and not bool(truth.loc["ddos", "succeeded"])
    assert (
        truth.loc["ddos", "blocked_by"] == "design flat: no conduit cameras->internet for port 80"
    )
    assert flows.blocked.all() and flows.packets.sum() == 7 * 2000 * 10


def test_outbound_flood_needs_bots() -> None:
    """Holding no camera or gateway, the DDoS is not attempted."""
    step = {"id": "ddos", "technique": "outbound_flood", "at": "1h", "params": {"victim": VICTIM}}
    e = engine([step], duration="2h")
    run(e, until=H + 60)
    assert skipped(e) == {"ddos": "the attacker holds no camera or gateway to flood from"}
