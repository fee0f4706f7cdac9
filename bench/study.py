"""Study throughput: a 100-run study, Dask overhead against serial, and 1 -> 2 worker scaling.

The same study (Harbour Street, the hour-long intrusion, flat and zoned, playbooks off and
on, seeds 1..N/4) runs into fresh directories: serially in this process, on a LocalCluster
of one worker process, on one of two, and - the baseline for scaling - as two plain serial
processes side by side (no Dask), each with half the runs. Prints:

- the 100-run study's wall time on two workers (target: <= 2 minutes on 2 cores);
- Dask's overhead: (one worker - serial) / serial, cluster start-up included, and per run
  (target: <= 5 %), split into time inside the runs and time outside them;
- scaling efficiency from 1 to 2 workers in runs per CPU-second: t1 / (2 x t2) (target
  >= 85 %), beside the same figure for two plain processes (serial / (2 x side by side)):
  what two simulations at once cost on this machine without any executor;
- CPU seconds of each phase, of this process and of its worker (or side-by-side) processes:
  on a shared machine, whether a phase did more work or only waited for a core.

With --dask-defaults it also runs the one-worker cluster with Dask's own worker settings
(twin.study.executor.WORKER_CONFIG off): the executor's settings against Dask's, measured
in the same script run.

    .venv/bin/python bench/study.py [--runs 100] [--dask-defaults]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.study import executor  # noqa: E402
from twin.study.executor import Cluster  # noqa: E402
from twin.study.run import plan, run_study  # noqa: E402
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


CPU: dict[str, tuple[float, float]] = {}  # phase -> CPU seconds (this process, its children)


def cpu_now() -> tuple[float, float]:
    """CPU seconds so far of this process (client, scheduler, nannies; runs when serial) and
    of its finished children (worker processes, side-by-side processes)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def cpu_since(phase: str, before: tuple[float, float]) -> None:
    now = cpu_now()
    CPU[phase] = (now[0] - before[0], now[1] - before[1])


def timed(path: Path, out: Path, cluster: Cluster, phase: str) -> tuple[float, int, float]:
    """Wall time of the whole study, its runs, and the time spent inside them."""
    study = load_study(path)
    cpu = cpu_now()
    start = time.perf_counter()
    frame = run_study(study, out, cluster, keep_runs=False)
    wall = time.perf_counter() - start
    cpu_since(phase, cpu)
    assert (frame["status"] == "ok").all(), frame[frame["status"] != "ok"]["error"].tolist()
    return wall, len(frame), float(frame["wall_time_s"].sum())


def serial_part(path: Path, out: Path, part: str) -> None:
    """One of the side-by-side processes: every k-th run from the i-th, serially, no Dask."""
    from twin.study.executor import ResultStore, run_all
    from twin.study.task import run_cell

    i, k = (int(x) for x in part.split("/"))
    runs, shared = plan(load_study(path), keep_runs=False)
    mine = {key: runs[key] for key in list(runs)[i::k]}
    records = run_all(run_cell, mine, shared, ResultStore(out), Cluster(serial=True))
    assert all(r["status"] == "ok" for r in records.values())
    print(
        json.dumps(
            {"runs": len(records), "in_runs": sum(r["wall_time_s"] for r in records.values())}
        )
    )


