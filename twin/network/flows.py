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
    ) -> pd.DataFrame:
        """Rows for the interval ending at t_end.

        `allowed` masks the standing flows the policy lets through; `answered` those whose
        destination replies (a flooded device does not: only retries cross the wire).
        """
        t_start = t_end - self.interval
        parts = []
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
            return empty_flows()
        df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        df = df[df["packets"] > 0].reset_index(drop=True)
        df.insert(0, "flow_id", np.arange(self.next_id, self.next_id + len(df), dtype=np.int64))
        df["t_export"] = t_end  # when the record left the meter: the earliest a detector sees it
        self.next_id += len(df)
        if "_cause" in df:
            for flow_id, causes in zip(df["flow_id"], df["_cause"], strict=True):
                for step in causes or ():
                    self.caused.setdefault(step, []).append(int(flow_id))
            df = df.drop(columns="_cause")
        return df[list(FLOW_COLUMNS)].astype(FLOW_COLUMNS)

    def _standing_rows(
        self,
        a: dict[str, np.ndarray],
        t_start: float,
        t_end: float,
        allowed: np.ndarray | None,
        merged: dict[int, FlowCounter],
        answered: np.ndarray | None = None,
    ) -> pd.DataFrame:
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
        causes: list[set[str] | None] = [None] * n
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
            causes[i] = c.causes or None
        return pd.DataFrame({
            "t_start": np.full(n, t_start), "t_end": np.full(n, t_end),
            "src_ip": a["src_ip"], "dst_ip": a["dst_ip"], "src_port": a["sport"],
            "dst_port": a["dport"], "proto": a["proto"], "app": a["app"],
            "packets": packets, "bytes": bytes_, "packets_rev": packets_rev,
            "bytes_rev": bytes_rev, "tcp_flags": tcp, "modbus_reads": reads,
            "modbus_writes": writes, "modbus_fc_set": fc_set, "modbus_unit": a["unit"],
            "modbus_exceptions": exceptions, "auth_failures": np.zeros(n, dtype=np.int64),
            "blocked": ~passed, "encrypted": a["encrypted"], "_cause": causes,
        })  # fmt: skip

    @staticmethod
    def _counter_rows(items: list[tuple[FlowKey, FlowCounter]]) -> pd.DataFrame:
        return pd.DataFrame({
            "t_start": [c.t_first for _, c in items], "t_end": [c.t_last for _, c in items],
            "src_ip": [k[0] for k, _ in items], "dst_ip": [k[1] for k, _ in items],
            "src_port": [k[2] for k, _ in items], "dst_port": [k[3] for k, _ in items],
            "proto": [k[4] for k, _ in items], "app": [c.app for _, c in items],
            "packets": [c.packets for _, c in items], "bytes": [c.bytes for _, c in items],
            "packets_rev": [c.packets_rev for _, c in items],
            "bytes_rev": [c.bytes_rev for _, c in items],
            "tcp_flags": [flags(c.flags) for _, c in items],
            "modbus_reads": [c.reads for _, c in items],
            "modbus_writes": [c.writes for _, c in items],
            "modbus_fc_set": [",".join(str(x) for x in sorted(c.fcs)) for _, c in items],
            "modbus_unit": [c.unit for _, c in items],
            "modbus_exceptions": [c.exceptions for _, c in items],
            "auth_failures": [c.auth_failures for _, c in items],
            "blocked": [c.blocked for _, c in items],
            "encrypted": [c.encrypted for _, c in items],
            "_cause": [c.causes or None for _, c in items],
        })  # fmt: skip
