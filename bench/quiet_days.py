"""Quiet days: long attack-free runs from several starts (night, weekend) per member, false alarms.

The library's attack-free runs are short and start where their scenario does, so a detector
whose warm-up missed part of the daily cycle (night set-up, weekends, quiet nights) can look
clean there. This runs each named scenario without its campaign for `--hours` from every
`--starts` time, seed and design, fits each default-ensemble member on the scenario's own
warm-up and counts its alerts: every one is a false alarm. Target (issue 12): <= 1 per
detector per day.

    .venv/bin/python bench/quiet_days.py --seeds 4 --hours 48
    .venv/bin/python bench/quiet_days.py --designs zoned,micro --starts 2026-01-18T12:00:00
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors import REGISTRY, SiteView  # noqa: E402
from detectors.ensemble import DEFAULT_MEMBERS  # noqa: E402
from twin.engine import Engine  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402
from twin.telemetry import TelemetryBatch  # noqa: E402

TARGET = 1.0
# Monday morning, Wednesday evening, Saturday night: a working day, a night, a weekend
STARTS = "2026-01-12T06:00:00,2026-01-14T17:00:00,2026-01-17T01:00:00"
SCENARIOS = "flagship,office-camera-botnet,plant-insider-lie"  # one per library facility


def quiet_run(
    stem: str, start: str, seed: int, hours: float, design: str | None, members: list[str]
) -> tuple[float, dict[str, list[str]]]:
    """Monitored days and each member's alerts (when, device, reason) on one attack-free run."""
    overrides: dict[str, Any] = {"campaign": None, "seed": seed, "duration": f"{hours:g}h", "start": start,
                 "responses": [], **({"design": design} if design else {})}  # fmt: skip
    spec = load_scenario(ROOT / "scenarios" / f"{stem}.yaml", overrides)
    engine = Engine(spec)
    t, warm = 0.0, []
    while t < spec.warmup:
        t = min(t + spec.batch_interval, spec.warmup)
        warm.append(engine.run_until(t))
    site = SiteView(engine.facility, engine.net.policy)
    baseline = TelemetryBatch.concat(warm)
    detectors = {n: REGISTRY[n]().fit(baseline, site) for n in members}
    said: dict[str, list[str]] = {n: [] for n in members}
    while t < spec.duration:
        t = min(t + spec.batch_interval, spec.duration)
        batch = engine.run_until(t)
        for n, d in detectors.items():
            said[n] += [f"{a.t:.0f} {a.device}: {a.reason}" for a in d.observe(batch)]
    return (spec.duration - spec.warmup) / 86400.0, said


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scenarios", default=SCENARIOS, help=f"comma-separated stems ({SCENARIOS})")
    p.add_argument("--starts", default=STARTS, help="comma-separated ISO start times")
    p.add_argument("--seeds", default="4", help="comma-separated seeds (default 4)")
    p.add_argument("--designs", default="", help="comma-separated designs (default: scenario's)")
    p.add_argument("--hours", type=float, default=48.0, help="run length (default 48)")
    p.add_argument("--detectors", default=",".join(DEFAULT_MEMBERS))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    members = [n for n in args.detectors.split(",") if n]
    designs: list[str | None] = [d for d in args.designs.split(",") if d] or [None]
    totals = dict.fromkeys(members, 0)
    days, runs = 0.0, []
    for stem in args.scenarios.split(","):
        for start in args.starts.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for design in designs:
                    d, said = quiet_run(stem, start, seed, args.hours, design, members)
                    days += d
                    runs.append({"scenario": stem, "start": start, "seed": seed,
                                 "design": design, "days": d, "alerts": said})  # fmt: skip
                    for n, a in said.items():
                        totals[n] += len(a)
                    if not args.json:
                        loud = {n: len(a) for n, a in said.items() if a}
                        print(
                            f"  {stem} from {start} seed {seed} {design or ''}: {loud or 'quiet'}"
                        )
    if args.json:
        print(json.dumps({"days": days, "totals": totals, "runs": runs}, indent=1))
        return
    print(f"{len(runs)} attack-free runs, {days:.2f} monitored days; false alarms per day:")
    for n, count in totals.items():
        rate = count / days if days else float("nan")
        ok = "PASS" if rate <= TARGET else "FAIL"
        print(f"  {n:<18} {count:>4}  {rate:6.2f}/day  {ok} (<= {TARGET:g})")


if __name__ == "__main__":
    main()
