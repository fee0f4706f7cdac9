"""Study throughput: a 100-run study, Dask overhead against serial, and 1 -> 2 worker scaling.

The same study (Harbour Street, the hour-long intrusion, flat and zoned, playbooks off and
on, seeds 1..N/4) runs three times into fresh directories: serially in this process, on a
LocalCluster of one worker process, and on one of two. Prints:

- the 100-run study's wall time on two workers (target: <= 2 minutes on 2 cores);
- Dask's overhead: (one worker - serial) / serial, cluster start-up included, and per run
  (target: <= 5 %);
- scaling efficiency from 1 to 2 workers in runs per CPU-second: t1 / (2 x t2) (target >= 85 %).

    .venv/bin/python bench/study.py [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.study.executor import Cluster  # noqa: E402
from twin.study.run import run_study  # noqa: E402
from twin.study.spec import load_study  # noqa: E402


def study_file(tmp: Path, runs: int) -> Path:
    seeds = max(1, runs // 4)
    doc = {
        "name": "bench",
        "facility": str(ROOT / "scenarios" / "facilities" / "harbour-dc.yaml"),
        "scenarios": [
            str(ROOT / "scenarios" / "studies" / "scenarios" / "dc-quick-intrusion.yaml")
        ],
        "designs": ["flat", "zoned"],
        "playbooks": [False, True],
        "seeds": list(range(1, seeds + 1)),
    }
    path = tmp / "bench-study.yaml"
    path.write_text(json.dumps(doc))
    return path


def timed(path: Path, out: Path, cluster: Cluster) -> tuple[float, int, float]:
    study = load_study(path)
    start = time.perf_counter()
    frame = run_study(study, out, cluster, keep_runs=False)
    wall = time.perf_counter() - start
    assert (frame["status"] == "ok").all(), frame[frame["status"] != "ok"]["error"].tolist()
    return wall, len(frame), float(frame["wall_time_s"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="twin-bench-study-") as tmp:
        path = study_file(Path(tmp), args.runs)
        serial, n, _ = timed(path, Path(tmp) / "serial", Cluster(serial=True))
        one, _, busy1 = timed(path, Path(tmp) / "one", Cluster(workers=1))
        two, _, busy2 = timed(path, Path(tmp) / "two", Cluster(workers=2))
    print(f"runs: {n} (1 simulated hour each, harbour-dc)")
    print(f"serial (in process):      {serial:7.1f} s  ({serial / n:.2f} s/run)")
    print(f"LocalCluster, 1 worker:   {one:7.1f} s  ({one / n:.2f} s/run)")
    print(f"LocalCluster, 2 workers:  {two:7.1f} s  ({two / n:.2f} s/run)")
    print(f"{n}-run study on 2 workers: {two:.1f} s (target <= 120 s)")
    print(f"Dask overhead vs serial (1 worker, start-up included): {(one - serial) / serial:+.1%} "
          f"(target <= 5 %); per run: {(one - serial) / n * 1000:+.0f} ms")  # fmt: skip
    print(f"time inside runs: 1 worker {busy1:.1f} s, 2 workers {busy2:.1f} s "
          f"(a shared or loaded machine shows up here)")  # fmt: skip
    print(f"scaling 1 -> 2 workers: {one / (2 * two):.0%} efficient in runs per CPU-second "
          f"(target >= 85 %)")  # fmt: skip
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
