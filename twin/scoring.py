"""Scores a run's alerts against its truth table, with the definitions of DESIGN.md."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from twin.evidence import caused, split

MERGE_WINDOW = 60.0
UNION = "union"  # every detector of the run together


@dataclass(frozen=True)
class DetectorScore:
    detector: str
    steps: int
    detected: int
    recall: float
    alerts: int  # after merging
    matched_alerts: int
    precision: float
    f1: float
    ttd_median: float  # seconds; nan when nothing was detected
    ttd_p95: float
    false_alarms_per_day: float
    flow_pr_auc: float = float("nan")  # flow level, for detectors that score flows
    ttds: tuple[float, ...] = ()  # each detected step's time to detect, for pooling runs
    late: int = 0  # detected steps whose first evidence came after t_end + grace
    late_delays: tuple[float, ...] = ()  # their times to detect
    unevidenced_alerts: int = 0  # merged alerts citing nothing (they can only be false alarms)
    not_attempted: int = 0  # steps whose precondition failed: no truth row, listed apart
    # the previous release's windowed score, beside the evidence score for one release
    windowed_recall: float = float("nan")
    windowed_precision: float = float("nan")
    windowed_false_alarms_per_day: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def merge_alerts(alerts: pd.DataFrame, window: float = MERGE_WINDOW) -> pd.DataFrame:
    """Merge alerts of one detector about one device that follow each other within `window`.

    Each merged alert keeps its first time and every address/device its members named;
    `hit` (any member matched a step, when the input has it) and `tokens` (evidence size).
    """
    if alerts.empty:
        return pd.DataFrame(columns=["detector", "device", "t", "t_last", "names", "hit", "tokens"])
    a = alerts.sort_values(["detector", "device", "t"], kind="stable")
    new_group = (
        (a["detector"] != a["detector"].shift())
        | (a["device"] != a["device"].shift())
        | (a["t"] - a["t"].shift() > window)
    )
    gid = new_group.cumsum()
    names = a[["device", "src_ip", "dst_ip"]].astype(str).agg(lambda r: {x for x in r if x}, axis=1)
    hit = a["hit"] if "hit" in a.columns else pd.Series(False, index=a.index)
    tokens = (
        a["evidence"].map(lambda e: len(split(e)))
        if "evidence" in a.columns
        else pd.Series(0, index=a.index)
    )
    merged = pd.DataFrame({"gid": gid, "detector": a["detector"], "device": a["device"],
                           "t": a["t"], "names": names, "hit": hit, "tokens": tokens})  # fmt: skip
    out = merged.groupby("gid", sort=True).agg(
        detector=("detector", "first"),
        device=("device", "first"),
        t=("t", "min"),
        t_last=("t", "max"),
        names=("names", lambda s: set().union(*s)),
        hit=("hit", "any"),
        tokens=("tokens", "sum"),
    )
    return out.reset_index(drop=True)


def _step_names(
    step: pd.Series,
) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names = {  # steps with several targets list them comma-joined
        part
        for c in ("attacker", "attacker_ip", "target", "target_ip")
        for part in str(step[c]).split(",")
        if part
    }
    nets = []
    for part in str(step["target_ip"]).split(","):
        if "/" in part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return names, nets


def _names_step(names: set[str], step_names: set[str], nets: list[Any]) -> bool:
    if names & step_names:
        return True
    for n in names:
        if nets and n[:1].isdigit():
            try:
                addr = ipaddress.ip_address(n)
            except ValueError:
                continue
            if any(addr in net for net in nets):
                return True
    return False


def _tokens(alerts: pd.DataFrame) -> list[frozenset[str]]:
    if "evidence" not in alerts.columns:
        return [frozenset()] * len(alerts)
    return [split(e) for e in alerts["evidence"].tolist()]


def match_steps(truth: pd.DataFrame, alerts: pd.DataFrame) -> list[list[int]]:
    """Per alert, the truth rows (positions) it is evidence of: it cites a flow or event the
    step caused (those exist only because of it), or a signal the step changed, from the
    step's start on (a signal exists before the step too)."""
    steps = truth.reset_index(drop=True)
    caused_by = []
    for r in steps.itertuples():
        records = caused(r.flow_ids, r.event_ids, "")
        changed = caused((), (), getattr(r, "signals", ""))
        caused_by.append((float(r.t_start), records, changed))
    out: list[list[int]] = []
    for t, tokens in zip(alerts["t"].to_numpy(dtype=float), _tokens(alerts), strict=True):
        if not tokens:
            out.append([])
            continue
        out.append([
            i
            for i, (t0, records, changed) in enumerate(caused_by)
            if not tokens.isdisjoint(records) or (t >= t0 and not tokens.isdisjoint(changed))
        ])  # fmt: skip
    return out


