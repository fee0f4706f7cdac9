"""One run, end to end: warm-up, fit, stream to detectors, score, write results."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import platform
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from detectors import Detector, SiteView, build
from twin import __version__
from twin.engine import Engine
from twin.facility import Facility
from twin.responses import ACTIONS, Action, BlockConduit
from twin.rundir import claim, finishing, was_interrupted
from twin.scenario import facility_of
from twin.schema import SEVERITIES, DetectorSpec, PlaybookSpec, ScenarioSpec
from twin.scoring import DetectorScore, impact, score_run
from twin.telemetry import Alert, RunWriter, TelemetryBatch, alerts_frame, write_json_atomic

Progress = Callable[[float, float], None]


@dataclass
class RunResult:
    directory: Path
    summary: dict[str, Any]
    scores: list[DetectorScore]


DEFAULT_DETECTORS = "ensemble"  # with its default members (detectors/ensemble.py)


def detector_specs(spec: ScenarioSpec) -> list[DetectorSpec]:
    """The scenario's detectors; the default ensemble when it names none (never nothing)."""
    if not spec.detectors:
        return [DetectorSpec(name=DEFAULT_DETECTORS)]
    return [d if isinstance(d, DetectorSpec) else DetectorSpec(name=d) for d in spec.detectors]


def detectors_note(spec: ScenarioSpec) -> str:
    """What a user is told when the scenario names no detectors ('' when it does)."""
    if spec.detectors:
        return ""
    from detectors.ensemble import DEFAULT_MEMBERS

    return (
        "the scenario names no detectors: scored with the default ensemble "
        f"({', '.join(DEFAULT_MEMBERS)})"
    )


class Playbooks:
    """Turns alerts into response actions after an analyst's delay, once per action and target."""

    def __init__(self, playbooks: list[PlaybookSpec], engine: Engine) -> None:
        self.playbooks = playbooks
        self.engine = engine
        self.done: set[tuple[str, str]] = set()

    def handle(self, alerts: list[Alert]) -> None:
        for alert in sorted(alerts, key=lambda a: a.t):
            for pb in self.playbooks:
                if pb.detector not in (None, alert.detector):
                    continue
                if SEVERITIES.index(alert.severity) < SEVERITIES.index(pb.min_severity):
                    continue
                for action in self._actions(pb, alert):
                    key = (
                        pb.action,
                        getattr(action, "device", "") or getattr(action, "conduit", ""),
                    )
                    if key not in self.done:
                        self.done.add(key)
                        self.engine.schedule(action, alert.t + pb.delay)

    def _actions(self, pb: PlaybookSpec, alert: Alert) -> list[Action]:
        reason = f"playbook: {alert.detector} {alert.severity}: {alert.reason}"[:200]
        if pb.action == "block_conduit":
            policy = self.engine.net.policy
            names = policy.conduits_between(alert.src_ip, alert.dst_ip) if alert.dst_ip else []
            return [BlockConduit(reason=reason, conduit=n) for n in names]
        fac = self.engine.facility
        if pb.target == "device":
            who = alert.device
        else:
            ip = alert.src_ip if pb.target == "source" else alert.dst_ip
            who = fac.by_ip[ip].name if ip in fac.by_ip else ip
        if who in fac.by_name or (pb.action == "quarantine" and who[:1].isdigit()):
            return [ACTIONS[pb.action](reason=reason, device=who)]  # type: ignore[call-arg]
        return []


