"""The after-action review: a score from an exercise's event log, every line with its reason."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from twin.scoring import match_steps

HARM_KEYS = ("degree_hours_outside_band", "unsafe_tank_minutes", "doors_opened_without_badge")
DETECTED_POINTS = 15.0
CONTAINED_POINTS = 25.0
SPEED_POINTS = 20.0
CONTAIN_WITHIN = 1800.0  # s simulated: containing later than this earns no speed points
HARM_POINTS = 40.0
UNNEEDED_PENALTY = 5.0
HINT_PENALTY = 3.0


@dataclass(frozen=True)
class ScoreLine:
    item: str
    points: float
    max_points: float
    reason: str


@dataclass(frozen=True)
class Review:
    total: float
    lines: tuple[ScoreLine, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "lines": [asdict(x) for x in self.lines]}


def _clock(t: float | None, warmup: float) -> str:
    if t is None:
        return "-"
    s = max(0.0, t - warmup)
    return f"+{int(s // 3600)}:{int(s % 3600 // 60):02d}"


def steps_frame(log: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [e for e in log if e.get("kind") == "step"]
    cols = ["step_id", "technique", "name", "t_start", "t_end", "attacker", "attacker_ip",
            "target", "target_ip", "succeeded", "blocked_by", "grace", "signals",
            "flow_ids", "event_ids"]  # fmt: skip
    df = pd.DataFrame(rows, columns=cols)
    for c, empty in (("signals", ""), ("flow_ids", ()), ("event_ids", ())):
        df[c] = [empty if not isinstance(v, str | list | tuple) else v for v in df[c]]
    return df.astype({"t_start": float, "t_end": float, "grace": float}) if rows else df


def alerts_of(log: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["t", "detector", "severity", "device", "src_ip", "dst_ip", "technique", "reason",
            "evidence"]  # fmt: skip
    rows = [e for e in log if e.get("kind") == "alert"]
    df = pd.DataFrame(rows, columns=cols)
    df["evidence"] = [v if isinstance(v, list | tuple) else () for v in df["evidence"]]
    return df.astype({"t": float}) if rows else df


def _named(log: list[dict[str, Any]]) -> set[str]:
    """Every device or address the attack or the alerts named: where an action was warranted."""
    out: set[str] = set()
    for e in log:
        if e.get("kind") == "step":
            for c in ("attacker", "attacker_ip", "target", "target_ip"):
                out |= {x for x in str(e.get(c, "")).split(",") if x}
        elif e.get("kind") == "alert":
            out |= {e.get("device", ""), e.get("src_ip", ""), e.get("dst_ip", "")}
    out.discard("")
    return out


def detection_delays(steps: pd.DataFrame, alerts: pd.DataFrame) -> list[float | None]:
    """Per attack step: seconds from its start to the first alert whose evidence is
    something the step caused, whenever it came (None when no alert did): the definition
    `twin run` and `twin bench` score by."""
    first: dict[int, float] = {}
    if len(steps) and len(alerts):
        hits = match_steps(steps, alerts)
        for t, found in zip(alerts["t"].to_numpy(dtype=float), hits, strict=True):
            for i in found:
                first[i] = min(first.get(i, t), t)
    starts = steps["t_start"].to_numpy(dtype=float) if len(steps) else []
    return [max(0.0, first[i] - t0) if i in first else None for i, t0 in enumerate(starts)]


def score(
    log: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    warmup: float,
    device_ips: dict[str, str] | None = None,
) -> Review:
    """The exercise's score out of 100, a pure function of its log and the no-response harm."""
    steps = steps_frame(log)
    alerts = alerts_of(log)
    lines: list[ScoreLine] = []
    end = next((e for e in reversed(log) if e.get("kind") == "end"), None)

    if steps.empty:
        lines.append(ScoreLine("detected", 0.0, DETECTED_POINTS, "no attack step ran"))
    else:
        delays = detection_delays(steps, alerts)
        found = [d for d in delays if d is not None]
        ttd = (
            f"; the first alert came {sorted(found)[len(found) // 2] / 60:.1f} min after a step began (median)"
            if found
            else ""
        )
        lines.append(
            ScoreLine(
                "detected",
                round(DETECTED_POINTS * len(found) / len(delays), 1),
                DETECTED_POINTS,
                f"the detectors flagged {len(found)} of {len(delays)} attack steps{ttd}",
            )
        )

    contained = next((e["t"] for e in log if e.get("kind") == "contained"), None)
    first = float(steps["t_start"].min()) if not steps.empty else None
    if contained is not None:
        lines.append(
            ScoreLine("contained", CONTAINED_POINTS, CONTAINED_POINTS,
                      f"the attacker was cut off at {_clock(contained, warmup)}")
        )  # fmt: skip
    else:
        why = "no attack step ran" if first is None else "the attacker kept their foothold"
        lines.append(ScoreLine("contained", 0.0, CONTAINED_POINTS, why))

    if contained is not None and first is not None:
        ttc = max(0.0, contained - first)
        pts = round(SPEED_POINTS * max(0.0, 1.0 - ttc / CONTAIN_WITHIN), 1)
        lines.append(
            ScoreLine("time to contain", pts, SPEED_POINTS,
                      f"{ttc / 60:.1f} min from the first attack step to containment "
                      f"(full points at once, none after {CONTAIN_WITHIN / 60:.0f} min)")
        )  # fmt: skip
    else:
        lines.append(ScoreLine("time to contain", 0.0, SPEED_POINTS, "not contained"))

    harm = end["harm"] if end else {}
    lines.append(_harm_line(harm, baseline))

    actions = [e for e in log if e.get("kind") == "action" and e.get("status") == "applied"]
    named = _named(log)
    ips = device_ips or {}
    unneeded = [
        a for a in actions
        if a["action"] != "block_conduit" and a["target"] not in named and ips.get(a["target"]) not in named
    ]  # fmt: skip
    if unneeded:
        which = ", ".join(f"{a['action']} {a['target']}" for a in unneeded[:6])
        lines.append(
            ScoreLine("unneeded actions", -UNNEEDED_PENALTY * len(unneeded), 0.0,
                      f"{len(unneeded)} action(s) on devices neither the attack nor any alert "
                      f"touched: {which}")
        )  # fmt: skip
    else:
        lines.append(ScoreLine("unneeded actions", 0.0, 0.0,
                               f"all {len(actions)} action(s) were on devices the attack or "
                               "the alerts named"))  # fmt: skip
    hints = [e for e in log if e.get("kind") == "hint"]
    lines.append(
        ScoreLine("hints used", -HINT_PENALTY * len(hints) if hints else 0.0, 0.0,
                  f"{len(hints)} hint(s) from the trainer" if hints else "no hints needed")
    )  # fmt: skip
    total = max(0.0, min(100.0, round(sum(x.points for x in lines), 1)))
    return Review(total, tuple(lines))


