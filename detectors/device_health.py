"""Device health from the process side: the BMS's comm-loss alarms, unanswered polls, stale values."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, flow_codes
from twin import evidence
from twin.telemetry import Alert, TelemetryBatch

MODBUS_PORT = 502
# what a stalled controller freezes; CO2, doors and pumps hold still for hours by nature
STALE_SIGNALS = (".temp_c", ".level_m")


class DeviceHealth(Detector):
    """Sees availability attacks in minutes, where network members see a learned path.

    - Communication loss: the BMS raises `alarm_raised`/`comm_loss` for a device it polls
      (T0814); once per outage, until the alarm clears. Devices that lost communication
      during the warm-up are flaky by nature and are not reported.
    - Unanswered polls: a flow on a polling path the warm-up saw answered every time
      (a poller to a device's Modbus port) that now carries requests and gets nothing back;
      once per device per outage, until an answer comes again.
    - Stale values: a reported process signal that changed at least every few samples in
      the warm-up and has not changed for `stale_factor` times its longest steady spell
      (and at least `min_stale_s`): a controller that stopped scanning. The longest spell is
      learned in the warm-up and kept up to date from the stream, from spells that ended by
      themselves without being reported (a night holds values longer than a morning).

    Every alert cites what it saw and `signal:health.<device>`, the device's availability.
    """

    name = "device_health"
    summary = (
        "BMS comm-loss alarms, unanswered polls and stale reported values: availability in minutes"
    )
    reference_scenario = "plant-rogue-flood"

    def __init__(
        self, stale_factor: float = 3.0, min_stale_s: float = 900.0, check_stale: bool = True
    ) -> None:
        if not stale_factor >= 1:
            raise ValueError(f"stale_factor must be >= 1, got {stale_factor}")
        if not min_stale_s > 0:
            raise ValueError(f"min_stale_s must be > 0, got {min_stale_s}")
        self.stale_factor = stale_factor
        self.min_stale_s = min_stale_s
        self.check_stale = check_stale

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        ev = baseline.events
        lost = ev[(ev["kind"] == "alarm_raised") & (ev["detail"] == "comm_loss")]
        self.flaky_ = set(lost["device"].astype(str))
        f = baseline.flows
        polls = f[(f["dst_port"] == MODBUS_PORT) & ~f["blocked"] & (f["modbus_reads"] > 0)]
        answered = polls.groupby(["src_ip", "dst_ip"], observed=True)["packets_rev"].min()
        self.polled_ = {pair for pair, least in answered.items() if least > 0}
        self.down_: dict[str, float] = {}  # device -> when its outage was reported
        self.silent_: set[str] = set()  # devices whose polls go unanswered now
        self._learn_stale(baseline.process)
        return self

    # -- stale values -----------------------------------------------------------------------

    def _learn_stale(self, process: pd.DataFrame) -> None:
        """Per signal, the longest spell without change in the warm-up; steady ones skipped.

        State is kept as arrays over the watched signals (`names_`): last value, when it
        last changed, the limit, and whether it is reported stale now."""
        limits: dict[str, float] = {}
        spells: dict[str, float] = {}
        last: dict[str, tuple[float, float]] = {}
        owner: dict[str, str] = {}
        if not process.empty and self.check_stale:
            span = float(process["t"].max() - process["t"].min())
            for d, names in evidence.device_signals(self.site_.facility).items():
                for s in names:  # the first owner is the controller that acts on it (VAV, PLC)
                    if s.endswith(STALE_SIGNALS):
                        owner.setdefault(s, d)
            watched = process[process["signal"].isin(owner.keys())]
            for signal, g in watched.groupby("signal", sort=True, observed=True):
                t = g["t"].to_numpy(dtype=float)
                v = g["reported"].to_numpy(dtype=float)
                changed = np.flatnonzero(np.diff(v) != 0) + 1
                if len(changed) < 3:
                    continue  # steady by nature: never stale
                marks = np.concatenate([[t[0]], t[changed], [t[-1]]])
                longest = float(np.diff(marks).max())
                if longest >= span / 2:
                    continue
                limits[str(signal)] = max(self.stale_factor * longest, self.min_stale_s)
                spells[str(signal)] = longest
                last[str(signal)] = (float(v[-1]), float(t[changed[-1]]))
        self.names_ = sorted(limits)
        self.owner_ = [owner[n] for n in self.names_]
        self.index_ = {n: i for i, n in enumerate(self.names_)}
        self.limits_ = np.array([limits[n] for n in self.names_], dtype=float)
        self.longest_ = np.array([spells[n] for n in self.names_], dtype=float)
        self.value_ = np.array([last[n][0] for n in self.names_], dtype=float)
        self.since_ = np.array([last[n][1] for n in self.names_], dtype=float)
        self.stale_ = np.zeros(len(self.names_), dtype=bool)

    def _stale(self, process: pd.DataFrame) -> list[Alert]:
        if process.empty or not self.names_:
            return []
        # each distinct signal name is looked up once, not each of its samples
        code, names = pd.factorize(process["signal"])
        lookup = np.array([self.index_.get(n, -1) for n in names.tolist()] + [-1], dtype=np.int64)
        idx = lookup[code]
        mine = idx >= 0
        if not mine.any():
            return []
        idx = idx[mine]
        t = process["t"].to_numpy(dtype=float)[mine]
        v = process["reported"].to_numpy(dtype=float)[mine]
        order = np.lexsort((t, idx))
        idx, t, v = idx[order], t[order], v[order]
        first = np.r_[True, idx[1:] != idx[:-1]]
        last = np.r_[idx[1:] != idx[:-1], True]
        prev = np.where(first, self.value_[idx], np.r_[np.nan, v[:-1]])
        moved = v != prev
        # a spell that ended by itself, never reported stale, is the signal's own rhythm: a
        # quiet night holds values longer than a short warm-up showed, so the limit grows with
        # what the stream shows (an outage, once reported, teaches nothing)
        mi, mt = idx[moved], t[moved]
        began = np.where(np.r_[True, mi[1:] != mi[:-1]], self.since_[mi], np.r_[np.nan, mt[:-1]])
        spell = mt - began
        routine = (spell <= self.limits_[mi]) & ~self.stale_[mi]
        np.maximum.at(self.longest_, mi[routine], spell[routine])
        self.limits_ = np.maximum(self.limits_, self.stale_factor * self.longest_)
        np.maximum.at(self.since_, idx[moved], t[moved])
        self.stale_[idx[moved]] = False
        self.value_[idx[last]] = v[last]
        now = np.full(len(self.names_), -np.inf)
        now[idx[last]] = t[last]
        quiet = now - self.since_
        out = []
        for i in np.flatnonzero((quiet > self.limits_) & ~self.stale_):
            self.stale_[i] = True
            name, device = self.names_[i], self.owner_[i]
            d = self.site_.facility.by_name.get(device)
            why = f"{name} has not changed for {quiet[i] / 60:.0f} min (at most {self.limits_[i] / 60:.0f} by its routine): {device} stopped scanning?"
            out.append(Alert(
                float(now[i]), self.name, "medium", device, "", d.ip if d else "", "T0814",
                why, evidence=evidence.signals([name, evidence.health(device)]),
            ))  # fmt: skip
        return out

    # -- the stream -------------------------------------------------------------------------

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        alerts = self._comm_loss(batch.events) + self._unanswered(batch.flows)
        if self.check_stale:
            alerts += self._stale(batch.process)
        return sorted(alerts, key=lambda a: (a.t, a.device, a.reason))

    def _comm_loss(self, ev: pd.DataFrame) -> list[Alert]:
        if ev.empty:
            return []
        mine = ev[
            ev["kind"].isin(("alarm_raised", "alarm_cleared")) & (ev["detail"] == "comm_loss")
        ]
        out = []
        for r in mine.itertuples():
            device = str(r.device)
            if r.kind == "alarm_cleared":
                self.down_.pop(device, None)
                continue
            if device in self.flaky_ or device in self.down_:
                continue
            self.down_[device] = float(r.t)
            out.append(Alert(
                float(r.t), self.name, "high", device, "", str(r.ip), "T0814",
                f"the BMS lost communication with {device}",
                evidence=evidence.events((int(r.event_id),)) + evidence.signals([evidence.health(device)]),
            ))  # fmt: skip
        return out

    def _unanswered(self, f: pd.DataFrame) -> list[Alert]:
        if f.empty or not self.polled_:
            return []
        codes = flow_codes(f)
        poll = (
            (codes.port == MODBUS_PORT)
            & ~f["blocked"].to_numpy(dtype=bool)
            & (f["packets"].to_numpy() > 0)
        )
        # the polling paths the warm-up saw answered, judged once per distinct pair
        pair = codes.src * len(codes.ips) + codes.dst
        pairs = np.unique(pair[poll])
        ips = codes.ips
        watched = pairs[
            np.array([(ips[p // len(ips)], ips[p % len(ips)]) in self.polled_ for p in pairs.tolist()], dtype=bool)
        ] if len(pairs) else pairs  # fmt: skip
        rows = np.flatnonzero(poll & np.isin(pair, watched))
        if not len(rows):
            return []
        polls = f.take(rows)
        t = codes.t[rows]
        dead = polls["packets_rev"].to_numpy() == 0
        code, dsts = pd.factorize(codes.dst[rows])
        dsts = ips[dsts]
        answered = np.full(len(dsts), -np.inf)
        np.maximum.at(answered, code[~dead], t[~dead])
        unanswered = np.full(len(dsts), -np.inf)
        np.maximum.at(unanswered, code[dead], t[dead])
        # silent now: unanswered polls and no answer since the last of them
        silent = unanswered > answered
        names = [self.site_.name(str(d)) for d in dsts]
        self.silent_ -= {n for n, s in zip(names, silent, strict=True) if not s}
        out = []
        for i in np.flatnonzero(silent):
            device = names[i]
            if device in self.silent_:
                continue
            self.silent_.add(device)
            mine = polls[(code == i) & dead]
            out.append(Alert(
                float(mine["t_export"].min()), self.name, "high", device,
                str(mine["src_ip"].iloc[0]), str(dsts[i]), "T0814",
                f"{device} stopped answering its poller ({len(mine)} unanswered poll flows)",
                evidence=evidence.flows(mine["flow_id"]) + evidence.signals([evidence.health(device)]),
            ))  # fmt: skip
        return out
