"""Damped incremental statistics per source, channel and socket, in the spirit of Kitsune."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, calibrate, check_budget
from detectors.flow_stats import robust_scales, zscore
from detectors.isolation import burst_alerts
from twin.telemetry import Alert, TelemetryBatch

KEYS = {"source": ["src_ip"], "channel": ["src_ip", "dst_ip"],
        "socket": ["src_ip", "dst_ip", "src_port", "dst_port"]}  # fmt: skip
SUMS = 7  # weight, size and size^2 both ways, IAT weight and IAT, per window
STATS = ("rate", "size", "size s.d.", "reply size", "reply s.d.", "interval")
LN2 = np.log(2.0)
CHUNK = 16384
# the narrowest z-score scale per statistic: log1p bytes and rates 0.05; log1p gaps 1.0, as
# records come once per export interval and a routine session may follow hours of silence
FLOORS = (0.05, 0.05, 0.05, 0.05, 0.05, 1.0)


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


class DampedStats:
    """Exponentially damped sums per key for several decay rates, updated batch by batch.

    A record at time t adds its values to each sum after decaying the sum by 2^(-λ·Δt). The
    update runs for all keys and records at once in the log domain: records sorted by key and
    time, each key's remembered sums as a first pseudo-record, then one cumulative
    log-add-exp in which every key is offset far above the keys before it, so keys never mix
    and nothing overflows however long the batch.
    """

    def __init__(self, lambdas: tuple[float, ...]) -> None:
        self.lam = np.repeat(np.asarray(lambdas) * LN2, SUMS)  # per sum column
        # a window cannot tell a gap longer than its memory from any other long gap
        self.horizon = 1.0 / np.asarray(lambdas)
        self.keys = pd.Index([], dtype=object)
        self.t = np.zeros(0)
        self.logs = np.zeros((0, len(self.lam)))

    def update(self, key: pd.Index, t: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """Log sums after each record (in the records' order); remembers each key's last."""
        codes, uniq = pd.factorize(key)
        prior = self.keys.get_indexer(uniq)
        has = prior >= 0
        n = len(t)
        code = np.concatenate([codes, np.flatnonzero(has)])  # records, then pseudo-records
        tt = np.concatenate([t, self.t[prior[has]]])
        pseudo = np.arange(len(code)) >= n
        order = np.lexsort((tt, ~pseudo, code))  # per key: its memory, then records by time
        code, tt, pseudo = code[order], tt[order], pseudo[order]
        first = np.r_[True, code[1:] != code[:-1]]
        gap = np.where(first, 0.0, np.diff(tt, prepend=tt[0])).clip(0)
        seen = ~first
        a, b = np.r_[x1, np.zeros(len(tt) - n)][order], np.r_[x2, np.zeros(len(tt) - n)][order]
        one = np.ones(len(tt))
        base = _log(np.column_stack([one, a, a * a, b, b * b, seen]))
        vals = np.hstack([
            np.column_stack([base, _log(np.log1p(np.minimum(gap, h)) * seen)])
            for h in self.horizon
        ])  # fmt: skip
        vals[pseudo] = self.logs[prior[has]][order[pseudo] - n]
        span = float(np.ptp(tt)) if len(tt) else 0.0
        offset = np.cumsum(first) * (self.lam.max() * span + 60.0)
        u = tt[:, None] * self.lam + offset[:, None]
        logs = np.logaddexp.accumulate(vals + u, axis=0) - u
        logs[logs < -50.0] = -np.inf  # other keys' leftovers (and weights long decayed): zero
        last = np.r_[code[1:] != code[:-1], True]
        keep = ~self.keys.isin(uniq)
        self.keys = self.keys[keep].append(uniq[code[last]])
        self.t = np.r_[self.t[keep], tt[last]]
        self.logs = np.vstack([self.logs[keep], logs[last]])
        out = np.empty_like(logs[:n])
        out[order[~pseudo]] = logs[~pseudo]
        return out

    def forget(self, now: float) -> None:
        """Drop keys whose weight has decayed below 1e-3 even in the slowest window."""
        slowest = int(np.argmin(self.lam))
        w = self.logs[:, slowest] - self.lam[slowest] * (now - self.t)
        live = w > np.log(1e-3)
        self.keys, self.t, self.logs = self.keys[live], self.t[live], self.logs[live]


def damped_features(logs: np.ndarray) -> np.ndarray:
    """Per window: log rate, size mean and s.d. both ways, mean log inter-arrival."""
    out = []
    for w in range(logs.shape[1] // SUMS):
        lw, l1, l2, l3, l4, li, lt = (logs[:, w * SUMS + j] for j in range(SUMS))
        m1, m2 = np.exp(l1 - lw), np.exp(l3 - lw)
        s1 = np.sqrt(np.maximum(np.exp(l2 - lw) - m1 * m1, 0))
        s2 = np.sqrt(np.maximum(np.exp(l4 - lw) - m2 * m2, 0))
        recent = li > -20  # gaps seen recently enough to say something
        gap = np.full(len(li), np.nan)
        gap[recent] = np.exp(lt[recent] - li[recent])
        out += [np.log1p(np.exp(lw)), m1, s1, m2, s2, gap]
    return np.column_stack(out)


class Kitsune(Detector):
    """Damped statistics of flow records per source, channel and socket, scored in z units.

    Like Kitsune's AfterImage, but over flow records rather than packets: for every source,
    (source, destination) and socket, and each decay rate in `lambdas` (per second; slower
    than Kitsune's, as records come once per export interval), it keeps exponentially damped
    sums of record counts, sizes both ways (log1p bytes) and gaps between records, updated in
    time order. Each flow gets its keys' rate, size mean and s.d. both ways and mean gap,
    after its own update, as robust z-scores against the warm-up (after `burn_in` s). Instead
    of Kitsune's autoencoders, an ensemble of z-scores: one member per key kind and statistic,
    the RMS of its z over the time windows. A flow's score is its worst member; the alert
    threshold is `margin` times the warm-up's `quantile` score.
    """

    name = "kitsune"
    summary = "damped incremental statistics per source, channel and socket (Kitsune-style)"

    def __init__(
        self,
        lambdas: tuple[float, ...] | list[float] = (0.1, 0.01, 0.001),
        quantile: float = 1.0,
        margin: float = 2.5,
        burn_in: float = 1800.0,
        alarms_per_day: float | None = 1.0,
    ) -> None:
        if not lambdas or any(not 0 < lam <= 10 for lam in lambdas):
            raise ValueError(f"lambdas must be decay rates in (0, 10] per second, got {lambdas}")
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        if margin < 1:
            raise ValueError(f"margin must be at least 1, got {margin}")
        if burn_in < 0:
            raise ValueError(f"burn_in must not be negative, got {burn_in}")
        self.lambdas = lambdas
        self.quantile = quantile
        self.margin = margin
        self.burn_in = burn_in
        self.alarms_per_day = check_budget(alarms_per_day)

    def _features(self, f: pd.DataFrame) -> np.ndarray:
        """Every flow's damped features, updating the statistics in time-ordered chunks."""
        t = f["t_end"].to_numpy(dtype=float)
        x1, x2 = (np.log1p(f[c].to_numpy(dtype=float).clip(0)) for c in ("bytes", "bytes_rev"))
        cols = [f[c].astype(str).to_numpy(dtype=object) for c in KEYS["socket"]]
        keys = [cols[0]]
        for c in cols[1:]:
            keys.append(keys[-1] + "|" + c)
        width = len(self.lambdas) * len(STATS)
        out = np.empty((len(f), len(KEYS) * width))
        order = np.argsort(t, kind="stable")
        for lo in range(0, len(f), CHUNK):
            rows = order[lo : lo + CHUNK]
            for i, stats in enumerate(self.stats_.values()):
                key = pd.Index(keys[len(KEYS[list(KEYS)[i]]) - 1][rows])
                logs = stats.update(key, t[rows], x1[rows], x2[rows])
                out[rows, i * width : (i + 1) * width] = damped_features(logs)
        for stats in self.stats_.values():
            stats.forget(float(t.max()))
        return out

    def _score(self, feats: np.ndarray) -> np.ndarray:
        med, lo, hi = self.scales_
        out = np.empty(len(feats))
        for i in range(0, len(feats), CHUNK):  # in chunks: big temporaries cost page faults
            x = feats[i : i + CHUNK]
            z = zscore(np.where(np.isnan(x), med, x), med, lo, hi)
            z = z.reshape(len(z), len(KEYS), len(self.lambdas), len(STATS))
            out[i : i + CHUNK] = np.sqrt((z**2).mean(axis=2)).max(axis=(1, 2))
        return out

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        f = baseline.flows.sort_values("t_end", kind="stable")
        self.site_ = site
        self.stats_ = {kind: DampedStats(tuple(self.lambdas)) for kind in KEYS}
        width = len(KEYS) * len(self.lambdas) * len(STATS)
        feats = self._features(f) if len(f) else np.zeros((0, width))
        t = f["t_end"].to_numpy(dtype=float)
        settled = t >= (t.min() if len(t) else 0.0) + self.burn_in
        learn = feats[settled] if settled.sum() >= 10 else feats
        med = pd.DataFrame(learn, columns=range(width)).median().fillna(0.0).to_numpy()
        filled = np.where(np.isnan(learn), med, learn)
        floors = np.tile(FLOORS, len(KEYS) * len(self.lambdas))
        self.scales_ = tuple(
            a[0] for a in robust_scales(filled, np.zeros(len(filled), int), 1, floors)
        )
        base = self._score(filled) if len(filled) else np.zeros(1)
        self.threshold_ = self.margin * max(float(np.quantile(base, self.quantile)), 1.0)
        self.last_scores_ = pd.Series(dtype=float)
        self.ongoing_: dict[tuple[str, str], float] = {}
        self.threshold_ = calibrate(self, baseline, site)
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            self.last_scores_ = pd.Series(dtype=float)
            return []
        feats = self._features(f)
        scores = self._score(feats)
        self.last_scores_ = pd.Series(scores, index=f["flow_id"].to_numpy())

        def detail(pos: int) -> str:
            med, lo, hi = self.scales_
            x = np.where(np.isnan(feats[pos]), med, feats[pos])
            z = zscore(x, med, lo, hi).reshape(len(KEYS), len(self.lambdas), len(STATS))
            kind, stat = np.unravel_index(np.argmax((z**2).mean(axis=1)), (len(KEYS), len(STATS)))
            side = "above" if z[kind, :, stat].mean() > 0 else "below"
            return f"{list(KEYS)[kind]} {STATS[stat]} far {side} the warm-up's"

        return burst_alerts(
            self.name, self.site_, f, scores, self.threshold_, self.ongoing_, detail
        )