def _harm_line(harm: dict[str, Any], baseline: dict[str, Any] | None) -> ScoreLine:
    if baseline is None:
        return ScoreLine("physical harm", 0.0, HARM_POINTS, "no-response baseline not computed")
    shares, parts = [], []
    for k in HARM_KEYS:
        base, got = float(baseline.get(k, 0.0)), float(harm.get(k, 0.0))
        if base > 0:
            shares.append(min(1.0, got / base))
            parts.append(f"{got:g} of {base:g} {k.replace('_', ' ')}")
        elif got > 0:
            shares.append(1.0)
            parts.append(f"{got:g} {k.replace('_', ' ')} (none without a response)")
    if not shares:
        return ScoreLine("physical harm", HARM_POINTS, HARM_POINTS,
                         "no physical harm, and none without a response either")  # fmt: skip
    kept = 1.0 - sum(shares) / len(shares)
    return ScoreLine(
        "physical harm",
        round(HARM_POINTS * kept, 1),
        HARM_POINTS,
        f"{kept:.0%} of the harm avoided against the same run with no response: "
        + "; ".join(parts),
    )


def export_json(log: list[dict[str, Any]], review: Review, meta: dict[str, Any]) -> str:
    return json.dumps({**meta, "score": review.as_dict(), "log": log}, indent=1, default=str)


def export_csv(log: list[dict[str, Any]]) -> str:
    """The timeline as one CSV table: time, kind, and the entry's fields."""
    keys = ["t", "kind"]
    for e in log:
        keys += [k for k in e if k not in keys and k != "harm"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for e in sorted(log, key=lambda e: float(e.get("t", 0.0) or 0.0)):
        w.writerow({k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in e.items()})
    return buf.getvalue()
