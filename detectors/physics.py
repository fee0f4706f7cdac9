"""Physics-aware process detector: reported signals checked against a learned plant model."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, summarise
from twin.devices import KINDS
from twin.evidence import signals
from twin.facility import Facility
from twin.physics.plant import member_name
from twin.telemetry import Alert, TelemetryBatch

CP_AIR = 1005.0  # J/(kg K): the prior gain of a VAV's air term
CLIP = 4.0  # one standardised residual adds at most this much to a CUSUM
# how far past its commanded setpoint a room may be before a PI loop must have its damper
# past half open (gain 0.35 per K): a setback above the comfort band is no attack
SETPOINT_SLACK_C = 2.0
# the VAV point its supervisor commands: the setpoint its loop follows
SETPOINT_POINT = next(r.name for r in KINDS["vav"].registers if r.state == "vav.setpoint")
# a latched finding re-alerts only after its condition was clear this long: a manipulated tank
# overfills every fill cycle, which is one incident; a door opened again is a new entry
REARM_S = {"unbadged": 900.0, "unlocked": 900.0}
REARM_DEFAULT_S = 6 * 3600.0
MODES = ("sensors", "all", "none")
RULES = {  # rule -> (severity, technique guess, what it says about {what})
    "model": ("medium", "T0856", "reported {what} departs from the thermal model (CUSUM)"),
    "level": ("medium", "T0831", "reported {what} departs from the pump/outflow model (CUSUM)"),
    "supply": ("high", "T0831", "rooms it feeds depart from the thermal model (CUSUM): {what}"),
    "spoof": ("high", "T0856", "reported {what} differs from the independent sensor by > {x:g} degC for {y:g} s"),
    "against": ("high", "T0831", "damper works against the reported error of {what} (outside its band)"),
    "envelope": ("high", "T0831", "{what} left the range learned in the warm-up"),
    "overfill": ("high", "T0831", "pump still on with {what} above the commissioned high setpoint"),
    "silent": ("critical", "T0878", "{what} at the commissioned trip level and no alarm raised"),
    "unlocked": ("medium", "T0855", "{what} released (never released in the warm-up)"),
    "unbadged": ("high", "T0855", "{what} opened without a badge swipe"),
}  # fmt: skip
Hit = tuple[str, float, str, str, tuple[str, ...]]  # rule, t, device, what, signals it saw


def _ridge(x: np.ndarray, y: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """Least squares pulled toward `prior` by `weight` samples' worth (the intercept is free)."""
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < x.shape[1]:
        return prior.copy()
    lam = weight * np.maximum((x**2).mean(axis=0), 1e-12)
    lam[-1] = 1e-9
    return np.linalg.solve(x.T @ x + np.diag(lam), x.T @ y + lam * prior)


