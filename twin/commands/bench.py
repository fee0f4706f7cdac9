"""`twin bench`: detectors x scenarios x seeds, pooled into a leaderboard."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from rich.table import Table

from twin.commands.common import (
    SCENARIOS,
    err,
    fmt,
    names,
    out,
    resolve_scenario,
    shipped_scenarios,
)
from twin.commands.study import add_executor_options, cluster_of, progress_bar

ORDER = 40
HOLDOUT = SCENARIOS / "holdout"  # held-out chains: outside the library, scored on request


def cmd_bench(args: argparse.Namespace) -> int:
    from detectors import REGISTRY
    from twin.bench import bench
    from twin.rundir import claim_results

    shipped = shipped_scenarios()
    wanted = names(args.scenarios) or list(shipped)
    paths = [resolve_scenario(s) for s in wanted]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"no such scenario: {', '.join(missing)} (see: twin list scenarios)")
        return 2
    if args.holdout_facility:  # checked before any run: a typo must not cost the whole bench
        paths = holdout_paths(paths, args.holdout_facility, given=bool(args.scenarios))
    # detectors that read packet captures need the emulated network's
    detectors = names(args.detectors) or sorted(
        n for n in REGISTRY if args.backend == "mininet" or not REGISTRY[n].needs_captures
    )
    unknown = [d for d in detectors if d not in REGISTRY]
    if unknown:
        err.print(f"unknown detector: {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
        return 2
    try:
        seeds = [int(s) for s in names(args.seeds)] or [1]
    except ValueError:
        err.print(f"--seeds takes integers, got {args.seeds!r}")
        return 2
    out_dir = claim_results(
        Path(args.out) if args.out else Path("runs") / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}",
        "bench",
    )
    if args.jobs is not None and args.workers is None:
        # --jobs N from before the one executor: 1 is serial, more are worker processes
        args.serial, args.workers = args.serial or args.jobs == 1, args.workers or args.jobs
    cluster = cluster_of(args)
    with progress_bar(args.quiet) as bar:
        task = bar.add_task("bench", total=None, failed=0)

        def progress(done: int, failed: int, total: int) -> None:
            bar.update(task, completed=done, total=total, failed=failed)

        board, _ = bench(
            paths, detectors, seeds, out_dir, args.duration, not args.no_attack_free, cluster,
            progress, backend=args.backend, speed=args.speed,
            holdout_facility=args.holdout_facility,
        )  # fmt: skip
    if not args.quiet:
        table = Table(
            title=f"detector leaderboard by evidence (late: detected after the step's window; "
            f"windowed: the previous rule): {len(paths)} scenarios x {len(seeds)} seeds"
        )
        for col in ("detector", "recall", "late", "precision", "F1", "TTD median s", "TTD p95 s",
                    "false alarms/day", "attack-free FA/day", "windowed recall", "flow PR-AUC"):  # fmt: skip
            table.add_column(col, justify="left" if col == "detector" else "right")
        for r in board.itertuples():
            table.add_row(
                str(r.detector), fmt(r.recall), str(r.late), fmt(r.precision), fmt(r.f1),
                fmt(r.ttd_median_s, 0), fmt(r.ttd_p95_s, 0), fmt(r.false_alarms_per_day, 1),
                fmt(r.attack_free_false_alarms_per_day, 1), fmt(r.windowed_recall), fmt(r.flow_pr_auc),
            )  # fmt: skip
        out.print(table)
        print_lofo(out_dir)
        out.print(f"results: {out_dir} (leaderboard.parquet/.csv/.html, per_run, runs/)")
    return 0


def holdout_paths(paths: list[Path], facility: str, given: bool) -> list[Path]:
    """The scenarios for `--holdout-facility`: those given, or the library plus the held-out
    files (scenarios/holdout/) that run on that facility; an error if none runs on it."""
    from twin.errors import InputError
    from twin.scenario import facility_of, load_scenario

    def site(path: Path) -> str:
        return facility_of(load_scenario(path)).name

    if not given:
        paths = paths + [p for p in sorted(HOLDOUT.glob("*.yaml")) if site(p) == facility]
    sites = {site(p) for p in paths}
    if facility not in sites:
        raise InputError(
            f"--holdout-facility {facility}: no scenario runs on it; "
            f"the scenarios' facilities: {', '.join(sorted(sites))}"
        )
    return paths


def print_lofo(out_dir: Path) -> None:
    """The leave-one-facility-out rows bench wrote (members chosen on the others)."""
    import pandas as pd

    path = out_dir / "lofo.csv"
    if not path.is_file() or path.stat().st_size < 2:
        return
    lofo = pd.read_csv(path)
    table = Table(title="leave one facility out: ensemble chosen on the others, scored on it")
    for col in ("held out", "members", "recall", "late", "precision", "false alarms/day",
                "attack-free FA/day", "TTD median s", "TTD p95 s"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("held out", "members") else "right")
    for r in lofo.itertuples():
        table.add_row(
            str(r.held_out), str(r.members), fmt(r.recall), str(r.late), fmt(r.precision),
            fmt(r.false_alarms_per_day, 1), fmt(r.attack_free_false_alarms_per_day, 1),
            fmt(r.ttd_median_s, 0), fmt(r.ttd_p95_s, 0),
        )  # fmt: skip
    out.print(table)


def register(sub: Any) -> None:
    b = sub.add_parser(
        "bench",
        help="benchmark detectors on the scenario library",
        description="Run detectors x scenarios x seeds (a study on the same Dask executor as twin study: resumable with --out) and print a leaderboard (event recall, precision, F1, "
        "time to detect, false alarms per day, attack-free false alarms, flow PR-AUC). Responses are off.",
    )
    b.add_argument(
        "--scenarios", help="names or files, comma-separated (default: every shipped scenario)"
    )
    b.add_argument(
        "--detectors",
        help="registry names, comma-separated (default: every registered detector the backend can feed)",
    )
    b.add_argument("--seeds", default="1", help="comma-separated seeds (default 1)")
    b.add_argument("--duration", help="override every scenario's duration, e.g. 6h")
    b.add_argument(
        "--no-attack-free",
        action="store_true",
        help="skip the attack-free runs (false alarms on quiet days)",
    )
    add_executor_options(b)
    b.add_argument("--jobs", type=int, help="same as --workers (1: serially in this process)")
    b.add_argument(
        "--backend",
        choices=["sim", "mininet"],
        default="sim",
        help="network backend for every run (mininet: as root, one run at a time; adds suricata)",
    )
    b.add_argument(
        "--speed", type=float, help="mininet backend: simulated seconds per wall-clock second"
    )
    b.add_argument(
        "--holdout-facility",
        metavar="NAME",
        help="choose the ensemble's members on the other facilities, score it on this one "
        "(without --scenarios: the library plus the held-out files of that facility)",
    )
    b.add_argument("--out", metavar="DIR", help="results directory (default runs/bench-<time>)")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)
