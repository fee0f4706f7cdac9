"""Emulated backend benchmark: does the kernel keep real time while the pollers work hard?

Runs harbour-dc grown to about 200 devices on the emulated network at real-time speed
(speed 1), with the BMS polling every Modbus device fast enough for ~1,200 Modbus
transactions per second in aggregate, and prints:

- the kernel's lag behind the wall clock at each physics step (p50, p99, max) against
  the target p99 <= 100 ms;
- the Modbus reads per second the poller processes completed, against >= 1,000/s;
- deploy, run and teardown times.

Needs root. Usage: python bench/emulated_realtime.py [--devices 200] [--seconds 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.emulated_deploy import scaled_harbour, scaled_harbour_spec  # noqa: E402
from twin.devices import KINDS  # noqa: E402
from twin.network.emulated import missing_requirements  # noqa: E402
from twin.run import execute  # noqa: E402
from twin.scenario import parse_scenario  # noqa: E402

TARGET_LAG_P99_MS = 100.0
TARGET_TX_PER_S = 1000.0


def scenario(devices: int, seconds: float, tx_per_s: float) -> tuple[dict[str, Any], int, int, int]:
    """A no-attack scenario on the grown facility; the BMS interval set for `tx_per_s`."""
    raw = scaled_harbour_spec(devices)
    facility = scaled_harbour(devices)
    bms = next(d for d in facility.devices if d.kind == "bms")
    polled = [d for d in facility.resolve_all(bms.params.polls) if "modbus" in d.services]
    reads = sum(
        1
        for d in polled
        for t in ("coil", "discrete", "holding", "input")
        if KINDS[d.kind].registers.span(t) is not None
    )
    for spec in raw["devices"]:
        if spec["kind"] == "bms":
            spec["params"]["interval_s"] = round(reads / tx_per_s, 4)
    return (
        {
            "name": "realtime-bench",
            "facility": raw,
            "design": "zoned",
            "duration": seconds,
            "warmup": 10,
            "seed": 1,
            "backend": "mininet",
            "speed": 1.0,
            "physics_step": 0.5,
            "sample_interval": 5,
            "detectors": [],
        },
        len(facility.devices),
        len(polled),
        reads,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0, help="wall (= simulated) time")
    parser.add_argument("--rate", type=float, default=1200.0, help="Modbus reads/s to ask for")
    args = parser.parse_args()
    missing = missing_requirements()
    if missing:
        raise SystemExit("emulated bench cannot run: " + "; ".join(missing))
    raw, n_devices, n_polled, reads = scenario(args.devices, args.seconds, args.rate)
    spec, problems = parse_scenario(raw, ROOT / "scenarios")
    if spec is None:
        raise SystemExit("bench scenario is invalid:\n" + "\n".join(map(str, problems)))
    with tempfile.TemporaryDirectory(prefix="twin-rt-bench-") as d:
        start = time.perf_counter()
        result = execute(spec, Path(d) / "run", counterfactual=False)
        total = time.perf_counter() - start
    s = result.summary
    stats = s["emulated"]
    rate = stats["poller_reads"] / s["duration_s"]
    print(
        f"{n_devices} devices ({stats['hosts']} hosts), BMS polls {n_polled} devices: "
        f"{reads} reads per cycle every {raw['facility']['devices'][0]['params']['interval_s']} s"
    )
    print(
        f"run: {s['duration_s']:.0f} s at speed 1, {total:.1f} s wall in all; deploy with every "
        f"face serving and captures recording {stats['deploy_s']} s (target <= 20), "
        f"teardown {stats['teardown_s']} s (target <= 10)"
    )
    print(
        f"kernel lag at each physics step: p50 {stats['lag_p50_ms']} ms, "
        f"p99 {stats['lag_p99_ms']} ms (target <= {TARGET_LAG_P99_MS:.0f}), max {stats['lag_max_ms']} ms"
    )
    print(
        f"Modbus reads completed by the poller: {stats['poller_reads']} = {rate:.0f}/s "
        f"(target >= {TARGET_TX_PER_S:.0f}/s); packets metered from the captures: {stats['packets_metered']}"
    )
    ok = (
        stats["lag_p99_ms"] <= TARGET_LAG_P99_MS
        and rate >= TARGET_TX_PER_S
        and stats["deploy_s"] <= 20
        and stats["teardown_s"] <= 10
    )
    print("targets met" if ok else "targets NOT met")


if __name__ == "__main__":
    main()
