"""`twin export`: a labelled dataset from a finished run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twin.commands.common import names, out

ORDER = 50


def cmd_export(args: argparse.Namespace) -> int:
    from twin.export import export_run

    run_dir = Path(args.run)
    target = Path(args.out) if args.out else run_dir / "dataset"
    rows = export_run(run_dir, target, tuple(names(args.format)) or ("parquet", "csv"))
    out.print(f"wrote {target}: " + ", ".join(f"{k} {v} rows" for k, v in rows.items()))
    return 0


def register(sub: Any) -> None:
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
