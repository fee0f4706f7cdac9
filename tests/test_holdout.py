"""Pooled evidence scores over runs, and leave-one-facility-out member choice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SCENARIOS
from twin.engine import Engine
from twin.holdout import RunRecord, leaderboard, leave_one_facility_out, pool
from twin.scenario import load_scenario
from twin.telemetry import Alert, alerts_frame

DAY = 86400.0


def _truth(t0: float) -> pd.DataFrame:
    return pd.DataFrame([{
        "step_id": "s", "technique": "T0", "name": "s", "t_start": t0, "t_end": t0 + 10,
        "attacker": "x", "attacker_ip": "", "target": "y", "target_ip": "", "succeeded": True,
        "blocked_by": "", "detail": "", "flow_ids": [1], "event_ids": [], "grace": 600.0, "signals": "",
    }])  # fmt: skip


def _run(facility: str, quiet: bool, alerts: list[Alert]) -> RunRecord:
    truth = _truth(1000.0).iloc[0:0] if quiet else _truth(1000.0)
    return RunRecord(Path(facility), "sc", facility, 1, quiet, DAY, 0, truth, alerts_frame(alerts))


def _alert(t: float, detector: str, cited: str) -> Alert:
    return Alert(t, detector, "high", "y", evidence=(cited,))


def runs() -> list[RunRecord]:
    """Two facilities; 'good' cites the step's flow; 'noisy' also alerts on quiet days."""
    out = []
    for fac in ("a", "b"):
        out.append(
            _run(fac, False, [_alert(1030, "good", "flow:1"), _alert(1030, "noisy", "flow:1")])
        )
        out.append(_run(fac, True, [_alert(500 + 300 * i, "noisy", "flow:9") for i in range(3)]))
    return out


def test_pool_counts_steps_alerts_and_quiet_days() -> None:
    """Pooled over runs: recall over all steps, false alarms per attacked and attack-free day."""
    row = pool(runs(), ["noisy"], "noisy")
    assert (row["steps"], row["detected"], row["recall"]) == (2, 2, 1.0)
    assert row["false_alarms_per_day"] == 0.0 and row["attack_free_false_alarms_per_day"] == 3.0
    board = leaderboard(runs(), ["good", "noisy"], ["good", "noisy"])
    assert set(board["detector"]) == {"good", "noisy", "ensemble"}


def test_members_are_chosen_on_the_other_facilities_only() -> None:
    """Held out 'b': the noisy member is refused on 'a''s quiet day, the ensemble scored on 'b'."""
    table = leave_one_facility_out(runs(), ["good", "noisy"])
    assert list(table["held_out"]) == ["a", "b"]
    assert list(table["members"]) == ["good", "good"]
    b = table[table["held_out"] == "b"].iloc[0]
    assert b["recall"] == 1.0 and b["attack_free_false_alarms_per_day"] == 0.0


@pytest.mark.slow
def test_a_step_cut_short_by_the_end_of_the_run_is_in_the_truth() -> None:
    """A flood still under way when the run ends has a truth row (not lost from recall),
    with the signals it is acting on."""
    spec = load_scenario(SCENARIOS / "plant-rogue-flood.yaml", {"duration": "4h30m"})
    e = Engine(spec)
    e.run_until(spec.duration)
    truth = e.truth()
    flood = truth[truth["step_id"] == "stall-plc"]
    assert len(flood) == 1 and flood["detail"].iloc[0] == "still under way when the run ended"
    assert "health.plc-mix-1" in flood["signals"].iloc[0]
