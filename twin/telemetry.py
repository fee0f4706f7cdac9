"""The five tables (flows, process, events, alerts, truth): schemas, batches and writers."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.network.flows import FLOW_COLUMNS, empty_flows

PROCESS_COLUMNS = {"t": "float64", "signal": "str", "value": "float64", "reported": "float64"}
EVENT_COLUMNS = {
    "event_id": "int64", "t": "float64", "device": "str", "ip": "str", "kind": "str",
    "user": "str", "src_ip": "str", "detail": "str", "value": "float64",
}  # fmt: skip
ALERT_COLUMNS = {
    "alert_id": "int64", "t": "float64", "detector": "str", "severity": "str", "device": "str",
    "src_ip": "str", "dst_ip": "str", "technique": "str", "reason": "str", "score": "float64",
    "evidence": "str",
}  # fmt: skip
TRUTH_COLUMNS = {
    "step_id": "str", "technique": "str", "name": "str", "t_start": "float64", "t_end": "float64",
    "attacker": "str", "attacker_ip": "str", "target": "str", "target_ip": "str",
    "succeeded": "bool", "blocked_by": "str", "detail": "str", "flow_ids": "object",
    "event_ids": "object", "grace": "float64", "signals": "str",
}  # fmt: skip
FLOW_SCORE_COLUMNS = {"flow_id": "int64", "detector": "str", "score": "float64"}
TABLES = ("flows", "process", "events", "alerts", "truth")
ROW_GROUP = 250_000  # rows buffered per table before a Parquet row group is written


@dataclass(frozen=True)
class Captures:
    """Where an emulated run's packet captures are, and how their wall clock maps to run time.

    Each file holds what entered the router on one zone's interface (`tcpdump -Q in`), so
    every packet that reached the router is in exactly one file.
    """

    directory: Path
    epoch: float  # wall-clock time of simulated t=0
    speed: float = 1.0  # simulated seconds per wall-clock second

    def sim_time(self, wall: float) -> float:
        return (wall - self.epoch) * self.speed

    def pcaps(self) -> list[Path]:
        return sorted(self.directory.glob("*.pcap"))


def empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


@dataclass(frozen=True)
class Alert:
    """What a detector says: when, how bad, about whom, and why."""

    t: float
    detector: str
    severity: str  # low | medium | high | critical
    device: str
    src_ip: str = ""
    dst_ip: str = ""
    technique: str = ""  # ATT&CK for ICS id, a guess
    reason: str = ""
    score: float = float("nan")
    # what it saw: `flow:<id>`, `event:<id>`, `signal:<name>` tokens (twin/evidence.py);
    # scoring credits a step only through evidence the step caused
    evidence: tuple[str, ...] = ()


def alerts_frame(alerts: list[Alert], first_id: int = 1) -> pd.DataFrame:
    """The alerts table; evidence is stored as its tokens joined by spaces."""
    if not alerts:
        return empty(ALERT_COLUMNS)
    df = pd.DataFrame([asdict(a) for a in alerts])
    df["evidence"] = [" ".join(e) for e in df["evidence"]]
    df.insert(0, "alert_id", np.arange(first_id, first_id + len(df), dtype=np.int64))
    return df.astype(ALERT_COLUMNS)


@dataclass
class TelemetryBatch:
    """Telemetry from [t_start, t_end): what detectors see, time-ordered within each table."""

    t_start: float
    t_end: float
    flows: pd.DataFrame = field(default_factory=empty_flows)
    process: pd.DataFrame = field(default_factory=lambda: empty(PROCESS_COLUMNS))
    events: pd.DataFrame = field(default_factory=lambda: empty(EVENT_COLUMNS))

    @classmethod
    def concat(cls, batches: list[TelemetryBatch]) -> TelemetryBatch:
        if not batches:
            return cls(0.0, 0.0)
        return cls(
            batches[0].t_start,
            batches[-1].t_end,
            pd.concat([b.flows for b in batches], ignore_index=True),
            pd.concat([b.process for b in batches], ignore_index=True),
            pd.concat([b.events for b in batches], ignore_index=True),
        )


class EventLog:
    """Things devices and infrastructure announce, appended as they happen."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.next_id = 1
        self.caused: dict[str, list[int]] = {}

    def add(
        self,
        t: float,
        device: str,
        ip: str,
        kind: str,
        *,
        user: str = "",
        src_ip: str = "",
        detail: str = "",
        value: float = float("nan"),
        cause: str | None = None,
    ) -> int:
        event_id = self.next_id
        self.next_id += 1
        self.rows.append((event_id, t, device, ip, kind, user, src_ip, detail, value))
        if cause is not None:
            self.caused.setdefault(cause, []).append(event_id)
        return event_id

    def drain(self) -> pd.DataFrame:
        rows, self.rows = self.rows, []
        if not rows:
            return empty(EVENT_COLUMNS)
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS)).astype(EVENT_COLUMNS)


