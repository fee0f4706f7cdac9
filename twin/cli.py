"""The `twin` command line: run, validate, schema, list."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from twin import __version__
from twin.errors import ScenarioError, TwinError

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

# wide enough for the score table when the output is a file or a CI log
out = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 132)


def shipped_scenarios() -> dict[str, Path]:
    if not SCENARIOS.is_dir():
        return {}
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.yaml"))}


def resolve_scenario(arg: str) -> Path:
    path = Path(arg)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    shipped = shipped_scenarios()
    if arg in shipped:
        return shipped[arg]
    return path


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def score_table(summary: dict[str, Any]) -> Table:
    table = Table(
        title=f"scores: {summary['scenario']} on {summary['design']} (seed {summary['seed']})"
    )
    for col in (
        "detector",
        "recall",
        "precision",
        "F1",
        "TTD median s",
        "TTD p95 s",
        "false alarms/day",
        "alerts",
        "flow PR-AUC",
    ):
        table.add_column(col, justify="left" if col == "detector" else "right")
    for s in summary["scores"]:
        table.add_row(
            s["detector"], _fmt(s["recall"]), _fmt(s["precision"]), _fmt(s["f1"]),
            _fmt(s["ttd_median"], 0), _fmt(s["ttd_p95"], 0), _fmt(s["false_alarms_per_day"], 1),
            str(s["alerts"]), _fmt(s.get("flow_pr_auc")),
        )  # fmt: skip
    return table


def print_outcome(summary: dict[str, Any], directory: Path) -> None:
    imp = summary["impact"]
    steps = Table(title="attack steps (truth)")
    for col in ("step", "technique", "target", "outcome"):
        steps.add_column(col)
    from twin.telemetry import read_table

    truth = read_table(directory, "truth")
    for r in truth.itertuples():
        outcome = (
            "succeeded"
            if r.succeeded
            else (f"blocked: {r.blocked_by}" if r.blocked_by else "failed")
        )
        steps.add_row(str(r.step_id), str(r.technique), str(r.target), outcome)
    for s in imp["steps_not_attempted"]:
        steps.add_row(s["step_id"], s["technique"], "-", f"not attempted: {s['reason']}")
    out.print(steps)
    out.print(score_table(summary))
    tti = imp["time_to_physical_impact_s"]
    out.print(
        f"impact: {imp['steps_succeeded']}/{imp['steps_attempted']} steps succeeded, "
        f"{imp.get('steps_blocked_by_design', 0)} blocked by the design"
        + (
            f", {imp['steps_blocked_by_response']} by responses"
            if imp.get("steps_blocked_by_response")
            else ""
        )
        + f", blast radius {imp['blast_radius']} "
        f"({', '.join(imp['compromised']) or 'none'}); "
        f"{imp['degree_hours_outside_band']:.2f} degree-hours outside comfort/safety bands"
        + (
            f", {imp['unsafe_tank_minutes']:g} unsafe tank-minutes"
            if imp.get("unsafe_tank_minutes")
            else ""
        )
        + (
            f", {imp['doors_opened_without_badge']} doors opened without a badge"
            if imp.get("doors_opened_without_badge")
            else ""
        )
        + (
            f", first physical impact {tti / 60:.1f} min after the attack began"
            if tti is not None
            else ""
        )
    )
    if imp.get("time_to_containment_s") is not None:
        out.print(
            f"responses: contained {imp['time_to_containment_s'] / 60:.1f} min after the first step"
        )
    if imp.get("harm_avoided"):
        without = imp["harm_without_responses"]
        out.print(
            "responses avoided "
            + "; ".join(
                f"{v:g} of {without[k]:g} {k.replace('_', ' ')}"
                for k, v in imp["harm_avoided"].items()
                if without[k]
            )
            + " (the same run without responses, same seed)"
        )
    emulated = summary.get("emulated")
    if emulated:
        out.print(
            f"emulated network: {emulated['hosts']} hosts at speed {emulated['speed']:g}, kernel "
            f"lag p99 {emulated['lag_p99_ms']} ms, {emulated['poller_reads']} Modbus polls, "
            f"{emulated['packets_metered']} packets metered from {directory / 'captures'}"
        )
    out.print(f"results: {directory}  (report: {directory / 'report.html'})")


# -- commands ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from twin.run import execute
    from twin.scenario import load_scenario

    path = resolve_scenario(args.scenario)
    overrides = {
        "design": args.design,
        "duration": args.duration,
        "seed": args.seed,
        "backend": args.backend,
        "speed": args.speed,
        "hosts": args.hosts,
        "warmup": args.warmup,
    }
    spec = load_scenario(path, {k: v for k, v in overrides.items() if v is not None})
    if args.out:
        directory = Path(args.out)
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        directory = Path("runs") / f"{stamp}-{spec.name}-{spec.design}-s{spec.seed}"
    if spec.backend == "mininet" and not args.quiet:
        wall = spec.duration / spec.speed
        err.print(
            f"emulated run: {spec.duration / 3600:g} h simulated at speed {spec.speed:g} takes "
            f"{wall / 60:.1f} min of wall time"
            + (" (--speed 60 runs an hour a minute)" if spec.speed == 1 and wall > 600 else "")
        )
    show = not args.quiet and sys.stderr.isatty()
    if show:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[sim]}"),
            TimeElapsedColumn(),
            console=err,
        )
        with bar:
            task = bar.add_task(f"{spec.name} [{spec.design}]", total=spec.duration, sim="")

            def progress(t: float, total: float) -> None:
                bar.update(task, completed=t, sim=f"{t / 3600:.1f}/{total / 3600:.1f} h simulated")

            result = _execute(execute, spec, directory, progress, path)
    else:
        result = _execute(execute, spec, directory, None, path)
    if not args.quiet:
        print_outcome(result.summary, directory)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _execute(execute: Any, spec: Any, directory: Path, progress: Any, path: Path) -> Any:
    # SIGTERM ends a run as Ctrl-C does: results kept, emulated network torn down
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return execute(spec, directory, progress, str(path))
    except KeyboardInterrupt:
        err.print(
            f"interrupted: partial results kept in {directory} (summary.json says status 'interrupted')"
        )
        raise SystemExit(130) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from twin.scenario import load_scenario

    status = 0
    for arg in args.files:
        path = resolve_scenario(arg)
        try:
            spec = load_scenario(path)
        except ScenarioError as exc:
            err.print(exc.render(), markup=False)
            status = 2
        else:
            steps = len(spec.campaign.steps) if spec.campaign else 0
            out.print(
                f"{path}: ok ({spec.name}, design {spec.design}, {steps} attack steps)",
                markup=False,
            )
    return status


def _names(text: str | None) -> list[str]:
    return [x for x in (text or "").replace(",", " ").split() if x]


def cmd_bench(args: argparse.Namespace) -> int:
    import os

    from detectors import REGISTRY
    from twin.bench import bench

    shipped = shipped_scenarios()
    wanted = _names(args.scenarios) or list(shipped)
    paths = [resolve_scenario(s) for s in wanted]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"no such scenario: {', '.join(missing)} (see: twin list scenarios)")
        return 2
    # detectors that read packet captures need the emulated network's
    detectors = _names(args.detectors) or sorted(
        n for n in REGISTRY if args.backend == "mininet" or not REGISTRY[n].needs_captures
    )
    unknown = [d for d in detectors if d not in REGISTRY]
    if unknown:
        err.print(f"unknown detector: {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
        return 2
    try:
        seeds = [int(s) for s in _names(args.seeds)] or [1]
    except ValueError:
        err.print(f"--seeds takes integers, got {args.seeds!r}")
        return 2
    out_dir = (
        Path(args.out) if args.out else Path("runs") / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}"
    )
    jobs = args.jobs or min(2, os.cpu_count() or 1)

    def progress(i: int, n: int, name: str) -> None:
        if not args.quiet:
            err.print(f"[{i}/{n}] {name} done")

    board, _ = bench(
        paths, detectors, seeds, out_dir, args.duration, not args.no_attack_free, jobs, progress,
        backend=args.backend, speed=args.speed,
    )  # fmt: skip
    if not args.quiet:
        table = Table(title=f"detector leaderboard: {len(paths)} scenarios x {len(seeds)} seeds")
        for col in ("detector", "recall", "precision", "F1", "TTD median s", "TTD p95 s",
                    "false alarms/day", "attack-free FA/day", "flow PR-AUC"):  # fmt: skip
            table.add_column(col, justify="left" if col == "detector" else "right")
        for r in board.itertuples():
            table.add_row(
                str(r.detector), _fmt(r.recall), _fmt(r.precision), _fmt(r.f1), _fmt(r.ttd_median_s, 0),
                _fmt(r.ttd_p95_s, 0), _fmt(r.false_alarms_per_day, 1),
                _fmt(r.attack_free_false_alarms_per_day, 1), _fmt(r.flow_pr_auc),
            )  # fmt: skip
        out.print(table)
        out.print(f"results: {out_dir} (leaderboard.parquet/.csv/.html, per_run, runs/)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from twin.export import export_run

    run_dir = Path(args.run)
    target = Path(args.out) if args.out else run_dir / "dataset"
    rows = export_run(run_dir, target, tuple(_names(args.format)) or ("parquet", "csv"))
    out.print(f"wrote {target}: " + ", ".join(f"{k} {v} rows" for k, v in rows.items()))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from twin.scenario import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
        out.print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from attacks import TECHNIQUES
    from detectors import REGISTRY
    from twin.devices import KINDS
    from twin.scenario import read_yaml

    what = args.what
    if what in ("all", "scenarios"):
        t = Table(title="scenarios")
        t.add_column("name")
        t.add_column("story")
        for name, path in shipped_scenarios().items():
            try:
                raw = read_yaml(path)
                story = (
                    str(raw.get("story", "")).strip().split(". ")[0]
                    if isinstance(raw, dict)
                    else ""
                )
            except ScenarioError:
                story = "(does not parse: run twin validate)"
            t.add_row(name, story)
        out.print(t)
    if what in ("all", "kinds"):
        t = Table(title="device kinds")
        for col in ("kind", "services", "registers", "what it is"):
            t.add_column(col)
        for name, kind in KINDS.items():
            t.add_row(name, ",".join(kind.services), str(len(kind.registers)), kind.summary)
        out.print(t)
    if what in ("all", "detectors"):
        t = Table(title="detectors")
        t.add_column("name")
        t.add_column("what it flags")
        for name, cls in REGISTRY.items():
            t.add_row(name, cls.summary)
        out.print(t)
    if what in ("all", "techniques"):
        t = Table(title="attack techniques")
        for col in ("name", "ATT&CK for ICS", "what it does"):
            t.add_column(col)
        for name, tech in TECHNIQUES.items():
            t.add_row(name, tech.technique_id, tech.summary)
        out.print(t)
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from functools import partial

    from twin.fidelity import compare
    from twin.run import execute

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if bool(args.scenario) == bool(args.compare):
        err.print("give a SCENARIO to run, or --compare MODELLED_DIR EMULATED_DIR (not both)")
        return 2
    if args.compare:
        modelled, emulated = (Path(d) for d in args.compare)
        target = Path(args.out) if args.out else Path("runs") / f"fidelity-{stamp}"
    else:
        from twin.scenario import load_scenario

        path = resolve_scenario(args.scenario)
        given = {
            "design": args.design,
            "duration": args.duration,
            "warmup": args.warmup,
            "seed": args.seed,
        }
        overrides = {k: v for k, v in given.items() if v is not None}
        speed = {"speed": args.speed} if args.speed is not None else {}
        # both checked before either runs; the emulated run goes first: it is the one
        # that needs root and can fail at once, the modelled one takes seconds
        specs = {
            "emulated": load_scenario(path, {**overrides, **speed, "backend": "mininet"}),
            "modelled": load_scenario(path, {**overrides, "backend": "sim"}),
        }
        spec = specs["modelled"]
        target = (
            Path(args.out)
            if args.out
            else Path("runs") / f"fidelity-{stamp}-{spec.name}-{spec.design}-s{spec.seed}"
        )
        # no counterfactual run: it would emulate the whole scenario a second time
        run = partial(execute, counterfactual=False)
        for side, side_spec in specs.items():
            if not args.quiet:
                err.print(f"{side} run ({side_spec.backend}) into {target / side}")
            _execute(run, side_spec, target / side, None, path)
        modelled, emulated = target / "modelled", target / "emulated"
    fidelity = compare(modelled, emulated)
    fidelity.write(target)
    if not args.quiet:
        out.print(fidelity.text(), markup=False, soft_wrap=True)
        out.print(
            f"results: {target}  (fidelity.html, fidelity.json, fidelity-devices.csv, "
            "fidelity-signals.csv)",
            markup=False,
        )
    return 0


def cmd_reap(args: argparse.Namespace) -> int:
    from twin.network.emulated import STATE_NAME, reap, stale_states

    where = Path(args.dir)
    states = [where / STATE_NAME] if (where / STATE_NAME).exists() else stale_states(where)
    if not states:
        out.print(f"nothing to reap under {where}: no emulated run there was killed outright")
        return 0
    for state in states:
        done = reap(state)
        out.print(
            f"reaped {state.parent}: {done.processes} processes, {done.namespaces} namespaces"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twin",
        description="A cyber-physical digital twin of a facility: attack it, detect, score.",
        epilog="Start with: twin run flagship   (then open the report it names)",
    )
    p.add_argument("--version", action="version", version=f"twin {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="run a scenario and score it",
        description="Run a scenario: simulate, attack, detect, score; write runs/<id>/.",
    )
    r.add_argument(
        "scenario",
        help="scenario file, or the name of a shipped scenario (see: twin list scenarios)",
    )
    r.add_argument("--design", help="segmentation design to use (overrides the scenario)")
    r.add_argument("--duration", help="simulated duration, e.g. 6h, 90m (overrides the scenario)")
    r.add_argument("--seed", type=int, help="random seed (overrides the scenario)")
    r.add_argument(
        "--backend", choices=["sim", "mininet"], help="network backend (overrides the scenario)"
    )
    r.add_argument("--warmup", help="attack-free learning time, e.g. 3h (overrides the scenario)")
    r.add_argument(
        "--speed",
        type=float,
        help="mininet backend: simulated seconds per wall-clock second, e.g. 60 (default 1)",
    )
    r.add_argument(
        "--hosts",
        choices=["device", "group"],
        help="mininet backend: a host per device (default), or one per device group",
    )
    r.add_argument(
        "--out",
        metavar="DIR",
        help="results directory (default runs/<time>-<name>-<design>-s<seed>)",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser(
        "validate",
        help="check scenario files, reporting every problem",
        description="Check scenario files; every problem is reported with its field path. Exit status 2 if any is invalid.",
    )
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)

    b = sub.add_parser(
        "bench",
        help="benchmark detectors on the scenario library",
        description="Run detectors x scenarios x seeds and print a leaderboard (event recall, precision, F1, "
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
    b.add_argument(
        "--jobs", type=int, help="parallel runs (default: 2, the cores of this kind of machine)"
    )
    b.add_argument(
        "--backend",
        choices=["sim", "mininet"],
        default="sim",
        help="network backend for every run (mininet: as root, one run at a time; adds suricata)",
    )
    b.add_argument(
        "--speed", type=float, help="mininet backend: simulated seconds per wall-clock second"
    )
    b.add_argument("--out", metavar="DIR", help="results directory (default runs/bench-<time>)")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)

    x = sub.add_parser(
        "export",
        help="write a labelled dataset from a run",
        description="Write a run's flows with per-flow labels (label, step_id, technique), process, events "
        "(labelled) and truth, as Parquet and CSV (and its pcaps when the run was emulated).",
    )
    x.add_argument("run", help="a run directory (runs/<id>)")
    x.add_argument("--out", metavar="DIR", help="where to write (default RUN/dataset)")
    x.add_argument("--format", default="parquet,csv", help="parquet, csv or both (default both)")
    x.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "schema",
        help="print the JSON Schema of scenario files",
        description="Print the JSON Schema of scenario files, for editor completion.",
    )
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.set_defaults(func=cmd_schema)

    fd = sub.add_parser(
        "fidelity",
        help="compare the modelled and the emulated network on one scenario",
        description="Run a scenario on the modelled (sim) and the emulated (mininet, needs root) "
        "backend with the same design and seed, and compare flow statistics per device and the "
        "physics traces; or, with --compare, compare two finished runs. Writes fidelity.json, "
        "fidelity-devices.csv, fidelity-signals.csv and fidelity.html.",
    )
    fd.add_argument(
        "scenario",
        nargs="?",
        help="scenario file, or the name of a shipped scenario (see: twin list scenarios)",
    )
    fd.add_argument("--design", help="segmentation design to use (overrides the scenario)")
    fd.add_argument("--seed", type=int, help="random seed (overrides the scenario)")
    fd.add_argument("--duration", help="simulated duration, e.g. 2h (overrides the scenario)")
    fd.add_argument("--warmup", help="attack-free learning time, e.g. 1h (overrides the scenario)")
    fd.add_argument(
        "--speed",
        type=float,
        help="emulated run: simulated seconds per wall-clock second, e.g. 60 (default 1)",
    )
    fd.add_argument(
        "--compare",
        nargs=2,
        metavar=("MODELLED_DIR", "EMULATED_DIR"),
        help="compare two finished run directories instead of running the scenario",
    )
    fd.add_argument(
        "--out",
        metavar="DIR",
        help="results directory; the runs go to DIR/modelled and DIR/emulated "
        "(default runs/fidelity-<time>[-<name>-<design>-s<seed>])",
    )
    fd.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    fd.set_defaults(func=cmd_fidelity)

    rp = sub.add_parser(
        "reap",
        help="remove what emulated runs killed outright (SIGKILL) left behind",
        description="Every emulated run records the namespaces and processes it makes in its "
        "directory (emulated-state.json) and removes them when it ends, even on Ctrl-C or an "
        "error. A run killed outright cannot: this removes exactly what its record lists. "
        "DIR is one run directory or a directory of runs (default: runs). Needs root.",
    )
    rp.add_argument("dir", nargs="?", default="runs", metavar="DIR")
    rp.set_defaults(func=cmd_reap)

    ls = sub.add_parser(
        "list",
        help="list shipped scenarios, device kinds, detectors, techniques",
        description="List what the twin knows.",
    )
    ls.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "scenarios", "kinds", "detectors", "techniques"],
    )
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScenarioError as exc:
        err.print(exc.render(), markup=False)
        return 2
    except TwinError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
