"""Isolation-forest flow anomalies, and the per-flow feature matrix the learned detectors share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, calibrate, check_budget
from detectors.flow_stats import FLOW_FEATURES, episode_alerts, log_features, per_tick
from twin.telemetry import Alert, TelemetryBatch

APPS = ("modbus", "http", "telnet", "rtsp", "mqtt", "dns", "other")
PORT_CLASSES = {
    "ics": (502, 102, 2404, 20000, 44818, 47808), "web": (80, 443, 8080, 8443),
    "remote": (22, 23, 3389, 5900), "media": (554,), "iot": (1883, 8883, 5683),
    "infra": (53, 67, 123, 161),
}  # fmt: skip
PORT_CODE = np.full(65536, len(PORT_CLASSES) + 1, dtype=np.int64)  # high ports
PORT_CODE[:1024] = len(PORT_CLASSES)  # other well-known ports
for _i, _ports in enumerate(PORT_CLASSES.values()):
    PORT_CODE[list(_ports)] = _i
FEATURES = (
    "bytes", "packets", "bytes_rev", "packets_rev", "modbus_reads", "modbus_writes",
    "auth_failures", "modbus_exceptions", "bytes per packet", "write share", "duration",
    "SYN without ACK", "reset", "FIN", "blocked", "encrypted", "crosses zones",
    "flows per interval", "peers per interval", "source's warm-up flows",
    *(f"app {a}" for a in APPS), "tcp", "udp",
    *(f"port {c}" for c in (*PORT_CLASSES, "well-known", "high")),
)  # fmt: skip


@dataclass(frozen=True)
class FlowContext:
    """What the warm-up says about who talks (flows per source), and the site's zones.

    Not flows per channel: a workstation opening a session to a device it did not visit in
    the warm-up is routine, and new paths are the allowlist's job.
    """

    sources: pd.Series  # flows per src_ip
    site: SiteView

    @classmethod
    def learn(cls, flows: pd.DataFrame, site: SiteView) -> FlowContext:
        return cls(flows.groupby("src_ip").size().astype(float), site)


def flow_matrix(flows: pd.DataFrame, ctx: FlowContext) -> np.ndarray:
    """One row per flow (columns: FEATURES): log1p volumes and counts, TCP flags, service,
    zones, the source's activity in the flow's export interval, and how established the
    source was in the warm-up."""
    n = len(flows)
    if not n:
        return np.zeros((0, len(FEATURES)))
    x = log_features(flows, (*FLOW_FEATURES, "modbus_exceptions"))
    packets = flows["packets"].to_numpy(dtype=float)
    reads, writes = (flows[c].to_numpy(dtype=float) for c in ("modbus_reads", "modbus_writes"))
    flags = flows["tcp_flags"].astype(str)
    syn, ack = flags.str.contains("S").to_numpy(), flags.str.contains("A").to_numpy()
    zones = (
        ctx.site.zones_of(flows["src_ip"]).to_numpy()
        != ctx.site.zones_of(flows["dst_ip"]).to_numpy()
    )
    key, _, _, xt = per_tick(flows)
    src = ctx.sources.reindex(flows["src_ip"]).fillna(0.0).to_numpy()
    app = pd.Categorical(flows["app"], categories=list(APPS)).codes
    app = np.where(app < 0, len(APPS) - 1, app)
    proto = flows["proto"].astype(str).to_numpy()
    port = PORT_CODE[flows["dst_port"].to_numpy().clip(0, 65535)]
    cols = [
        x,
        np.log1p(flows["bytes"].to_numpy(dtype=float) / np.maximum(packets, 1))[:, None],
        (writes / np.maximum(reads + writes, 1))[:, None],
        np.log1p((flows["t_end"] - flows["t_start"]).to_numpy(dtype=float).clip(0))[:, None],
        np.column_stack([syn & ~ack, flags.str.contains("R").to_numpy(), flags.str.contains("F")]),
        flows[["blocked", "encrypted"]].to_numpy(dtype=float),
        zones[:, None],
        xt[key][:, :2],
        np.log1p(src),
        np.eye(len(APPS))[app],
        np.column_stack([proto == "tcp", proto == "udp"]),
        np.eye(len(PORT_CLASSES) + 2)[port],
    ]
    return np.hstack([np.asarray(c, dtype=float).reshape(n, -1) for c in cols])


def guess_technique(g: pd.DataFrame) -> str:
    """An ATT&CK for ICS guess for a burst of anomalous flows from one source."""
    if (g["modbus_writes"] > 0).any():
        return "T0836"
    if (g["auth_failures"] > 0).any():
        return "T1110"
    if len(g[["dst_ip", "dst_port"]].drop_duplicates()) >= 10:
        return "T0846"
    if g["packets"].sum() > 100_000:
        return "T0814"
    return "T0882" if g["bytes"].sum() > 10 * max(1, g["bytes_rev"].sum()) else "T0886"


def burst_alerts(
    name: str,
    site: SiteView,
    flows: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    ongoing: dict[tuple[str, str], float],
    detail: Callable[[int], str] | None = None,
) -> list[Alert]:
    """One alert per source and incident of flows over `threshold` (see `episode_alerts`),
    with a technique guess and `detail(position of the burst's top flow)`: what stood out."""

    def explain(g: pd.DataFrame) -> tuple[str, str]:
        top = int(np.argmax(g["score"].to_numpy()))
        why = f"anomaly score {g['score'].iloc[top]:.3g} over the warm-up's {threshold:.3g}"
        return guess_technique(g), why + (f"; {detail(int(g['pos'].iloc[top]))}" if detail else "")

    return episode_alerts(name, site, flows, scores, threshold, explain, ongoing)


class IsolationForestFlows(Detector):
    """An isolation forest over per-flow features (see `flow_matrix`) fitted on the warm-up.

    A flow's score is the forest's anomaly score (short isolation paths: unusual) plus
    `range_weight` times how far it lies outside the warm-up's range, summed over features in
    units of each feature's warm-up range (at least 1). The second term is there because a
    forest saturates at the edge of its data: a flow far beyond the warm-up takes the same
    path as the warm-up's most extreme flow, so a never-seen scan scores no higher than a rare
    but routine engineering session. The threshold is the warm-up's `quantile` score plus
    `margin`. Trees are grown on `max_samples` rows each, on one core, seeded by `seed`.
    """

    name = "isolation_forest"
    summary = "isolation forest over per-flow features, threshold from the warm-up's scores"

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        quantile: float = 0.999,
        margin: float = 0.05,
        range_weight: float = 1.0,
        seed: int = 0,
        alarms_per_day: float | None = 1.0,
    ) -> None:
        if n_estimators < 1:
            raise ValueError(f"n_estimators must be at least 1, got {n_estimators}")
        if max_samples < 2:
            raise ValueError(f"max_samples must be at least 2, got {max_samples}")
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        if margin < 0:
            raise ValueError(f"margin must not be negative, got {margin}")
        if range_weight < 0:
            raise ValueError(f"range_weight must not be negative, got {range_weight}")
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.quantile = quantile
        self.margin = margin
        self.range_weight = range_weight
        self.seed = seed
        self.alarms_per_day = check_budget(alarms_per_day)

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        self.context_ = FlowContext.learn(baseline.flows, site)
        x = flow_matrix(baseline.flows, self.context_)
        if not len(x):  # nothing to learn from: one all-zero flow stands for it
            x = np.zeros((1, len(FEATURES)))
        self.low_, self.high_ = x.min(axis=0), x.max(axis=0)
        self.span_ = np.maximum(self.high_ - self.low_, 1.0)
        from sklearn.ensemble import IsolationForest  # here: every run imports the registry

        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(x)),
            random_state=self.seed,
            n_jobs=1,
        ).fit(x)
        self.threshold_ = float(np.quantile(self._score(x), self.quantile)) + self.margin
        self.last_scores_ = pd.Series(dtype=float)
        self.ongoing_: dict[tuple[str, str], float] = {}
        self.threshold_ = calibrate(self, baseline, site)
        return self

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return (np.maximum(self.low_ - x, 0) + np.maximum(x - self.high_, 0)) / self.span_

    def _score(self, x: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(x) + self.range_weight * self._outside(x).sum(axis=1)

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            self.last_scores_ = pd.Series(dtype=float)
            return []
        x = flow_matrix(f, self.context_)
        scores = self._score(x)
        self.last_scores_ = pd.Series(scores, index=f["flow_id"].to_numpy())

        def detail(pos: int) -> str:
            out = self._outside(x[pos : pos + 1])[0]
            if out.max() <= 0:
                return "a rare combination within the warm-up's range"
            return f"furthest outside the warm-up's range: {FEATURES[int(np.argmax(out))]}"

        return burst_alerts(
            self.name, self.site_, f, scores, self.threshold_, self.ongoing_, detail
        )
