"""The detector benchmark: detectors x scenarios x seeds, a study on the one executor, pooled into
one leaderboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import SimulationError
from twin.holdout import add_lofo_html, bench_report
from twin.scenario import load_scenario
from twin.study.executor import Cluster, Progress, ResultStore, run_all
from twin.study.spec import run_key
from twin.telemetry import write_json_atomic

LEADERBOARD_COLUMNS = [
    "detector", "runs", "steps", "detected", "recall", "alerts", "precision", "f1",
    "ttd_median_s", "ttd_p95_s", "false_alarms_per_day", "attack_free_false_alarms_per_day",
    "flow_pr_auc",
]  # fmt: skip


def bench_overrides(params: dict[str, Any]) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "seed": params["seed"],
        "detectors": list(params["detectors"]),
        "responses": [],
    }
    if params["duration"]:
        overrides["duration"] = params["duration"]
    if params["attack_free"]:
        overrides["campaign"] = None
    if params["backend"] != "sim":
        overrides["backend"] = params["backend"]
    if params["speed"] is not None:
        overrides["speed"] = params["speed"]
    return overrides


def bench_cell(params: dict[str, Any], shared: Any, workdir: Path) -> dict[str, Any]:
    """One simulation with every detector attached; a row per detector (runs on a worker)."""
    from twin.run import execute

    spec = load_scenario(params["scenario"], bench_overrides(params))
    # named for people (runs/flagship-s7): one bench directory holds one grid, so it is unique
    workdir = workdir.parent / (
        f"{spec.name}-s{params['seed']}" + ("-quiet" if params["attack_free"] else "")
    )
    result = execute(
        spec,
        workdir,
        source=params["scenario"],
        counterfactual=False,
        force=True,  # an attempt that died half-way left a twin run: replace it, nothing else
    )
    if result.summary["status"] != "complete":
        raise RuntimeError(f"run ended {result.summary['status']}: {result.summary['error']}")
    days = result.summary["monitored_s"] / 86400.0
    rows = []
    for s in result.scores:
        if s.detector == "union":
            continue
        rows.append({
            "scenario": spec.name, "seed": params["seed"], "attack_free": params["attack_free"],
            "detector": s.detector, "steps": s.steps, "detected": s.detected, "alerts": s.alerts,
            "matched": s.matched_alerts, "monitored_days": days, "ttds": json.dumps(list(s.ttds)),
            "flow_pr_auc": s.flow_pr_auc, "recall": s.recall, "precision": s.precision,
            "false_alarms_per_day": s.false_alarms_per_day,
        })  # fmt: skip
    return {"rows": rows}


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
    cluster: Cluster | None = None,
    progress: Progress | None = None,
    *,
    backend: str = "sim",
    speed: float | None = None,
    holdout_facility: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the grid as a study on the one executor (keyed, resumable), write per-run and
    pooled tables (Parquet, CSV) and an HTML report.

    On the emulated backend runs go one at a time in this process: each holds its network
    and real time. Default executor: serial.
    """
    out.mkdir(parents=True, exist_ok=True)
    cluster = cluster or Cluster(serial=True)
    if backend != "sim":
        cluster = Cluster(serial=True)
    grid = [(p, s, False) for p in scenarios for s in seeds]
    if attack_free:
        grid += [(p, seeds[0], True) for p in scenarios]
    runs: dict[str, dict[str, Any]] = {}
    for path, seed, quiet in grid:
        params = {
            "scenario": str(path), "seed": seed, "detectors": list(detectors),
            "duration": duration, "attack_free": quiet, "backend": backend, "speed": speed,
        }  # fmt: skip
        runs[run_key(params, load_scenario(path, bench_overrides(params)))] = params
    records = run_all(bench_cell, runs, None, ResultStore(out), cluster, progress)
    failed = [r for r in records.values() if r["status"] != "ok"]
    if failed:
        raise SimulationError(
            f"{len(failed)} of {len(records)} bench runs failed, e.g. "
            f"{failed[0]['params']['scenario']} seed {failed[0]['params']['seed']}: "
            f"{failed[0]['error']} (records in {out / 'results'})"
        )
    rows = [row for key in runs for row in records[key]["rows"]]
    per_run = pd.DataFrame(rows)
    board = pool(per_run)
    # scored by evidence: late detections apart, the windowed score beside, and the
    # leave-one-facility-out table (twin/holdout.py)
    board, lofo = bench_report(out, board, holdout_facility)
    for name, frame in (("per_run", per_run), ("leaderboard", board)):
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
    write_html(board, per_run, out / "leaderboard.html")
    add_lofo_html(out / "leaderboard.html", lofo)
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
