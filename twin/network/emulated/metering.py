"""The router's captures read as the run goes, metered into flows, labelled with their cause.

tcpdump writes one pcap per zone (what enters the router there); `CaptureMeter` tails
them at each export, turns the packets into flow records on the run's clock, and labels
the records an attack step caused: the step's `Attribution` says which source (and
destination and port, if known) in which window of simulated time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.network.flows import FLOW_COLUMNS, Chunk, FlowMeter
from twin.network.pcapflows import PcapMeter, PcapTail


@dataclass
class Attribution:
    """Traffic an attack step made: flows from src (to dst:port, if known) in a time window.

    Open (t1 infinite) while the transaction or tool runs, so flows exported meanwhile
    are labelled too.
    """

    cause: str
    src_ip: str
    dst_ip: str | None
    dport: int | None
    t0: float  # simulated seconds
    t1: float = math.inf


class Attributions(list[Attribution]):
    """The attributions still open, or closed recently enough to match a flow exported now."""

    def add(self, attribution: Attribution) -> Attribution:
        self.append(attribution)
        return attribution

    def label(
        self, cols: Chunk, ids: np.ndarray, caused: dict[str, list[int]], slack: float
    ) -> None:
        """Add the ids of the flows each attribution covers to `caused[cause]`."""
        if not self:
            return
        src, dst, dport = cols["src_ip"], cols["dst_ip"], cols["dst_port"]
        t_start, t_end = cols["t_start"].astype(float), cols["t_end"].astype(float)
        for a in self:
            hit = (src == a.src_ip) & (t_end >= a.t0 - slack) & (t_start <= a.t1 + slack)
            if a.dst_ip is not None:
                hit &= dst == a.dst_ip
            if a.dport is not None:
                hit &= dport.astype(int) == a.dport
            for i in np.flatnonzero(hit):
                caused.setdefault(a.cause, []).append(int(ids[i]))

    def forget_before(self, horizon: float) -> None:
        self[:] = [a for a in self if a.t1 >= horizon]


class CaptureMeter:
    """The captures, tailed and metered into flow records on the run's clock."""

    def __init__(
        self, pcaps: list[Path], env: Any, meter: FlowMeter, attributions: Attributions
    ) -> None:
        self.env = env
        self.meter = meter  # the run's meter: flow ids and what each step caused
        self.attributions = attributions
        self.pcap_meter = PcapMeter(meter.interval)
        self.tails = [PcapTail(p, env.epoch, env.speed, self.pcap_meter.skipped) for p in pcaps]

    @property
    def packets(self) -> int:
        return int(self.pcap_meter.packets)

    def export(self, t_end: float, *, slack: float) -> Chunk:
        """Flow records of what the captures hold up to `t_end`, labelled by cause."""
        packets = sorted((p for tail in self.tails for p in tail.read()), key=lambda p: p[0])
        meter = self.pcap_meter
        for t, linktype, data, wire_len in packets:
            meter.add(t, linktype, data, wire_len)
        if meter.current is not None and meter.end <= t_end + 1e-6:
            meter.flush()
        rows, meter.rows = meter.rows, []
        if not rows:
            return {}
        names = [c for c in FLOW_COLUMNS if c != "flow_id"]
        cols: Chunk = {
            n: np.array(v, dtype=object)
            for n, v in zip(names, zip(*rows, strict=True), strict=True)
        }
        n = len(rows)
        ids = np.arange(self.meter.next_id, self.meter.next_id + n, dtype=np.int64)
        self.meter.next_id += n
        cols["flow_id"] = ids
        self.attributions.label(cols, ids, self.meter.caused, slack)
        now = self.env.now
        self.attributions.forget_before((now - 3 * self.meter.interval) if now else 0.0)
        return cols

    def close(self) -> None:
        for tail in self.tails:
            tail.close()
