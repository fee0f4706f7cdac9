"""Statistical flow anomalies: robust z-scores and an EWMA per device and persistent channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, calibrate, check_budget, summarise
from twin import evidence
from twin.telemetry import Alert, TelemetryBatch

ENVELOPE_Z = 3.0  # the warm-up's most extreme value scores this much, so alerts need more
EPISODE_GAP = 120.0  # one source's flagged flows further apart than this are separate alerts
FLOW_FEATURES = ("bytes", "packets", "bytes_rev", "packets_rev", "modbus_reads", "modbus_writes", "auth_failures")  # fmt: skip
TICK_FEATURES = ("flows", "peers", "bytes", "modbus_writes", "auth_failures")
# which deviation names the technique when several do: the most specific first
TECHNIQUE = {
    "modbus_writes": "T0836", "auth_failures": "T1110", "peers": "T0846", "flows": "T0846",
    "packets": "T0814", "packets_rev": "T0814", "bytes": "T0882", "bytes_rev": "T0882",
    "modbus_reads": "T0802",
}  # fmt: skip


def robust_scales(
    x: np.ndarray, groups: np.ndarray, n: int, floor: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (codes 0..n-1) and feature: the median and the scales below and above it.

    A side's scale is the largest of 1.4826 MAD, the distance from the median to the warm-up's
    extreme on that side over ENVELOPE_Z, and `floor` (one for all features, or per feature):
    whatever the warm-up showed scores at most ENVELOPE_Z. A group without rows is silence:
    median 0, scales `floor`.
    """
    med = np.zeros((n, x.shape[1]))
    lo = np.broadcast_to(np.asarray(floor, dtype=float), med.shape).copy()
    hi = lo.copy()
    if len(x):
        g = pd.DataFrame(x).groupby(groups, sort=True)
        rows = g.size().index.to_numpy()
        m = g.median().to_numpy()
        mad = pd.DataFrame(np.abs(x - m[np.searchsorted(rows, groups)])).groupby(groups).median()
        spread = 1.4826 * mad.to_numpy()
        med[rows] = m
        lo[rows] = np.maximum.reduce([spread, (m - g.min().to_numpy()) / ENVELOPE_Z, lo[rows]])
        hi[rows] = np.maximum.reduce([spread, (g.max().to_numpy() - m) / ENVELOPE_Z, hi[rows]])
    return med, lo, hi


