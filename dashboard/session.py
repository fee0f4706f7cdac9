"""An exercise: an Engine stepped in a background thread at a chosen speed, with its event log."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dashboard.figures import site_of
from detectors import SiteView, build
from twin.devices import KINDS
from twin.engine import Engine
from twin.errors import SimulationError, TwinError
from twin.facility import Facility
from twin.responses import ACTIONS, SAFETY_REGISTERS, Action, BlockConduit
from twin.run import Detection, detector_specs, harm_without_responses
from twin.scenario import facility_of
from twin.schema import ScenarioSpec, StepSpec
from twin.telemetry import Alert, TelemetryBatch

SPEEDS = (1, 10, 30, 60, 120, 300, 600)
MERGE_WINDOW = 60.0  # s simulated: repeats of one alert within this are one feed line
FEED_CAP = 200  # alert feed lines kept for the page (the log keeps every alert)
HISTORY_CAP = 720  # physics samples kept for the charts (12 h at one a minute)
ALERTING_FOR = 600.0  # s simulated a device stays 'alerting' after its last alert
LOGIN_SERVICES = frozenset({"http", "https", "telnet", "ssh"})
ACTION_LABELS = {
    "quarantine": "Quarantine (cut off the network)",
    "block_conduit": "Block a conduit",
    "rotate_credentials": "Rotate credentials",
    "reflash_firmware": "Reflash firmware",
    "restore_setpoints": "Restore setpoints",
    "enable_alarms": "Re-enable alarms and interlocks",
}


def quantum(spec: ScenarioSpec) -> float:
    """The simulated step of an exercise: the grid on which actions apply (<= 10 s).

    It divides the export interval, so detectors see the same batches at any speed, and
    a replay applying the same actions on the same grid reproduces the run exactly.
    """
    n = max(1, round(spec.export_interval / spec.physics_step))
    per = max(1, math.floor(max(10.0, spec.physics_step) / spec.physics_step))
    k = max(d for d in range(1, n + 1) if n % d == 0 and d <= per)
    return k * spec.physics_step


def detection_cadence(spec: ScenarioSpec, speed: float) -> float:
    """Simulated seconds between detector batches: a whole number of export intervals that
    takes at most ~5 wall seconds at this speed, and at most the scenario's batch interval."""
    most = max(1, math.floor(spec.batch_interval / spec.export_interval))
    k = max(1, min(most, math.floor(5.0 * speed / spec.export_interval)))
    return k * spec.export_interval


def actions_for(facility: Facility, device: str) -> list[str]:
    """The response actions that make sense on this device."""
    d = facility.by_name.get(device)
    if d is None:
        return []
    out = ["quarantine"]
    if LOGIN_SERVICES & set(d.services):
        out.append("rotate_credentials")
    out.append("reflash_firmware")
    regs = [r for r in KINDS[d.kind].registers if r.writable]
    if regs:
        out.append("restore_setpoints")
    if any(r.name in SAFETY_REGISTERS for r in regs):
        out.append("enable_alarms")
    return out


def make_action(kind: str, target: str, reason: str) -> Action:
    if kind == "block_conduit":
        return BlockConduit(reason=reason, conduit=target)
    return ACTIONS[kind](reason=reason, device=target)  # type: ignore[call-arg]


@dataclass
class Request:
    """A trainee's action, pending until the engine thread applies it at the next grid point."""

    id: int
    kind: str
    target: str
    by: str
    wall: float
    status: str = "pending"  # pending | applied | failed
    t: float | None = None
    detail: str = ""


@dataclass
class Sample:
    t: float
    values: dict[str, float]


@dataclass
class Live:
    """What the pages show, copied out under the lock so a page never touches the engine."""

    t: float = 0.0
    quarantined: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    compromised: set[str] = field(default_factory=set)
    running_steps: dict[str, float] = field(default_factory=dict)
    contained_at: float | None = None


