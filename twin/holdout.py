"""Detection scored by evidence over many runs: the pooled leaderboard and leave-one-facility-out.

Each run is read back from its directory (truth, alerts, summary), so any set of detectors
that ran in it can be scored again together: an ensemble with `min_votes` 1 is exactly the
union of its members' alerts, which lets the members be *chosen* on some facilities and the
union *scored* on another without running anything twice.

Leave one facility out: for each facility F, detectors are admitted to the ensemble on the
other facilities only (at most `budget` false alarms per attack-free day, and a precision
floor on attacked runs), then that ensemble is scored on F's runs. `twin bench
--holdout-facility F` reports the row for F; the table has one row per facility.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.scoring import score_alerts
from twin.telemetry import read_table

ENSEMBLE = "ensemble"
BUDGET_PER_DAY = 1.0  # the false-alarm budget a member must keep on attack-free days
MIN_PRECISION = 0.97  # and the precision it must show on attacked runs (the ensemble target)

BOARD_COLUMNS = [
    "detector", "runs", "steps", "detected", "recall", "late", "late_delay_median_s",
    "alerts", "precision", "f1", "ttd_median_s", "ttd_p95_s", "false_alarms_per_day",
    "attack_free_false_alarms_per_day", "not_attempted", "unevidenced_alerts",
    "windowed_recall", "windowed_precision", "windowed_false_alarms_per_day",
]  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """One finished run, as scoring needs it."""

    directory: Path
    scenario: str
    facility: str
    seed: int
    attack_free: bool
    monitored_s: float
    not_attempted: int
    truth: pd.DataFrame
    alerts: pd.DataFrame
    detectors: frozenset[str] = frozenset()  # what ran (labels); empty: unknown, assume all


def read_run(directory: Path) -> RunRecord:
    """A run directory's summary, truth and alerts. A run is attack-free when its scenario
    had no campaign (bench names those directories `*-quiet`)."""
    summary = json.loads((directory / "summary.json").read_text())
    impact = summary.get("impact", {})
    quiet = directory.name.endswith("-quiet") or (
        not impact.get("steps_attempted") and not impact.get("steps_not_attempted")
    )
    return RunRecord(
        directory,
        str(summary["scenario"]),
        str(summary["facility"]),
        int(summary["seed"]),
        quiet,
        float(summary["monitored_s"]),
        len(impact.get("steps_not_attempted", [])),
        read_table(directory, "truth"),
        read_table(directory, "alerts"),
        frozenset(d.get("label") or d["name"] for d in summary.get("detectors", [])),
    )


def read_runs(directories: Iterable[Path]) -> list[RunRecord]:
    return [read_run(d) for d in directories if (d / "summary.json").is_file()]


def _nan(v: float) -> float:
    return float(v) if v is not None and not math.isnan(v) else float("nan")


def pool(runs: list[RunRecord], members: list[str], label: str) -> dict[str, Any]:
    """Pooled evidence scores of the union of `members`' alerts over `runs` (those in which
    every member ran), with late detections apart and the previous windowed score beside."""
    runs = [r for r in runs if not r.detectors or set(members) <= r.detectors]
    attacked = [r for r in runs if not r.attack_free]
    quiet = [r for r in runs if r.attack_free]
    steps = detected = late = alerts = matched = unevidenced = skipped = 0
    w_detected = w_matched = 0
    ttds: list[float] = []
    delays: list[float] = []
    days = sum(r.monitored_s for r in attacked) / 86400.0
    for r in attacked:
        a = r.alerts[r.alerts["detector"].isin(members)].assign(detector=label)
        s = score_alerts(r.truth, a, r.monitored_s, label, r.not_attempted)
        steps += s.steps
        detected += s.detected
        late += s.late
        alerts += s.alerts
        matched += s.matched_alerts
        unevidenced += s.unevidenced_alerts
        skipped += s.not_attempted
        ttds += list(s.ttds)
        delays += list(s.late_delays)
        if s.steps and not math.isnan(s.windowed_recall):
            w_detected += round(s.windowed_recall * s.steps)
        if s.alerts and not math.isnan(s.windowed_precision):
            w_matched += round(s.windowed_precision * s.alerts)
    quiet_alerts, quiet_days = 0, sum(r.monitored_s for r in quiet) / 86400.0
    for r in quiet:
        a = r.alerts[r.alerts["detector"].isin(members)].assign(detector=label)
        quiet_alerts += score_alerts(r.truth, a, r.monitored_s, label).alerts
    recall = detected / steps if steps else float("nan")
    precision = matched / alerts if alerts else float("nan")
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return {
        "detector": label, "runs": len(attacked), "steps": steps, "detected": detected,
        "recall": recall, "late": late,
        "late_delay_median_s": float(np.median(delays)) if delays else float("nan"),
        "alerts": alerts, "precision": precision, "f1": f1,
        "ttd_median_s": float(np.median(ttds)) if ttds else float("nan"),
        "ttd_p95_s": float(np.percentile(ttds, 95)) if ttds else float("nan"),
        "false_alarms_per_day": (alerts - matched) / days if days else float("nan"),
        "attack_free_false_alarms_per_day": quiet_alerts / quiet_days if quiet_days else float("nan"),
        "not_attempted": skipped, "unevidenced_alerts": unevidenced,
        "windowed_recall": w_detected / steps if steps else float("nan"),
        "windowed_precision": w_matched / alerts if alerts else float("nan"),
        "windowed_false_alarms_per_day": (alerts - w_matched) / days if days else float("nan"),
    }  # fmt: skip


def leaderboard(
    runs: list[RunRecord], detectors: list[str], ensemble: list[str] | None = None
) -> pd.DataFrame:
    """One pooled row per detector, and one for the ensemble (the union of `ensemble`)."""
    rows = [pool(runs, [d], d) for d in detectors]
    if ensemble:
        rows.append(pool(runs, list(ensemble), ENSEMBLE))
    board = pd.DataFrame(rows, columns=BOARD_COLUMNS)
    return board.sort_values(["f1", "recall"], ascending=False, ignore_index=True)


def choose_members(
    runs: list[RunRecord],
    candidates: list[str],
    budget: float = BUDGET_PER_DAY,
    min_precision: float = MIN_PRECISION,
) -> list[str]:
    """The candidates that keep the false-alarm budget on attack-free days and the precision
    floor on attacked runs, judged on `runs` only."""
    chosen = []
    for d in candidates:
        row = pool(runs, [d], d)
        quiet = row["attack_free_false_alarms_per_day"]
        precise = row["precision"]
        if (math.isnan(quiet) or quiet <= budget) and (
            math.isnan(precise) or precise >= min_precision
        ):
            chosen.append(d)
    return chosen


def leave_one_facility_out(
    runs: list[RunRecord],
    candidates: list[str],
    budget: float = BUDGET_PER_DAY,
    min_precision: float = MIN_PRECISION,
    only: str | None = None,
) -> pd.DataFrame:
    """Per facility: members chosen on the others, and that ensemble's scores on it."""
    rows = []
    for facility in sorted({r.facility for r in runs}):
        if only is not None and facility != only:
            continue
        tune = [r for r in runs if r.facility != facility]
        test = [r for r in runs if r.facility == facility]
        members = choose_members(tune, candidates, budget, min_precision) if tune else candidates
        row = pool(test, members, ENSEMBLE)
        rows.append({"held_out": facility, "members": ",".join(members), **row})
    return pd.DataFrame(rows)