def _arrow_schema(columns: dict[str, str]) -> pa.Schema:
    types = {
        "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(),
        "str": pa.string(), "bool": pa.bool_(), "object": pa.list_(pa.int64()),
    }  # fmt: skip
    return pa.schema([(c, types[t]) for c, t in columns.items()])


SCHEMAS = {
    "flows": _arrow_schema(FLOW_COLUMNS),
    "process": _arrow_schema(PROCESS_COLUMNS),
    "events": _arrow_schema(EVENT_COLUMNS),
    "alerts": _arrow_schema(ALERT_COLUMNS),
    "truth": _arrow_schema(TRUTH_COLUMNS),
    "flow_scores": _arrow_schema(FLOW_SCORE_COLUMNS),
}


def finite_json(data: Any) -> Any:
    """`data` with every NaN or infinity (numpy's too) as None: JSON has no such numbers."""
    if isinstance(data, float | np.floating):
        return float(data) if np.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(v) for v in data]
    return data


def write_json_atomic(path: Path, data: Any) -> None:
    """Strict JSON (a NaN becomes null), written whole or not at all."""
    tmp = path.with_name(path.name + ".part")
    text = json.dumps(finite_json(data), indent=2, default=str, allow_nan=False)
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


class RunWriter:
    """Streams the tables to `<dir>/<table>.parquet.part` and renames each when it is whole.

    A file without the `.part` suffix is always a complete Parquet file; summary.json is
    written last, so its presence (and its `status`) says how the run ended.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        # never deletes anything: the directory is prepared (new, or a previous run emptied
        # with --force) by twin.rundir.claim, so nothing stale can sit beside these tables
        self.dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, list[pa.Table]] = {}
        self._pending_rows: dict[str, int] = {}
        self.rows: dict[str, int] = dict.fromkeys(TABLES, 0)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self, table: str) -> Path:
        return self.dir / f"{table}.parquet"

    def append(self, table: str, frame: pd.DataFrame) -> None:
        if frame.empty and table in self._writers:
            return
        schema = SCHEMAS[table]
        arrow = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        if table not in self._writers:
            part = self.path(table).with_name(f"{table}.parquet.part")
            self._writers[table] = pq.ParquetWriter(part, schema, compression="zstd")
        # a few large row groups instead of one per batch: cheaper to write and to read
        self._pending.setdefault(table, []).append(arrow)
        self._pending_rows[table] = self._pending_rows.get(table, 0) + len(frame)
        if self._pending_rows[table] >= ROW_GROUP:
            self._flush(table)
        self.rows[table] = self.rows.get(table, 0) + len(frame)

    def _flush(self, table: str) -> None:
        chunks = self._pending.pop(table, [])
        self._pending_rows[table] = 0
        if chunks:
            self._writers[table].write_table(pa.concat_tables(chunks))

    def write_batch(self, batch: TelemetryBatch) -> None:
        self.append("flows", batch.flows)
        self.append("process", batch.process)
        self.append("events", batch.events)

    def close(self) -> None:
        """Finish every table written so far (also after an interruption: nothing is lost)."""
        for table in TABLES:
            if table not in self._writers:
                self.append(table, empty(_columns(table)))
        for table, writer in list(self._writers.items()):
            self._flush(table)
            writer.close()
            os.replace(self.path(table).with_name(f"{table}.parquet.part"), self.path(table))
        self._writers = {}


def _columns(table: str) -> dict[str, str]:
    return {
        "flows": FLOW_COLUMNS, "process": PROCESS_COLUMNS, "events": EVENT_COLUMNS,
        "alerts": ALERT_COLUMNS, "truth": TRUTH_COLUMNS, "flow_scores": FLOW_SCORE_COLUMNS,
    }[table]  # fmt: skip


def read_table(run_dir: Path, table: str) -> pd.DataFrame:
    path = Path(run_dir) / f"{table}.parquet"
    if not path.exists():
        return empty(_columns(table))
    return pd.read_parquet(path)
