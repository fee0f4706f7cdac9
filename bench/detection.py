"""Detection figures by evidence: every shipped detector and the default ensemble, pooled.

Runs each scenario of the library (or the held-out files with --holdout) for each seed with
every shipped detector attached, plus one attack-free run per scenario, then scores them
by evidence (twin/scoring.py) and prints the leaderboard (late detections apart, the old
windowed score beside) and the leave-one-facility-out table, against the issue's targets.
The ensemble is the union of the default members (detectors/ensemble.py), which is what
`ensemble` with min_votes 1 raises.

    .venv/bin/python bench/detection.py --seeds 1,2,3 --jobs 2
    .venv/bin/python bench/detection.py --holdout --seeds 1,2,3
    .venv/bin/python bench/detection.py --rescore /tmp/twin-detection   # no new runs

The runs go through the code base's one executor (twin.study.executor): `--jobs N` is a
local Dask cluster of N worker processes, `--serial` runs them in this process. A run whose
directory under --out already holds a summary is kept, so a grid cut short resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors import REGISTRY  # noqa: E402
from detectors.ensemble import DEFAULT_MEMBERS  # noqa: E402
from twin.holdout import (  # noqa: E402
    ENSEMBLE,
    leaderboard,
    leave_one_facility_out,
    read_runs,
    text_table,
)
from twin.study.executor import Cluster, ResultStore, run_all  # noqa: E402

TARGETS = {"recall": 0.99, "precision": 0.97, "false_alarms_per_day": 0.5,
           "attack_free_false_alarms_per_day": 1.0, "ttd_median_s": 60.0, "ttd_p95_s": 300.0}  # fmt: skip


def shipped() -> list[str]:
    """Every built-in detector that runs on the modelled network, except the ensemble itself."""
    from detectors import BUILTIN

    return sorted(n for n, c in BUILTIN.items() if n != ENSEMBLE and not c.needs_captures)


def run_name(scenario: Path, seed: int, quiet: bool) -> str:
    """A run's directory under --out (and its key on the executor): one grid, unique names."""
    return f"{scenario.stem}-s{seed}" + ("-quiet" if quiet else "")


def run_one(params: dict[str, Any], shared: Any, workdir: Path) -> dict[str, Any]:
    """One run of the grid, where the executor puts it; its directory under --out."""
    from twin.run import execute
    from twin.scenario import load_scenario

    scenario = Path(params["scenario"])
    overrides: dict[str, Any] = {
        "seed": params["seed"],
        "detectors": list(params["detectors"]),
        "responses": [],
    }
    if params["quiet"]:
        overrides["campaign"] = None
    if params["duration"]:
        overrides["duration"] = params["duration"]
    spec = load_scenario(scenario, overrides)
    target = Path(params["out"]) / run_name(scenario, params["seed"], params["quiet"])
    if (target / "summary.json").is_file():
        return {"directory": str(target)}  # resumable: a finished run is kept
    # a run cut short is replaced; force replaces only a twin run, never anything else
    execute(spec, target, source=str(scenario), counterfactual=False, force=True)
    return {"directory": str(target)}


