"""One run, end to end: warm-up, fit, stream to detectors, score, write results."""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from detectors import SiteView, build
from twin import __version__
from twin.engine import Engine
from twin.facility import Facility
from twin.scenario import facility_of
from twin.schema import DetectorSpec, ScenarioSpec
from twin.scoring import DetectorScore, impact, score_run
from twin.telemetry import Alert, RunWriter, TelemetryBatch, alerts_frame, write_json_atomic

Progress = Callable[[float, float], None]


@dataclass
class RunResult:
    directory: Path
    summary: dict[str, Any]
    scores: list[DetectorScore]


def detector_specs(spec: ScenarioSpec) -> list[DetectorSpec]:
    return [d if isinstance(d, DetectorSpec) else DetectorSpec(name=d) for d in spec.detectors]


def _versions() -> dict[str, str]:
    out = {"twin": __version__, "python": platform.python_version()}
    for pkg in ("simpy", "numpy", "pandas", "pyarrow", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "?"
    return out


def execute(
    spec: ScenarioSpec, out: Path, progress: Progress | None = None, source: str = ""
) -> RunResult:
    """Run a checked scenario into `out`. Whatever happens, what was computed is kept on disk."""
    facility = Facility.build(facility_of(spec))
    dspecs = detector_specs(spec)
    detectors = [build(d.name, d.params) for d in dspecs]
    engine = Engine(spec, facility)
    writer = RunWriter(out)
    alerts: list[Alert] = []
    status, error = "failed", None
    epoch = time.time()
    wall = time.perf_counter()
    try:
        with engine.net:
            t = 0.0
            baseline: list[TelemetryBatch] = []
            while t < spec.warmup:
                t = min(t + spec.batch_interval, spec.warmup)
                batch = engine.run_until(t)
                writer.write_batch(batch)
                baseline.append(batch)
                if progress:
                    progress(t, spec.duration)
            site = SiteView(facility, engine.net.policy)
            fitted = TelemetryBatch.concat(baseline)
            del baseline
            for d in detectors:
                d.fit(fitted, site)
            del fitted
            while t < spec.duration:
                t = min(t + spec.batch_interval, spec.duration)
                batch = engine.run_until(t)
                writer.write_batch(batch)
                for d in detectors:
                    alerts.extend(d.observe(batch))
                if progress:
                    progress(t, spec.duration)
        status = "complete"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        alerts.sort(key=lambda a: (a.t, a.detector, a.device))
        alerts_df = alerts_frame(alerts)
        truth = engine.truth()
        writer.append("alerts", alerts_df)
        writer.append("truth", truth)
        writer.close()
        monitored = max(0.0, engine.now - spec.warmup)
        scores = score_run(truth, alerts_df, [d.name for d in dspecs], monitored)
        skipped = engine.campaign.skipped if engine.campaign else []
        summary = {
            "status": status,
            "error": error,
            "scenario": spec.name,
            "source": source,
            "story": spec.story,
            "facility": facility.name,
            "devices": len(facility.devices),
            "design": spec.design,
            "backend": spec.backend,
            "seed": spec.seed,
            "duration_s": spec.duration,
            "warmup_s": spec.warmup,
            "simulated_s": engine.now,
            "monitored_s": monitored,
            "start": spec.start.isoformat(),
            "wall_clock_epoch": epoch,
            "wall_clock_start": dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(),
            "wall_time_s": round(time.perf_counter() - wall, 3),
            "versions": _versions(),
            "detectors": [{"name": d.name, "params": d.params} for d in dspecs],
            "scores": [s.as_dict() for s in scores],
            "impact": impact(truth, engine.harm.summary(), skipped),
            "actions": engine.actions,
            "rows": dict(writer.rows),
        }
        write_json_atomic(out / "summary.json", summary)
        try:
            from twin.report import write_report

            write_report(out)
        except Exception as exc:  # the tables and summary are the results; the report is a view
            summary["report_error"] = f"{type(exc).__name__}: {exc}"
            write_json_atomic(out / "summary.json", summary)
    return RunResult(out, summary, scores)


def truth_summary(truth: pd.DataFrame) -> list[dict[str, Any]]:
    return truth[["step_id", "technique", "target", "succeeded", "blocked_by"]].to_dict("records")
