"""Lateral movement: pivoting from a foothold with held or default credentials."""

from __future__ import annotations

from typing import Any

from tests.attacks.harness import device, engine, facility, run, skipped
from twin.responses import Quarantine, RotateCredentials

START = 3600.0
LOGIN = {"id": "login", "technique": "default_credentials", "at": "1h", "target": "cam-lobby"}
IOT, HVAC = "10.20.50.0/24", "10.20.20.0/24"


def pivot_site(conduit: bool = True) -> dict[str, Any]:
    """Harbour-dc with the gateway on factory credentials and, if asked, a telnet path to it."""

    def change(fac: dict[str, Any]) -> None:
        device(fac, "gateway")["credentials"] = "default"
        device(fac, "eng-ws")["credentials"] = "default"
        if conduit:  # a vendor's remote-support path, left open
            fac["designs"]["zoned"]["conduits"] = [
                *fac["designs"]["zoned"]["conduits"],
                {"from": "cam-lobby", "to": "gateway", "services": ["telnet"]},
            ]

    return facility(change)


def move(target: str, after: str = "login", **params: Any) -> dict[str, Any]:
    return {"id": "move", "technique": "lateral_movement", "after": after, "delay": 30,
            "target": target, "params": params}  # fmt: skip


def test_pivot_through_the_gateway_reaches_hvac_that_zoning_hid_from_the_camera() -> None:
    """Zoned: camera -> HVAC is denied, but camera -> gateway -> HVAC rides the IoT conduit."""
    steps: list[dict[str, Any]] = [
        LOGIN,
        {"id": "direct", "technique": "modbus_write", "after": "login", "from": "cam-lobby",
         "target": "ahu", "params": {"register": "supply_air_setpoint", "value": 35,
                                     "requires_discovery": False}},
        {"id": "scan-iot", "technique": "network_scan", "after": "direct", "from": "cam-lobby",
         "params": {"subnets": [IOT], "ports": [23, 80], "rate": 100}},
        {"id": "pivot", "technique": "lateral_movement", "after": "scan-iot", "from": "cam-lobby",
         "target": "gateway", "params": {"service": "telnet", "credentials": "default"}},
        {"id": "scan-hvac", "technique": "network_scan", "after": "pivot", "from": "gateway",
         "params": {"subnets": [HVAC], "ports": [502], "rate": 100}},
        {"id": "overheat", "technique": "modbus_write", "after": "scan-hvac", "from": "gateway",
         "target": "ahu", "params": {"register": "supply_air_setpoint", "value": 35}},
    ]  # fmt: skip
    e = engine(steps, design="zoned", fac=pivot_site())
    truth = run(e, until=START + 900)
    assert (
        truth.loc["direct", "blocked_by"] == "design zoned: no conduit cameras->hvac for port 502"
    )
    assert (
        truth.loc["scan-iot", "detail"] == "508 probes, 1 hosts, 1 open services"
    )  # telnet, not web
    pivot = truth.loc["pivot"]
    assert bool(pivot["succeeded"]) and pivot["technique"] == "T0886"
    assert pivot["attacker"] == "cam-lobby"
    assert pivot["detail"] == "cam-lobby -> gateway over telnet as admin (default credentials)"
    assert (
        bool(truth.loc["overheat", "succeeded"]) and truth.loc["overheat", "attacker"] == "gateway"
    )
    assert e.campaign is not None and e.campaign.attacker.footholds == ["cam-lobby", "gateway"]
    assert e.signal("ahu.ahu.supply_air_setpoint_c") == 35.0
    assert e.signal("ahu.ahu.supply_air_c") > 30.0  # the air handler follows within minutes


def test_pivot_is_blocked_without_a_conduit_to_the_gateway() -> None:
    """Zoned, no camera->IoT conduit: the telnet login never reaches the gateway."""
    step = move("gateway", service="telnet", credentials="default", requires_discovery=False)
    truth = run(engine([LOGIN, step], design="zoned", fac=pivot_site(conduit=False)), START + 120)
    assert not bool(truth.loc["move", "succeeded"])
    assert truth.loc["move", "blocked_by"] == "design zoned: no conduit cameras->iot for port 23"


def test_pivot_is_stopped_by_quarantining_the_foothold() -> None:
    """Quarantining the camera cuts every path out of it, including the pivot."""
    step = move("gateway", service="telnet", credentials="default", requires_discovery=False)
    e = engine([LOGIN, step], fac=pivot_site())
    truth = run(e, until=START + 120, actions=[(START + 10, Quarantine(device="cam-lobby"))])
    assert truth.loc["move", "blocked_by"] == "response: cam-lobby quarantined"


def test_rotated_gateway_credentials_refuse_the_defaults() -> None:
    """After a credential rotation the factory defaults fail: stopped by response, not design."""
    step = move("gateway", service="telnet", credentials="default", requires_discovery=False)
    e = engine([LOGIN, step], fac=pivot_site())
    truth = run(e, until=START + 120, actions=[(START - 60, RotateCredentials(device="gateway"))])
    assert not bool(truth.loc["move", "succeeded"]) and truth.loc["move", "blocked_by"] == ""
    assert truth.loc["move", "detail"] == "3 default credentials refused"


def test_reused_camera_password_opens_the_workstation_over_ssh() -> None:
    """A password won on the camera also works on the workstation: one SSH login, port 22."""
    step = move("eng-ws", service="ssh", requires_discovery=False)
    e = engine([LOGIN, step], fac=pivot_site())
    flows = e.run_until(START + 120).flows
    truth = e.truth().set_index("step_id")
    assert bool(truth.loc["move", "succeeded"])
    assert truth.loc["move", "detail"] == "cam-lobby -> eng-ws over ssh as admin (held credentials)"
    login = flows[flows["flow_id"].isin(truth.loc["move", "flow_ids"])]
    assert set(login["dst_port"]) == {22} and set(login["app"]) == {"ssh"}
    assert login["encrypted"].all()


def test_reuse_fails_where_the_password_was_changed() -> None:
    """The camera's password does not open a workstation whose password was changed."""
    step = move("eng-ws", service="ssh", requires_discovery=False)
    truth = run(engine([LOGIN, step]), until=START + 120)
    assert not bool(truth.loc["move", "succeeded"])
    assert truth.loc["move", "detail"] == "1 held credentials refused"


def test_lateral_movement_needs_a_foothold_and_discovery() -> None:
    """Without a foothold, or without the port found by a scan, the step is not attempted."""
    first = move("gateway", service="telnet", requires_discovery=False) | {
        "after": None,
        "at": "1h",
    }
    e = engine([first], fac=pivot_site())
    run(e, until=START + 60)
    assert skipped(e) == {"move": "no foothold to move from"}
    e = engine([LOGIN, move("gateway", service="telnet")], fac=pivot_site())
    run(e, until=START + 120)
    assert skipped(e) == {"move": "gateway (10.20.50.10) was not discovered with port 23 open"}
