"""Allowed-path behaviour: each device channel's volume and shape against its warm-up."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, calibrate, check_budget, flow_codes
from twin import evidence
from twin.telemetry import Alert, TelemetryBatch

OUTSIDE = "outside"  # every peer on the internet is one peer: a device's cloud, its vendor
CHANNEL = ["src_ip", "peer", "dst_port", "app"]
# volume counts only upwards (a channel gone quiet is availability, device_health's part);
# shape (bytes per packet, upload against download) counts both ways
VOLUME = ("up", "down", "packets")
SHAPE = ("per_packet", "ratio")
FEATURES = VOLUME + SHAPE
MAD_SCALE = 1.4826  # a normal variable's sigma from its median absolute deviation


def intervals(flows: pd.DataFrame, devices: set[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per channel per export interval (sums over its flows) with the log features,
    and for each input flow the row it went into (-1: not a device's channel).

    `devices` are the site's own addresses (not those on the internet); any other
    destination is OUTSIDE. Rows come in the order their channels first appear."""
    rows = np.full(len(flows), -1, dtype=np.int64)
    codes = flow_codes(flows)
    ours = np.array([ip in devices for ip in codes.ips.tolist()], dtype=bool)
    keep = (
        np.flatnonzero(~flows["blocked"].to_numpy(dtype=bool) & ours[codes.src])
        if len(flows)
        else rows
    )
    if not len(keep):
        return pd.DataFrame(columns=[*CHANNEL, "t_export", *FEATURES]), rows
    outside = len(codes.ips)
    peer = np.where(ours[codes.dst[keep]], codes.dst[keep], outside)
    app_code, apps = pd.factorize(flows["app"].take(keep))
    times, t_code = np.unique(codes.t[keep], return_inverse=True)
    key = np.zeros(len(keep), dtype=np.int64)
    for part, size in ((codes.src[keep], outside), (peer, outside + 1),
                       (codes.port[keep], 65536), (app_code, len(apps) + 1), (t_code, len(times))):  # fmt: skip
        if int(key.max(initial=0)) >= (1 << 62) // (size + 1):
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
        key = key * (size + 1) + part + 1
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    group, n = rank[inverse], len(first)
    head = keep[np.sort(first)]  # each channel-interval's first flow, in order of appearance
    peers = np.append(codes.ips, OUTSIDE)[peer[np.sort(first)]]
    out = pd.DataFrame({
        "src_ip": codes.ips[codes.src[head]], "peer": peers,
        "dst_port": flows["dst_port"].to_numpy()[head], "app": flows["app"].to_numpy()[head],
        "t_export": codes.t[head],
    })  # fmt: skip
    up = np.bincount(group, flows["bytes"].to_numpy(dtype=float)[keep], n)
    down = np.bincount(group, flows["bytes_rev"].to_numpy(dtype=float)[keep], n)
    packets = np.bincount(group, flows["packets"].to_numpy(dtype=float)[keep], n)
    back = np.bincount(group, flows["packets_rev"].to_numpy(dtype=float)[keep], n)
    out["up"] = np.log1p(up)
    out["down"] = np.log1p(down)
    out["packets"] = np.log1p(packets)
    out["per_packet"] = np.log((up + down + 1.0) / (packets + back + 1.0))
    out["ratio"] = np.log((up + 1.0) / (down + 1.0))
    rows[keep] = group
    return out, rows


