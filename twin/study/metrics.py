"""Per-run architecture metrics, from a run's summary and truth table.

Definitions (seconds are simulated time; "censored" means the event did not happen before
the run ended, so the value is unknown but later than `censor_s`, never zero):

- blast_share: devices compromised over all the site's devices (the internet's not counted).
- safety_blast_share: safety-critical devices (PLCs, air handlers, door controllers)
  compromised over all of them.
- hops_to_safety: fewest allowed hops in the design's reachability graph from the foothold
  (the first device the attacker took; the internet when none) to a safety-critical device;
  None when the design lets the foothold reach none.
- exposure_share: devices an attacker from the internet could reach, pivoting through
  every device it could take on the way (factory or wordlist passwords, a listed known
  exploited vulnerability), over all the site's devices: the run's design and lifecycle
  posture seen statically, whatever the scripted campaign happened to try.
- conduits_to_open: fewest conduits that would have to be opened before a safety-critical
  device is reachable from the foothold (0: reachable as designed).
- time_to_compromise_s: from the first attack step's start to the end of the first
  successful step that took a safety-critical device (censored when none was taken).
- time_to_detect_s: the shortest delay from an attack step's start to the alert that
  detected it, over steps and detectors (censored when no step was detected).
- time_to_contain_s: from the first attack step to the response that contained it.
- harm: degree-hours outside comfort/safety bands, plus unsafe tank-minutes / 60, plus
  doors opened without a badge; detected_before_harm: a detection came before the first
  physical impact (or there was detection and no impact).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from twin.schema import FacilitySpec
from twin.study.design import (
    attacker_reach,
    conduits_to_open,
    graph_of,
    hops_to_safety,
    safety_critical,
)

CENSORED = ("time_to_compromise_s", "time_to_detect_s", "time_to_contain_s")


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def run_metrics(
    summary: dict[str, Any], truth: pd.DataFrame, facility: FacilitySpec, design: str
) -> dict[str, Any]:
    site, g = graph_of(facility, design)
    internet = set(site.internet_zones())
    own = [d.name for d in site.devices if d.zone not in internet]
    critical = safety_critical(site)
    imp = summary["impact"]
    compromised = [c for c in imp["compromised"] if c in set(own)]
    hit = truth[truth["succeeded"]].sort_values("t_end") if not truth.empty else truth
    foothold = next(
        (t for cell in hit["target"] for t in str(cell).split(",") if t in site.by_name), None
    ) if not hit.empty else None  # fmt: skip
    start = foothold or "internet"
    first = float(truth["t_start"].min()) if not truth.empty else None
    end = float(summary["simulated_s"])
    censor = end - first if first is not None else None
    ttc = None
    if first is not None and not hit.empty:
        took = hit[hit["target"].map(lambda c: any(t in critical for t in str(c).split(",")))]
        if not took.empty:
            ttc = float(took["t_end"].min()) - first
    ttds = [t for s in summary["scores"] if s["detector"] != "union" for t in (s.get("ttds") or [])]
    ttd = float(min(ttds)) if ttds else None
    tti = _num(imp.get("time_to_physical_impact_s"))
    harm = (
        float(imp.get("degree_hours_outside_band") or 0.0)
        + float(imp.get("unsafe_tank_minutes") or 0.0) / 60.0
        + float(imp.get("doors_opened_without_badge") or 0.0)
    )
    union = next((s for s in summary["scores"] if s["detector"] == "union"), None)
    best = union or (summary["scores"][0] if summary["scores"] else {})
    out: dict[str, Any] = {
        "attacked": first is not None,
        "steps_attempted": imp["steps_attempted"],
        "steps_succeeded": imp["steps_succeeded"],
        "steps_blocked_by_design": imp.get("steps_blocked_by_design", 0),
        "blast_radius": len(compromised),
        "blast_share": len(compromised) / len(own) if own else 0.0,
        "safety_blast_share": (
            sum(c in critical for c in compromised) / len(critical) if critical else 0.0
        ),
        "exposure_share": len(attacker_reach(site, g)) / len(own) if own else 0.0,
        "foothold": foothold,
        "hops_to_safety": hops_to_safety(g, start, critical),
        "conduits_to_open": conduits_to_open(site, g, start, critical),
        "time_to_compromise_s": ttc,
        "time_to_detect_s": ttd,
        "time_to_contain_s": _num(imp.get("time_to_containment_s")),
        "censor_s": censor,
        "harm": round(harm, 4),
        "degree_hours_outside_band": float(imp.get("degree_hours_outside_band") or 0.0),
        "unsafe_tank_minutes": float(imp.get("unsafe_tank_minutes") or 0.0),
        "doors_opened_without_badge": float(imp.get("doors_opened_without_badge") or 0.0),
        "time_to_physical_impact_s": tti,
        "detected_before_harm": (
            None if first is None else (ttd is not None and (tti is None or ttd <= tti))
        ),
        "recall": _num(best.get("recall")),
        "precision": _num(best.get("precision")),
        "f1": _num(best.get("f1")),
        "false_alarms_per_day": _num(best.get("false_alarms_per_day")),
        "compromised": ",".join(compromised),
    }
    for name in CENSORED:
        out[name.removesuffix("_s") + "_censored"] = first is not None and out[name] is None
    return out
