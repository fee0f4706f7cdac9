"""The detector API: plain parameters, fit on attack-free telemetry, observe streamed batches."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from twin import evidence
from twin.devices import KINDS, Device
from twin.facility import Facility
from twin.network.policy import Policy
from twin.telemetry import Alert, Captures, TelemetryBatch


@dataclass(frozen=True)
class SiteView:
    """What a real NDR is configured with: the asset inventory, zones and the design.

    Never the attack plan or the truth table.
    """

    facility: Facility
    policy: Policy
    captures: Captures | None = None  # the run's packet captures (emulated backend only)

    def device(self, ip: str) -> Device | None:
        return self.facility.by_ip.get(ip)

    def zone(self, ip: str) -> str | None:
        return self.facility.zone_of_ip(ip)

    def role(self, ip: str) -> str:
        d = self.facility.by_ip.get(ip)
        return KINDS[d.kind].role if d is not None else "unknown"

    def name(self, ip: str) -> str:
        d = self.facility.by_ip.get(ip)
        return d.name if d is not None else ip

    def zones_of(self, ips: pd.Series) -> pd.Series:
        """Zone per address, computed once per distinct address."""
        uniq = ips.unique()
        lookup = {ip: self.zone(ip) or "" for ip in uniq}
        return ips.map(lookup)


class Detector:
    """Base of all detectors. Subclasses take keyword parameters only and store them as-is.

    Learned state lives in attributes ending in '_' and is set only in `fit`/`observe`.
    A detector that scores flows sets `last_scores_` in `observe`: a Series of anomaly
    scores (higher is more anomalous) indexed by the batch's flow_id, for flow-level PR-AUC.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    # the shipped scenario on which the conformance suite expects it to beat chance
    reference_scenario: ClassVar[str] = "flagship"
    needs_captures: ClassVar[bool] = False  # True: works only on an emulated run's packet captures

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def clone(self) -> Self:
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        raise NotImplementedError

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        raise NotImplementedError

    def finish(self) -> list[Alert]:
        """Alerts still held when the stream ends (a detector that works on whole captures
        reports here); their times are when the evidence was seen, as in `observe`."""
        return []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def first_seen(flows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per key group: when it was first seen (record export) and how many flows."""
    # plain aggregations: named ones cost several times more on every batch
    out = flows.groupby(keys, sort=True, observed=True)["t_export"].agg(["min", "size"])
    return out.rename(columns={"min": "t", "size": "flows"}).reset_index()


def cite(flows: pd.DataFrame, **match: Any) -> tuple[str, ...]:
    """Evidence tokens of the flows whose columns equal `match` (a collection: any of it).

    Called only for the few groups that raise an alert, so it may scan the batch.
    """
    mask = np.ones(len(flows), dtype=bool)
    for column, want in match.items():
        col = flows[column]
        if isinstance(want, (list, tuple, set, frozenset, pd.Series, np.ndarray)):
            mask &= col.isin(list(want)).to_numpy()
        else:
            mask &= (col == want).to_numpy()
    return evidence.flows(flows["flow_id"].to_numpy()[mask])


CALIBRATION_FRACTION = 1 / 3  # the warm-up's last third: fitted on the rest, alarms counted
CALIBRATION_MARGIN = 1.05
CALIBRATION_SLICE_S = 300.0


def window(batch: TelemetryBatch, lo: float, hi: float) -> TelemetryBatch:
    """The part of a batch in [lo, hi): flows by export time, process and events by time."""
    f, p, e = batch.flows, batch.process, batch.events
    return TelemetryBatch(
        lo, hi,
        f[(f["t_export"] >= lo) & (f["t_export"] < hi)],
        p[(p["t"] >= lo) & (p["t"] < hi)],
        e[(e["t"] >= lo) & (e["t"] < hi)],
    )  # fmt: skip


def calibrate(det: Detector, baseline: TelemetryBatch, site: SiteView) -> float:
    """A learned detector's threshold raised until it keeps its false-alarm budget.

    A probe with the same parameters learns the warm-up's first two thirds and watches the
    last third as a stream; its alerts there are false alarms by construction (the warm-up
    is attack-free). With `alarms_per_day` B and a calibration period of d days, the
    threshold is raised (never lowered) just above the (B d + 1)-th strongest alert, as a
    ratio of the probe's own threshold, so that at most B d of them would remain.
    """
    budget = getattr(det, "alarms_per_day", None)
    threshold = float(vars(det)["threshold_"])
    t0, t1 = float(baseline.t_start), float(baseline.t_end)
    cut = t1 - CALIBRATION_FRACTION * (t1 - t0)
    if budget is None or t1 <= t0:
        return threshold
    probe = type(det)(**{**det.get_params(), "alarms_per_day": None})
    probe.fit(window(baseline, t0, cut), site)
    ratios = []
    for lo in np.arange(cut, t1, CALIBRATION_SLICE_S):
        for a in probe.observe(window(baseline, float(lo), float(lo) + CALIBRATION_SLICE_S)):
            ratios.append(a.score / float(vars(probe)["threshold_"]))
    allowed = int(budget * (t1 - cut) / 86400.0)
    ratios = sorted((r for r in ratios if np.isfinite(r)), reverse=True)
    vars(det)["calibration_"] = {
        "alarms": len(ratios),
        "allowed": allowed,
        "days": (t1 - cut) / 86400.0,
    }
    if len(ratios) <= allowed:
        return threshold
    return threshold * max(1.0, ratios[allowed] * CALIBRATION_MARGIN)


def summarise(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
