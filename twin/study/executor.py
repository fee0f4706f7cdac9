"""Where many runs execute: in this process, on an embedded Dask LocalCluster, or on a cluster.

One pool for the code base (`twin study` and `twin bench` both come here). Each task is a
pure function of its parameters, keyed by their hash; its record is written atomically
under that key, so a study stopped any way at all resumes where it stopped and redoes no
finished run. A failed task is tried once more, then recorded with its error, and the rest
go on. `--serial` calls the same function in this process, for debugging.

Workers write each run's tables under the study directory and the client writes the
records, so on a cluster of several machines the study directory must be on a filesystem
they share (the same path everywhere), and the workers need the twin installed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.errors import InputError
from twin.telemetry import write_json_atomic

# fn(params, shared, workdir) -> a JSON-able record of the run
Task = Callable[[dict[str, Any], Any, Path], dict[str, Any]]
Progress = Callable[[int, int, int], None]  # done, failed, total
Finished = Callable[[str, dict[str, Any]], None]  # key, record: each run executed now
ATTEMPTS = 2  # a failed run is tried once more


class ResultStore:
    """Run records by key (`results/<key>.json`), and a log of every attempt started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results = root / "results"
        self.results.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.results / f"{key}.json"

    def finished(self, key: str) -> bool:
        """A run is finished when its record says so (a failed one is tried again)."""
        try:
            return bool(json.loads(self.path(key).read_text())["status"] == "ok")
        except (OSError, ValueError, KeyError):
            return False

    def load(self, key: str) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(self.path(key).read_text())
        return record

    def save(self, key: str, record: dict[str, Any]) -> None:
        write_json_atomic(self.path(key), record)

    def attempts(self) -> list[str]:
        """Keys of every attempt ever started, in order (how often each run was executed)."""
        log = self.root / "attempts.log"
        return log.read_text().split() if log.exists() else []


def attempt(fn: Task, key: str, params: dict[str, Any], shared: Any, root: str) -> dict[str, Any]:
    """One attempt of one run, where it executes (this process or a Dask worker)."""
    base = Path(root)
    # one short append per attempt: O_APPEND keeps lines whole across processes
    fd = os.open(base / "attempts.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    wall = time.perf_counter()
    record = fn(params, shared, base / "runs" / key)
    return {
        "key": key,
        "params": params,
        "status": "ok",
        "error": None,
        **record,
        "wall_time_s": round(time.perf_counter() - wall, 3),
    }


def _failed(key: str, params: dict[str, Any], error: BaseException) -> dict[str, Any]:
    last = traceback.format_exception_only(type(error), error)[-1].strip()
    return {"key": key, "params": params, "status": "failed", "error": last}


@dataclass(frozen=True)
class Cluster:
    """Which executor: serial, an embedded LocalCluster of `workers`, or a scheduler."""

    serial: bool = False
    workers: int | None = None
    scheduler: str | None = None  # an address (tcp://host:port) or a scheduler file

    def describe(self) -> str:
        if self.serial:
            return "serially in this process"
        if self.scheduler:
            return f"on the Dask cluster at {self.scheduler}"
        return f"on a local Dask cluster of {self.workers or _default_workers()} worker processes"


# The embedded cluster's workers run one simulation at a time, like a serial run; Dask's
# defaults are for array work and cost a run time it does not spend serially (measured with
# bench/study.py, which prints the split):
# - the statistical profiler samples the running thread's stack every 10 ms, under the GIL,
#   in every worker: other threads took 0.05-0.08 CPU-s per run, 0.02-0.03 without it;
# - the nanny sets MALLOC_TRIM_THRESHOLD_=65536, so glibc hands freed pages back at once and
#   faults them in again: 8,500 page faults a run against 6,000 serially; unset, a worker's
#   heap behaves as this process's does (6,000).
# - the event loops of the scheduler, nannies (in this process) and workers wake every 20 ms
#   (tick), 100 ms (memory monitor) and 500 ms (system monitor): an idle 2-worker cluster took
#   4 % of a core here and 2 % in each worker, taken from the runs when both cores are busy;
#   at 500 ms, 1 s and 2 s it takes 1 % and 0.35 %.
# BLAS/OpenMP threads stay at the nanny's 1 (one run is single-threaded; pyarrow's CPU pool
# follows OMP_NUM_THREADS too), so two workers do not oversubscribe two cores. An external
# cluster's workers run as whoever started them configured them (the same two keys apply).
WORKER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 2))


