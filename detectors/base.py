"""The detector API: plain parameters, fit on attack-free telemetry, observe streamed batches."""

from __future__ import annotations

import inspect
import weakref
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
    """One row per key group: when it was first seen (record export) and how many flows.

    Rows come sorted by the keys, as a sorted groupby gives them; the groups are found on
    integer codes (one factorisation per column), several times cheaper than grouping on
    string columns on every batch.
    """
    if flows.empty:
        out = flows.groupby(keys, sort=True, observed=True)["t_export"].agg(["min", "size"])
        return out.rename(columns={"min": "t", "size": "flows"}).reset_index()
    code, valid = _group_codes(flows, keys)
    t = flows["t_export"].to_numpy(dtype=float)
    if not valid.all():  # a missing key value is no group, as in a groupby
        code, t, rows = code[valid], t[valid], np.flatnonzero(valid)
    else:
        rows = None
    uniq, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    earliest = np.full(len(uniq), np.inf)
    np.minimum.at(earliest, inverse, t)
    take = first if rows is None else rows[first]
    out = pd.DataFrame({k: flows[k].take(take).reset_index(drop=True) for k in keys})
    out["t"] = earliest
    out["flows"] = np.bincount(inverse, minlength=len(uniq))
    return out


def _group_codes(flows: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 per row, ordered as the key tuples sort, and whether every key is present."""
    code = np.zeros(len(flows), dtype=np.int64)
    valid = np.ones(len(flows), dtype=bool)
    for k in keys:
        c, levels = pd.factorize(flows[k], sort=True)
        valid &= c >= 0
        if len(levels) and int(code.max(initial=0)) >= (1 << 62) // (len(levels) + 1):
            code = np.unique(code, return_inverse=True)[1].astype(np.int64)  # keeps the order
        code = code * (len(levels) + 1) + c + 1
    return code, valid


@dataclass(frozen=True)
class FlowCodes:
    """A batch's flows as integers: addresses as codes into `ips` (sorted), ports, export times.

    Members compare int64 keys (np.isin, np.unique) where they would hash strings per row.
    """

    ips: np.ndarray  # distinct source and destination addresses, sorted (str objects)
    src: np.ndarray  # int64 per flow: its source's index in ips
    dst: np.ndarray
    port: np.ndarray  # destination port, int64
    t: np.ndarray  # export time

    def path(self) -> np.ndarray:
        """(src, dst, dst_port) as one int64 per flow, ordered as the tuples sort."""
        return (self.src * len(self.ips) + self.dst) * 65536 + self.port


# the ensemble hands every member the same batch: its codes are computed once and kept for
# the frame they describe (a weak reference: a new frame, even at the same address, misses)
_last_codes: list[tuple[weakref.ref[pd.DataFrame], FlowCodes]] = []


def flow_codes(flows: pd.DataFrame) -> FlowCodes:
    """The flows' codes, shared by every member that asks about the same frame."""
    if _last_codes:
        ref, codes = _last_codes[0]
        if ref() is flows:
            return codes
    s_code, s_ips = pd.factorize(flows["src_ip"], sort=True)
    d_code, d_ips = pd.factorize(flows["dst_ip"], sort=True)
    s_ips, d_ips = np.asarray(s_ips, dtype=object), np.asarray(d_ips, dtype=object)
    ips = np.unique(np.concatenate([s_ips, d_ips])) if len(flows) else np.array([], dtype=object)
    codes = FlowCodes(
        ips,
        np.searchsorted(ips, s_ips)[s_code].astype(np.int64)
        if len(flows)
        else np.zeros(0, np.int64),
        np.searchsorted(ips, d_ips)[d_code].astype(np.int64)
        if len(flows)
        else np.zeros(0, np.int64),
        flows["dst_port"].to_numpy(dtype=np.int64),
        flows["t_export"].to_numpy(dtype=float),
    )
    _last_codes[:] = [(weakref.ref(flows), codes)]
    return codes


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


def check_budget(alarms_per_day: float | None) -> float | None:
    """A learned detector's false-alarm budget: >= 0 alarms a day, or None (no calibration)."""
    if alarms_per_day is not None and not alarms_per_day >= 0:
        raise ValueError(
            f"alarms_per_day must be >= 0 (or None: no calibration), got {alarms_per_day}"
        )
    return alarms_per_day


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