class Physics(Detector):
    """Checks that the process the controllers report obeys physics and their own control logic.

    - Models learned on the warm-up by ridge least squares on *reported* values, pulled toward
      the inventory's airflow, thermal mass and pump data where the warm-up does not excite a
      term: per room dT = a (T_sup - T) damper + b (T_out - T) + c, per tank
      dL = p pump + q sqrt(L) + r. Residuals in warm-up s.d. (clipped at 4) feed two-sided
      CUSUMs (slack `k`, threshold `h`); the intercept tracks slow gains (occupancy, sun) with
      time constant `adapt_s`, never while a CUSUM is high. A room departing names its VAV,
      or its AHU when the AHU explains it (see `_blame`).
    - Fusion rules, latched until clear: reported room temperature against an independent
      measurement (the table's `value` stands in for a redundant room sensor; with
      `independent="sensors"` only in rooms an env_sensor covers, "all": every room); a
      damper closed on a room reported above its band or open below it (a PI loop cannot),
      beyond the setpoint its supervisor commanded (a night set-up above the band is no attack);
      an AHU setpoint or supply temperature outside its warm-up range; a pump on above the
      commissioned high setpoint, or a tank at the trip level with no alarm; a door released
      that never was in the warm-up, or open with no badge swipe in `badge_window_s`.
    """

    name = "physics"
    summary = "plant-model CUSUM on reported process values plus physics/control fusion rules"
    reference_scenario = "dc-server-hall-lie"

    def __init__(
        self,
        k: float = 0.5,
        h: float = 8.0,
        adapt_s: float = 3600.0,
        prior_weight: float = 30.0,
        independent: str = "sensors",
        divergence_c: float = 1.5,
        divergence_s: float = 300.0,
        hold_s: float = 120.0,
        envelope_c: float = 3.0,
        badge_window_s: float = 60.0,
    ) -> None:
        for name, value in (("k", k), ("adapt_s", adapt_s), ("prior_weight", prior_weight),
                            ("divergence_s", divergence_s), ("hold_s", hold_s),
                            ("envelope_c", envelope_c), ("badge_window_s", badge_window_s)):  # fmt: skip
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (("h", h), ("divergence_c", divergence_c)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if independent not in MODES:
            raise ValueError(f"independent must be one of {', '.join(MODES)}, got {independent!r}")
        self.k, self.h, self.adapt_s, self.prior_weight = k, h, adapt_s, prior_weight
        self.independent, self.hold_s, self.envelope_c = independent, hold_s, envelope_c
        self.divergence_c, self.divergence_s = divergence_c, divergence_s
        self.badge_window_s = badge_window_s

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        times = np.unique(baseline.process["t"].to_numpy(dtype=float))
        self.dt_ = float(np.median(np.diff(times))) if len(times) > 2 else 60.0
        prior = self._layout(site.facility, set(baseline.process["signal"].unique()))
        t, rep, _ = self._matrix(baseline.process)
        ahu = pd.DataFrame(rep[:, self.ix_["ahu"]])  # NaN (never out of range) when unseen
        self.range_ = (ahu.min().to_numpy(), ahu.max().to_numpy())
        self.released_ok_ = (rep[:, self.ix_["locked"]] < 0.5).any(axis=0)
        dy, x = self._regressors(t, rep)
        self.theta_ = np.array(
            [_ridge(x[:, c], dy[:, c], prior[c], self.prior_weight) for c in range(dy.shape[1])]
        ).reshape(-1, 3)
        resid = dy - np.einsum("tcj,cj->tc", x, self.theta_)
        n = resid.shape[1]
        self.sigma_ = pd.DataFrame(resid).std(ddof=0).fillna(0.0).clip(lower=1e-3).to_numpy()
        self.bias_, self.up_, self.down_ = np.zeros(n), np.zeros(n), np.zeros(n)
        self.alarmed_ = np.zeros(n, dtype=bool)
        self._cusum(resid)  # warms the CUSUMs and the tracked intercepts up on the baseline
        self.last_ = (t[-1:], rep[-1:])
        self.latch_: dict[str, np.ndarray] = {}  # rule -> rows: since, fired, last true
        # who commands each room's setpoint in the warm-up (the BMS's schedule) and what it
        # last commanded: the loop follows that, night set-up and weekends included
        self.commanders_: set[tuple[str, str]] = set()
        self.column_ = {vav: c for c, (_, vav, _) in enumerate(self.rooms_)}
        self.commanded_ = np.full(len(self.rooms_), np.nan)
        self._commands(baseline.events, np.array([t[-1] if len(t) else 0.0]), learn=True)
        self.blamed_: set[str] = set()
        self.swiped_: dict[str, float] = {}
        return self

    def _layout(self, fac: Facility, have: set[str]) -> np.ndarray:
        """Which signals belong to which device; the model priors from the inventory.

        A device is watched when its main signal is there; any other missing signal is NaN,
        which never alarms."""
        size = {g: len(m) for g, m in fac.groups.items()}
        self.rooms_: list[tuple[str, str, str]] = []  # (room, vav, ahu)
        self.tanks_: list[tuple[str, str]] = []  # (tank, plc)
        self.doors_: list[tuple[str, str]] = []  # (door, controller)
        priors, bands, levels = [], [], []
        for v in fac.of_kind("vav"):
            room = member_name(v.params.room or v.group, v.member, size[v.group])
            if f"room.{room}.temp_c" in have:
                self.rooms_.append((room, v.name, fac.pick(v.params.ahu, v.member).name))
                heat = v.params.capacitance_kj_per_m2k * 1e3 * v.params.area_m2
                air = v.params.max_airflow_kg_s * CP_AIR / 100.0  # W/K per % damper
                priors.append([self.dt_ * air / heat, self.dt_ * v.params.area_m2 / heat, 0.0])
                bands.append(v.params.band_c)
        for p in fac.of_kind("plc"):
            tank, pp = member_name(p.params.tank or p.group, p.member, size[p.group]), p.params
            if f"tank.{tank}.level_m" in have:
                self.tanks_.append((tank, p.name))
                pump = self.dt_ * pp.pump_flow_m3h / 3600.0 / pp.area_m2
                draw = self.dt_ * pp.outflow_m3h / 3600.0 / np.sqrt(2.0) / 2 / pp.area_m2
                priors.append([pump, -draw, 0.0])  # draw: through a half-open outlet valve
                levels.append((pp.high_sp_m, pp.trip_sp_m))
        for c in fac.of_kind("door_controller"):
            door = member_name(c.params.door or c.group, c.member, size[c.group])
            if have & {f"door.{door}.open", f"door.{door}.locked"}:
                self.doors_.append((door, c.name))
        points = ("supply_air_setpoint_c", "supply_air_c")
        ahus = [f"ahu.{a.name}.{s}" for a in fac.of_kind("ahu") for s in points]
        self.ahu_signals_ = [s for s in ahus if s in have]
        self.bands_ = np.array(bands, dtype=float).reshape(-1, 2)
        self.levels_ = np.array(levels, dtype=float).reshape(-1, 2)
        sensed = {s.params.room for s in fac.of_kind("env_sensor")}
        self.redundant_ = np.array([self.independent == "all" or (self.independent == "sensors" and (
            r in sensed or r.rsplit("-", 1)[0] in sensed)) for r, _, _ in self.rooms_], dtype=bool)  # fmt: skip
        self.device_ = [v for _, v, _ in self.rooms_] + [p for _, p in self.tanks_]
        self.signal_ = [f"room.{r}.temp_c" for r, _, _ in self.rooms_]
        self.signal_ += [f"tank.{t}.level_m" for t, _ in self.tanks_]
        self.names_ = {  # what each rule's columns are about, and the device to name
            "room": [(f"room {r}", v) for r, v, _ in self.rooms_],
            "tank": [(f"tank {t}", p) for t, p in self.tanks_],
            "door": [(f"door {d}", c) for d, c in self.doors_],
            "ahu": [(s, s.split(".")[1]) for s in self.ahu_signals_],
        }
        self.cols_: dict[str, int] = {}
        self.cited_ = {  # what each finding's subject is measured by: its evidence
            **{f"room {r}": (f"room.{r}.temp_c", f"vav.{v}.damper_pct") for r, v, _ in self.rooms_},
            **{f"tank {t}": tuple(f"tank.{t}.{x}" for x in ("level_m", "pump_on", "alarm"))
               for t, _ in self.tanks_},
            **{f"door {d}": (f"door.{d}.open", f"door.{d}.locked") for d, _ in self.doors_},
            **{s: (s,) for s in self.ahu_signals_},
        }  # fmt: skip

        def ix(pattern: str, names: list[str]) -> np.ndarray:
            cols = [self.cols_.setdefault(pattern.format(n), len(self.cols_)) for n in names]
            return np.array(cols, dtype=np.int64)

        rooms, vavs = [r for r, _, _ in self.rooms_], [v for _, v, _ in self.rooms_]
        tanks, doors = [t for t, _ in self.tanks_], [d for d, _ in self.doors_]
        self.ix_ = {
            "temp": ix("room.{}.temp_c", rooms), "damper": ix("vav.{}.damper_pct", vavs),
            "supply": ix("ahu.{}.supply_air_c", [a for _, _, a in self.rooms_]),
            "outdoor": ix("outdoor.temp_c", rooms), "level": ix("tank.{}.level_m", tanks),
            "pump": ix("tank.{}.pump_on", tanks), "alarm": ix("tank.{}.alarm", tanks),
            "locked": ix("door.{}.locked", doors), "open": ix("door.{}.open", doors),
            "ahu": ix("{}", self.ahu_signals_),
        }  # fmt: skip
        return np.array(priors, dtype=float).reshape(-1, 3)

    def _matrix(self, process: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample times, and reported and true values as (time, signal) matrices."""
        cols, names = self.cols_, process["signal"].to_numpy(dtype=object)
        col = np.fromiter((cols.get(n, -1) for n in names), dtype=np.int64, count=len(names))
        keep = col >= 0
        t, row = np.unique(process["t"].to_numpy(dtype=float)[keep], return_inverse=True)
        rep = np.full((len(t), len(self.cols_)), np.nan)
        val, c = rep.copy(), col[keep]
        rep[row, c] = process["reported"].to_numpy(dtype=float)[keep]
        val[row, c] = process["value"].to_numpy(dtype=float)[keep]
        return t, rep, val

    def _regressors(self, t: np.ndarray, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Increments (rows 1..n) and their regressors from rows 0..n-1, one column per channel."""
        ix = self.ix_
        temp, level, pump = rep[:, ix["temp"]], rep[:, ix["level"]], rep[:, ix["pump"]]
        heat = (rep[:, ix["supply"]] - temp) * rep[:, ix["damper"]]
        air = np.hstack([heat[:-1], (pump[1:] + pump[:-1]) / 2])  # a pump may switch in between
        other = np.hstack([(rep[:, ix["outdoor"]] - temp)[:-1], np.sqrt(np.abs(level))[:-1]])
        x = np.stack([air, other, np.ones_like(air)], axis=2)
        dy = np.diff(np.hstack([temp, level]), axis=0)
        dy[np.abs(np.diff(t) - self.dt_) > 0.5 * self.dt_] = np.nan  # a missed sample
        return dy, x

    def _cusum(self, resid: np.ndarray) -> list[tuple[int, int, str]]:
        """Advance the two-sided CUSUMs over residual rows; return (row, channel, side) onsets."""
        rate = min(1.0, self.dt_ / self.adapt_s) if self.adapt_s > 0 else 0.0
        onsets = []
        for i, r in enumerate(resid):
            ok = np.isfinite(r)
            r = np.where(ok, r, self.bias_)
            z = np.clip((r - self.bias_) / self.sigma_, -CLIP, CLIP)
            self.up_ = np.minimum(np.maximum(0.0, self.up_ + z - self.k), 2 * self.h)
            self.down_ = np.minimum(np.maximum(0.0, self.down_ - z - self.k), 2 * self.h)
            over = (self.up_ > self.h) | (self.down_ > self.h)
            onsets += [(i, int(c), "above" if self.up_[c] > self.h else "below")
                       for c in np.flatnonzero(over & ~self.alarmed_)]  # fmt: skip
            self.alarmed_ = over | (self.alarmed_ & ((self.up_ > 0) | (self.down_ > 0)))
            calm = ok & ~self.alarmed_ & (np.maximum(self.up_, self.down_) < self.h / 2)
            self.bias_ = np.where(calm, self.bias_ + rate * (r - self.bias_), self.bias_)
        return onsets

    def _latch(
        self, rule: str, cond: np.ndarray, t: np.ndarray, hold: float
    ) -> list[tuple[int, int]]:
        """(row, column) where `cond` has held for `hold` s; again only after it was clear for
        the rule's re-arm time."""
        rearm = REARM_S.get(rule, REARM_DEFAULT_S)
        st = self.latch_.setdefault(rule, np.tile([[np.nan], [0.0], [-np.inf]], cond.shape[1]))
        since, fired, last = st  # views: updated in place
        if not cond.any():  # the usual case: nothing to walk through
            since[:] = np.nan
            fired[t[-1] - last >= rearm] = 0
            return []
        out = []
        for i, row in enumerate(cond):
            since[:] = np.where(row, np.fmin(since, t[i]), np.nan)
            last[:] = np.where(row, t[i], last)
            due = row & (t[i] - since >= hold) & (fired == 0)
            fired[:] = (fired > 0) | due
            fired[t[i] - last >= rearm] = 0
            out += [(i, int(c)) for c in np.flatnonzero(due)]
        return out

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        t, rep, val = self._matrix(batch.process)
        if not len(t):
            return []
        t0, r0 = self.last_
        dy, x = self._regressors(np.concatenate([t0, t]), np.vstack([r0, rep]))
        self.last_ = (t[-1:], rep[-1:])
        model = self._cusum(dy - np.einsum("tcj,cj->tc", x, self.theta_))
        off = len(t) - len(dy)  # 1 when there was no previous sample
        ix, names, (lo, hi) = self.ix_, self.names_, self.bands_.T
        temp, damper, level = rep[:, ix["temp"]], rep[:, ix["damper"]], rep[:, ix["level"]]
        ahu, (amin, amax), margin = rep[:, ix["ahu"]], self.range_, self.envelope_c
        opened = rep[:, ix["open"]] > 0.5
        sp = self._commands(batch.events, t)
        checks = [  # rule, condition per (sample, column), how long it must hold, about whom
            ("spoof", (np.abs(temp - val[:, ix["temp"]]) > self.divergence_c) & self.redundant_,
             self.divergence_s, names["room"]),
            ("against", ((temp > np.fmax(hi, sp + SETPOINT_SLACK_C)) & (damper < 50))
             | ((temp < np.fmin(lo, sp - SETPOINT_SLACK_C)) & (damper > 50)),
             self.hold_s, names["room"]),
            ("envelope", (ahu < amin - margin) | (ahu > amax + margin), 0.0, names["ahu"]),
            ("overfill", (rep[:, ix["pump"]] > 0) & (level > self.levels_[:, 0] + 0.05),
             self.hold_s, names["tank"]),
            ("silent", (rep[:, ix["alarm"]] < 0.5) & (level >= self.levels_[:, 1]),
             self.hold_s, names["tank"]),
            ("unlocked", (rep[:, ix["locked"]] < 0.5) & ~self.released_ok_, 0.0, names["door"]),
            ("unbadged", opened & ~self._badged(t, opened, batch.events), 0.0, names["door"]),
        ]  # fmt: skip
        hits: list[Hit] = []
        busy: set[str] = set()  # devices with a finding outstanding: it explains a departure
        for rule, cond, hold, about in checks:
            hits += [(rule, float(t[i]), about[c][1], about[c][0], self.cited_[about[c][0]])
                     for i, c in self._latch(rule, cond, t, hold)]  # fmt: skip
            busy.update(about[c][1] for c in np.flatnonzero(self.latch_[rule][1] > 0))
        damper = np.hstack([damper, np.full((len(t), len(self.tanks_)), np.nan)])
        onsets = [(float(t[i + off]), c, s, damper[i + off, c]) for i, c, s in model]
        return self._alerts(hits + self._blame(onsets, busy))

    def _commands(self, events: pd.DataFrame, t: np.ndarray, learn: bool = False) -> np.ndarray:
        """The setpoint each room's loop was commanded at each sample time (NaN: none known).

        Only commands from a host that commanded that box in the warm-up count: anyone else
        writing a setpoint is changed control, which the band still judges. With `learn`, the
        commanders are those of `events`."""
        out = np.tile(self.commanded_, (len(t), 1))
        if events.empty or not self.rooms_:
            return out
        # the BMS re-commands every box each hour: filter and look up without a row loop
        mine = (events["kind"] == "register_write").to_numpy() & events["detail"].astype(
            str
        ).str.startswith(SETPOINT_POINT + ":").to_numpy()
        if not mine.any():
            return out
        w = events[mine].sort_values("t", kind="stable")
        column = self.column_
        c = [column.get(d, -1) for d in w["device"].tolist()]
        keys = zip(w["src_ip"].tolist(), w["device"].tolist(), strict=True)
        ok = [k in self.commanders_ or (learn and col >= 0) for k, col in zip(keys, c, strict=True)]
        take = np.flatnonzero(np.array(ok, dtype=bool) & (np.array(c) >= 0))
        if learn:
            self.commanders_.update(
                zip(
                    w["src_ip"].to_numpy()[take].tolist(),
                    w["device"].to_numpy()[take].tolist(),
                    strict=True,
                )
            )
        when, value = w["t"].to_numpy(dtype=float)[take], w["value"].to_numpy(dtype=float)[take]
        for k, col in enumerate(np.asarray(c)[take].tolist()):
            self.commanded_[col] = value[k]
            out[t >= when[k], col] = value[k]
        return out

    def _badged(self, t: np.ndarray, opened: np.ndarray, events: pd.DataFrame) -> np.ndarray:
        """Whether each open door had a badge swipe within the window before each sample."""
        swipe = events["kind"].to_numpy(dtype=object) == "badge_swipe"
        when = events["t"].to_numpy(dtype=float)[swipe]
        door_of = events["detail"].to_numpy(dtype=object)[swipe]
        out = np.ones((len(t), len(self.doors_)), dtype=bool)
        for c in np.flatnonzero(opened.any(axis=0)):
            door = self.doors_[c][0]
            times = np.sort(np.append(when[door_of == door], self.swiped_.get(door, -np.inf)))
            k = np.searchsorted(times, t, side="right") - 1
            out[:, c] = (k >= 0) & (t - times[np.maximum(k, 0)] <= self.badge_window_s)
        for door, w in zip(door_of, when, strict=True):  # a few swipes per batch
            self.swiped_[door] = max(w, self.swiped_.get(door, -np.inf))
        return out

    def _blame(self, onsets: list[tuple[float, int, str, float]], busy: set[str]) -> list[Hit]:
        """A departure names its device, unless another finding on it explains it already, or
        its AHU does: the AHU is out of range, two of its rooms depart, or a room heats with
        its damper open (no cold air arrives). A blamed AHU is not blamed again until none of
        its rooms departs any more."""
        since = self.latch_["envelope"][0]
        upset = {
            a for (_, a), on in zip(self.names_["ahu"], since, strict=True) if not np.isnan(on)
        }
        ahu_of = np.array([a for _, _, a in self.rooms_] + [""] * len(self.tanks_))
        hits: list[Hit] = []
        for tt, c, side, damper in onsets:
            ahu, what = ahu_of[c], f"{self.signal_[c]} ({side} it)"
            starved = side == "above" and damper >= 50  # heats with its damper open
            if ahu and (ahu in upset or self.alarmed_[ahu_of == ahu].sum() >= 2 or starved):
                if ahu not in self.blamed_ | upset:
                    seen = (self.signal_[c], f"ahu.{ahu}.supply_air_c")
                    hits.append(("supply", tt, ahu, what, seen))
                self.blamed_.add(ahu)
            elif self.device_[c] not in busy:
                rule = "model" if ahu else "level"
                hits.append((rule, tt, self.device_[c], what, (self.signal_[c],)))
        self.blamed_ = {a for a in self.blamed_ if self.alarmed_[ahu_of == a].any()}
        return hits

    def _alerts(self, hits: list[Hit]) -> list[Alert]:
        """One alert per rule and device, at its first finding."""
        first: dict[tuple[str, str], tuple[float, list[str], list[str]]] = {}
        for rule, tt, device, what, cited in sorted(hits, key=lambda h: h[1]):
            found = first.setdefault((rule, device), (tt, [], []))
            found[1].append(what)
            found[2].extend(cited)
        out = []
        for (rule, device), (tt, whats, seen) in first.items():
            severity, technique, template = RULES[rule]
            what = summarise(list(dict.fromkeys(whats)))
            reason = template.format(what=what, x=self.divergence_c, y=self.divergence_s)
            d = self.site_.facility.by_name.get(device)
            ip = d.ip if d else ""
            out.append(Alert(
                tt, self.name, severity, device, "", ip, technique, f"{device}: {reason}",
                evidence=signals(seen),
            ))  # fmt: skip
        return sorted(out, key=lambda a: (a.t, a.device))