def zscore(x: np.ndarray, med: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    d = x - med
    return np.where(d >= 0, d / hi, d / lo)


def per_tick(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flows grouped per (source, export tick): each flow's group, its source and tick, and the
    group's log1p flows, distinct peers (address, port), bytes, Modbus writes, auth failures."""
    src, srcs = pd.factorize(flows["src_ip"])
    tick, ticks = pd.factorize(flows["t_export"])
    key, keys = pd.factorize(src.astype(np.int64) * len(ticks) + tick)
    dst, dsts = pd.factorize(flows["dst_ip"])
    pair = dst.astype(np.int64) * 65536 + flows["dst_port"].to_numpy()
    peers = np.bincount(np.unique(key * (len(dsts) * 65536) + pair) // (len(dsts) * 65536))
    cols = [np.bincount(key), peers] + [
        np.bincount(key, weights=flows[c].to_numpy(dtype=float))
        for c in ("bytes", "modbus_writes", "auth_failures")
    ]
    x = np.log1p(np.column_stack(cols)) if len(flows) else np.zeros((0, len(TICK_FEATURES)))
    return key, np.asarray(srcs)[keys // len(ticks)], np.asarray(ticks)[keys % len(ticks)], x


def log_features(flows: pd.DataFrame, columns: tuple[str, ...] = FLOW_FEATURES) -> np.ndarray:
    return np.log1p(flows[list(columns)].to_numpy(dtype=float).clip(0))


def episodes(flagged: pd.DataFrame, gap: float = EPISODE_GAP) -> list[pd.DataFrame]:
    """Flagged flows split per source and per burst (gaps over `gap` s): one alert each."""
    f = flagged.sort_values(["src_ip", "t_export"], kind="stable")
    new = (f["src_ip"] != f["src_ip"].shift()) | (f["t_export"].diff() > gap)
    return [g for _, g in f.groupby(new.cumsum().to_numpy(), sort=False)]


def routine_engineering(site: SiteView, flows: pd.DataFrame) -> bool:
    """An engineering workstation's sessions on conduits the design documents, with no
    failed login.

    That is a person's daily work, which a night-time warm-up never shows: learned detectors
    leave it to the rule-based members, which judge where it goes and what it writes. (The
    BMS, an engineering host too, polls all day: its traffic stays theirs to judge.)
    """
    src = str(flows["src_ip"].iloc[0])
    d = site.device(src)
    if d is None or d.kind != "workstation" or int(flows["auth_failures"].sum()) > 0:
        return False
    paths = flows[["dst_ip", "dst_port"]].drop_duplicates().itertuples(index=False)
    return all(site.policy.conduit_for(src, str(d), int(p)) is not None for d, p in paths)


def episode_alerts(
    name: str,
    site: SiteView,
    flows: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    explain: Callable[[pd.DataFrame], tuple[str, str]],
    ongoing: dict[tuple[str, str], float],
) -> list[Alert]:
    """One alert per source and burst of flows scoring over `threshold`, at its first export.

    `explain(burst)` gives (technique, why) for the burst's flows, with their `score` and
    position `pos` in `flows`; severity is high beyond twice the threshold. A burst that
    continues one already raised for its source and technique (`ongoing`: the last flagged
    export of each, updated here) within EPISODE_GAP is the same incident: no new alert.
    An engineering workstation's documented sessions are not alerted (`routine_engineering`).
    """
    hot = scores > threshold
    if not hot.any():
        return []
    out = []
    for g in episodes(flows[hot].assign(score=scores[hot], pos=np.flatnonzero(hot))):
        src, dsts = str(g["src_ip"].iloc[0]), list(dict.fromkeys(g["dst_ip"]))
        if routine_engineering(site, g):
            continue
        d = site.device(src) or (site.device(dsts[0]) if len(dsts) == 1 else None)
        technique, why = explain(g)
        last = ongoing.get((src, technique))
        ongoing[(src, technique)] = float(g["t_export"].max())
        if last is not None and float(g["t_export"].min()) - last <= EPISODE_GAP:
            continue
        score = float(g["score"].max())
        out.append(Alert(
            float(g["t_export"].min()), name, "high" if score > 2 * threshold else "medium",
            d.name if d else src, src, dsts[0] if len(dsts) == 1 else "", technique,
            f"{site.name(src)}: {why}; {len(g)} flow{'s' if len(g) > 1 else ''} to "
            f"{summarise([site.name(x) for x in dsts])}", score, evidence.flows(g["flow_id"]),
        ))  # fmt: skip
    return out


class FlowStats(Detector):
    """Robust z-scores of flow and per-device features against the warm-up, plus an EWMA.

    Per flow (log1p): bytes, packets, both directions, Modbus reads/writes, auth failures,
    against its persistent channel (src, dst, port with `min_flows` warm-up records), else its
    source device, else the site's pooled flows. Per source and export interval: flows,
    distinct peers, bytes, writes, auth failures, against that device's warm-up intervals
    (silent ones included: a device that never spoke scores any traffic), both as they are and
    smoothed by an EWMA (`alpha`), which catches small sustained shifts. Scales are robust
    (MAD) but never narrower than the warm-up's own extremes (see `robust_scales`) nor than
    `floor` (log1p units; at 0.1 one flow or one write from a silent device scores about 7).
    A flow's score is its largest |z|; a source whose flows exceed `threshold` gets one alert
    per burst of flagged flows (see `episode_alerts`), naming the deviation that says most.
    """

    name = "flow_stats"
    summary = "robust z-scores and EWMA of flow, channel and per-device interval features"

    def __init__(
        self,
        threshold: float = 6.0,
        alpha: float = 0.1,
        min_flows: int = 20,
        floor: float = 0.1,
        alarms_per_day: float | None = 1.0,
    ) -> None:
        if threshold <= ENVELOPE_Z:
            raise ValueError(f"threshold must exceed {ENVELOPE_Z}, got {threshold}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if min_flows < 2:
            raise ValueError(f"min_flows must be at least 2, got {min_flows}")
        if floor <= 0:
            raise ValueError(f"floor must be positive, got {floor}")
        self.threshold = threshold
        self.alpha = alpha
        self.min_flows = min_flows
        self.floor = floor
        self.alarms_per_day = check_budget(alarms_per_day)

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        f = baseline.flows
        self.site_ = site
        chan = f.groupby(["src_ip", "dst_ip", "dst_port"], observed=True).size()
        self.channels_ = chan[chan >= self.min_flows].index
        self.devices_ = pd.Index(list(dict.fromkeys([*site.facility.by_ip, *f["src_ip"]])))
        nc, nd = len(self.channels_), len(self.devices_)
        x, ci = log_features(f), self._channel(f)
        persistent = ci >= 0
        rows = np.concatenate(  # every flow feeds its channel (if persistent), device, the pool
            [ci[persistent], nc + self.devices_.get_indexer(f["src_ip"]), np.full(len(f), nc + nd)]
        )
        self.flow_ = robust_scales(np.vstack([x[persistent], x, x]), rows, nc + nd + 1, self.floor)
        self.spoke_ = self.devices_.isin(f["src_ip"])
        ticks = np.sort(f["t_export"].unique())
        dense = self._dense(f, ticks)  # ticks x devices x features, silent intervals as zeros
        each = np.tile(np.arange(nd), len(ticks))
        self.tick_ = robust_scales(dense.reshape(-1, len(TICK_FEATURES)), each, nd, self.floor)
        self.ewma_ = self.tick_[0].copy()
        smooth = self._smooth(dense).reshape(-1, len(TICK_FEATURES))
        # an EWMA of steady noise varies less than the noise: its floor shrinks alike
        floor = self.floor * np.sqrt(self.alpha / (2 - self.alpha))
        self.smooth_ = robust_scales(smooth, each, nd, floor)
        self.last_scores_ = pd.Series(dtype=float)
        self.ongoing_: dict[tuple[str, str], float] = {}
        self.threshold_ = self.threshold
        self.threshold_ = calibrate(self, baseline, site)
        return self

    def _channel(self, f: pd.DataFrame) -> np.ndarray:
        """Each flow's persistent channel, or -1."""
        if not len(self.channels_):
            return np.full(len(f), -1)
        keys = pd.MultiIndex.from_arrays([f["src_ip"], f["dst_ip"], f["dst_port"]])
        return np.asarray(self.channels_.get_indexer(keys))

    def _dense(self, f: pd.DataFrame, ticks: np.ndarray) -> np.ndarray:
        dense = np.zeros((len(ticks), len(self.devices_), len(TICK_FEATURES)))
        if len(f):
            _, srcs, tks, x = per_tick(f)
            di = self.devices_.get_indexer(srcs)
            known = di >= 0
            dense[np.searchsorted(ticks, tks[known]), di[known]] = x[known]
        return dense

    def _smooth(self, dense: np.ndarray) -> np.ndarray:
        """EWMA over ticks, continuing from (and updating) `ewma_`."""
        out = np.empty_like(dense)
        for i, x in enumerate(dense):
            self.ewma_ = (1 - self.alpha) * self.ewma_ + self.alpha * x
            out[i] = self.ewma_
        return out

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            self.last_scores_ = pd.Series(dtype=float)
            return []
        nc, nd = len(self.channels_), len(self.devices_)
        x, ci, dev = log_features(f), self._channel(f), self.devices_.get_indexer(f["src_ip"])
        spoke = np.where(dev >= 0, self.spoke_[dev], False)
        row = np.where(ci >= 0, ci, np.where(spoke, nc + dev, nc + nd))
        z_flow = np.abs(zscore(x, *(a[row] for a in self.flow_)))
        key, srcs, tks, xt = per_tick(f)
        di = self.devices_.get_indexer(srcs)
        known, d0 = di >= 0, np.maximum(di, 0)
        # a source neither in the inventory nor in the warm-up is compared with silence
        med = np.where(known[:, None], self.tick_[0][d0], 0.0)
        hi = np.where(known[:, None], self.tick_[2][d0], self.floor)
        z_tick = np.maximum((xt - med) / hi, 0)  # more traffic, peers, writes: not less
        ticks = np.sort(np.unique(tks))
        smooth = self._smooth(self._dense(f, ticks))[np.searchsorted(ticks, tks), d0]
        s_med, s_hi = self.smooth_[0][d0], self.smooth_[2][d0]
        # the EWMA speaks only while the interval itself is above usual: no tail after a burst
        z_ewma = np.where(known[:, None] & (xt > med), np.maximum((smooth - s_med) / s_hi, 0), 0)
        z = np.hstack([z_flow, z_tick[key], z_ewma[key]])
        scores = z.max(axis=1)
        self.last_scores_ = pd.Series(scores, index=f["flow_id"].to_numpy())
        silent = ~np.where(known, self.spoke_[d0], False)

        def explain(g: pd.DataFrame) -> tuple[str, str]:
            pos = int(g["pos"].iloc[int(np.argmax(g["score"].to_numpy()))])
            k = key[pos]
            parts = [
                (FLOW_FEATURES, z_flow[pos], x[pos], self.flow_[0][row[pos]], "per flow"),
                (TICK_FEATURES, z_tick[k], xt[k], med[k], "per interval"),
                (TICK_FEATURES, z_ewma[k], smooth[k], s_med[k], "per interval (EWMA)"),
            ]
            over = [(v, *(a[j] for a in part[1:4]), part[4]) for part in parts
                    for j, v in enumerate(part[0]) if part[1][j] > self.threshold_]  # fmt: skip
            feature, zs, value, usual, kind = min(over, key=lambda c: list(TECHNIQUE).index(c[0]))
            first = "silent in the warm-up; " if silent[k] else ""
            technique = TECHNIQUE[feature]
            if silent[k] and technique == "T0846" and np.expm1(xt[k, 1]) < 10:
                technique = "T0886"  # a new talker with a peer or two: remote access, not a sweep
            return technique, (
                f"{first}{feature} {kind} {np.expm1(value):.0f} "
                f"(warm-up median {np.expm1(usual):.0f}, z={zs:.0f})"
            )

        return episode_alerts(
            self.name, self.site_, f, scores, self.threshold_, explain, self.ongoing_
        )
