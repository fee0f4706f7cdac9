"""The flagship chain: it succeeds on the flat design and is stopped by zones."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_flagship
from twin.run import RunResult
from twin.telemetry import read_table


def hall_max(run: RunResult) -> float:
    process = read_table(run.directory, "process")
    return float(process[process["signal"] == "room.server-hall.temp_c"]["value"].max())


def test_flat_network_lets_the_chain_through(flat_run: RunResult) -> None:
    """On flat, every step succeeds and the truth table says so."""
    truth = read_table(flat_run.directory, "truth").set_index("step_id")
    assert list(truth.index) == ["foothold", "recon", "overheat"]
    assert truth["succeeded"].all()
    assert list(truth["technique"]) == ["T0812", "T0846", "T0836"]
    assert (truth["blocked_by"] == "").all()


def test_flat_network_overheats_the_server_hall(flat_run: RunResult) -> None:
    """The setpoint write shows in the process table: the hall leaves its band."""
    assert hall_max(flat_run) > 30.0
    assert flat_run.summary["impact"]["rooms_outside_band"]["server-hall"] > 1.0


def test_zones_block_the_scan_and_the_write_never_runs(zoned_run: RunResult) -> None:
    """On zoned, the camera has no conduit to HVAC: the scan is blocked, the write not attempted."""
    truth = read_table(zoned_run.directory, "truth").set_index("step_id")
    assert list(truth.index) == ["foothold", "recon"]
    assert bool(truth.loc["foothold", "succeeded"])
    assert not bool(truth.loc["recon", "succeeded"])
    assert truth.loc["recon", "blocked_by"].startswith("design zoned: no conduit cameras->")
    skipped = zoned_run.summary["impact"]["steps_not_attempted"]
    assert [s["step_id"] for s in skipped] == ["overheat"]


def test_zones_keep_the_hall_in_band(zoned_run: RunResult) -> None:
    """With the attack stopped, no room leaves its band."""
    assert hall_max(zoned_run) < 27.0
    assert zoned_run.summary["impact"]["degree_hours_outside_band"] == 0.0


def test_micro_segmentation_stops_the_scan_inside_the_camera_zone(tmp_path: Path) -> None:
    """Micro-segmentation also stops the chain, with the design named as the blocker."""
    run = run_flagship(tmp_path, design="micro")
    truth = read_table(run.directory, "truth").set_index("step_id")
    assert not bool(truth.loc["recon", "succeeded"])
    assert truth.loc["recon", "blocked_by"].startswith("design micro")


def test_truth_links_the_flows_and_events_each_step_caused(flat_run: RunResult) -> None:
    """Each step lists the flows (and events) it caused; they exist in those tables."""
    truth = read_table(flat_run.directory, "truth").set_index("step_id")
    flows = read_table(flat_run.directory, "flows").set_index("flow_id")
    events = read_table(flat_run.directory, "events").set_index("event_id")
    scan_flows = flows.loc[list(truth.loc["recon", "flow_ids"])]
    assert len(scan_flows) > 500 and (scan_flows["src_ip"] == "10.20.40.17").all()
    (write_flow,) = truth.loc["overheat", "flow_ids"]
    assert flows.loc[write_flow, "modbus_writes"] == 1
    (login,) = truth.loc["foothold", "event_ids"]
    assert (
        events.loc[login, "kind"] == "login_ok" and events.loc[login, "src_ip"] == "198.51.100.66"
    )


def test_both_detectors_catch_the_chain_on_flat(flat_run: RunResult) -> None:
    """Scores show detection by evidence: conduit_policy cites the scan's and the write's flows
    (2 of 3 steps; the internet login crosses a documented port forward), and every step is
    caught by the union of detectors within two minutes."""
    scores = {s["detector"]: s for s in flat_run.summary["scores"]}
    assert scores["conduit_policy"]["detected"] == 2
    assert scores["union"]["recall"] == 1.0
    assert scores["union"]["ttd_median"] <= 120