class Detection:
    """The detector stage: fit once, observe each batch, finish at the end.

    In the background (the emulated backend) it runs in a thread of its own, so a slow
    detector never holds the real-time kernel back; alerts come back in batch order as
    they are ready, so a playbook may act a batch later than it would in the foreground.
    """

    def __init__(
        self, specs: list[DetectorSpec], detectors: list[Detector], *, background: bool
    ) -> None:
        self.specs = specs
        self.detectors = detectors
        self.flow_scores: list[pd.DataFrame] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="detectors") if background else None
        self._pending: list[Future[list[Alert]]] = []

    def _later(self, fn: Callable[[], list[Alert]]) -> None:
        if self._pool is not None:
            self._pending.append(self._pool.submit(fn))
            return
        done: Future[list[Alert]] = Future()
        done.set_result(fn())
        self._pending.append(done)

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> None:
        def fit_all() -> list[Alert]:
            for d in self.detectors:
                d.fit(baseline, site)
            return []

        self._later(fit_all)

    def observe(self, batch: TelemetryBatch) -> None:
        def observe_all() -> list[Alert]:
            new = []
            for spec, d in zip(self.specs, self.detectors, strict=True):
                new += self._labelled(spec, d.observe(batch))
                scored = getattr(d, "last_scores_", None)
                if scored is not None and len(scored):
                    self.flow_scores.append(_scores_frame(scored, spec.id))
            return new

        self._later(observe_all)

    def finish(self) -> None:
        self._later(
            lambda: [
                a
                for spec, d in zip(self.specs, self.detectors, strict=True)
                for a in self._labelled(spec, d.finish())
            ]
        )

    @staticmethod
    def _labelled(spec: DetectorSpec, alerts: list[Alert]) -> list[Alert]:
        if not spec.label:
            return alerts
        return [dataclasses.replace(a, detector=spec.label) for a in alerts]

    def ready(self, *, wait: bool = False) -> list[Alert]:
        """Alerts of the work done so far, in order (all of it, waiting, with `wait`)."""
        out: list[Alert] = []
        while self._pending and (wait or self._pending[0].done()):
            out += self._pending.pop(0).result()
        return out

    def close(self) -> list[Alert]:
        """Stop; the alerts of work already done (a run that ends early keeps them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        done, self._pending = self._pending, []
        return [
            a
            for f in done
            if f.done() and not f.cancelled() and f.exception() is None
            for a in f.result()
        ]


def _scores_frame(scored: pd.Series, detector: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "flow_id": scored.index.to_numpy(dtype="int64"),
            "detector": detector,
            "score": scored.to_numpy(dtype=float),
        }
    )


def harm_without_responses(spec: ScenarioSpec) -> dict[str, Any]:
    """The counterfactual: the same run (same seed) with no responses, for harm avoided."""
    # on the modelled network even for an emulated run: the physics is the same kernel
    engine = Engine(spec.model_copy(update={"responses": [], "backend": "sim"}))
    with engine.net:
        t = 0.0
        while t < spec.duration:
            t = min(t + 6 * 3600.0, spec.duration)
            engine.run_until(t)
    return engine.harm.summary()


HARM_KEYS = ("degree_hours_outside_band", "unsafe_tank_minutes", "doors_opened_without_badge")


def _versions() -> dict[str, str]:
    out = {"twin": __version__, "python": platform.python_version()}
    for pkg in ("simpy", "numpy", "pandas", "pyarrow", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "?"
    return out


def execute(
    spec: ScenarioSpec,
    out: Path,
    progress: Progress | None = None,
    source: str = "",
    counterfactual: bool = True,
    force: bool = False,
    cli: bool = False,
) -> RunResult:
    """Run a checked scenario into `out`. Whatever happens, what was computed is kept on disk.

    `out` is claimed for the run (twin.rundir): new or empty, or a previous twin run replaced
    only with `force`; locked until the run ends; a signal while the results are being
    written cannot break them.
    """
    with claim(out, force=force), contextlib.ExitStack() as shield:
        return _run(spec, out, progress, source, counterfactual, shield, cli)


def _run(
    spec: ScenarioSpec,
    out: Path,
    progress: Progress | None,
    source: str,
    counterfactual: bool,
    shield: contextlib.ExitStack,
    cli: bool = False,
) -> RunResult:
    facility = Facility.build(facility_of(spec))
    dspecs = detector_specs(spec)
    detectors = [build(d.name, d.params) for d in dspecs]
    engine = Engine(spec, facility, workdir=out)
    playbooks = Playbooks(spec.responses, engine) if spec.responses else None
    # with responses on, stream every export interval so an analyst's clock starts on time
    step = min(spec.batch_interval, spec.export_interval) if playbooks else spec.batch_interval
    if cli:  # a person leaving the CLI is heard within one export interval
        step = min(step, spec.export_interval)
    writer = RunWriter(out)
    alerts: list[Alert] = []
    # on the emulated network the detectors work beside the kernel, which keeps real time
    detection = Detection(dspecs, detectors, background=spec.backend == "mininet")
    flow_scores = detection.flow_scores
    status, error = "failed", None
    epoch = time.time()
    wall = time.perf_counter()
    try:
        with engine.net:
            if cli:  # Mininet's prompt on the live network; leaving it ends the run
                engine.net.open_cli()  # type: ignore[attr-defined]
            t = 0.0
            baseline: list[TelemetryBatch] = []
            while t < spec.warmup and not getattr(engine.net, "cli_done", False):
                t = min(t + step, spec.warmup)
                batch = engine.run_until(t)
                writer.write_batch(batch)
                baseline.append(batch)
                if progress:
                    progress(t, spec.duration)
            captures = getattr(engine.net, "captures", None)
            site = SiteView(facility, engine.net.policy, captures() if captures else None)
            detection.fit(TelemetryBatch.concat(baseline), site)
            del baseline
            while t < spec.duration and not getattr(engine.net, "cli_done", False):
                t = min(t + step, spec.duration)
                batch = engine.run_until(t)
                writer.write_batch(batch)
                detection.observe(batch)
                new = detection.ready()
                alerts.extend(new)
                if playbooks:
                    playbooks.handle(new)
                if progress:
                    progress(t, spec.duration)
            engine.net.stop_capture()  # captures complete on disk before detectors read them
            detection.finish()
            alerts.extend(detection.ready(wait=True))
        status = "complete"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        shield.enter_context(finishing())  # a second signal only hurries, never breaks
        alerts.extend(detection.close())
        alerts.sort(key=lambda a: (a.t, a.detector, a.device))
        alerts_df = alerts_frame(alerts)
        truth = engine.truth()
        writer.append("alerts", alerts_df)
        writer.append("truth", truth)
        scores_df = pd.concat(flow_scores, ignore_index=True) if flow_scores else None
        if scores_df is not None:
            writer.append("flow_scores", scores_df)
        writer.close()
        monitored = max(0.0, engine.now - spec.warmup)
        skipped = engine.campaign.skipped if engine.campaign else []
        scores = score_run(
            truth, alerts_df, [d.id for d in dspecs], monitored, scores_df, len(skipped)
        )
        attacker = engine.campaign.attacker if engine.campaign else None
        held = [
            n
            for n in (attacker.footholds + attacker.bots if attacker else [])
            if n in facility.by_name
        ]
        outcome = impact(truth, engine.harm.summary(), skipped, held, facility.by_name)
        first_step = float(truth["t_start"].min()) if not truth.empty else None
        outcome["time_to_containment_s"] = (
            engine.contained_at - first_step
            if engine.contained_at is not None and first_step is not None
            else None
        )
        # a signal while the results are written: the counterfactual is not worth a wait
        if spec.responses and counterfactual and status == "complete" and not was_interrupted():
            without = harm_without_responses(spec)
            outcome["harm_without_responses"] = {k: without[k] for k in HARM_KEYS}
            outcome["harm_avoided"] = {k: round(without[k] - outcome[k], 3) for k in HARM_KEYS}
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
            "export_interval_s": spec.export_interval,
            "sample_interval_s": spec.sample_interval,
            "warmup_s": spec.warmup,
            "simulated_s": engine.now,
            "monitored_s": monitored,
            "start": spec.start.isoformat(),
            "wall_clock_epoch": epoch,
            "wall_clock_start": dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(),
            "wall_time_s": round(time.perf_counter() - wall, 3),
            "versions": _versions(),
            "detectors": [{"name": d.name, "label": d.label, "params": d.params} for d in dspecs],
            "detectors_note": detectors_note(spec),
            "scores": [s.as_dict() for s in scores],
            "impact": outcome,
            "responses": [p.model_dump() for p in spec.responses],
            "actions": engine.actions,
            "rows": dict(writer.rows),
        }
        stats = getattr(engine.net, "stats", None)
        if stats is not None:
            summary["emulated"] = stats()
        write_json_atomic(out / "summary.json", summary)
        try:
            from twin.report import write_report

            write_report(out)
        except Exception as exc:  # the tables and summary are the results; the report is a view
            summary["report_error"] = f"{type(exc).__name__}: {exc}"
            write_json_atomic(out / "summary.json", summary)
    return RunResult(out, summary, scores)