def _f1(recall: float, precision: float, n_steps: int, n_alerts: int) -> float:
    """F1 of a score: NaN with no steps to find, 0 when steps went unfound or unflagged."""
    if n_steps and n_alerts and (recall + precision) > 0:
        return 2 * recall * precision / (recall + precision)
    return float("nan") if not n_steps else 0.0


def score_alerts(
    truth: pd.DataFrame,
    alerts: pd.DataFrame,
    monitored_s: float,
    detector: str,
    not_attempted: int = 0,
) -> DetectorScore:
    """Event-level scores for one detector's (or the union's) alerts, by evidence.

    A step is detected by the first alert citing something it caused, whenever that comes;
    past `t_end + grace` it is a late detection (counted, and reported apart with its delay).
    A merged alert is matched when any of its members is evidence of some step.
    """
    steps = truth.reset_index(drop=True)
    n_steps = len(steps)
    alerts = alerts.reset_index(drop=True)
    hits = match_steps(steps, alerts) if len(alerts) else []
    first: dict[int, float] = {}
    for t, found in zip(alerts["t"].to_numpy(dtype=float), hits, strict=True):
        for i in found:
            first[i] = min(first.get(i, np.inf), t)
    ttds, late_delays = [], []
    for i, t in first.items():
        r = steps.iloc[i]
        ttds.append(max(0.0, t - float(r["t_start"])))
        if t > float(r["t_end"]) + float(r["grace"]):
            late_delays.append(t - float(r["t_start"]))
    merged = merge_alerts(alerts.assign(hit=[bool(h) for h in hits]) if len(alerts) else alerts)
    n_alerts = len(merged)
    n_matched = int(merged["hit"].sum()) if n_alerts else 0
    unevidenced = int((merged["tokens"] == 0).sum()) if n_alerts else 0
    detected = len(first)
    recall = detected / n_steps if n_steps else float("nan")
    precision = n_matched / n_alerts if n_alerts else float("nan")
    f1 = _f1(recall, precision, n_steps, n_alerts)
    days = monitored_s / 86400.0
    windowed = score_windowed(truth, alerts, monitored_s, detector)
    return DetectorScore(
        detector=detector,
        steps=n_steps,
        detected=detected,
        recall=recall,
        alerts=n_alerts,
        matched_alerts=n_matched,
        precision=float(precision),
        f1=float(f1),
        ttd_median=float(np.median(ttds)) if ttds else float("nan"),
        ttd_p95=float(np.percentile(ttds, 95)) if ttds else float("nan"),
        ttds=tuple(ttds),
        false_alarms_per_day=float((n_alerts - n_matched) / days) if days > 0 else float("nan"),
        late=len(late_delays),
        late_delays=tuple(late_delays),
        unevidenced_alerts=unevidenced,
        not_attempted=not_attempted,
        windowed_recall=windowed.recall,
        windowed_precision=windowed.precision,
        windowed_false_alarms_per_day=windowed.false_alarms_per_day,
    )


def score_windowed(
    truth: pd.DataFrame, alerts: pd.DataFrame, monitored_s: float, detector: str
) -> DetectorScore:
    """The previous release's rule, reported beside the evidence score for one release: a step
    is detected by an alert naming its target or attacker within [t_start, t_end + grace]."""
    merged = merge_alerts(alerts)
    steps = truth.reset_index(drop=True)
    n_steps = len(steps)
    detected = 0
    ttds: list[float] = []
    matched = np.zeros(len(merged), dtype=bool)
    raw = (
        alerts.assign(
            names=alerts[["device", "src_ip", "dst_ip"]]
            .astype(str)
            .agg(lambda r: {x for x in r if x}, axis=1)
        )
        if not alerts.empty
        else alerts
    )
    for _, step in steps.iterrows():
        step_names, nets = _step_names(step)
        lo, hi = float(step["t_start"]), float(step["t_end"]) + float(step["grace"])
        hit_times = (
            [
                float(r.t)
                for r in raw.itertuples()
                if lo <= r.t <= hi and _names_step(r.names, step_names, nets)
            ]
            if not raw.empty
            else []
        )
        if hit_times:
            detected += 1
            ttds.append(max(0.0, min(hit_times) - lo))
        for i, m in enumerate(merged.itertuples()):
            if not matched[i] and lo <= m.t <= hi and _names_step(m.names, step_names, nets):
                matched[i] = True
    n_alerts = len(merged)
    recall = detected / n_steps if n_steps else float("nan")
    precision = matched.sum() / n_alerts if n_alerts else float("nan")
    f1 = _f1(recall, precision, n_steps, n_alerts)
    days = monitored_s / 86400.0
    return DetectorScore(
        detector=detector,
        steps=n_steps,
        detected=detected,
        recall=recall,
        alerts=n_alerts,
        matched_alerts=int(matched.sum()),
        precision=float(precision),
        f1=float(f1),
        ttd_median=float(np.median(ttds)) if ttds else float("nan"),
        ttd_p95=float(np.percentile(ttds, 95)) if ttds else float("nan"),
        ttds=tuple(ttds),
        false_alarms_per_day=float((n_alerts - matched.sum()) / days) if days > 0 else float("nan"),
    )