def side_by_side(path: Path, out: Path, processes: int = 2) -> tuple[float, float]:
    """Wall time of `processes` plain serial processes sharing the runs (start-up included),
    and the time spent inside the runs."""
    cpu = cpu_now()
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--part",
                f"{i}/{processes}",
                "--study",
                str(path),
                "--out",
                str(out / f"part{i}"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    cpu_since("side", cpu)
    if any(p.returncode for p in procs):
        raise SystemExit("a side-by-side serial process failed")
    return wall, sum(json.loads(o.strip().splitlines()[-1])["in_runs"] for o in outputs)


def with_dask_defaults(path: Path, out: Path) -> tuple[float, int, float]:
    """The one-worker study on workers as Dask configures them by default."""
    ours, env = executor.WORKER_CONFIG, dict(os.environ)
    executor.WORKER_CONFIG = {}
    try:
        return timed(path, out, Cluster(workers=1), "defaults")
    finally:
        executor.WORKER_CONFIG = ours
        os.environ.clear()  # Dask's nanny writes its pre-spawn environment into ours
        os.environ.update(env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument(
        "--dask-defaults",
        action="store_true",
        help="also run one worker with Dask's default worker settings, for comparison",
    )
    # one side-by-side serial process (started by this script)
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--study", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        serial_part(args.study, args.out, args.part)
        return
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="twin-bench-study-") as tmp:
        path = study_file(Path(tmp), args.runs)
        serial, n, busy0 = timed(path, Path(tmp) / "serial", Cluster(serial=True), "serial")
        one, _, busy1 = timed(path, Path(tmp) / "one", Cluster(workers=1), "one")
        two, _, busy2 = timed(path, Path(tmp) / "two", Cluster(workers=2), "two")
        side, busy_side = side_by_side(path, Path(tmp) / "side")
        if args.dask_defaults:
            plain, _, busy_plain = with_dask_defaults(path, Path(tmp) / "defaults")
    print(f"runs: {n} (1 simulated hour each, harbour-dc)")
    print(f"serial (in process):      {serial:7.1f} s  ({serial / n:.2f} s/run)")
    print(f"LocalCluster, 1 worker:   {one:7.1f} s  ({one / n:.2f} s/run)")
    print(f"LocalCluster, 2 workers:  {two:7.1f} s  ({two / n:.2f} s/run)")
    print(f"2 plain serial processes: {side:7.1f} s  ({side / n:.2f} s/run, side by side, no Dask)")
    print(f"{n}-run study on 2 workers: {two:.1f} s (target <= 120 s)")
    print(f"Dask overhead vs serial (1 worker, start-up included): {(one - serial) / serial:+.1%} "
          f"(target <= 5 %); per run: {(one - serial) / n * 1000:+.0f} ms")  # fmt: skip
    print(f"  inside runs {busy1 - busy0:+.1f} s ({busy0:.1f} -> {busy1:.1f} s), outside runs "
          f"(start-up, scheduling, stop) {(one - busy1) - (serial - busy0):+.1f} s")  # fmt: skip
    if args.dask_defaults:
        print(f"  with Dask's default worker settings instead: {plain:.1f} s, "
              f"{(plain - serial) / serial:+.1%}; inside runs {busy_plain:.1f} s")  # fmt: skip
    print(f"time inside runs: 1 worker {busy1:.1f} s, 2 workers {busy2:.1f} s, "
          f"2 plain processes {busy_side:.1f} s (a shared or loaded machine shows up here)")  # fmt: skip
    print(f"scaling 1 -> 2 workers: {one / (2 * two):.0%} efficient in runs per CPU-second "
          f"(target >= 85 %)")  # fmt: skip
    print(f"  two plain processes, no Dask: {serial / (2 * side):.0%} efficient (serial / 2 x side "
          f"by side): the machine's own cost of two simulations at once")  # fmt: skip
    names = {"serial": "serial", "one": "1 worker", "two": "2 workers",
             "side": "2 plain processes", "defaults": "1 worker, Dask's defaults"}  # fmt: skip
    print("CPU seconds (this process: client, scheduler, nannies | worker or side processes): "
          + "; ".join(f"{names[k]} {a:.1f} | {b:.1f}" for k, (a, b) in CPU.items()))  # fmt: skip
    one_cpu, two_cpu = sum(CPU["one"]), sum(CPU["two"])
    print(f"  by CPU-seconds consumed (a core taken by other jobs does not count): 1 -> 2 "
          f"workers {one_cpu / two_cpu:.0%}; serial -> 2 plain processes "
          f"{sum(CPU['serial']) / sum(CPU['side']):.0%}")  # fmt: skip
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
