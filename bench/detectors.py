"""Detector throughput: flow rows per second of each registered detector's `observe`, one core.

Telemetry comes from the generated campus of bench/scale.py (default 1,000 devices): the
warm-up fits each detector, then the same monitored batches are observed by each, and the
figure is rows observed / seconds spent in observe. Prints a table; --json for machines.
Target (issue 4): >= 100,000 flow rows per second per detector.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one core: the target is per core, and BLAS threads would blur it
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import campus_scenario  # noqa: E402
from detectors import REGISTRY, SiteView  # noqa: E402
from twin.engine import Engine  # noqa: E402
from twin.scenario import parse_scenario  # noqa: E402
from twin.telemetry import TelemetryBatch  # noqa: E402

TARGET = 100_000


def record(
    devices: int, hours: float, warmup_h: float
) -> tuple[TelemetryBatch, list[TelemetryBatch], SiteView]:
    raw = campus_scenario(devices, "flat", hours, seed=1)
    raw["warmup"] = warmup_h * 3600
    spec, problems = parse_scenario(raw, ROOT / "scenarios")
    if problems or spec is None:
        raise SystemExit("\n".join(str(p) for p in problems))
    e = Engine(spec)
    warm = [e.run_until(t) for t in range(300, int(spec.warmup) + 1, 300)]
    batches = [e.run_until(t) for t in range(int(spec.warmup) + 300, int(spec.duration) + 1, 300)]
    return TelemetryBatch.concat(warm), batches, SiteView(e.facility, e.net.policy)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--devices", type=int, default=1000, help="campus size (default 1000)")
    p.add_argument("--hours", type=float, default=3.0, help="simulated hours (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up hours (default 1)")
    p.add_argument("--detectors", help="comma-separated names (default: every registered one)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    names = [n for n in (args.detectors or "").split(",") if n] or sorted(
        n
        for n in REGISTRY
        if not REGISTRY[n].needs_captures  # no captures on the sim backend
    )
    baseline, batches, site = record(args.devices, args.hours, args.warmup)
    rows = sum(len(b.flows) for b in batches)
    results = []
    for name in names:
        det = REGISTRY[name]().fit(baseline, site)
        start = time.process_time()
        for b in batches:
            det.observe(b)
        spent = time.process_time() - start
        rate = rows / spent if spent > 0 else float("inf")
        results.append(
            {"detector": name, "rows": rows, "cpu_s": round(spent, 3), "rows_per_s": round(rate)}
        )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{args.devices} devices, {len(batches)} batches of 300 s, {rows:,} flow rows observed (CPU time, one core)"
    )
    for r in results:
        ok = "PASS" if r["rows_per_s"] >= TARGET else "FAIL"
        print(
            f"  {r['detector']:<18} {r['rows_per_s']:>12,} rows/s  ({r['cpu_s']:.2f} s)  {ok} (>= {TARGET:,})"
        )


if __name__ == "__main__":
    main()