def flow_pr_auc(truth: pd.DataFrame, flow_scores: pd.DataFrame) -> float:
    """Average precision of per-flow scores against the flows attack steps caused."""
    from sklearn.metrics import average_precision_score

    if flow_scores.empty or truth.empty:
        return float("nan")
    bad = {int(f) for ids in truth["flow_ids"] for f in ids}
    labels = flow_scores["flow_id"].isin(bad).to_numpy()
    if labels.all() or not labels.any():
        return float("nan")
    return float(average_precision_score(labels, flow_scores["score"].to_numpy()))


def score_run(
    truth: pd.DataFrame,
    alerts: pd.DataFrame,
    detectors: list[str],
    monitored_s: float,
    flow_scores: pd.DataFrame | None = None,
    not_attempted: int = 0,
) -> list[DetectorScore]:
    """One score per detector, then their union (all alerts together)."""
    scores = []
    for d in detectors:
        s = score_alerts(truth, alerts[alerts["detector"] == d], monitored_s, d, not_attempted)
        if flow_scores is not None and not flow_scores.empty:
            s = replace(
                s, flow_pr_auc=flow_pr_auc(truth, flow_scores[flow_scores["detector"] == d])
            )
        scores.append(s)
    if len(detectors) > 1:
        scores.append(
            score_alerts(truth, alerts.assign(detector=UNION), monitored_s, UNION, not_attempted)
        )
    return scores


def impact(
    truth: pd.DataFrame,
    harm: dict[str, Any],
    skipped: list[dict[str, Any]],
    held: list[str] | None = None,
    devices: Collection[str] | None = None,
) -> dict[str, Any]:
    """Blast radius, steps stopped by the design, and physical harm.

    With `devices` (the facility's device names), blast radius counts only those: a switch
    whose port took a rogue box, or the attacker's own positions, are not site devices.
    """
    from attacks import TECHNIQUES

    ok = truth[truth["succeeded"]] if not truth.empty else truth
    taken = ok
    if not ok.empty:
        takes = ok["name"].map(lambda n: TECHNIQUES[n].compromises if n in TECHNIQUES else True)
        taken = ok[takes.astype(bool)]
    compromised = sorted(  # steps with several targets list them comma-joined; bots count too
        {t for cell in taken["target"] for t in str(cell).split(",") if t and "/" not in t}
        | set(held or [])
    )
    if devices is not None:
        compromised = [c for c in compromised if c in devices]
    blocked = truth[truth["blocked_by"].astype(str).str.len() > 0] if not truth.empty else truth
    first_attack = float(truth["t_start"].min()) if not truth.empty else None
    first_impact = harm.get("first_physical_impact_s")
    return {
        "steps_attempted": len(truth),
        "steps_succeeded": len(ok),
        "steps_blocked": len(blocked),
        "steps_blocked_by_design": int((~blocked["blocked_by"].str.startswith("response:")).sum())
        if not blocked.empty
        else 0,
        "steps_blocked_by_response": int(blocked["blocked_by"].str.startswith("response:").sum())
        if not blocked.empty
        else 0,
        "blocked_by": sorted(set(blocked["blocked_by"])) if not blocked.empty else [],
        "steps_not_attempted": skipped,
        "blast_radius": len(compromised),
        "compromised": compromised,
        "time_to_physical_impact_s": (
            first_impact - first_attack
            if first_impact is not None
            and first_attack is not None
            and first_impact >= first_attack
            else None
        ),
        **harm,
    }
