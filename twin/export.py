"""Labelled datasets from a run: flows with per-flow labels, plus the other tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa

from twin.errors import InputError
from twin.telemetry import read_table

FORMATS = ("parquet", "csv")


def labelled_flows(flows: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Each flow with label 1 if an attack step caused it, and that step's id and technique."""
    if truth.empty:
        cause = pd.DataFrame(columns=["flow_id", "step_id", "technique"])
    else:
        cause = (
            truth[["step_id", "technique", "flow_ids"]]
            .explode("flow_ids")
            .dropna(subset=["flow_ids"])
        )
        cause = cause.rename(columns={"flow_ids": "flow_id"}).astype({"flow_id": "int64"})
        cause = cause.drop_duplicates("flow_id")
    out = flows.merge(cause, on="flow_id", how="left")
    out["label"] = out["step_id"].notna().astype("int8")
    out["step_id"] = out["step_id"].fillna("")
    out["technique"] = out["technique"].fillna("")
    return out


def labelled_events(events: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    if truth.empty:
        cause = pd.DataFrame(columns=["event_id", "step_id"])
    else:
        cause = truth[["step_id", "event_ids"]].explode("event_ids").dropna(subset=["event_ids"])
        cause = cause.rename(columns={"event_ids": "event_id"}).astype({"event_id": "int64"})
    out = events.merge(cause.drop_duplicates("event_id"), on="event_id", how="left")
    out["label"] = out["step_id"].notna().astype("int8")
    out["step_id"] = out["step_id"].fillna("")
    return out


def export_run(run: Path, out: Path, formats: tuple[str, ...] = FORMATS) -> dict[str, int]:
    """Write flows (labelled), process, events (labelled) and truth; return rows per table.

    A directory that is not a finished run, an unreadable table or an unwritable target is an
    InputError (exit 2) naming what is wrong, never a traceback.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"unknown format {bad[0]!r}; use {', '.join(FORMATS)}")
    try:
        finished = (run / "flows.parquet").is_file()
    except ValueError:  # a NUL byte in the path
        raise InputError(f"not a valid directory path: {str(run)!r}") from None
    if not finished:
        raise InputError(f"{run} is not a finished run directory (no flows.parquet)")
    try:
        truth = read_table(run, "truth")
        tables = {
            "flows": labelled_flows(read_table(run, "flows"), truth),
            "process": read_table(run, "process"),
            "events": labelled_events(read_table(run, "events"), truth),
            "truth": truth.assign(
                flow_ids=truth["flow_ids"].map(lambda x: " ".join(map(str, x))),
                event_ids=truth["event_ids"].map(lambda x: " ".join(map(str, x))),
            ),
        }
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise InputError(
            f"{run} holds a table that cannot be read as a twin run's ({type(exc).__name__}: "
            f"{exc}); was it written by twin and left whole?"
        ) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            if "parquet" in formats:
                frame.to_parquet(out / f"{name}.parquet", index=False)
            if "csv" in formats:
                frame.to_csv(out / f"{name}.csv", index=False)
        pcaps = sorted(run.glob("*.pcap"))
        for pcap in pcaps:  # emulated runs keep their captures
            shutil.copyfile(pcap, out / pcap.name)
    except ValueError:
        raise InputError(f"not a valid directory path: {str(out)!r}") from None
    except OSError as exc:
        raise InputError(f"cannot write the dataset to {out}: {exc.strerror or exc}") from None
    return {name: len(frame) for name, frame in tables.items()}
