"""Scoring: the event-level definitions of DESIGN.md on hand-made truth and alerts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from twin.scoring import impact, merge_alerts, score_alerts, score_run, score_windowed
from twin.telemetry import Alert, alerts_frame

DAY = 86400.0


def truth(*steps: tuple[str, float, float, str, str]) -> pd.DataFrame:
    """Truth rows; step i caused flow 100+i and event 200+i, and step 'w' signal room.r.temp_c."""
    return pd.DataFrame(
        [
            {"step_id": s, "technique": "T0", "name": s, "t_start": a, "t_end": b, "attacker": att,
             "attacker_ip": "", "target": tgt, "target_ip": "", "succeeded": True, "blocked_by": "",
             "detail": "", "flow_ids": [100 + i], "event_ids": [200 + i], "grace": 600.0,
             "signals": "room.r.temp_c" if s == "w" else ""}
            for i, (s, a, b, att, tgt) in enumerate(steps)
        ]
    )  # fmt: skip


def alert(
    t: float,
    device: str,
    detector: str = "d",
    src: str = "",
    dst: str = "",
    evidence: tuple[str, ...] = (),
) -> Alert:
    return Alert(t, detector, "high", device, src, dst, "", "", evidence=evidence)


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


def test_recall_precision_and_time_to_detect_by_evidence() -> None:
    """One of two steps detected 30 s in through a flow it caused; the other alert cites a
    flow no step caused: recall, precision and F1 0.5, one false alarm a day."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"), ("s2", 5000, 5000, "cam", "plc"))
    a = alerts_frame(
        [alert(1030, "ahu", evidence=("flow:100",)), alert(3000, "nvr", evidence=("flow:7",))]
    )
    s = score_alerts(t, a, DAY, "d")
    assert (s.recall, s.precision, s.f1) == (0.5, 0.5, 0.5)
    assert s.ttd_median == 30.0 and s.false_alarms_per_day == 1.0


def test_naming_the_target_in_the_window_is_not_evidence() -> None:
    """An alert that names a step's target in its window but cites nothing the step caused
    (a routine engineering session, say) neither detects it nor counts as matched."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"))
    s = score_alerts(t, alerts_frame([alert(1030, "ahu", evidence=("flow:9",))]), DAY, "d")
    assert s.recall == 0.0 and s.precision == 0.0
    assert s.windowed_recall == 1.0  # the previous rule, reported beside it, would credit it


def test_an_alert_caused_by_a_later_step_does_not_credit_an_earlier_one() -> None:
    """Evidence of step s2 detects s2 only, even inside s1's window and naming s1's target."""
    t = truth(("s1", 1000, 1010, "cam", "plc"), ("s2", 1100, 1110, "cam", "plc"))
    s = score_alerts(t, alerts_frame([alert(1120, "plc", evidence=("flow:101",))]), DAY, "d")
    assert s.detected == 1 and s.recall == 0.5
    assert score_windowed(t, alerts_frame([alert(1120, "plc")]), DAY, "d").recall == 1.0


def test_a_late_detection_counts_with_its_delay_and_is_no_false_alarm() -> None:
    """An alert on a signal the step changed, an hour after its window, is a late detection:
    the step is detected, the delay is reported, and the alert is not a false alarm."""
    t = truth(("w", 1000, 1010, "cam", "ahu"))
    late = alert(1010 + 3600, "vav", evidence=("signal:room.r.temp_c",))
    s = score_alerts(t, alerts_frame([late]), DAY, "d")
    assert s.recall == 1.0 and s.late == 1 and s.late_delays == (3610.0,)
    assert s.false_alarms_per_day == 0.0
    assert s.windowed_recall == 0.0 and s.windowed_false_alarms_per_day == 1.0


def test_evidence_from_before_the_step_does_not_count() -> None:
    """A signal alert raised before the step started is not evidence of it."""
    t = truth(("w", 1000, 1010, "cam", "ahu"))
    s = score_alerts(
        t, alerts_frame([alert(900, "vav", evidence=("signal:room.r.temp_c",))]), DAY, "d"
    )
    assert s.recall == 0.0 and s.false_alarms_per_day == 1.0


def test_events_a_step_caused_are_evidence() -> None:
    """Citing an event id the step caused (a login, a firmware report) detects it."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"))
    assert (
        score_alerts(
            t, alerts_frame([alert(1005, "cam", evidence=("event:200",))]), DAY, "d"
        ).recall
        == 1.0
    )


def test_alerts_without_evidence_are_counted_apart() -> None:
    """An alert citing nothing can only be a false alarm, and is counted as unevidenced."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"))
    s = score_alerts(t, alerts_frame([alert(1005, "ahu")]), DAY, "d")
    assert s.recall == 0.0 and s.unevidenced_alerts == 1


def test_windowed_rule_kept_beside_for_one_release() -> None:
    """The previous rule: an alert naming target or attacker inside [t_start, t_end + grace];
    subnets match addresses inside them; past the grace it is a false alarm."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"))
    assert score_windowed(t, alerts_frame([alert(1100, "cam")]), DAY, "d").recall == 1.0
    s = score_windowed(t, alerts_frame([alert(1010 + 601, "ahu")]), DAY, "d")
    assert s.recall == 0.0 and s.false_alarms_per_day == 1.0
    scan = truth(("scan", 100, 200, "x", "10.0.1.0/24"))
    scan["target_ip"] = "10.0.1.0/24"
    assert (
        score_windowed(scan, alerts_frame([alert(150, "", dst="10.0.1.7")]), DAY, "d").recall == 1.0
    )


def test_no_steps_and_no_alerts_give_undefined_scores() -> None:
    """With nothing to find, recall is undefined (not 1.0) and there are no false alarms."""
    s = score_alerts(truth(), alerts_frame([]), DAY, "d")
    assert math.isnan(s.recall) and s.false_alarms_per_day == 0.0


def test_union_is_scored_like_one_detector() -> None:
    """The union of all detectors is merged and scored by the same rules as one."""
    t = truth(("s1", 1000, 1010, "cam", "ahu"), ("s2", 5000, 5000, "cam", "plc"))
    a = alerts_frame(
        [
            alert(1030, "ahu", "x", evidence=("flow:100",)),
            alert(5010, "plc", "y", evidence=("event:201",)),
        ]
    )
    scores = {s.detector: s for s in score_run(t, a, ["x", "y"], DAY, not_attempted=2)}
    assert scores["x"].recall == 0.5 and scores["y"].recall == 0.5
    assert scores["union"].recall == 1.0 and scores["union"].precision == 1.0
    assert scores["union"].ttd_p95 == pytest.approx(29.0)
    assert scores["union"].not_attempted == 2


def test_blast_radius_counts_devices_only() -> None:
    """A switch (a rogue box on its port) and positions that are no site device are not in
    the blast radius when the facility's devices are given."""
    t = truth(("s1", 1000, 1010, "cam", "switch-cameras"), ("s2", 2000, 2010, "cam", "ahu"))
    t["name"] = ["lateral_movement", "modbus_write"]
    harm = {"degree_hours_outside_band": 0.0}
    out = impact(t, harm, [], held=["cam"], devices={"cam", "ahu"})
    assert out["compromised"] == ["ahu", "cam"] and out["blast_radius"] == 2
