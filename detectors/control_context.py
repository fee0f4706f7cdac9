"""Control context: who writes to controllers, how much, and how the writer was reached."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, summarise
from twin import evidence
from twin.devices import KINDS
from twin.telemetry import Alert, TelemetryBatch

MODBUS_PORT = 502


class ControlContext(Detector):
    """Judges Modbus writes by their context, from any host, the permitted ones included.

    - Changed control: a flow carrying more write requests than any flow of that writer to
      that device in the warm-up, and more than `routine_writes`: a person re-writes a value
      now and then; moving a setpoint, an interlock and an alarm limit takes several writes
      (T0831). Once per writer and device per `window_s`.
    - Writes after an unusual login: a host writes to a controller within `window_s` of a
      successful login to it from a source that never logged into it in the warm-up (a
      reused password, a pivot) (T0859). Once per writer per login.
    - A new point changed: a device logs each register write (`register_write`: which point,
      what it held, what it holds now). A write that changes a point's value by at least one
      count, on a point of that kind of device the writer never wrote in the warm-up, is
      changed control at the moment of the write, from any host: an interlock or an alarm
      turned off, a trip level raised, an input overridden (T0836). The BMS re-commanding
      its schedule and an engineer re-writing a value are points they write every day.
      Once per writer, device and point per `window_s`.
    """

    name = "control_context"
    summary = "writes by their context: more writes than the writer's routine, writes after an unusual login"
    reference_scenario = "plant-integrator-pivot"

    def __init__(self, routine_writes: int = 1, window_s: float = 3600.0) -> None:
        if routine_writes < 1:
            raise ValueError(f"routine_writes must be at least 1, got {routine_writes}")
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.routine_writes = routine_writes
        self.window_s = window_s

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        f = baseline.flows
        w = f[(f["dst_port"] == MODBUS_PORT) & (f["modbus_writes"] > 0)]
        most = w.groupby(["src_ip", "dst_ip"], observed=True)["modbus_writes"].max()
        self.most_ = {k: int(v) for k, v in most.items()}
        self.most_series_ = pd.Series(
            list(self.most_.values()),
            index=pd.MultiIndex.from_tuples(list(self.most_), names=["src_ip", "dst_ip"])
            if self.most_
            else pd.MultiIndex.from_arrays([[], []], names=["src_ip", "dst_ip"]),
            dtype=float,
        )
        ev = baseline.events
        ok = ev[ev["kind"] == "login_ok"]
        self.logins_ = set(zip(ok["ip"].astype(str), ok["src_ip"].astype(str), strict=True))
        points = _points(ev, site)
        self.points_ = set(zip(points["src_ip"], points["kind"], points["point"], strict=True))
        self.unusual_: dict[str, tuple[float, int]] = {}  # host ip -> (login time, event id)
        self.raised_: dict[tuple[str, ...], float] = {}
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        out: list[Alert] = []
        ev = batch.events
        if len(ev):
            ok = ev[ev["kind"] == "login_ok"]
            for r in ok.itertuples():
                key = (str(r.ip), str(r.src_ip))
                if r.src_ip and key not in self.logins_:
                    self.unusual_[str(r.ip)] = (float(r.t), int(r.event_id))
            out += self._new_points(ev)
        f = batch.flows
        if f.empty:
            return sorted(out, key=lambda a: (a.t, a.device, a.reason))
        w = f[(f["dst_port"] == MODBUS_PORT) & (f["modbus_writes"] > 0) & ~f["blocked"]]
        if w.empty:
            return sorted(out, key=lambda a: (a.t, a.device, a.reason))
        # only the few flows over their writer's routine, or from a host reached by an unusual
        # login, are looked at one by one: the BMS writes to every controller every hour
        pairs = pd.MultiIndex.from_arrays([w["src_ip"], w["dst_ip"]])
        routine = self.most_series_.reindex(pairs).fillna(0).to_numpy()
        writes = w["modbus_writes"].to_numpy()
        odd = (writes > np.maximum(routine, self.routine_writes)) | w["src_ip"].isin(
            list(self.unusual_)
        ).to_numpy()
        if not odd.any():
            return sorted(out, key=lambda a: (a.t, a.device, a.reason))
        w = w[odd]
        for (src, dst), g in w.groupby(["src_ip", "dst_ip"], sort=True, observed=True):
            src, dst = str(src), str(dst)
            limit = max(self.most_.get((src, dst), 0), self.routine_writes)
            many = g[g["modbus_writes"] > limit]
            t = float(g["t_export"].min())
            if len(many) and self._fresh(("many", src, dst), t):
                n = int(many["modbus_writes"].max())
                out.append(self._alert(
                    float(many["t_export"].min()), "high", "T0831", src, dst,
                    f"{self.site_.name(src)} wrote {n} times to {self.site_.name(dst)} in one session (its routine: at most {limit})",
                    evidence.flows(many["flow_id"]),
                ))  # fmt: skip
            login = self.unusual_.get(src)
            recent = login is not None and 0 <= t - login[0] <= self.window_s
            if login is not None and recent and self._fresh(("login", src, str(login[1])), t):
                out.append(self._alert(
                        t, "high", "T0859", src, dst,
                        f"{self.site_.name(src)} writes to {self.site_.name(dst)} {t - login[0]:.0f} s after a login from a source new to it",
                        evidence.flows(g["flow_id"]) + evidence.events((login[1],)),
                    ))  # fmt: skip
        return sorted(out, key=lambda a: (a.t, a.device, a.reason))

    def _new_points(self, ev: pd.DataFrame) -> list[Alert]:
        """Changes to points their writer never wrote in the warm-up, one alert per writer and
        device per batch, citing the writes."""
        w = _points(ev, self.site_, self.points_)
        w = w[w["changed"].to_numpy(dtype=bool)]
        if w.empty:
            return []
        out = []
        for (src, dst), g in w.groupby(["src_ip", "ip"], sort=True):
            src, dst = str(src), str(dst)
            g = g[[self._fresh(("point", src, dst, str(x)), float(t)) for x, t in zip(g["point"], g["t"], strict=True)]]  # fmt: skip
            if g.empty:
                continue
            said = [str(x) for x in dict.fromkeys(g["detail"])]
            out.append(self._alert(
                float(g["t"].min()), "high", "T0836", src, dst,
                f"{self.site_.name(src)} changed {len(said)} point(s) of {self.site_.name(dst)} it never wrote in the warm-up: {summarise(said)}",
                evidence.events(g["event_id"]),
            ))  # fmt: skip
        return out

    def _fresh(self, key: tuple[str, ...], t: float) -> bool:
        last = self.raised_.get(key)
        if last is not None and t - last <= self.window_s:
            return False
        self.raised_[key] = t
        return True

    def _alert(
        self, t: float, severity: str, technique: str, src: str, dst: str, why: str,
        cited: tuple[str, ...],
    ) -> Alert:  # fmt: skip
        d = self.site_.device(dst)
        return Alert(t, self.name, severity, d.name if d else dst, src, dst, technique, why,
                     evidence=cited)  # fmt: skip


def _points(
    events: pd.DataFrame, site: SiteView, known: set[tuple[str, str, str]] | None = None
) -> pd.DataFrame:
    """The register writes among `events` (with `known`: only to points not in it): writer,
    device kind, point, and whether the write changed the value by at least one count of the
    point's scale."""
    columns = ["src_ip", "ip", "kind", "point", "changed", "t", "event_id", "detail"]
    w = events[(events["kind"] == "register_write").to_numpy()]
    if w.empty:
        return pd.DataFrame(columns=columns)
    ips = w["ip"].astype(str).tolist()
    kind_of = {ip: (d.kind if (d := site.device(ip)) is not None else "") for ip in set(ips)}
    kinds = [kind_of[ip] for ip in ips]
    detail = w["detail"].astype(str)
    point = detail.str.split(":", n=1).str[0].tolist()
    src = w["src_ip"].astype(str).tolist()
    if known is not None:  # the routine writes (the BMS's schedule) stop here, unparsed
        new = [k not in known for k in zip(src, kinds, point, strict=True)]
        if not any(new):
            return pd.DataFrame(columns=columns)
        keep = np.flatnonzero(new)
        w, detail = w.iloc[keep], detail.iloc[keep]
        ips, kinds, point, src = ([x[i] for i in keep] for x in (ips, kinds, point, src))
    values = detail.str.extract(r": (?P<before>\S+) -> (?P<after>\S+)$").astype(float)
    scale = [
        reg.scale if k in KINDS and (reg := KINDS[k].registers.get(x)) is not None else 1.0
        for k, x in zip(kinds, point, strict=True)
    ]
    step = np.abs(values["after"].to_numpy() - values["before"].to_numpy())
    return pd.DataFrame({
        "src_ip": src, "ip": ips, "kind": kinds, "point": point,
        "changed": step * np.asarray(scale, dtype=float) >= 0.5,
        "t": w["t"].to_numpy(dtype=float), "event_id": w["event_id"].to_numpy(dtype=np.int64),
        "detail": detail.to_numpy(),
    }, columns=columns)  # fmt: skip
