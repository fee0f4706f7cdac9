"""A study end to end: expand into runs, execute them on the chosen executor, tabulate, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from twin.study.executor import Cluster, Progress, ResultStore, run_all
from twin.study.spec import Study, expand, run_key
from twin.study.task import Shared, run_cell, scenario_of
from twin.telemetry import write_json_atomic

PARAM_COLUMNS = [
    "scenario", "design", "detectors", "playbooks", "default_credentials", "patch_lag_days",
    "analyst_delay_s", "replace_unsupported", "sample", "seed",
]  # fmt: skip


def plan(study: Study, keep_runs: bool = True) -> tuple[dict[str, dict[str, Any]], Shared]:
    """The study's runs by key, and what they share."""
    shared = Shared(
        scenarios=study.scenarios,
        responses=list(study.spec.responses),
        detector_sets=dict(study.spec.detector_sets),
        keep_runs=keep_runs,
    )
    runs = {}
    for params in expand(study):
        runs[run_key(params, scenario_of(params, shared))] = params
    return runs, shared


def table(records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run: its parameters, status, metrics and per-detector scores."""
    rows = []
    for key, r in sorted(records.items()):
        row: dict[str, Any] = {"key": key, **{c: r["params"].get(c) for c in PARAM_COLUMNS}}
        row["status"], row["error"] = r["status"], r.get("error")
        row.update(r.get("metrics", {}))
        for det, s in (r.get("scores") or {}).items():
            for k, v in s.items():
                row[f"{det}.{k}"] = v
        row["wall_time_s"] = r.get("wall_time_s")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "detectors" in frame:
        frame["detectors"] = frame["detectors"].astype("string")
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def run_study(
    study: Study,
    out: Path,
    cluster: Cluster,
    progress: Progress | None = None,
    *,
    keep_runs: bool = True,
    report: bool = True,
) -> pd.DataFrame:
    """Run (or resume) the study into `out`: results.parquet, designs.json, report.html."""
    from twin.study.design import analyse

    out.mkdir(parents=True, exist_ok=True)
    runs, shared = plan(study, keep_runs)
    store = ResultStore(out)
    records = run_all(run_cell, runs, shared, store, cluster, progress)
    frame = table(records)
    write_table(frame, out / "results.parquet")
    facility = next(iter(study.scenarios.values())).facility
    assert not isinstance(facility, str)
    designs = {d: analyse(facility, d) for d in study.designs}
    write_json_atomic(out / "designs.json", designs)
    write_json_atomic(
        out / "study.json",
        {
            "name": study.spec.name,
            "source": str(study.source),
            "spec": json.loads(study.spec.model_dump_json(by_alias=True)),
            "runs": len(runs),
            "failed": int((frame["status"] != "ok").sum()) if len(frame) else 0,
        },
    )
    if report:
        from twin.study.report import write_report

        write_report(study, frame, designs, out / "report.html")
    return frame
