"""`twin study FILE`: an architecture what-if study on Dask, resumable, with its report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from twin.commands.common import err, out

ORDER = 45


def progress_bar(quiet: bool) -> Any:
    """A rich progress bar with done, failed and ETA (a no-op when quiet)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )


def cluster_of(args: argparse.Namespace) -> Any:
    from twin.study.executor import Cluster

    if args.workers is not None and args.workers < 1:
        from twin.errors import InputError

        raise InputError(f"--workers must be at least 1, got {args.workers}")
    return Cluster(serial=args.serial, workers=args.workers, scheduler=args.scheduler)


def add_executor_options(p: Any) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--serial", action="store_true", help="run in this process (debugging; same results)"
    )
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask cluster: scheduler address (tcp://host:8786) or scheduler file",
    )
    p.add_argument(
        "--workers", type=int, help="worker processes of the embedded cluster (default 2)"
    )


def cmd_study(args: argparse.Namespace) -> int:
    from twin.rundir import claim_results, interruptible
    from twin.study.run import run_study
    from twin.study.spec import load_study

    study = load_study(args.file)
    directory = claim_results(
        Path(args.out) if args.out else Path("runs") / f"study-{study.spec.name}", "study"
    )
    cluster = cluster_of(args)
    if not args.quiet:
        err.print(f"study {study.spec.name}: {cluster.describe()}; results in {directory}")
    # SIGTERM stops a study as Ctrl-C does: finished runs are on disk, the cluster is closed
    with interruptible(), progress_bar(args.quiet) as bar:
        task = bar.add_task(study.spec.name, total=None, failed=0)

        def progress(done: int, failed: int, total: int) -> None:
            bar.update(task, completed=done, total=total, failed=failed)

        frame = run_study(study, directory, cluster, progress, keep_runs=not args.drop_runs)
    if not args.quiet:
        from twin.study.stats import ranking

        ok = frame[frame["status"] == "ok"]
        if not ok.empty:
            t = Table(title=f"designs ranked: {study.spec.name} ({len(ok)} runs)")
            for col in ("rank", "design", "blast share", "safety-critical", "harm", "detected"):
                t.add_column(col, justify="left" if col == "design" else "right")
            for r in ranking(frame):
                t.add_row(
                    str(r["rank"]), r["design"], f"{r['blast_share']:.0%}",
                    f"{r['safety_blast_share']:.0%}", f"{r['harm']:.2f}", f"{r['detected']:.0%}",
                )  # fmt: skip
            out.print(t)
            for r in ranking(frame):
                out.print(f"  {r['rank']}. {r['why']}")
        failed = frame[frame["status"] != "ok"]
        for r in failed.itertuples():
            err.print(f"failed: {r.key} ({r.design}, seed {r.seed}): {r.error}")
        out.print(f"results: {directory} (results.parquet, designs.json, report.html)")
    return 1 if (frame["status"] != "ok").any() else 0


def register(sub: Any) -> None:
    s = sub.add_parser(
        "study",
        help="compare designs and lifecycle policies over many runs (Dask)",
        description="Run an architecture study: designs x scenarios x detector sets x playbooks x "
        "lifecycle policies x seeds, on an embedded Dask cluster (default), an existing one, or "
        "serially. Resumable: finished runs are kept by key and never redone. Exit 1 if a run "
        "failed (it is recorded with its error).",
    )
    s.add_argument("file", help="study file (see scenarios/studies/)")
    add_executor_options(s)
    s.add_argument("--out", metavar="DIR", help="results directory (default runs/study-<name>)")
    s.add_argument(
        "--drop-runs", action="store_true", help="delete each run's tables once its record is kept"
    )
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_study)