@contextlib.contextmanager
def client_for(cluster: Cluster) -> Iterator[Any]:
    """A Dask client for the cluster (None when serial); the embedded one stops with it."""
    if cluster.serial:
        yield None
        return
    from distributed import Client, LocalCluster

    if cluster.scheduler:
        target = cluster.scheduler
        is_file = not target.startswith(("tcp://", "tls://", "inproc://", "ws://")) and (
            Path(target).exists() or target.endswith(".json")
        )
        try:
            client = (
                Client(scheduler_file=target, timeout="20s")
                if is_file
                else Client(target, timeout="20s")
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {target}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    with dask.config.set(WORKER_CONFIG):  # read as the workers spawn: theirs, not ours
        local = LocalCluster(
            n_workers=cluster.workers or _default_workers(),
            threads_per_worker=1,  # one run is one process: the simulation is single-threaded
            processes=True,
            host="127.0.0.1",  # the embedded cluster serves this machine only
            dashboard_address=None,
            # its HTTP routes (health, metrics) still listen: on a free port, not a taken 8787
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )
    try:
        client = Client(local)
        try:
            yield client
        finally:
            client.close()
    finally:
        local.close()


def run_all(
    fn: Task,
    runs: dict[str, dict[str, Any]],
    shared: Any,
    store: ResultStore,
    cluster: Cluster,
    progress: Progress | None = None,
    finished: Finished | None = None,
) -> dict[str, dict[str, Any]]:
    """Every run's record by key: finished ones from the store, the rest executed now
    (each told to `finished` as it is saved)."""
    todo = {k: p for k, p in runs.items() if not store.finished(k)}
    records = {k: store.load(k) for k in runs if k not in todo}
    total, failed = len(runs), 0

    def done(key: str, record: dict[str, Any]) -> None:
        nonlocal failed
        store.save(key, record)
        records[key] = record
        failed += record["status"] != "ok"
        if finished:
            finished(key, record)
        if progress:
            progress(len(records), failed, total)

    if progress:
        progress(len(records), failed, total)
    root = str(store.root)
    if not todo:
        return records  # all finished: no cluster to start
    if cluster.serial:
        for key, params in todo.items():
            for n in range(ATTEMPTS):
                try:
                    record = attempt(fn, key, params, shared, root)
                    break
                except Exception as exc:
                    record = _failed(key, params, exc)
                    if n + 1 < ATTEMPTS:
                        continue
            done(key, record)
        return records
    from distributed import as_completed

    with client_for(cluster) as client:
        handle = client.scatter(shared, broadcast=True) if shared is not None else None
        pending: dict[Any, tuple[str, int]] = {}

        def submit(key: str, n: int) -> Any:
            future = client.submit(
                attempt, fn, key, todo[key], handle, root, key=f"twin-run-{key}-{n}", pure=False
            )
            pending[future] = (key, n)
            return future

        queue = as_completed([submit(k, 0) for k in todo])
        for future in queue:
            key, n = pending.pop(future)
            if future.status == "finished":
                done(key, future.result())
            elif n + 1 < ATTEMPTS:
                queue.add(submit(key, n + 1))
            else:
                try:
                    error = future.exception()
                except BaseException as exc:  # cancelled: the cluster gave up on it
                    error = exc
                done(key, _failed(key, todo[key], error))
            future.release()  # the record is on disk; the cluster can forget it
    return records
