"""Scoring: the event-level definitions of DESIGN.md on hand-made truth and alerts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from twin.scoring import merge_alerts, score_alerts, score_run
from twin.telemetry import Alert, alerts_frame

DAY = 86400.0


def truth(*steps: tuple[str, float, float, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"step_id": s, "technique": "T0", "name": s, "t_start": a, "t_end": b, "attacker": att,
             "attacker_ip": "", "target": tgt, "target_ip": "", "succeeded": True, "blocked_by": "",
             "detail": "", "flow_ids": [], "event_ids": [], "grace": 600.0}
            for s, a, b, att, tgt in steps
        ]
    )  # fmt: skip


def alert(t: float, device: str, detector: str = "d", src: str = "", dst: str = "") -> Alert:
    return Alert(t, detector, "high", device, src, dst, "", "")


def test_alerts_within_a_minute_merge_per_detector_and_device() -> None:
    """Alerts of one detector on one device 60 s apart or less count once."""
    merged = merge_alerts(
        alerts_frame(
            [alert(0, "a"), alert(50, "a"), alert(100, "a"), alert(200, "a"), alert(10, "b")]
        )
    )
    assert sorted(zip(merged["device"], merged["t"], strict=True)) == [
        ("a", 0.0),
        ("a", 200.0),
        ("b", 10.0),
    ]


def test_recall_precision_and_time_to_detect() -> None:
    """One of two steps detected 30 s in; one of two merged alerts is false: 0.5 / 0.5."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"), ("s2", 5000, 5000, "cam", "plc"))
    a = alerts_frame([alert(1030, "ahu"), alert(3000, "nvr")])
    s = score_alerts(t, a, DAY, "d")
    assert (s.recall, s.precision, s.f1) == (0.5, 0.5, 0.5)
    assert s.ttd_median == 30.0 and s.false_alarms_per_day == 1.0


def test_an_alert_naming_the_attacker_counts() -> None:
    """The step is detected when the alert names its attacker, not only its target."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"))
    assert score_alerts(t, alerts_frame([alert(1100, "cam")]), DAY, "d").recall == 1.0


def test_grace_bounds_the_window() -> None:
    """An alert after t_end + grace does not detect the step and is a false alarm."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"))
    s = score_alerts(t, alerts_frame([alert(1010 + 601, "ahu")]), DAY, "d")
    assert s.recall == 0.0 and s.false_alarms_per_day == 1.0


def test_subnet_targets_match_addresses_inside_them() -> None:
    """A scan's target is a subnet; an alert naming an address in it matches."""
    t = truth(("scan", 100, 200, "x", "10.0.1.0/24"))
    t["target_ip"] = "10.0.1.0/24"
    assert score_alerts(t, alerts_frame([alert(150, "", dst="10.0.1.7")]), DAY, "d").recall == 1.0


def test_no_steps_and_no_alerts_give_undefined_scores() -> None:
    """With nothing to find, recall is undefined (not 1.0) and there are no false alarms."""
    s = score_alerts(truth(), alerts_frame([]), DAY, "d")
    assert math.isnan(s.recall) and s.false_alarms_per_day == 0.0


def test_union_is_scored_like_one_detector() -> None:
    """The union of all detectors is merged and scored by the same rules as one."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"), ("s2", 5000, 5000, "cam", "plc"))
    a = alerts_frame([alert(1030, "ahu", "x"), alert(5010, "plc", "y")])
    scores = {s.detector: s for s in score_run(t, a, ["x", "y"], DAY)}
    assert scores["x"].recall == 0.5 and scores["y"].recall == 0.5
    assert scores["union"].recall == 1.0 and scores["union"].precision == 1.0
    assert scores["union"].ttd_p95 == pytest.approx(29.0)
