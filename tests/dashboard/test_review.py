"""The after-action score: a pure, deterministic function of an exercise's event log."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from dashboard.review import export_csv, export_json, score

WARMUP = 10800.0
BASELINE = {
    "degree_hours_outside_band": 4.0,
    "unsafe_tank_minutes": 0.0,
    "doors_opened_without_badge": 0,
}


def step(sid: str, t0: float, target: str, ok: bool = True) -> dict[str, Any]:
    return {"t": t0 + 1, "kind": "step", "step_id": sid, "technique": "T0846", "name": "x",
            "t_start": t0, "t_end": t0 + 1, "attacker": "cam", "attacker_ip": "10.0.0.5",
            "target": target, "target_ip": "10.0.1.9", "succeeded": ok, "blocked_by": "", "grace": 600.0,
            "signals": "", "flow_ids": [7], "event_ids": []}  # fmt: skip


def alert(t: float, device: str, evidence: tuple[str, ...] = ("flow:7",)) -> dict[str, Any]:
    return {"t": t, "kind": "alert", "detector": "d", "severity": "high", "device": device,
            "src_ip": "", "dst_ip": "", "technique": "T0846", "reason": "r",
            "evidence": list(evidence)}  # fmt: skip


def action(t: float, target: str, kind: str = "quarantine") -> dict[str, Any]:
    return {"t": t, "kind": "action", "action": kind, "target": target, "by": "t1",
            "status": "applied", "detail": ""}  # fmt: skip


def end(t: float, dh: float) -> dict[str, Any]:
    return {"t": t, "kind": "end", "harm": {"degree_hours_outside_band": dh, "unsafe_tank_minutes": 0.0,
                                            "doors_opened_without_badge": 0}}  # fmt: skip


def base_log(contain_at: float | None, dh: float) -> list[dict[str, Any]]:
    log = [step("scan", 12000.0, "ahu"), alert(12060.0, "cam")]
    if contain_at is not None:
        log += [action(contain_at, "cam"), {"t": contain_at, "kind": "contained"}]
    return [*log, end(14400.0, dh)]


def line(review: Any, item: str) -> Any:
    return next(x for x in review.lines if x.item == item)


def test_every_line_has_a_reason_and_the_total_adds_up() -> None:
    """Each score line says why; the total is the sum of the lines, within 0..100."""
    r = score(base_log(12300.0, 0.4), BASELINE, WARMUP)
    assert all(x.reason for x in r.lines)
    assert r.total == round(sum(x.points for x in r.lines), 1)
    assert 0 <= r.total <= 100
    assert "1 of 1 attack steps" in line(r, "detected").reason


def test_faster_containment_scores_higher() -> None:
    """Containing five minutes after the first step beats containing after twenty-five."""
    fast = score(base_log(12300.0, 0.4), BASELINE, WARMUP)
    slow = score(base_log(13500.0, 0.4), BASELINE, WARMUP)
    assert line(fast, "time to contain").points > line(slow, "time to contain").points
    assert fast.total > slow.total


def test_no_containment_and_full_harm_scores_low() -> None:
    """A trainee who never acts gets no containment points and no harm points."""
    r = score(base_log(None, 4.0), BASELINE, WARMUP)
    assert line(r, "contained").points == 0
    assert line(r, "physical harm").points == 0
    assert line(r, "physical harm").reason.startswith("0% of the harm avoided")
    assert r.total <= 15


def test_unneeded_actions_and_hints_cost_points() -> None:
    """Quarantining a device nothing named, and asking for hints, are penalised with reasons."""
    log = base_log(12300.0, 0.4)
    clean = score(log, BASELINE, WARMUP)
    extra = [
        *log[:-1],
        action(12400.0, "printer"),
        {"t": 12500.0, "kind": "hint", "text": "look", "by": "tr"},
        log[-1],
    ]
    r = score(extra, BASELINE, WARMUP)
    assert (
        line(r, "unneeded actions").points < 0 and "printer" in line(r, "unneeded actions").reason
    )
    assert line(r, "hints used").points < 0
    assert r.total < clean.total


def test_same_log_same_score() -> None:
    """Scoring is deterministic: the same log and baseline give an identical review."""
    log = base_log(12300.0, 0.4)
    assert score(log, BASELINE, WARMUP) == score(
        json.loads(json.dumps(log)), dict(BASELINE), WARMUP
    )


def test_exports_carry_the_log_and_the_score() -> None:
    """JSON export has the score lines and every log entry; CSV has one row per entry, in time order."""
    log = base_log(12300.0, 0.4)
    r = score(log, BASELINE, WARMUP)
    data = json.loads(export_json(log, r, {"scenario": "flagship"}))
    assert data["score"]["total"] == r.total and len(data["log"]) == len(log)
    rows = list(csv.DictReader(io.StringIO(export_csv(log))))
    assert len(rows) == len(log)
    assert [float(x["t"]) for x in rows] == sorted(float(x["t"]) for x in rows)


def test_a_step_is_detected_by_evidence_not_by_naming_its_devices() -> None:
    """An alert that names the step's devices but cites nothing the step caused does not
    detect it; one citing a flow the step caused does, even long after its window."""
    log = [step("scan", 12000.0, "ahu"), alert(12060.0, "ahu", ("flow:99",)), end(14400.0, 0.0)]
    assert "0 of 1 attack steps" in line(score(log, BASELINE, WARMUP), "detected").reason
    late = [step("scan", 12000.0, "ahu"), alert(14000.0, "cam"), end(14400.0, 0.0)]
    assert "1 of 1 attack steps" in line(score(late, BASELINE, WARMUP), "detected").reason
