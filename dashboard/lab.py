"""The detector lab's background benchmark, and reading a study's results for the what-if page."""

from __future__ import annotations

import inspect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MAX_SEEDS = 5


@dataclass
class BenchJob:
    """One `twin.bench.bench` call in a thread, with its progress and its tables."""

    scenarios: list[Path]
    detectors: list[str]
    seeds: list[int]
    out: Path
    duration: str | None = None
    state: str = "queued"  # queued | running | done | failed
    done: int = 0
    failed: int = 0
    total: int = 0
    current: str = ""
    error: str = ""
    board: pd.DataFrame | None = None
    per_run: pd.DataFrame | None = None
    started: float = field(default_factory=time.time)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Run in a process of its own (the web server's callbacks keep their core), with a
        thread here reading its progress."""
        from dashboard.host import _context

        ctx = _context()
        self.state = "running"
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_bench_process,
            args=(
                self.scenarios,
                self.detectors,
                self.seeds,
                self.out,
                self.duration,
                queue,
                os.getpid(),
            ),
            name="detector-lab",
            daemon=True,
        )
        proc.start()
        self._thread = threading.Thread(target=self._follow, args=(proc, queue), daemon=True)
        self._thread.start()

    def _follow(self, proc: Any, queue: Any) -> None:
        import queue as q

        while True:
            try:
                kind, payload = queue.get(timeout=1.0)
            except q.Empty:
                if not proc.is_alive():
                    self.state, self.error = (
                        "failed",
                        f"the benchmark process ended ({proc.exitcode})",
                    )
                    return
                continue
            if kind == "progress":
                self._progress(*payload)
            elif kind == "done":
                try:
                    self.board, self.per_run = _tables(None, self.out)
                    self.state = "done"
                except Exception as exc:
                    self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
                proc.join(timeout=10)
                return
            else:
                self.state, self.error = "failed", str(payload)
                proc.join(timeout=10)
                return

    def _progress(self, *args: Any) -> None:
        # bench has reported (done, total, label) and (done, failed, total); tolerate both
        nums = [int(a) for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        if len(nums) >= 3:
            self.done, self.failed, self.total = nums[0] + nums[1], nums[1], nums[2]
        elif len(nums) == 2:
            self.done, self.total = nums
        labels = [a for a in args if isinstance(a, str)]
        if labels:
            self.current = labels[0]


def _bench_process(
    scenarios: list[Path], detectors: list[str], seeds: list[int], out: Path,
    duration: str | None, queue: Any, server_pid: int,
) -> None:  # fmt: skip
    """The lab's benchmark, in its own process; it ends if the web server goes."""
    from dashboard.host import _watch
    from twin import bench

    _watch(server_pid)
    job = BenchJob(scenarios, detectors, seeds, out, duration)
    try:
        call_bench(bench.bench, job, lambda *a: queue.put(("progress", a)))
    except Exception as exc:  # reported on the page
        queue.put(("failed", f"{type(exc).__name__}: {exc}"))
        return
    queue.put(("done", None))


def call_bench(fn: Any, job: BenchJob, progress: Any = None) -> Any:
    """Call bench with the keywords its current signature accepts (it is being rebuilt)."""
    wanted: dict[str, Any] = {
        "scenarios": job.scenarios, "detectors": job.detectors, "seeds": job.seeds,
        "out": job.out, "duration": job.duration, "attack_free": False,
        "progress": progress or job._progress,
        "jobs": 1,
    }  # fmt: skip
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in wanted.items() if takes_any or k in params}
    return fn(**kwargs)


def _tables(result: Any, out: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The leaderboard and per-run tables: as bench returned them, or read from its files."""
    if isinstance(result, tuple) and result and isinstance(result[0], pd.DataFrame):
        per = result[1] if len(result) > 1 and isinstance(result[1], pd.DataFrame) else None
        return result[0], per
    board = out / "leaderboard.parquet"
    if not board.exists():
        raise FileNotFoundError(f"the benchmark wrote no leaderboard in {out}")
    per_path = out / "per_run.parquet"
    return pd.read_parquet(board), pd.read_parquet(per_path) if per_path.exists() else None


# -- what-if: a study's results directory ---------------------------------------------------


STUDY_ROOTS = ("runs", "studies")  # `twin study` writes runs/study-<name>/ by default


def study_roots() -> list[Path]:
    """Where the what-if page looks: under the working directory and the repository."""
    repo = Path(__file__).resolve().parent.parent
    roots = [Path.cwd() / r for r in STUDY_ROOTS] + [repo / r for r in STUDY_ROOTS]
    return list(dict.fromkeys(p.resolve() for p in roots))


def find_studies(roots: list[Path]) -> list[Path]:
    """Study results directories (what `twin study` writes: results.parquet, study.json,
    report.html) directly under `roots` or one level down; run directories are not studies."""
    found: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for d in sorted([*root.glob("*/"), *root.glob("*/*/")]):
            if (
                d.is_dir()
                and d not in found
                and ((d / "study.json").is_file() or (d / "results.parquet").is_file())
            ):
                found.append(d)
            if len(found) >= 50:
                return found
    return found


def read_study(directory: Path) -> tuple[pd.DataFrame | None, str | None]:
    """A study's results table and the path of its report (either may be missing)."""
    table = directory / "results.parquet"
    results = pd.read_parquet(table) if table.is_file() else None
    report = directory / "report.html"
    return results, (str(report) if report.is_file() else None)
