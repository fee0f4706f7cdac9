"""Federated flow anomalies: per-zone autoencoders trained at the edge and averaged (FedAvg)."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, calibrate, check_budget
from detectors.isolation import FEATURES, FlowContext, burst_alerts, flow_matrix
from twin.telemetry import Alert, TelemetryBatch

Params = dict[str, np.ndarray]
MODES = ("federated", "central")
STD_FLOOR = 1.0  # in feature units (log1p counts, flags): a near-constant feature is not a ruler


def init(n_in: int, hidden: int, rng: np.random.Generator) -> Params:
    scale = 1.0 / np.sqrt(n_in)
    return {
        "w1": rng.normal(0.0, scale, (n_in, hidden)), "b1": np.zeros(hidden),
        "w2": rng.normal(0.0, scale, (hidden, n_in)), "b2": np.zeros(n_in),
    }  # fmt: skip


def reconstruct(p: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.tanh(x @ p["w1"] + p["b1"])
    return h, h @ p["w2"] + p["b2"]


def errors(p: Params, x: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error per row."""
    return ((reconstruct(p, x)[1] - x) ** 2).mean(axis=1)


def train(
    p: Params,
    x: np.ndarray,
    weight: np.ndarray,
    epochs: int,
    lr: float,
    batch: int,
    rng: np.random.Generator,
) -> Params:
    """Minibatch Adam on the mean squared reconstruction error; a fresh optimiser each call.

    Each epoch draws len(x) rows with probability proportional to `weight`.
    """
    p = {k: v.copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    step = 0
    for _ in range(epochs):
        order = rng.choice(len(x), size=len(x), p=weight / weight.sum())
        for lo in range(0, len(x), batch):
            xb = x[order[lo : lo + batch]]
            h, y = reconstruct(p, xb)
            dy = 2.0 * (y - xb) / xb.size
            dh = (dy @ p["w2"].T) * (1.0 - h * h)
            g = {"w2": h.T @ dy, "b2": dy.sum(0), "w1": xb.T @ dh, "b1": dh.sum(0)}
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v[k] = 0.999 * v[k] + 0.001 * g[k] ** 2
                mh, vh = m[k] / (1 - 0.9**step), v[k] / (1 - 0.999**step)
                p[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
    return p


def fed_avg(updates: list[Params], weights: list[float]) -> Params:
    """The average of the edge models, each weighted by its share of the training objective."""
    w = np.asarray(weights, dtype=float) / sum(weights)
    return {k: sum(wi * u[k] for wi, u in zip(w, updates, strict=True)) for k in updates[0]}


def edge_zones(flows: pd.DataFrame, site: SiteView) -> np.ndarray:
    """The site zone whose edge sensor owns each flow: its source's, else its destination's
    (a flow from the internet is seen where it lands), else "outside"."""
    outside = {"", *site.facility.internet_zones()}
    src = site.zones_of(flows["src_ip"]).to_numpy()
    dst = site.zones_of(flows["dst_ip"]).to_numpy()
    src_in, dst_in = ~np.isin(src, list(outside)), ~np.isin(dst, list(outside))
    return np.where(src_in, src, np.where(dst_in, dst, "outside"))


class Federated(Detector):
    """A one-hidden-layer autoencoder over per-flow features (see `flow_matrix`), trained
    federated or centrally, scoring flows by their reconstruction error.

    Federated: for `rounds` rounds, each zone's edge trains the shared model on its own
    warm-up flows for `epochs` local epochs (Adam, a cosine-decayed `learning_rate`), and the
    server averages the edge models (FedAvg), weighted by each edge's share of the objective.
    Every source counts alike in that objective (rows drawn inversely to their source's
    flows), or the chattiest poller would be all the model learns. Only aggregates leave a
    zone: feature sums for the common standardisation, model weights, and each zone's
    `quantile` error; the threshold is the largest of these times `margin`. Central: the same
    loop with one edge holding every flow. Either way the threshold is at least `min_error`
    (squared s.d. per feature): nearly deterministic traffic teaches a model errors so small
    that a routine variation it never saw would otherwise alert. Seeded by `seed`.
    """

    name = "federated"
    summary = "autoencoder trained per zone and averaged (FedAvg), or centrally for comparison"

    def __init__(
        self,
        mode: Literal["federated", "central"] = "federated",
        rounds: int = 30,
        epochs: int = 1,
        learning_rate: float = 0.01,
        hidden: int = 8,
        batch_size: int = 64,
        quantile: float = 0.999,
        margin: float = 2.0,
        min_error: float = 0.05,
        seed: int = 0,
        alarms_per_day: float | None = 1.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        for what, value in (("rounds", rounds), ("epochs", epochs), ("hidden", hidden),
                            ("batch_size", batch_size)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{what} must be at least 1, got {value}")
        if not 0 < learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {learning_rate}")
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        if margin < 1:
            raise ValueError(f"margin must be at least 1, got {margin}")
        if min_error < 0:
            raise ValueError(f"min_error must not be negative, got {min_error}")
        self.mode = mode
        self.rounds = rounds
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.hidden = hidden
        self.batch_size = batch_size
        self.quantile = quantile
        self.margin = margin
        self.min_error = min_error
        self.seed = seed
        self.alarms_per_day = check_budget(alarms_per_day)

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        f = baseline.flows
        self.site_ = site
        self.context_ = FlowContext.learn(f, site)
        x = flow_matrix(f, self.context_)
        if not len(x):
            x = np.zeros((1, len(FEATURES)))
        zone = edge_zones(f, site) if len(f) else np.array(["outside"])
        names = sorted(set(zone))
        parts = [x[zone == z] for z in names]
        # the common standardisation from per-zone counts, sums and sums of squares
        n = sum(len(p) for p in parts)
        mean = sum(p.sum(axis=0) for p in parts) / n
        var = sum((p**2).sum(axis=0) for p in parts) / n - mean**2
        self.mean_, self.std_ = mean, np.sqrt(np.maximum(var, 0.0)).clip(min=STD_FLOOR)
        parts = [(p - self.mean_) / self.std_ for p in parts]
        # every source counts alike, or the chattiest poller is all the model learns
        src = f["src_ip"].to_numpy() if len(f) else np.array([""])
        per_src = pd.Series(src).map(pd.Series(src).value_counts()).to_numpy(dtype=float)
        weights = [1.0 / per_src[zone == z] for z in names]
        if self.mode == "central":  # one edge holding every flow: the same loop, pooled
            names, parts, weights = ["all"], [np.vstack(parts)], [np.concatenate(weights)]
        model = init(x.shape[1], self.hidden, np.random.default_rng(self.seed))
        edges = [np.random.default_rng([self.seed, i]) for i in range(len(parts))]
        share = [float(w.sum()) for w in weights]  # sources per edge: its part of the objective
        for r in range(self.rounds):
            # a cosine-decayed step: late rounds refine instead of pulling edges apart
            lr = self.learning_rate * 0.5 * (1.0 + np.cos(np.pi * r / self.rounds))
            local = [
                train(model, p, w, self.epochs, lr, self.batch_size, g)
                for p, w, g in zip(parts, weights, edges, strict=True)
            ]
            model = fed_avg(local, share)
        self.model_ = model
        q = [float(np.quantile(errors(model, p), self.quantile)) for p in parts]
        self.edge_quantiles_ = dict(zip(names, q, strict=True))
        base = max(q)
        self.threshold_ = max(self.margin * float(base), self.min_error)
        self.last_scores_ = pd.Series(dtype=float)
        self.ongoing_: dict[tuple[str, str], float] = {}
        self.threshold_ = calibrate(self, baseline, site)
        return self

    def score(self, flows: pd.DataFrame) -> np.ndarray:
        """Reconstruction error of each flow under the trained model."""
        return errors(self.model_, (flow_matrix(flows, self.context_) - self.mean_) / self.std_)

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            self.last_scores_ = pd.Series(dtype=float)
            return []
        x = (flow_matrix(f, self.context_) - self.mean_) / self.std_
        scores = errors(self.model_, x)
        self.last_scores_ = pd.Series(scores, index=f["flow_id"].to_numpy())

        def detail(pos: int) -> str:
            worst = np.argmax((reconstruct(self.model_, x[pos : pos + 1])[1][0] - x[pos]) ** 2)
            return f"worst reconstructed: {FEATURES[int(worst)]}"

        return burst_alerts(
            self.name, self.site_, f, scores, self.threshold_, self.ongoing_, detail
        )
