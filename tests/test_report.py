"""The run report: figures from tables, HTML tables, and the page a real run writes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from twin.report import (
    _physics_rows,
    alert_figure,
    impact_line,
    physics_figure,
    render_report,
    scores_html,
    steps_html,
    write_report,
)
from twin.run import execute
from twin.scenario import load_scenario
from twin.telemetry import ALERT_COLUMNS, PROCESS_COLUMNS, TRUTH_COLUMNS, RunWriter, empty

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3600.0


def process_of(signals: dict[str, np.ndarray], dt: float = 60.0) -> pd.DataFrame:
    """Long process table from {signal: values}; reported equals the truth."""
    frames = [
        pd.DataFrame({"t": np.arange(len(v)) * dt, "signal": s, "value": v, "reported": v})
        for s, v in signals.items()
    ]
    return pd.concat(frames, ignore_index=True).astype(PROCESS_COLUMNS)


def truth_of(*rows: dict) -> pd.DataFrame:
    base = {"technique": "T0", "name": "step", "attacker": "x", "target": "y", "detail": ""}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    for column in TRUTH_COLUMNS:
        if column not in frame:
            frame[column] = "" if TRUTH_COLUMNS[column] == "str" else None
    return frame


def alerts_of(*rows: dict) -> pd.DataFrame:
    base = {"alert_id": 1, "severity": "high", "device": "cam", "src_ip": "", "dst_ip": ""}
    return pd.DataFrame([{**base, "technique": "", "score": 0.0, **r} for r in rows])


def lines(fig: go.Figure, suffix: str = "") -> list[str]:
    return [t.name for t in fig.data if t.mode != "markers" and t.name.endswith(suffix)]


def texts(fig: go.Figure) -> str:
    return " | ".join(a.text for a in fig.layout.annotations)


STEPS = truth_of(
    {"step_id": "foothold", "t_start": 1.0 * HOUR, "t_end": 1.01 * HOUR, "succeeded": True},
    {
        "step_id": "recon",
        "t_start": 1.5 * HOUR,
        "t_end": 1.6 * HOUR,
        "succeeded": False,
        "blocked_by": "design zoned: no conduit",
    },
)
SKIPPED = [{"step_id": "overheat", "technique": "T0836", "name": "modbus_write", "t": 7000.0}]


def test_room_panel_keeps_the_worst_rooms_and_says_how_many_were_left_out() -> None:
    """With 40 rooms only 12 are drawn: rooms outside band first, then the largest excursions."""
    ramp = np.linspace(0, 1, 120)
    rooms = {f"room.r{i:02d}.temp_c": 21 + i * 0.1 * ramp for i in range(40)}
    fig = physics_figure(process_of(rooms), STEPS, empty(ALERT_COLUMNS), outside={"r03": 0.5})
    drawn = [n for n in lines(fig) if n.startswith("r") and not n.endswith(" reported")]
    assert len(drawn) == 12
    assert drawn[0] == "r03" and "r39" in drawn and "r10" not in drawn
    assert "28 rooms omitted" in texts(fig)


def test_reported_is_dashed_only_for_rooms_outside_band_or_lying() -> None:
    """A room outside band, or whose reported value departs from the truth, gets a dashed twin."""
    flat = np.full(60, 21.0)
    process = process_of({f"room.{r}.temp_c": flat for r in ("hot", "calm", "spoofed")})
    process.loc[
        (process["signal"] == "room.spoofed.temp_c") & (process["t"] > 1800), "reported"
    ] = 25
    fig = physics_figure(process, STEPS, empty(ALERT_COLUMNS), outside={"hot": 2.0})
    assert sorted(lines(fig, " reported")) == ["hot reported", "spoofed reported"]
    dashed = next(t for t in fig.data if t.name == "hot reported")
    assert dashed.line.dash == "dash"


def test_time_axis_is_in_hours_and_warmup_is_shaded() -> None:
    """Six hours of samples end at x=6, and a shape covers the warm-up [0, 3] h."""
    process = process_of({"room.a.temp_c": np.full(361, 21.0), "outdoor.temp_c": np.zeros(361)})
    fig = physics_figure(process, STEPS, empty(ALERT_COLUMNS), warmup_s=3 * HOUR)
    assert max(fig.data[0].x) == pytest.approx(6.0)
    assert any(s.x0 == 0 and s.x1 == pytest.approx(3.0) for s in fig.layout.shapes)
    assert "outdoor" in lines(fig)


def test_each_step_is_marked_with_its_outcome() -> None:
    """Succeeded, blocked and never-attempted steps are all labelled on the time axis."""
    process = process_of({"room.a.temp_c": np.ones(10)})
    fig = physics_figure(process, STEPS, empty(ALERT_COLUMNS), not_attempted=SKIPPED)
    labels = texts(fig)
    for label in ("foothold</b> succeeded", "recon</b> blocked", "overheat</b> not attempted"):
        assert label in labels
    assert any(s.x0 == pytest.approx(1.5) and s.x1 == pytest.approx(1.6) for s in fig.layout.shapes)


def test_tank_panel_only_when_the_site_has_tanks() -> None:
    """A site without tanks gets no empty tank panel; one with a tank gets its level trace."""
    rooms = {"room.a.temp_c": np.ones(10), "ahu.ahu.supply_air_c": np.full(10, 13.0)}
    without = physics_figure(process_of(rooms), STEPS, empty(ALERT_COLUMNS))
    assert "Tank level" not in texts(without)
    tank = {**rooms, "tank.chw.level_m": np.linspace(1, 3, 10), "door.d.open": np.zeros(10)}
    with_tank = physics_figure(process_of(tank), STEPS, empty(ALERT_COLUMNS))
    assert "Tank level" in texts(with_tank) and "chw" in lines(with_tank)
    assert "d" not in lines(with_tank)


def test_alerts_appear_as_ticks_and_on_a_timeline_with_their_reason() -> None:
    """Alerts are ticks on the physics figure and points per detector whose hover has the reason."""
    alerts = alerts_of(
        {"t": 3700.0, "detector": "allowlist", "reason": "new path from cam"},
        {
            "t": 3800.0,
            "detector": "conduit_policy",
            "reason": "no conduit allows cam",
            "severity": "low",
        },
    )
    physics = physics_figure(process_of({"room.a.temp_c": np.ones(10)}), STEPS, alerts)
    assert {t.name for t in physics.data if t.mode == "markers"} == {"allowlist", "conduit_policy"}
    timeline = alert_figure(alerts, STEPS, SKIPPED, warmup_s=HOUR, end_s=4 * HOUR)
    policy = next(t for t in timeline.data if t.name == "conduit_policy")
    assert policy.x[0] == pytest.approx(3800 / HOUR)
    assert "no conduit allows cam" in list(policy.customdata[0])
    assert "customdata[2]" in policy.hovertemplate
    assert tuple(timeline.layout.xaxis.range) == (0, 4)


def test_empty_tables_give_figures_and_tables_that_say_so() -> None:
    """No process rows, no campaign and no alerts still render, with 'no alerts' / 'no campaign'."""
    process, truth, alerts = empty(PROCESS_COLUMNS), empty(TRUTH_COLUMNS), empty(ALERT_COLUMNS)
    assert "no alerts" in texts(physics_figure(process, truth, alerts))
    assert "no alerts" in texts(alert_figure(alerts, truth))
    assert "No attack campaign" in steps_html(truth)
    assert "No detector" in scores_html([])


def test_score_table_shows_missing_values_as_a_dash() -> None:
    """A detector that detected nothing has no time-to-detect: the cell is a dash, not 'None'."""
    scores = [{"detector": "allowlist", "recall": 0.0, "precision": None, "f1": 0.0,
               "ttd_median": None, "ttd_p95": None, "false_alarms_per_day": 2.0,
               "alerts": 3, "detected": 0, "steps": 2}]  # fmt: skip
    table = scores_html(scores)
    assert "allowlist" in table and "—" in table and "None" not in table and "0 / 2" in table


def test_steps_table_lists_attempted_and_skipped_steps_with_outcome() -> None:
    """The steps table has every step, the blocking reason, and steps the attacker never tried."""
    table = steps_html(STEPS, SKIPPED)
    for text in ("foothold", "succeeded", "design zoned: no conduit", "overheat", "not attempted"):
        assert text in table
    assert "T0836 modbus_write" in table


def test_interrupted_run_is_flagged_in_the_header() -> None:
    """An interrupted run with nothing recorded still renders, and says it was interrupted."""
    summary = {"scenario": "s", "design": "flat", "seed": 1, "status": "interrupted",
               "error": "interrupted by the user", "story": "A <story>."}  # fmt: skip
    tables = empty(PROCESS_COLUMNS), empty(TRUTH_COLUMNS), empty(ALERT_COLUMNS)
    page = render_report(summary, *tables)
    assert "Run interrupted" in page and "A &lt;story&gt;." in page


def test_impact_line_sums_up_reach_and_harm() -> None:
    """The header line names what was compromised and when the physics was first hurt."""
    line = impact_line({"steps_attempted": 3, "steps_succeeded": 3, "blast_radius": 2,
                        "compromised": ["ahu", "cam"], "degree_hours_outside_band": 53.1,
                        "rooms_outside_band": {"hall": 26.0}, "time_to_physical_impact_s": 960.0})  # fmt: skip
    assert "3 of 3 steps succeeded" in line and "(ahu, cam)" in line
    assert "53.1 °C·h outside band in 1 rooms" in line and "16 min" in line


def test_only_drawn_signals_are_read_from_disk(tmp_path: Path) -> None:
    """Door, CO2 and damper rows stay on disk; rooms, AHUs, tanks and outdoor are read."""
    signals = ["room.a.temp_c", "room.a.co2_ppm", "door.d.open", "ahu.ahu.supply_air_c",
               "ahu.ahu.supply_air_setpoint_c", "tank.t.level_m", "outdoor.temp_c"]  # fmt: skip
    with RunWriter(tmp_path) as writer:
        writer.append("process", process_of({s: np.ones(5) for s in signals}))
    read = set(_physics_rows(tmp_path)["signal"])
    assert read == set(signals) - {"room.a.co2_ppm", "door.d.open"}


def test_a_real_run_writes_a_self_contained_report(tmp_path: Path) -> None:
    """A short flagship run leaves report.html with plotly inline, its steps and its detectors."""
    spec = load_scenario(ROOT / "scenarios" / "flagship.yaml", {"duration": "4h"})
    result = execute(spec, tmp_path)
    assert "report_error" not in result.summary
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert not (tmp_path / "report.html.part").exists()
    assert not re.search(r"<script[^>]+src=[\"']?https?://", page)
    assert "Plotly" in page and len(page) > 1_000_000  # the library itself, not a link to it
    for name in ("foothold", "recon", "overheat", "conduit_policy", "allowlist"):
        assert name in page
    assert write_report(tmp_path) == tmp_path / "report.html"
