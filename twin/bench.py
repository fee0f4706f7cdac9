"""The detector benchmark: detectors x scenarios x seeds, pooled into one leaderboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.scenario import load_scenario
from twin.telemetry import write_json_atomic

LEADERBOARD_COLUMNS = [
    "detector", "runs", "steps", "detected", "recall", "alerts", "precision", "f1",
    "ttd_median_s", "ttd_p95_s", "false_alarms_per_day", "attack_free_false_alarms_per_day",
    "flow_pr_auc",
]  # fmt: skip


@dataclass(frozen=True)
class BenchRun:
    scenario: Path
    seed: int
    detectors: tuple[str, ...]
    duration: str | None
    attack_free: bool
    out: Path
    backend: str = "sim"
    speed: float | None = None


def run_one(job: BenchRun) -> list[dict[str, Any]]:
    """One simulation with every detector attached; a row per detector (picklable for workers)."""
    from twin.run import execute

    overrides: dict[str, Any] = {
        "seed": job.seed,
        "detectors": list(job.detectors),
        "responses": [],
    }
    if job.duration:
        overrides["duration"] = job.duration
    if job.attack_free:
        overrides["campaign"] = None
    if job.backend != "sim":
        overrides["backend"] = job.backend
    if job.speed is not None:
        overrides["speed"] = job.speed
    spec = load_scenario(job.scenario, overrides)
    tag = f"{spec.name}-s{job.seed}" + ("-quiet" if job.attack_free else "")
    result = execute(spec, job.out / "runs" / tag, source=str(job.scenario), counterfactual=False)
    days = result.summary["monitored_s"] / 86400.0
    rows = []
    for s in result.scores:
        if s.detector == "union":
            continue
        rows.append({
            "scenario": spec.name, "seed": job.seed, "attack_free": job.attack_free,
            "detector": s.detector, "steps": s.steps, "detected": s.detected, "alerts": s.alerts,
            "matched": s.matched_alerts, "monitored_days": days, "ttds": json.dumps(list(s.ttds)),
            "flow_pr_auc": s.flow_pr_auc, "recall": s.recall, "precision": s.precision,
            "false_alarms_per_day": s.false_alarms_per_day,
        })  # fmt: skip
    return rows


def pool(per_run: pd.DataFrame) -> pd.DataFrame:
    """Pool runs per detector: sums for recall/precision, all detections for time to detect."""
    rows = []
    for det, g in per_run.groupby("detector", sort=True):
        attacked, quiet = g[~g["attack_free"]], g[g["attack_free"]]
        steps, detected = int(attacked["steps"].sum()), int(attacked["detected"].sum())
        alerts, matched = int(attacked["alerts"].sum()), int(attacked["matched"].sum())
        recall = detected / steps if steps else float("nan")
        precision = matched / alerts if alerts else float("nan")
        f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
        ttds = [t for cell in attacked["ttds"] for t in json.loads(cell)]
        days = attacked["monitored_days"].sum()
        quiet_days = quiet["monitored_days"].sum()
        rows.append({
            "detector": det, "runs": len(attacked), "steps": steps, "detected": detected,
            "recall": recall, "alerts": alerts, "precision": precision, "f1": f1,
            "ttd_median_s": float(np.median(ttds)) if ttds else float("nan"),
            "ttd_p95_s": float(np.percentile(ttds, 95)) if ttds else float("nan"),
            "false_alarms_per_day": (alerts - matched) / days if days else float("nan"),
            "attack_free_false_alarms_per_day": quiet["alerts"].sum() / quiet_days if quiet_days else float("nan"),
            "flow_pr_auc": float(attacked["flow_pr_auc"].mean()) if attacked["flow_pr_auc"].notna().any() else float("nan"),
        })  # fmt: skip
    board = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    return board.sort_values(["f1", "recall"], ascending=False, ignore_index=True)


def bench(
    scenarios: list[Path],
    detectors: list[str],
    seeds: list[int],
    out: Path,
    duration: str | None = None,
    attack_free: bool = True,
    jobs: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    *,
    backend: str = "sim",
    speed: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the grid, write per-run and pooled tables (Parquet, CSV) and an HTML report.

    On the emulated backend runs go one at a time: each holds its network and real time.
    """
    out.mkdir(parents=True, exist_ok=True)
    dets = tuple(detectors)
    grid = [
        BenchRun(p, s, dets, duration, False, out, backend, speed) for p in scenarios for s in seeds
    ]
    if attack_free:
        grid += [
            BenchRun(p, seeds[0], dets, duration, True, out, backend, speed) for p in scenarios
        ]
    if backend != "sim":
        jobs = 1
    rows: list[dict[str, Any]] = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for i, result in enumerate(ex.map(run_one, grid), 1):
                rows += result
                if progress:
                    progress(i, len(grid), grid[i - 1].scenario.stem)
    else:
        for i, job in enumerate(grid, 1):
            rows += run_one(job)
            if progress:
                progress(i, len(grid), job.scenario.stem)
    per_run = pd.DataFrame(rows)
    board = pool(per_run)
    for name, frame in (("per_run", per_run), ("leaderboard", board)):
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
    write_html(board, per_run, out / "leaderboard.html")
    write_json_atomic(out / "bench.json", {
        "scenarios": [p.stem for p in scenarios], "detectors": detectors, "seeds": seeds,
        "duration": duration, "attack_free": attack_free, "backend": backend, "speed": speed,
    })  # fmt: skip
    return board, per_run


def write_html(board: pd.DataFrame, per_run: pd.DataFrame, path: Path) -> None:
    import plotly.express as px
    import plotly.io as pio

    attacked = per_run[~per_run["attack_free"]]
    f1 = px.bar(board, x="detector", y=["recall", "precision", "f1"], barmode="group",
                title="event-level recall, precision, F1 (pooled over runs)")  # fmt: skip
    heat = attacked.pivot_table(
        index="detector", columns="scenario", values="recall", aggfunc="mean"
    )
    grid = px.imshow(heat, text_auto=".2f", zmin=0, zmax=1, color_continuous_scale="RdYlGn",
                     title="recall per scenario: who catches what", aspect="auto")  # fmt: skip
    parts = [
        "<html><head><meta charset='utf-8'><title>twin detector leaderboard</title></head><body>",
        "<h1>Detector leaderboard</h1>",
        board.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"),
        pio.to_html(f1, include_plotlyjs="inline", full_html=False),
        pio.to_html(grid, include_plotlyjs=False, full_html=False),
        "<h2>Per run</h2>",
        per_run.drop(columns=["ttds"]).to_html(
            index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"
        ),
        "</body></html>",
    ]
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
