"""Reconnaissance techniques: TCP and ping sweeps, Modbus device identification."""

from __future__ import annotations

from typing import Any

from tests.attacks.harness import engine, run, skipped
from twin.responses import Quarantine

HVAC = "10.20.20.0/24"
HVAC_HOSTS = 12  # ahu, vav-hall, 6 vav, 4 env sensors
LOGIN = {"id": "login", "technique": "default_credentials", "at": "1h", "target": "cam-lobby"}


def scan(method: str = "tcp", ports: list[int] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"subnets": [HVAC], "rate": 100, "method": method}
    if ports is not None:
        params["ports"] = ports
    return {"id": "scan", "technique": "network_scan", "after": "login", "from": "cam-lobby",
            "params": params}  # fmt: skip


def identify(**params: Any) -> dict[str, Any]:
    return {"id": "ident", "technique": "modbus_identify", "after": "scan", "delay": 60, "from": "cam-lobby",
            "params": {"rate": 2, **params}}  # fmt: skip


def test_tcp_scan_finds_modbus_services_on_a_flat_network() -> None:
    """A TCP sweep from the camera learns every HVAC controller's open Modbus port."""
    e = engine([LOGIN, scan(ports=[502])])
    truth = run(e, until=3900)
    assert bool(truth.loc["scan", "succeeded"])
    assert (
        truth.loc["scan", "detail"] == f"254 probes, {HVAC_HOSTS} hosts, {HVAC_HOSTS} open services"
    )
    assert e.campaign is not None and e.campaign.attacker.known[e.device("ahu").ip] == {502}


def test_tcp_scan_is_blocked_by_zones() -> None:
    """Zoned: the camera zone has no conduit to HVAC, so the sweep finds nothing and says why."""
    truth = run(engine([LOGIN, scan(ports=[502])], design="zoned"), until=3900)
    assert not bool(truth.loc["scan", "succeeded"])
    assert truth.loc["scan", "blocked_by"] == "design zoned: no conduit cameras->hvac for port 502"


def test_ping_sweep_finds_live_hosts_without_ports() -> None:
    """An ICMP sweep sends one echo per address and learns hosts with no open port known."""
    e = engine([LOGIN, scan("icmp")])
    flows = e.run_until(3900).flows
    truth = e.truth().set_index("step_id")
    assert bool(truth.loc["scan", "succeeded"])
    assert truth.loc["scan", "detail"] == f"254 pings, {HVAC_HOSTS} hosts up"
    assert e.campaign is not None
    known = e.campaign.attacker.known
    assert len(known) == HVAC_HOSTS and all(ports == set() for ports in known.values())
    pings = flows[flows["flow_id"].isin(truth.loc["scan", "flow_ids"])]
    assert set(pings["proto"]) == {"icmp"}
    assert (pings["packets"].sum(), pings["packets_rev"].sum()) == (254, HVAC_HOSTS)


def test_ping_sweep_is_blocked_by_zones() -> None:
    """Zoned: ICMP from the camera zone to HVAC is denied (port 0 stands for ICMP)."""
    truth = run(engine([LOGIN, scan("icmp")], design="zoned"), until=3900)
    assert not bool(truth.loc["scan", "succeeded"])
    assert truth.loc["scan", "blocked_by"] == "design zoned: no conduit cameras->hvac for port 0"


def test_identify_reads_vendor_model_and_firmware_of_discovered_hosts() -> None:
    """By default every host found with Modbus open is asked for its identity."""
    e = engine([LOGIN, scan(ports=[502]), identify()])
    truth = run(e, until=3900)
    row = truth.loc["ident"]
    assert bool(row["succeeded"]) and row["technique"] == "T0888"
    assert row["detail"].startswith(f"{HVAC_HOSTS}/{HVAC_HOSTS} answered")
    assert f"ahu {e.device('ahu').ip}: Siemens PXC36-E.D 3.2.7" in row["detail"]
    assert "Kieback&Peter RTS-CO2 2.0.1" in row["detail"]
    # recon does not count as a compromise: targets are written as address ranges
    assert all(part.endswith("/32") for part in row["target"].split(","))


def test_identify_needs_a_modbus_host_a_ping_sweep_does_not_give() -> None:
    """Hosts known only from a ping sweep have no Modbus port: identification is not attempted."""
    e = engine([LOGIN, scan("icmp"), identify()])
    truth = run(e, until=3900)
    assert "ident" not in truth.index
    assert skipped(e) == {"ident": "no target: no known host with Modbus open and no targets given"}


def test_identify_named_target_is_blocked_by_zones() -> None:
    """Zoned: an explicit target in another zone refuses the camera's Modbus request."""
    e = engine([LOGIN, scan("icmp"), identify(targets=["ahu", "plc"])], design="zoned")
    truth = run(e, until=3900)
    assert not bool(truth.loc["ident", "succeeded"])
    assert truth.loc["ident", "blocked_by"].startswith("design zoned: no conduit cameras->")
    assert truth.loc["ident", "detail"] == "0/2 answered"


def test_identify_is_stopped_by_quarantine() -> None:
    """A quarantined controller answers nobody: the truth row names the response."""
    e = engine([LOGIN, scan(ports=[502]), identify(targets=["ahu"])])
    truth = run(e, until=3900, actions=[(3630, Quarantine(device="ahu"))])
    assert not bool(truth.loc["ident", "succeeded"])
    assert truth.loc["ident", "blocked_by"] == "response: ahu quarantined"
