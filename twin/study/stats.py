"""The study's statistics: per-cell summaries with bootstrap intervals, paired differences
against the baseline design, censored ECDFs, rankings, and SALib sensitivity indices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

OUTCOMES = ("blast_share", "safety_blast_share", "exposure_share", "harm", "time_to_detect_s")
LOWER_IS_BETTER = {"blast_share", "safety_blast_share", "exposure_share", "harm", "time_to_detect_s",
                   "time_to_compromise_s", "time_to_contain_s"}  # fmt: skip
CELL = ["scenario", "design", "detectors", "playbooks", "default_credentials",
        "patch_lag_days", "analyst_delay_s", "replace_unsupported"]  # fmt: skip
BOOT = 1000


def bootstrap_median(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """A 95 % percentile-bootstrap interval of the median (seeded: the report is reproducible)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.choice(values, size=(BOOT, len(values)), replace=True)
    meds = np.median(draws, axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def cells(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median, IQR, P90 and the median's bootstrap interval of `metric` per cell, over seeds."""
    ok = frame[frame["status"] == "ok"]
    keys = [c for c in CELL if c in ok and ok[c].astype(str).nunique() > 1] or ["design"]
    rows = []
    for cell, g in ok.groupby(keys, dropna=False, sort=True):
        v = g[metric].dropna().to_numpy(dtype=float)
        lo, hi = bootstrap_median(v)
        cell = cell if isinstance(cell, tuple) else (cell,)
        rows.append({
            **dict(zip(keys, cell, strict=True)), "metric": metric, "runs": len(g), "n": len(v),
            "median": float(np.median(v)) if len(v) else float("nan"),
            "q1": float(np.percentile(v, 25)) if len(v) else float("nan"),
            "q3": float(np.percentile(v, 75)) if len(v) else float("nan"),
            "p90": float(np.percentile(v, 90)) if len(v) else float("nan"),
            "ci_low": lo, "ci_high": hi,
        })  # fmt: skip
    return pd.DataFrame(rows)


def paired_differences(frame: pd.DataFrame, metric: str, baseline: str) -> pd.DataFrame:
    """Each design minus the baseline design, paired on everything else (seed included);
    only seeds both have. Median difference with its bootstrap interval."""
    ok = frame[frame["status"] == "ok"]
    keys = [c for c in CELL if c != "design" and c in ok] + ["seed"]
    base = ok[ok["design"] == baseline].set_index(keys)[metric]
    rows = []
    for design, g in ok[ok["design"] != baseline].groupby("design", sort=True):
        other = g.set_index(keys)[metric]
        common = other.index.intersection(base.index)
        diff = (other.loc[common] - base.loc[common]).dropna().to_numpy(dtype=float)
        lo, hi = bootstrap_median(diff)
        rows.append({
            "design": design, "metric": metric, "pairs": len(diff),
            "median_difference": float(np.median(diff)) if len(diff) else float("nan"),
            "ci_low": lo, "ci_high": hi,
        })  # fmt: skip
    return pd.DataFrame(rows)


def ecdf(values: pd.Series, censored: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """The ECDF over all runs (censored ones never reach it: the curve tops out below 1)."""
    n = len(values)
    seen = np.sort(values[~censored.astype(bool)].dropna().to_numpy(dtype=float))
    return seen, np.arange(1, len(seen) + 1) / max(n, 1), int(censored.astype(bool).sum())


def ranking(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Designs ranked by median safety-critical blast share, then blast share, then harm,
    each with the one sentence that says why."""
    ok = frame[frame["status"] == "ok"]
    rows = []
    for design, g in ok.groupby("design", sort=True):
        detected = g["time_to_detect_s"].notna()
        rows.append({
            "design": design,
            "safety_blast_share": float(g["safety_blast_share"].median()),
            "blast_share": float(g["blast_share"].median()),
            "harm": float(g["harm"].median()),
            "detected": float(detected.mean()),
            "blocked": float(g["steps_blocked_by_design"].median()),
            "conduits_to_open": g["conduits_to_open"].dropna().median()
            if g["conduits_to_open"].notna().any() else float("nan"),
        })  # fmt: skip
    rows.sort(key=lambda r: (r["safety_blast_share"], r["blast_share"], r["harm"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
        r["why"] = (
            f"{r['design']}: median {r['blast_share']:.0%} of devices compromised "
            f"({r['safety_blast_share']:.0%} of safety-critical), {r['harm']:.2f} harm units, "
            f"{r['blocked']:g} step(s) blocked by the design, attack detected in "
            f"{r['detected']:.0%} of runs"
            + (
                f"; an attacker needs {r['conduits_to_open']:g} more conduit(s) opened to reach "
                "a safety-critical device"
                if r["conduits_to_open"] == r["conduits_to_open"] and r["conduits_to_open"] > 0
                else ""
            )
            + "."
        )
    return rows


def sensitivity(frame: pd.DataFrame, problem: dict[str, Any], method: str, metric: str,
                points: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """Morris (mu*, sigma) or Sobol (S1, ST) indices of `metric` per design, from the runs'
    sampled points (outputs averaged over seeds and other factors, per point)."""
    ok = frame[(frame["status"] == "ok") & frame["sample"].notna()]
    rows = []
    for design, g in ok.groupby("design", sort=True):
        y = g.groupby("sample")[metric].mean().reindex(range(len(points)))
        if y.isna().any():
            continue  # a point without a finished run: indices would be wrong
        yv = y.to_numpy(dtype=float)
        if method == "morris":
            from SALib.analyze import morris

            res = morris.analyze(problem, points, yv, seed=0)
            for i, name in enumerate(problem["names"]):
                rows.append({"design": design, "factor": name, "mu_star": float(res["mu_star"][i]),
                             "sigma": float(res["sigma"][i])})  # fmt: skip
        elif method == "sobol":
            from SALib.analyze import sobol

            res = sobol.analyze(problem, yv, calc_second_order=False, seed=0)
            for i, name in enumerate(problem["names"]):
                rows.append({"design": design, "factor": name, "S1": float(res["S1"][i]),
                             "ST": float(res["ST"][i])})  # fmt: skip
    return pd.DataFrame(rows)


def audit_join(frame: pd.DataFrame, findings: list[Any]) -> list[str]:
    """Sentences joining audit findings to outcomes: what share of compromises the devices
    a rule flags account for."""
    ok = frame[frame["status"] == "ok"]
    hits = [c for cell in ok["compromised"].fillna("") for c in str(cell).split(",") if c]
    if not hits:
        return []
    out = []
    by_rule: dict[str, set[str]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, set()).add(f.subject)
    for rule, groups in sorted(by_rule.items()):
        share = sum(any(h == g or h.startswith(g + "-") for g in groups) for h in hits) / len(hits)
        if share > 0:
            out.append(
                f"the {len(groups)} device group(s) flagged '{rule}' ({', '.join(sorted(groups))}) "
                f"account for {share:.0%} of compromises across the study's runs"
            )
    return out