def run_grid(grid: list[dict[str, Any]], out: Path, cluster: Cluster) -> None:
    """Every run of the grid not finished yet, on the executor; stops if any failed."""
    runs = {run_name(Path(p["scenario"]), p["seed"], p["quiet"]): p for p in grid}
    store = ResultStore(out / ".executor")  # the executor's records, beside the runs
    for name in runs:
        if not (out / name / "summary.json").is_file():
            store.path(name).unlink(missing_ok=True)  # its directory went: run it again

    done = [sum(store.finished(k) for k in runs)]  # numbered over the grid, as it goes

    def show(name: str, record: dict[str, Any]) -> None:
        done[0] += 1
        status = "" if record["status"] == "ok" else f"  FAILED: {record['error']}"
        print(f"  [{done[0]}/{len(runs)}] {name}{status}", file=sys.stderr)

    records = run_all(run_one, runs, None, store, cluster, finished=show)
    failed = [(k, r["error"]) for k, r in records.items() if r["status"] != "ok"]
    if failed:
        lines = "\n".join(f"  {k}: {e}" for k, e in failed)
        raise SystemExit(f"{len(failed)} of {len(runs)} runs failed (tried twice):\n{lines}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--holdout", action="store_true", help="score the held-out files instead")
    p.add_argument("--scenarios", help="comma-separated stems (default: the library)")
    p.add_argument("--detectors", help="comma-separated (default: every shipped detector)")
    p.add_argument("--jobs", type=int, default=1, help="Dask worker processes (default 1)")
    p.add_argument("--serial", action="store_true", help="run in this process (debugging)")
    p.add_argument("--duration", help="override every run's duration")
    p.add_argument("--out", type=Path, help="run directory (default /tmp/twin-detection[-holdout])")
    p.add_argument(
        "--rescore",
        nargs="?",
        const=True,
        metavar="DIR",
        help="score the runs already in DIR (or --out); no new runs",
    )
    p.add_argument("--tune-on", type=Path, help="runs to choose ensemble members on (LOFO)")
    p.add_argument(
        "--heavy-quiet-only",
        action="store_true",
        help="run the --heavy detectors on the attack-free runs only (their false alarms)",
    )
    p.add_argument(
        "--heavy",
        default="isolation_forest,kitsune,federated",
        help="detectors run only on the first seed and the attack-free runs (costly to fit)",
    )
    args = p.parse_args()
    if isinstance(args.rescore, str) and args.out is None:
        args.out = Path(args.rescore)  # --rescore DIR
    out = args.out or Path("/tmp/twin-detection" + ("-holdout" if args.holdout else ""))
    out.mkdir(parents=True, exist_ok=True)
    dets = tuple(args.detectors.split(",")) if args.detectors else tuple(shipped())
    heavy = set(args.heavy.split(",")) if args.heavy else set()
    unknown = [d for d in dets if d not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown detectors: {', '.join(unknown)}")
    # the held-out set lives in scenarios/holdout/ (its author's; nobody tunes on it)
    where = ROOT / "scenarios" / ("holdout" if args.holdout else "")
    files = sorted(
        f for f in where.glob("*.yaml") if not f.name.startswith("holdout") or args.holdout
    )
    if args.scenarios:
        files = [where / f"{s}.yaml" for s in args.scenarios.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    wall = time.perf_counter()
    if not args.rescore:
        light = tuple(d for d in dets if d not in heavy)
        first = light if args.heavy_quiet_only else dets
        # scenario by scenario (its seeds, then its attack-free run): a grid cut short is whole
        grid = [
            {"scenario": str(f), "seed": s, "quiet": quiet, "detectors": list(d),
             "out": str(out), "duration": args.duration}
            for f in files
            for s, quiet, d in [
                *[(s, False, first if s == seeds[0] else light) for s in seeds],
                (seeds[0], True, dets),
            ]
        ]  # fmt: skip
        if args.jobs < 1:
            raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
        run_grid(grid, out, Cluster(serial=args.serial, workers=args.jobs))
    stems = {f.stem for f in files}
    runs = read_runs(
        sorted(d for d in out.iterdir() if d.is_dir() and d.name.rsplit("-s", 1)[0] in stems)
    )
    members = [m for m in DEFAULT_MEMBERS if m in dets]
    board = leaderboard(runs, list(dets), members)
    quiet = [r for r in runs if r.attack_free]
    attacked = [r for r in runs if not r.attack_free]
    print(
        f"{'held-out files' if args.holdout else 'library'}: {len({r.scenario for r in runs})} "
        f"scenarios on {len({r.facility for r in runs})} facilities, seeds {args.seeds}; "
        f"{len(attacked)} attacked runs ({sum(r.monitored_s for r in attacked) / 86400:.2f} days), "
        f"{len(quiet)} attack-free ({sum(r.monitored_s for r in quiet) / 86400:.2f} days); "
        f"wall {time.perf_counter() - wall:.0f} s"
    )
    print(f"ensemble = union of {', '.join(members)}; scores by evidence (late apart)\n")
    cols = ["detector", "steps", "detected", "recall", "late", "precision", "f1",
            "false_alarms_per_day", "attack_free_false_alarms_per_day", "ttd_median_s",
            "ttd_p95_s", "not_attempted", "windowed_recall", "windowed_precision"]  # fmt: skip
    print(text_table(board, cols))
    if not (board["detector"] == ENSEMBLE).any():
        return  # no ensemble member among the detectors: no ensemble targets to check
    ens = board[board["detector"] == ENSEMBLE].iloc[0]
    print("\ntargets (ensemble):")
    for key, want in TARGETS.items():
        if key == "attack_free_false_alarms_per_day":
            worst = board[board["detector"] != ENSEMBLE][key].max()
            ok = worst <= want
            print(
                f"  every detector {key} <= {want:g}: worst {worst:.3f}  {'PASS' if ok else 'FAIL'}"
            )
            continue
        got = float(ens[key])
        ok = got >= want if key in ("recall", "precision") else got <= want
        sign = ">=" if key in ("recall", "precision") else "<="
        print(f"  {key} {sign} {want:g}: {got:.3f}  {'PASS' if ok else 'FAIL'}")
    if args.tune_on is not None:
        # members chosen on those runs (another facility set), scored on these
        others = read_runs(sorted(d for d in args.tune_on.iterdir() if d.is_dir()))
        candidates = [d for d in dets if d not in heavy]
        print(f"\nmembers chosen on {args.tune_on} ({len(others)} runs), scored here:")
        for facility in sorted({r.facility for r in runs}):
            lofo = leave_one_facility_out(others + runs, candidates, only=facility)
            print(text_table(lofo, ["held_out", "members", "steps", "recall", "late", "precision",
                                    "false_alarms_per_day", "attack_free_false_alarms_per_day",
                                    "ttd_median_s", "ttd_p95_s"]))  # fmt: skip
    if len({r.facility for r in runs}) > 1:
        print("\nleave one facility out (members chosen on the others, scored on the one):")
        lofo = leave_one_facility_out(runs, [d for d in dets if d not in heavy])
        print(text_table(lofo, ["held_out", "members", "steps", "recall", "late", "precision",
                                "false_alarms_per_day", "attack_free_false_alarms_per_day",
                                "ttd_median_s", "ttd_p95_s"]))  # fmt: skip
    board.to_csv(out / "leaderboard.csv", index=False)


if __name__ == "__main__":
    main()
