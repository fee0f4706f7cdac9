"""The flow meter: NetFlow/IPFIX-style records per export interval, as aggregates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FLOW_COLUMNS: dict[str, str] = {
    "flow_id": "int64", "t_start": "float64", "t_end": "float64", "t_export": "float64",
    "src_ip": "str", "dst_ip": "str", "src_port": "int32", "dst_port": "int32",
    "proto": "str", "app": "str", "packets": "int64", "bytes": "int64",
    "packets_rev": "int64", "bytes_rev": "int64", "tcp_flags": "str",
    "modbus_reads": "int32", "modbus_writes": "int32", "modbus_fc_set": "str",
    "modbus_unit": "int16", "modbus_exceptions": "int32", "auth_failures": "int32",
    "blocked": "bool", "encrypted": "bool",
}  # fmt: skip
FLAG_ORDER = "FSRPAU"


def flags(letters: set[str] | str) -> str:
    return "".join(f for f in FLAG_ORDER if f in letters)


def empty_flows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FLOW_COLUMNS.items()})


@dataclass
class FlowCounter:
    t_first: float
    t_last: float
    app: str
    encrypted: bool
    packets: int = 0
    bytes: int = 0
    packets_rev: int = 0
    bytes_rev: int = 0
    flags: set[str] = field(default_factory=set)
    reads: int = 0
    writes: int = 0
    fcs: set[int] = field(default_factory=set)
    unit: int = -1
    exceptions: int = 0
    auth_failures: int = 0
    blocked: bool = False
    causes: set[str] = field(default_factory=set)


FlowKey = tuple[str, str, int, int, str]  # src_ip, dst_ip, sport, dport, proto
Chunk = dict[str, np.ndarray]  # one export interval's records, column by column


@dataclass(frozen=True)
class StandingFlow:
    """A persistent exchange (poller connection, video stream) given as per-interval means."""

    src_ip: str
    dst_ip: str
    sport: int
    dport: int
    proto: str
    app: str
    packets: float
    bytes: float
    packets_rev: float
    bytes_rev: float
    jitter: float = 0.0  # relative s.d. of bytes per interval (variable bit rate)
    modbus_reads: int = 0
    fc_set: str = ""
    unit: int = -1
    encrypted: bool = False


class FlowMeter:
    """Accumulates traffic and exports one record per flow per interval."""

    def __init__(self, interval: float, rng: np.random.Generator) -> None:
        self.interval = interval
        self.rng = rng
        self.counters: dict[FlowKey, FlowCounter] = {}
        self.standing: list[StandingFlow] = []
        self._arrays: dict[str, np.ndarray] = {}
        self._standing_keys: dict[FlowKey, int] = {}
        self.next_id = 1
        self.caused: dict[str, list[int]] = {}  # step id -> flow ids

    def add_standing(self, flow: StandingFlow) -> None:
        key = (flow.src_ip, flow.dst_ip, flow.sport, flow.dport, flow.proto)
        if key in self._standing_keys:
            raise ValueError(f"two standing flows share {key}")
        self._standing_keys[key] = len(self.standing)
        self.standing.append(flow)
        self._arrays = {}

    def _freeze(self) -> dict[str, np.ndarray]:
        if not self._arrays and self.standing:
            s = self.standing
            self._arrays = {
                name: np.array([getattr(f, name) for f in s])
                for name in (
                    "src_ip", "dst_ip", "sport", "dport", "proto", "app", "packets", "bytes",
                    "packets_rev", "bytes_rev", "jitter", "modbus_reads", "fc_set", "unit",
                    "encrypted",
                )
            }  # fmt: skip
        return self._arrays

    def record(
        self,
        key: FlowKey,
        t: float,
        app: str,
        *,
        packets: int,
        bytes: int,
        packets_rev: int = 0,
        bytes_rev: int = 0,
        tcp_flags: str = "",
        reads: int = 0,
        writes: int = 0,
        fc: int | None = None,
        unit: int = -1,
        exception: bool = False,
        auth_failure: bool = False,
        blocked: bool = False,
        encrypted: bool = False,
        cause: str | None = None,
    ) -> None:
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = FlowCounter(t, t, app, encrypted)
        c.t_last = t
        c.packets += packets
        c.bytes += bytes
        c.packets_rev += packets_rev
        c.bytes_rev += bytes_rev
        c.flags.update(tcp_flags)
        c.reads += reads
        c.writes += writes
        if fc is not None:
            c.fcs.add(fc)
        if unit >= 0:
            c.unit = unit
        c.exceptions += int(exception)
        c.auth_failures += int(auth_failure)
        c.blocked = c.blocked or blocked
        if cause is not None:
            c.causes.add(cause)

    def export(
        self, t_end: float, allowed: np.ndarray | None, answered: np.ndarray | None = None
    ) -> Chunk:
        """Records for the interval ending at t_end, as numpy columns (see `flows_frame`).

        `allowed` masks the standing flows the policy lets through; `answered` those whose
        destination replies (a flooded device does not: only retries cross the wire).
        Columns, not a DataFrame: building frames once per batch instead of once per
        interval is most of the meter's cost at scale.
        """
        t_start = t_end - self.interval
        parts: list[tuple[Chunk, dict[int, set[str]]]] = []
        arrays = self._freeze()
        merged: dict[int, FlowCounter] = {}
        for key in [k for k in self.counters if k in self._standing_keys]:
            merged[self._standing_keys[key]] = self.counters.pop(key)
        if arrays:
            parts.append(self._standing_rows(arrays, t_start, t_end, allowed, merged, answered))
        if self.counters:
            parts.append(self._counter_rows(list(self.counters.items())))
        self.counters = {}
        if not parts:
            return {}
        offset, causes = 0, {}
        for chunk, found in parts:
            causes.update({offset + i: c for i, c in found.items()})
            offset += len(chunk["packets"])
        cols = {c: np.concatenate([p[0][c] for p in parts]) for c in parts[0][0]}
        keep = cols["packets"] > 0
        rows = np.flatnonzero(keep)
        cols = {c: v[keep] for c, v in cols.items()}
        n = len(rows)
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        cols["flow_id"] = ids
        cols["t_export"] = np.full(
            n, t_end
        )  # when the record left the meter: the earliest a detector sees it
        if causes:
            position = {int(r): k for k, r in enumerate(rows)}
            for row, steps in causes.items():
                if row in position:
                    for step in steps:
                        self.caused.setdefault(step, []).append(int(ids[position[row]]))
        return cols

    def _standing_rows(
        self,
        a: dict[str, np.ndarray],
        t_start: float,
        t_end: float,
        allowed: np.ndarray | None,
        merged: dict[int, FlowCounter],
        answered: np.ndarray | None = None,
    ) -> tuple[Chunk, dict[int, set[str]]]:
        n = a["src_ip"].size
        passed = np.ones(n, dtype=bool) if allowed is None else allowed
        ok = passed if answered is None else passed & answered
        scale = 1.0 + a["jitter"] * self.rng.standard_normal(n)
        scale = np.clip(scale, 0.2, None)
        bytes_ = np.where(ok, np.round(a["bytes"] * scale), 60.0 * 3)
        bytes_rev = np.where(ok, np.round(a["bytes_rev"] * scale), 0.0)
        packets = np.where(ok, np.round(a["packets"] * scale), 3.0)
        packets_rev = np.where(ok, np.round(a["packets_rev"] * scale), 0.0)
        reads = np.where(ok, a["modbus_reads"], 0)
        writes = np.zeros(n, dtype=np.int64)
        fc_set = np.where(ok, a["fc_set"], "").astype(object)
        exceptions = np.zeros(n, dtype=np.int64)
        tcp = np.where(ok, "PA", "S").astype(object)
        causes: dict[int, set[str]] = {}
        for i, c in merged.items():  # discrete traffic that rode an existing connection
            packets[i] += c.packets
            bytes_[i] += c.bytes
            packets_rev[i] += c.packets_rev
            bytes_rev[i] += c.bytes_rev
            reads[i] += c.reads
            writes[i] += c.writes
            exceptions[i] += c.exceptions
            fcs = {int(x) for x in str(fc_set[i]).split(",") if x} | c.fcs
            fc_set[i] = ",".join(str(x) for x in sorted(fcs))
            if c.causes:
                causes[i] = c.causes
        return {
            "t_start": np.full(n, t_start), "t_end": np.full(n, t_end),
            "src_ip": a["src_ip"], "dst_ip": a["dst_ip"], "src_port": a["sport"],
            "dst_port": a["dport"], "proto": a["proto"], "app": a["app"],
            "packets": packets, "bytes": bytes_, "packets_rev": packets_rev,
            "bytes_rev": bytes_rev, "tcp_flags": tcp, "modbus_reads": reads,
            "modbus_writes": writes, "modbus_fc_set": fc_set, "modbus_unit": a["unit"],
            "modbus_exceptions": exceptions, "auth_failures": np.zeros(n, dtype=np.int64),
            "blocked": ~passed, "encrypted": a["encrypted"],
        }, causes  # fmt: skip

    @staticmethod
    def _counter_rows(
        items: list[tuple[FlowKey, FlowCounter]],
    ) -> tuple[Chunk, dict[int, set[str]]]:
        def col(values: list[object]) -> np.ndarray:
            return np.array(values, dtype=object if isinstance(values[0], str) else None)

        cs = [c for _, c in items]
        chunk = {
            "t_start": col([c.t_first for c in cs]), "t_end": col([c.t_last for c in cs]),
            "src_ip": col([k[0] for k, _ in items]), "dst_ip": col([k[1] for k, _ in items]),
            "src_port": col([k[2] for k, _ in items]), "dst_port": col([k[3] for k, _ in items]),
            "proto": col([k[4] for k, _ in items]), "app": col([c.app for c in cs]),
            "packets": col([c.packets for c in cs]), "bytes": col([c.bytes for c in cs]),
            "packets_rev": col([c.packets_rev for c in cs]),
            "bytes_rev": col([c.bytes_rev for c in cs]),
            "tcp_flags": col([flags(c.flags) for c in cs]),
            "modbus_reads": col([c.reads for c in cs]),
            "modbus_writes": col([c.writes for c in cs]),
            "modbus_fc_set": col([",".join(str(x) for x in sorted(c.fcs)) for c in cs]),
            "modbus_unit": col([c.unit for c in cs]),
            "modbus_exceptions": col([c.exceptions for c in cs]),
            "auth_failures": col([c.auth_failures for c in cs]),
            "blocked": col([c.blocked for c in cs]),
            "encrypted": col([c.encrypted for c in cs]),
        }  # fmt: skip
        return chunk, {i: c.causes for i, c in enumerate(cs) if c.causes}


def flows_frame(chunks: list[Chunk]) -> pd.DataFrame:
    """One flows DataFrame from the meter's interval chunks (typed as FLOW_COLUMNS)."""
    chunks = [c for c in chunks if c]
    if not chunks:
        return empty_flows()
    cols = {c: np.concatenate([ch[c] for ch in chunks]) for c in FLOW_COLUMNS}
    return pd.DataFrame(cols).astype(FLOW_COLUMNS)