def facilities(runs: list[RunRecord]) -> list[str]:
    return sorted({r.facility for r in runs})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def text_table(frame: pd.DataFrame, columns: list[str]) -> str:
    """A plain fixed-width table (for bench scripts and logs)."""
    cells = [[_fmt(v) for v in row] for row in frame[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def lofo_html(table: pd.DataFrame) -> str:
    """The leave-one-facility-out table for the bench report."""
    if table.empty:
        return ""
    cols = ["held_out", "members", "runs", "steps", "recall", "late", "precision",
            "false_alarms_per_day", "attack_free_false_alarms_per_day", "ttd_median_s", "ttd_p95_s"]  # fmt: skip
    return (
        "<h2>Leave one facility out</h2><p>Ensemble members chosen on the other facilities "
        f"(at most {BUDGET_PER_DAY:g} false alarm per attack-free day, precision at least "
        f"{MIN_PRECISION:g}), scored by evidence on the facility held out.</p>"
        + table[cols].to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
    )


EXTRA_COLUMNS = ["late", "late_delay_median_s", "not_attempted", "unevidenced_alerts",
                 "windowed_recall", "windowed_precision", "windowed_false_alarms_per_day"]  # fmt: skip


def bench_report(
    out: Path, board: pd.DataFrame, holdout_facility: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For `twin bench`: the leaderboard with late detections apart and the windowed score
    beside (read back from the runs under `out/runs`), and the leave-one-facility-out table
    (only the held-out facility's row with `holdout_facility`), written as lofo.csv/.parquet."""
    runs = read_runs(sorted(d for d in (out / "runs").iterdir() if d.is_dir()))
    detectors = [str(d) for d in board["detector"]]
    extra = leaderboard(runs, detectors)[["detector", *EXTRA_COLUMNS]]
    board = board.drop(columns=[c for c in EXTRA_COLUMNS if c in board.columns])
    board = board.merge(extra, on="detector", how="left")
    candidates = [d for d in detectors if d != ENSEMBLE]
    lofo = leave_one_facility_out(runs, candidates, only=holdout_facility)
    if holdout_facility is not None and lofo.empty:
        known = ", ".join(facilities(runs)) or "none"
        raise ValueError(f"no run on facility {holdout_facility!r} (the runs' facilities: {known})")
    lofo.to_csv(out / "lofo.csv", index=False)
    lofo.to_parquet(out / "lofo.parquet", index=False)
    return board, lofo


def add_lofo_html(page: Path, lofo: pd.DataFrame) -> None:
    """Put the leave-one-facility-out table into the bench report, before its per-run table."""
    html = lofo_html(lofo)
    if not html or not page.is_file():
        return
    text = page.read_text()
    mark = "<h2>Per run</h2>"
    text = (
        text.replace(mark, html + mark, 1)
        if mark in text
        else text.replace("</body>", html + "</body>")
    )
    tmp = page.with_name(page.name + ".part")
    tmp.write_text(text)
    tmp.replace(page)