class Exercise:
    """One live exercise: a scenario, its engine, the trainees' actions and the event log.

    `script` (time -> actions) replays a recorded exercise: the same seed and the same
    actions at the same simulated times give the same log, alert for alert.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        code: str,
        *,
        speed: float = 60.0,
        team: bool = False,
        source: str = "",
        script: list[dict[str, Any]] | None = None,
        grid: float | None = None,
        detect_every: float | None = None,
    ) -> None:
        # a trainee's exercise has no playbooks: the trainee is the response
        self.spec = spec.model_copy(update={"responses": []})
        self.code = code
        self.team = team
        self.source = source
        self.facility = Facility.build(facility_of(self.spec))
        # a coarse grid at high speed keeps the engine's cost per wall second down; the grid
        # is fixed for the exercise's life, so a replay with it is exact
        self.q = grid or (self.spec.export_interval if speed >= 30 else quantum(self.spec))
        # detectors see batches of up to five wall seconds (fewer, larger calls cost less),
        # never more than the scenario's batch interval; fixed for the replay, as the grid
        self.detect_every = detect_every or detection_cadence(self.spec, speed)
        self.lock = threading.RLock()
        self.state = "ready"  # ready | warming | running | paused | finished | failed
        self.error = ""
        self.speed = float(speed)
        self.log: list[dict[str, Any]] = []
        self.feed: deque[dict[str, Any]] = deque(maxlen=FEED_CAP)
        self.history: deque[Sample] = deque(maxlen=HISTORY_CAP)
        self.requests: list[Request] = []
        self.hints: list[dict[str, Any]] = []
        self.live = Live()
        self.warm_progress = 0.0
        self.baseline: dict[str, Any] | None = None
        self.injected: list[StepSpec] = []
        self._script = sorted(script or [], key=lambda e: e["t"])
        self._queue: list[Request] = []
        self._inject_queue: list[StepSpec] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._batches: list[TelemetryBatch] = []
        self._steps_seen: set[tuple[str, str]] = set()
        self._merge: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._alert_seq = 0
        self._wall0, self._sim0 = 0.0, 0.0
        self.engine = Engine(self.spec, self.facility)
        plant = self.engine.plant
        self.bands = {
            f"room.{r}.temp_c": (float(lo), float(hi))
            for r, lo, hi in zip(plant.rooms, plant.hvac.band_lo, plant.hvac.band_hi, strict=True)
        }
        self.bands.update(
            {
                f"tank.{n}.level_m": (float(lo), float(hi))
                for n, lo, hi in zip(
                    plant.tank_names, plant.tanks.safe_lo, plant.tanks.safe_hi, strict=True
                )
            }
        )
        self.charted = [
            n
            for n in self.engine.signal_names()
            if n.endswith((".temp_c", ".level_m", ".open", ".alarm"))
            and not n.startswith("outdoor.")
        ]
        self.site = site_of(self.facility, self.engine.net.policy)
        dspecs = detector_specs(self.spec)
        self.detection = Detection(
            dspecs, [build(d.name, d.params) for d in dspecs], background=False
        )

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> None:
        """Warm up (attack-free, as fast as it goes), fit the detectors, then run live."""
        with self.lock:
            if self._thread is not None:
                return
            self.state = "warming"
            self._thread = threading.Thread(
                target=self._main, name=f"exercise-{self.code}", daemon=True
            )
        self._thread.start()

    def pause(self) -> None:
        with self.lock:
            if self.state == "running":
                self.state = "paused"

    def resume(self) -> None:
        with self.lock:
            if self.state == "paused":
                self._anchor()
                self.state = "running"

    def set_speed(self, speed: float) -> None:
        if not 1 <= speed <= 600:
            raise ValueError(f"speed {speed:g} is outside 1..600")
        with self.lock:
            self._anchor()
            self.speed = float(speed)

    def stop(self) -> None:
        """End the exercise; the after-action review is computed from what happened."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        with self.lock:
            if self.state not in ("finished", "failed"):
                self._finish()

    def request(self, kind: str, target: str, by: str) -> Request:
        """Queue a response action; refused at once when it makes no sense here."""
        if kind == "block_conduit":
            if target not in {c.name for c in self.engine.net.policy.conduits}:
                raise SimulationError(f"no conduit {target!r} in this design")
        elif kind not in actions_for(self.facility, target):
            raise SimulationError(f"{ACTION_LABELS.get(kind, kind)!r} does not apply to {target!r}")
        with self.lock:
            if self.state not in ("running", "paused", "warming"):
                raise SimulationError(f"the exercise is {self.state}")
            req = Request(len(self.requests) + 1, kind, target, by, time.time())
            self.requests.append(req)
            self._queue.append(req)
            return req

    def hint(self, text: str, by: str) -> None:
        with self.lock:
            entry = {"t": self.live.t, "kind": "hint", "text": text, "by": by}
            self.hints.append(entry)
            self.log.append(entry)

    def inject(self, technique: str, target: str | None, by: str) -> str:
        """A trainer's extra attack step, started at the next grid point."""
        from attacks import TECHNIQUES

        if self.engine.campaign is None:
            raise SimulationError("this scenario has no attacker to inject a step for")
        tech = TECHNIQUES.get(technique)
        if tech is None:
            raise SimulationError(f"no technique {technique!r}")
        if tech.needs_target and target not in self.facility.by_name:
            raise SimulationError(f"{technique} needs a target device")
        with self.lock:
            n = len(self.injected) + len(self._inject_queue) + 1
            step = StepSpec.model_validate(
                {"id": f"inject-{n}", "technique": technique, "target": target or None}
            )
            self._inject_queue.append(step)
        return step.id

    def view(self, *, trainer: bool = False) -> dict[str, Any]:
        """Everything a page shows, as plain data (the compromised flags for trainers only)."""
        with self.lock:
            live = self.live
            alerting = {x["device"] for x in self.feed if x["t_last"] >= live.t - ALERTING_FOR}
            out: dict[str, Any] = {
                "code": self.code,
                "scenario": self.spec.name,
                "design": self.spec.design,
                "story": self.spec.story,
                "team": self.team,
                "state": self.state,
                "error": self.error,
                "speed": self.speed,
                "t": live.t,
                "warmup": self.spec.warmup,
                "duration": self.spec.duration,
                "warm_progress": self.warm_progress,
                "feed": sorted(
                    (dict(x) for x in list(self.feed)[:50]), key=lambda a: (-a["t_last"], -a["id"])
                ),
                "alerting": sorted(alerting),
                "quarantined": sorted(live.quarantined),
                "blocked": sorted(live.blocked),
                "requests": [vars(r).copy() for r in self.requests[-30:]],
                "hints": [dict(h) for h in self.hints],
                "history": [(s.t, dict(s.values)) for s in self.history],
                "bands": dict(self.bands),
                "contained_at": live.contained_at,
            }
            if trainer:
                out["compromised"] = sorted(live.compromised)
                out["running_steps"] = dict(live.running_steps)
                out["steps"] = [
                    dict(e) for e in self.log if e["kind"] in ("step", "step_skipped", "inject")
                ]
            return out

    def info(self) -> dict[str, Any]:
        """What never changes during the exercise: names, the map, the actions per device."""
        spec = self.spec
        return {
            "code": self.code, "team": self.team, "scenario": spec.name, "design": spec.design,
            "seed": spec.seed, "warmup": spec.warmup, "duration": spec.duration, "grid": self.q,
            "detect_every": self.detect_every,
            "source": self.source, "site": self.site,
            "device_ips": {d.name: d.ip for d in self.facility.devices},
            "actions": {d.name: actions_for(self.facility, d.name) for d in self.facility.devices},
        }  # fmt: skip

    def get_state(self) -> str:
        return self.state

    def request_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [vars(r).copy() for r in self.requests]

    def log_copy(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.log]

    # -- the engine thread -------------------------------------------------------------------

    def _anchor(self) -> None:
        self._wall0 = time.monotonic()
        self._sim0 = self.engine.now

    def _main(self) -> None:
        try:
            with self.engine.net:
                self.warm_up()
                with self.lock:
                    self._anchor()
                    if self.state == "warming":
                        self.state = "running"
                while not self._stop.is_set():
                    self._tick()
                    if self.engine.now >= self.spec.duration:
                        break
                    self._stop.wait(0.05)
        except Exception as exc:  # the exercise fails; the server and the other exercises go on
            with self.lock:
                self.state = "failed"
                self.error = f"{type(exc).__name__}: {exc}"
            return
        with self.lock:
            self._finish()

    def warm_up(self) -> None:
        spec, engine = self.spec, self.engine
        baseline: list[TelemetryBatch] = []
        t = 0.0
        while t < spec.warmup and not self._stop.is_set():
            t = min(t + spec.export_interval, spec.warmup)
            baseline.append(engine.run_until(t))
            self.warm_progress = t / spec.warmup
        site = SiteView(self.facility, engine.net.policy, None)
        self.detection.fit(TelemetryBatch.concat(baseline), site)
        self.detection.ready(wait=True)
        with self.lock:
            self.live.t = engine.now

    def _tick(self) -> None:
        with self.lock:
            if self.state != "running":
                return
            target = self._sim0 + (time.monotonic() - self._wall0) * self.speed
        done = 0
        while self.engine.now + self.q <= min(target, self.spec.duration) + 1e-9:
            self.advance()
            done += 1
            if done >= 200:  # cannot keep pace: carry on from here rather than burst
                with self.lock:
                    self._anchor()
                break

    def run_to(self, t: float) -> None:
        """Headless: warm up and advance to `t` (tests and replays)."""
        with self.engine.net:
            self.warm_up()
            with self.lock:
                self.state = "running"
            while self.engine.now + self.q <= min(t, self.spec.duration) + 1e-9:
                self.advance()
            with self.lock:
                self._finish()

    def advance(self) -> None:
        """One grid step: apply what is pending, run the engine, stream to the detectors."""
        engine = self.engine
        now = engine.now
        with self.lock:
            queue, self._queue = self._queue, []
            injects, self._inject_queue = self._inject_queue, []
        while self._script and self._script[0]["t"] <= now + 1e-9:
            e = self._script.pop(0)
            if e["kind"] == "action":
                queue.append(Request(0, e["action"], e["target"], e.get("by", ""), 0.0))
            else:
                injects.append(StepSpec.model_validate(e["step"]))
        for req in queue:
            self._apply(req, now)
        for step in injects:
            self._inject(step, now)
        batch = engine.run_until(now + self.q)
        self._batches.append(batch)
        t = engine.now
        alerts: list[Alert] = []
        if self._on_export(t):
            self.detection.observe(TelemetryBatch.concat(self._batches))
            self._batches = []
            alerts = self.detection.ready(wait=True)
        samples = self._samples(batch)
        with self.lock:
            self._record(t, alerts, samples)

    def _on_export(self, t: float) -> bool:
        k = t / self.detect_every
        return abs(k - round(k)) < 1e-9 or t >= self.spec.duration

    def _apply(self, req: Request, now: float) -> None:
        action = make_action(req.kind, req.target, f"trainee {req.by}".strip())
        try:
            detail, status = self.engine.act(action), "applied"
        except TwinError as exc:
            detail, status = str(exc), "failed"
        with self.lock:
            req.status, req.t, req.detail = status, now, detail
            self.log.append(
                {"t": now, "kind": "action", "action": req.kind, "target": req.target,
                 "by": req.by, "status": status, "detail": detail}
            )  # fmt: skip

    def _inject(self, step: StepSpec, now: float) -> None:
        campaign = self.engine.campaign
        if campaign is None:
            return
        # at = now: the step starts at once; a replay puts it at the same time
        step = step.model_copy(update={"at": now})
        campaign.add(step)
        with self.lock:
            self.injected.append(step)
            self.log.append(
                {"t": now, "kind": "inject", "step": step.model_dump(mode="json", by_alias=True)}
            )

    def _samples(self, batch: TelemetryBatch) -> list[Sample]:
        p = batch.process
        if p.empty:
            return []
        p = p[p["signal"].isin(self.charted)]
        out = []
        for t, g in p.groupby("t", sort=True):
            out.append(
                Sample(float(t), dict(zip(g["signal"], g["value"].astype(float), strict=True)))
            )
        return out

    def _record(self, t: float, alerts: list[Alert], samples: list[Sample]) -> None:
        engine, live = self.engine, self.live
        live.t = t
        self.history.extend(samples)
        for a in alerts:
            self.alert(a)
        by_ip = self.facility.by_ip
        policy = engine.net.policy
        live.quarantined = {by_ip[ip].name if ip in by_ip else ip for ip in policy.quarantined}
        live.blocked = set(policy.blocked)
        campaign = engine.campaign
        if campaign is not None:
            attacker = campaign.attacker
            live.compromised = (set(attacker.positions) | set(attacker.controlled)) & set(
                self.facility.by_name
            )
            live.running_steps = dict(campaign.running)
            for sid, t0 in campaign.running.items():
                if (sid, "start") not in self._steps_seen:
                    self._steps_seen.add((sid, "start"))
                    self.log.append({"t": t0, "kind": "step_start", "step_id": sid})
            self._log_steps(campaign.finished)
            for s in campaign.skipped:
                if (s["step_id"], "skip") not in self._steps_seen:
                    self._steps_seen.add((s["step_id"], "skip"))
                    self.log.append({"kind": "step_skipped", **_plain(s)})
        if engine.contained_at is not None and live.contained_at is None:
            live.contained_at = engine.contained_at
            self.log.append({"t": engine.contained_at, "kind": "contained"})

    def _log_steps(self, rows: list[dict[str, Any]]) -> None:
        """Log each step once it ended, with what it caused (the evidence scoring joins)."""
        engine = self.engine
        for row in rows:
            sid = row["step_id"]
            if (sid, "end") in self._steps_seen:
                continue
            self._steps_seen.add((sid, "end"))
            caused = {
                "flow_ids": [int(i) for i in engine.meter.caused.get(sid, [])],
                "event_ids": [int(i) for i in engine.events.caused.get(sid, [])],
            }
            self.log.append({"t": row["t_end"], "kind": "step", **_plain(row), **caused})

    def alert(self, a: Alert) -> None:
        """Record one alert: in the log, and in the feed merged with its repeats."""
        self._alert_seq += 1
        self.log.append(
            {"t": a.t, "kind": "alert", "detector": a.detector, "severity": a.severity,
             "device": a.device, "src_ip": a.src_ip, "dst_ip": a.dst_ip,
             "technique": a.technique, "reason": a.reason, "evidence": list(a.evidence)}
        )  # fmt: skip
        key = (a.detector, a.device, a.technique)
        line = self._merge.get(key)
        if line is not None and a.t - line["t_last"] <= MERGE_WINDOW:
            line["count"] += 1
            line["t_last"] = a.t
            if _rank(a.severity) > _rank(line["severity"]):
                line["severity"] = a.severity
            return
        line = {
            "id": self._alert_seq, "t": a.t, "t_last": a.t, "detector": a.detector,
            "severity": a.severity, "device": a.device, "technique": a.technique,
            "reason": a.reason[:160], "count": 1,
        }  # fmt: skip
        self._merge[key] = line
        self.feed.appendleft(line)
        if len(self._merge) > FEED_CAP:  # forget keys that fell off the feed
            shown = {(x["detector"], x["device"], x["technique"]) for x in self.feed}
            self._merge = {k: v for k, v in self._merge.items() if k in shown}

    def _finish(self) -> None:
        if self.state in ("finished", "failed"):
            return
        self.state = "finished"
        if self.engine.campaign is not None:  # steps the end cut short are scored too
            self._log_steps(self.engine.campaign.rows)
        for req in self._queue:
            req.status, req.detail = "failed", "the exercise ended first"
        self._queue = []
        self.log.append({"t": self.engine.now, "kind": "end", "harm": self.engine.harm.summary()})

    # -- after the exercise ------------------------------------------------------------------

    def no_response_harm(self) -> dict[str, Any]:
        """Harm in the same run (same seed, same injects) with no actions: the baseline."""
        if self.baseline is None:
            spec = self.spec
            if self.injected and spec.campaign is not None:
                campaign = spec.campaign.model_copy(
                    update={"steps": [*spec.campaign.steps, *self.injected]}
                )
                spec = spec.model_copy(update={"campaign": campaign})
            self.baseline = harm_without_responses(
                spec.model_copy(update={"duration": self.engine.now})
            )
        return self.baseline

    def script(self) -> list[dict[str, Any]]:
        """The trainees' and trainer's inputs as a replay script."""
        with self.lock:
            return [
                {"t": e["t"], "kind": "action", "action": e["action"], "target": e["target"],
                 "by": e["by"]}
                if e["kind"] == "action"
                else {"t": e["t"], "kind": "inject", "step": e["step"]}
                for e in self.log
                if e["kind"] in ("action", "inject")
            ]  # fmt: skip


def _rank(severity: str) -> int:
    return ("low", "medium", "high", "critical").index(severity) if severity in (
        "low", "medium", "high", "critical"
    ) else 0  # fmt: skip


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready copy of a truth row (numpy scalars to Python)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def frame(log: list[dict[str, Any]], kind: str) -> pd.DataFrame:
    return pd.DataFrame([e for e in log if e.get("kind") == kind])