class AllowedPath(Detector):
    """Misuse of a permitted path: a channel whose volume or shape leaves its learned routine.

    A channel is what a device uses to a peer: (device, peer, destination port, app), where
    every peer on the internet or outside the inventory counts as one (a device's own cloud:
    a new outside address is the allowlist's news; here it is judged as that egress). Per
    export interval the warm-up teaches each channel seen in at least `min_intervals`
    intervals the median and spread (MAD, at least `min_spread` in log units) of its upload,
    download and packets, its bytes per packet and its upload/download ratio. An interval is
    scored by its largest departure in spreads, counting only values outside the range the
    warm-up showed (volume only above it; shape only while both sides talk, since a peer that
    stopped answering is device_health's news): a slow exfiltration over the gateway's own
    conduit to the cloud uploads far more than its routine, at a ratio it never shows
    (T0882). Calibrated to `alarms_per_day` on the warm-up's last third; one alert per
    channel per batch, citing the flows of its departing intervals.
    """

    name = "allowed_path"
    summary = (
        "volume and shape of each device's channels to its own peers against its learned routine"
    )
    reference_scenario = "dc-gateway-exfil"

    def __init__(
        self,
        threshold: float = 8.0,
        min_spread: float = 0.25,
        min_intervals: int = 10,
        alarms_per_day: float | None = 1.0,
    ) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if not min_spread > 0:
            raise ValueError(f"min_spread must be > 0, got {min_spread}")
        if min_intervals < 2:
            raise ValueError(f"min_intervals must be at least 2, got {min_intervals}")
        self.threshold = threshold
        self.min_spread = min_spread
        self.min_intervals = min_intervals
        self.alarms_per_day = check_budget(alarms_per_day)

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        internet = set(site.facility.internet_zones())
        self.devices_ = {d.ip for d in site.facility.devices if d.zone not in internet}
        rows, _ = intervals(baseline.flows, self.devices_)
        self.profile_ = self._learn(rows)
        # a channel's profile row by its key, and the rows with one of NaN (an unknown channel)
        # after them: a batch looks its channels up in a dict, not by reindexing on strings
        self.where_ = {key: i for i, key in enumerate(self.profile_.index.tolist())}
        self.values_ = np.vstack(
            [self.profile_.to_numpy(dtype=float), np.full((1, self.profile_.shape[1]), np.nan)]
        )
        self.threshold_ = self.threshold
        self.threshold_ = calibrate(self, baseline, site)
        self.last_scores_ = pd.Series(dtype=float)
        return self

    def _learn(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Per channel: median, spread, lowest and highest of every feature."""
        columns = [f"{s}_{x}" for x in FEATURES for s in ("med", "spread", "lo", "hi")]
        if rows.empty:
            return pd.DataFrame(
                columns=columns, index=pd.MultiIndex.from_arrays([[]] * 4, names=CHANNEL)
            )
        g = rows.groupby(CHANNEL, sort=True, observed=True)[list(FEATURES)]
        count = g.size()
        med = g.median()
        mad = (
            rows[list(FEATURES)] - med.reindex(pd.MultiIndex.from_frame(rows[CHANNEL])).to_numpy()
        ).abs()
        mad[CHANNEL] = rows[CHANNEL].to_numpy()
        spread = (
            mad.groupby(CHANNEL, sort=True, observed=True)[list(FEATURES)].median() * MAD_SCALE
        ).clip(lower=self.min_spread)
        lo, hi = g.min(), g.max()
        profile = pd.concat({"med": med, "spread": spread, "lo": lo, "hi": hi}, axis=1)
        profile.columns = [f"{s}_{x}" for s, x in profile.columns]
        return profile[count >= self.min_intervals][columns]

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        self.last_scores_ = pd.Series(0.0, index=f["flow_id"].to_numpy(), dtype=float)
        if f.empty or self.profile_.empty:
            return []
        rows, member = intervals(f, self.devices_)
        if rows.empty:
            return []
        unknown = len(self.values_) - 1
        channels = zip(*(rows[c].tolist() for c in CHANNEL), strict=True)
        pos = [self.where_.get(k, unknown) for k in channels]
        p = dict(zip(self.profile_.columns, self.values_[pos].T, strict=True))
        known = ~np.isnan(p["med_up"])
        # a side gone quiet (a peer that stopped answering) changes the shape too; that is an
        # availability matter (device_health), so shape counts only while both sides talk
        quiet = (rows["up"].to_numpy(dtype=float) < p["lo_up"]) | (
            rows["down"].to_numpy(dtype=float) < p["lo_down"]
        )
        z = np.zeros((len(rows), len(FEATURES)))
        for j, x in enumerate(FEATURES):
            v = rows[x].to_numpy(dtype=float)
            med, spread = p[f"med_{x}"], p[f"spread_{x}"]
            z[:, j] = np.where(v > p[f"hi_{x}"], (v - med) / spread, 0.0)
            if x in SHAPE:
                below = v < p[f"lo_{x}"]
                z[:, j] = np.where(quiet, 0.0, np.where(below, (med - v) / spread, z[:, j]))
        z[~known] = 0.0
        score = z.max(axis=1)
        flow_score = np.where(member >= 0, score[np.maximum(member, 0)], 0.0)
        self.last_scores_ = pd.Series(flow_score, index=f["flow_id"].to_numpy(), dtype=float)
        hot = np.flatnonzero(score > self.threshold_)
        if not len(hot):
            return []
        return self._alerts(rows, z, hot, p, f, member)

    def _alerts(
        self, rows: pd.DataFrame, z: np.ndarray, hot: np.ndarray, p: dict[str, np.ndarray],
        f: pd.DataFrame, member: np.ndarray,
    ) -> list[Alert]:  # fmt: skip
        out, score = [], z.max(axis=1)
        flow_ids, dst_ips = f["flow_id"].to_numpy(), f["dst_ip"].to_numpy()
        t_export, sent = f["t_export"].to_numpy(), f["bytes"].to_numpy()
        hit = rows.iloc[hot]
        for channel, g in hit.groupby(CHANNEL, sort=True, observed=True):
            src, peer, port, app = (
                str(channel[0]),
                str(channel[1]),
                int(channel[2]),
                str(channel[3]),
            )
            idx = g.index.to_numpy()
            cited = np.isin(member, idx)
            worst = int(idx[np.argmax(score[idx])])
            x = FEATURES[int(np.argmax(z[worst]))]
            dst = str(dst_ips[cited][np.argmax(sent[cited])])  # the peer that took the most
            to = self.site_.name(dst) if peer != OUTSIDE else dst
            why = (
                f"{self.site_.name(src)} -> {to}:{port}/{app}: "
                f"{_describe(x, float(rows.at[worst, x]), float(p[f'med_{x}'][worst]))} "
                f"in {len(idx)} interval(s)"
            )
            out.append(Alert(
                float(t_export[cited].min()), self.name, "high", self.site_.name(src), src, dst,
                "T0882" if peer == OUTSIDE else "T0802", why, score=float(score[idx].max()),
                evidence=evidence.flows(flow_ids[cited]),
            ))  # fmt: skip
        return sorted(out, key=lambda a: (a.t, a.device, a.reason))


def _describe(feature: str, value: float, median: float) -> str:
    """The departure in words: volumes in bytes or packets per interval, shapes as numbers."""
    if feature in VOLUME:
        unit = "packets" if feature == "packets" else f"bytes {'up' if feature == 'up' else 'down'}"
        return f"{np.expm1(value):,.0f} {unit} per interval (routine {np.expm1(median):,.0f})"
    label = "bytes per packet" if feature == "per_packet" else "upload/download ratio"
    return f"{label} {np.exp(value):,.2f} (routine {np.exp(median):,.2f})"
