"""One study run where it executes: the scenario with the run's policies, run by
`twin.run.execute` (as `twin run` does), reduced to its scores and architecture metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.schema import FacilitySpec, PlaybookSpec, ScenarioSpec


@dataclass(frozen=True)
class Shared:
    """What every run needs, scattered to the cluster once: the checked scenarios."""

    scenarios: dict[str, ScenarioSpec]
    responses: list[PlaybookSpec] = field(default_factory=list)
    detector_sets: dict[str, list[str]] = field(default_factory=dict)
    keep_runs: bool = True


def scenario_of(params: dict[str, Any], shared: Shared) -> ScenarioSpec:
    from twin.study.lifecycle import apply

    return apply(
        shared.scenarios[params["scenario"]], params, shared.responses, shared.detector_sets
    )


def run_cell(params: dict[str, Any], shared: Shared, workdir: Path) -> dict[str, Any]:
    """Execute one run into `workdir`; its record: scores per detector and the metrics."""
    import shutil

    from twin.run import execute
    from twin.study.metrics import run_metrics
    from twin.telemetry import read_table

    spec = scenario_of(params, shared)
    result = execute(
        spec,
        workdir,
        source=f"study:{params['scenario']}",
        counterfactual=False,
        force=True,  # an attempt that died half-way left a twin run: replace it, nothing else
    )
    summary = result.summary
    if summary["status"] != "complete":
        raise RuntimeError(f"run ended {summary['status']}: {summary['error']}")
    truth = read_table(workdir, "truth")
    assert isinstance(spec.facility, FacilitySpec)
    metrics = run_metrics(summary, truth, spec.facility, spec.design)
    scores = {
        s["detector"]: {k: v for k, v in s.items() if k not in ("detector", "ttds")}
        for s in summary["scores"]
    }
    if not shared.keep_runs:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"metrics": metrics, "scores": scores, "directory": str(workdir)}
