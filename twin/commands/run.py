"""`twin run`: run one scenario, score it, print what happened."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from twin.commands.common import (
    add_scenario_args,
    err,
    execute_run,
    fmt,
    given_overrides,
    out,
    resolve_scenario,
)
from twin.rundir import fresh_path

ORDER = 10


def score_table(summary: dict[str, Any]) -> Table:
    table = Table(
        title=f"scores: {summary['scenario']} on {summary['design']} (seed {summary['seed']})"
    )
    for col in (
        "detector",
        "recall",
        "late",
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
            s["detector"], fmt(s["recall"]), str(s.get("late", 0)), fmt(s["precision"]), fmt(s["f1"]),
            fmt(s["ttd_median"], 0), fmt(s["ttd_p95"], 0), fmt(s["false_alarms_per_day"], 1),
            str(s["alerts"]), fmt(s.get("flow_pr_auc")),
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
    if summary.get("detectors_note"):  # never score nothing silently
        out.print(summary["detectors_note"])
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
    from twin.scenario import late_steps, load_scenario

    path = resolve_scenario(args.scenario)
    spec = load_scenario(path, given_overrides(args, "backend", "speed", "hosts"))
    if args.out:
        directory = Path(args.out)
    else:  # names are pattern-checked, and a run started in the same second gets its own
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        directory = fresh_path(Path("runs"), stamp, spec.name, spec.design, f"s{spec.seed}")
    late = late_steps(spec)
    if late:
        err.print(
            f"note: the run ends at {spec.duration / 3600:g} h, before step(s) "
            f"{', '.join(late)} start: they will not run",
            markup=False,
        )
    if spec.backend == "mininet" and not args.quiet:
        wall = spec.duration / spec.speed
        err.print(
            f"emulated run: {spec.duration / 3600:g} h simulated at speed {spec.speed:g} takes "
            f"{wall / 60:.1f} min of wall time"
            + (" (--speed 60 runs an hour a minute)" if spec.speed == 1 and wall > 600 else "")
        )
    if args.cli:  # Mininet's prompt on the live run (twin/network/emulated/cli.py)
        if spec.backend != "mininet":
            err.print("--cli opens Mininet's CLI: it needs --backend mininet", markup=False)
            return 2
        execute = functools.partial(execute, cli=True)
    show = not args.quiet and sys.stderr.isatty() and not args.cli
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

            result = execute_run(execute, spec, directory, progress, path, args.force)
    else:
        result = execute_run(execute, spec, directory, None, path, args.force)
    if not args.quiet:
        print_outcome(result.summary, directory)
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser(
        "run",
        help="run a scenario and score it",
        description="Run a scenario: simulate, attack, detect, score; write runs/<id>/. The "
        "results directory is locked while the run writes; Ctrl-C or SIGTERM finish the run in "
        "order, keeping what it computed (exit status 130).",
    )
    add_scenario_args(r)
    r.add_argument(
        "--backend", choices=["sim", "mininet"], help="network backend (overrides the scenario)"
    )
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
        help="results directory: new or empty (default runs/<time>-<name>-<design>-s<seed>)",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="replace the previous twin run in --out (never anything that is not a twin run)",
    )
    r.add_argument(
        "--cli",
        action="store_true",
        help="mininet backend: Mininet's CLI (mininet>) on the live run; leaving it ends the run",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    r.set_defaults(func=cmd_run)
