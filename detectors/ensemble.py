"""An ensemble of detectors scored like one: a union, or k of n members agreeing on a device."""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from detectors.base import Detector, SiteView
from twin.telemetry import Alert, TelemetryBatch

# the default ensemble: one detector per kind of evidence (policy, behaviour, physics,
# identity, availability, control context), each quiet on attack-free days. On the library
# (16 scenarios, seeds 1-3, bench/detection.py) device_health cut the p95 time to detect from
# 1,392 s to 640 s and control_context to 120 s, neither with a false alarm; allowed_path
# catches an exfiltration over a permitted egress (56 s after the leak begins), which the
# policy members accept by design, with no false alarm on the library either.
DEFAULT_MEMBERS = (
    "conduit_policy",
    "allowlist",
    "physics",
    "identity",
    "device_health",
    "control_context",
    "allowed_path",
)


def _spec(member: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(member, str):
        return member, {}
    if isinstance(member, dict) and isinstance(member.get("name"), str):
        return member["name"], dict(member.get("params") or {})
    raise ValueError(f"an ensemble member is a detector name or {{name, params}}, got {member!r}")


class Ensemble(Detector):
    """Runs its members on the same batches and speaks for them.

    With `min_votes` 1 it passes every member's alert on (a union). With k > 1 it raises one
    alert for a device when k distinct members have alerted on it within `window_s`: fewer
    false alarms for less recall. Members are built from plain names and parameters.
    """

    name = "ensemble"
    summary = "combines detectors: a union, or k of n members agreeing on a device"

    def __init__(
        self,
        members: list[str | dict[str, Any]] | tuple[str, ...] = DEFAULT_MEMBERS,
        min_votes: int = 1,
        window_s: float = 300.0,
    ) -> None:
        from detectors import REGISTRY

        specs = [_spec(m) for m in members]
        if not specs:
            raise ValueError("an ensemble needs at least one member")
        for name, _ in specs:
            if name == self.name or name not in REGISTRY:
                raise ValueError(
                    f"unknown ensemble member {name!r}; known: {', '.join(sorted(REGISTRY))}"
                )
        if not 1 <= min_votes <= len(specs):
            raise ValueError(f"min_votes must be between 1 and {len(specs)}, got {min_votes}")
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.members = list(members)
        self.min_votes = min_votes
        self.window_s = window_s
        self._built = [REGISTRY[n](**p) for n, p in specs]

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.members_ = [m.clone().fit(baseline, site) for m in self._built]
        self.recent_: dict[str, dict[str, float]] = {}  # device -> member -> last alert time
        self.raised_: dict[str, float] = {}
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        return self._combine([(m.name, a) for m in self.members_ for a in m.observe(batch)])

    def finish(self) -> list[Alert]:
        return self._combine([(m.name, a) for m in self.members_ for a in m.finish()])

    def _combine(self, collected: list[tuple[str, Alert]]) -> list[Alert]:
        if self.min_votes == 1:
            return [
                dataclasses.replace(a, detector=self.name, reason=f"[{who}] {a.reason}")
                for who, a in sorted(collected, key=lambda x: x[1].t)
            ]
        out = []
        for who, a in sorted(collected, key=lambda x: x[1].t):
            votes = self.recent_.setdefault(a.device, {})
            votes[who] = a.t
            live = {m for m, t in votes.items() if a.t - t <= self.window_s}
            last = self.raised_.get(a.device)
            if len(live) >= self.min_votes and (last is None or a.t - last > self.window_s):
                self.raised_[a.device] = a.t
                out.append(dataclasses.replace(
                    a, detector=self.name, reason=f"{len(live)} detectors agree ({', '.join(sorted(live))}): {a.reason}"
                ))  # fmt: skip
        return out
