"""Device health from the process side: the BMS's comm-loss alarms, unanswered polls, stale values."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView
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
      there (and at least `min_stale_s`): a controller that stopped scanning.

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
        """Per signal, the longest spell without change in the warm-up; steady ones skipped."""
        self.limit_: dict[str, float] = {}
        self.last_: dict[str, tuple[float, float]] = {}  # signal -> (value, changed at)
        self.stale_: set[str] = set()
        if process.empty or not self.check_stale:
            return
        span = float(process["t"].max() - process["t"].min())
        owner: dict[str, str] = {}
        for d, names in evidence.device_signals(self.site_.facility).items():
            for s in names:  # the first owner is the controller that acts on it (VAV, PLC)
                if s.endswith(STALE_SIGNALS):
                    owner.setdefault(s, d)
        self.owner_ = owner
        for signal, g in process.groupby("signal", sort=True, observed=True):
            if signal not in owner:
                continue
            t = g["t"].to_numpy(dtype=float)
            v = g["reported"].to_numpy(dtype=float)
            changed = np.flatnonzero(np.diff(v) != 0) + 1
            if len(changed) < 3:
                continue  # steady by nature (a setpoint, a lock): never stale
            marks = np.concatenate([[t[0]], t[changed], [t[-1]]])
            longest = float(np.diff(marks).max())
            if longest >= span / 2:
                continue
            self.limit_[str(signal)] = max(self.stale_factor * longest, self.min_stale_s)
            self.last_[str(signal)] = (float(v[-1]), float(t[changed[-1]]))

    def _stale(self, process: pd.DataFrame) -> list[Alert]:
        if process.empty or not self.limit_:
            return []
        p = process[process["signal"].isin(self.limit_.keys())]
        out = []
        for signal, g in p.groupby("signal", sort=True, observed=True):
            name = str(signal)
            value, since = self.last_[name]
            t = g["t"].to_numpy(dtype=float)
            v = g["reported"].to_numpy(dtype=float)
            moved = np.flatnonzero(v != np.concatenate([[value], v[:-1]]))
            if len(moved):
                since = float(t[moved[-1]])
                self.stale_.discard(name)
            self.last_[name] = (float(v[-1]), since)
            quiet = float(t[-1]) - since
            if quiet > self.limit_[name] and name not in self.stale_:
                self.stale_.add(name)
                device = self.owner_[name]
                d = self.site_.facility.by_name.get(device)
                why = f"{name} has not changed for {quiet / 60:.0f} min (at most {self.limit_[name] / 60:.0f} in the warm-up): {device} stopped scanning?"
                out.append(Alert(
                    float(t[-1]), self.name, "medium", device, "", d.ip if d else "", "T0814",
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
        polls = f[(f["dst_port"] == MODBUS_PORT) & ~f["blocked"] & (f["packets"] > 0)]
        if polls.empty:
            return []
        pairs = pd.Series(
            list(zip(polls["src_ip"], polls["dst_ip"], strict=True)), index=polls.index
        )
        polls = polls[pairs.isin(self.polled_).to_numpy()]
        out = []
        for dst, g in polls.groupby("dst_ip", sort=True, observed=True):
            dead = g[g["packets_rev"] == 0]
            device = self.site_.name(str(dst))
            if dead.empty:
                self.silent_.discard(device)
                continue
            if g.loc[dead.index[-1] :, "packets_rev"].gt(0).any():
                self.silent_.discard(device)  # it answered again after
                continue
            if device in self.silent_:
                continue
            self.silent_.add(device)
            out.append(Alert(
                float(dead["t_export"].min()), self.name, "high", device,
                str(dead["src_ip"].iloc[0]), str(dst), "T0814",
                f"{device} stopped answering its poller ({len(dead)} unanswered poll flows)",
                evidence=evidence.flows(dead["flow_id"]) + evidence.signals([evidence.health(device)]),
            ))  # fmt: skip
        return out
