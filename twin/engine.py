"""The run: one SimPy clock over physics, devices, network and attacks; advanced in steps."""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy

from twin.behaviour import Behaviour
from twin.campaign import Campaign
from twin.devices import Device
from twin.errors import BackendError, SimulationError
from twin.faces import Faces
from twin.facility import Facility
from twin.network.base import Network
from twin.network.emulated.realtime import RealTime
from twin.network.flows import Chunk, FlowMeter, flows_frame
from twin.network.policy import Policy
from twin.network.sim import SimNetwork
from twin.physics.plant import Plant
from twin.responses import Action
from twin.scenario import facility_of
from twin.schema import ScenarioSpec
from twin.steps import PhysicalChannel
from twin.telemetry import PROCESS_COLUMNS, TRUTH_COLUMNS, EventLog, TelemetryBatch, empty


class Engine:
    """A live run of a scenario. `run_until(t)` advances it; `act(action)` changes it.

    Randomness comes from one seed split into independent streams (physics, network,
    behaviour), so the same scenario and seed give the same tables bit for bit.
    """

    def __init__(
        self, spec: ScenarioSpec, facility: Facility | None = None, workdir: Path | None = None
    ) -> None:
        self.spec = spec
        self.facility = facility or Facility.build(facility_of(spec))
        physics_rng, net_rng, behaviour_rng, attack_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(4)
        )
        # held while an event is processed; the emulated faces take it to change the model
        self.lock = threading.RLock()
        self.env = (
            RealTime(spec.speed, self.lock) if spec.backend == "mininet" else simpy.Environment()
        )
        self.events = EventLog()
        fspec = self.facility.spec
        self.plant = Plant(
            self.facility,
            spec.start,
            fspec.outdoor.get("mean_c", 12.0),
            fspec.outdoor.get("swing_c", 6.0),
            physics_rng,
        )
        self.faces = Faces(self.facility, self.plant, self.events, lambda: self.env.now)
        self.meter = FlowMeter(spec.export_interval, net_rng)
        policy = Policy(self.facility, spec.design, self.facility.designs[spec.design])
        self.net: Network = self._network(policy, net_rng, workdir)
        try:
            self._build(spec, policy, behaviour_rng, attack_rng)
        except BaseException:
            self.net.close()
            raise

    def _network(self, policy: Policy, rng: np.random.Generator, workdir: Path | None) -> Network:
        spec = self.spec
        if spec.backend == "sim":
            return SimNetwork(self.env, policy, self.faces, self.meter, rng)
        if workdir is None:
            raise BackendError("the mininet backend needs a run directory for its captures")
        from twin.network.emulated.backend import EmulatedNetwork

        assert isinstance(self.env, RealTime)
        attacker = (
            (spec.campaign.attacker.name, spec.campaign.attacker.origin) if spec.campaign else None
        )
        return EmulatedNetwork(
            self.env, policy, self.faces, self.meter, rng,
            workdir=workdir, attacker=attacker, plant_read=self.plant.read,
            share_groups=spec.hosts == "group",
        )  # fmt: skip

    def _build(
        self,
        spec: ScenarioSpec,
        policy: Policy,
        behaviour_rng: np.random.Generator,
        attack_rng: np.random.Generator,
    ) -> None:
        self.behaviour = Behaviour(
            self.env,
            self.facility,
            self.plant,
            self.net,
            self.events,
            spec.export_interval,
            behaviour_rng,
        )
        self.behaviour.start()
        self._blocks = self.plant.signals()
        self._signal_index = {n: (b, k) for b in self._blocks for k, n in enumerate(b.names)}
        self.physical = PhysicalChannel(
            self.env, self.facility, self.faces, self.plant, self.events, policy
        )
        self.campaign = (
            Campaign(
                self.env, self.net, self.physical, self.facility, spec.campaign, self.signal,
                self.plant.clock, attack_rng, spec.physics_step, spec.warmup,
            )
            if spec.campaign
            else None
        )  # fmt: skip
        if self.campaign:
            self.campaign.start()
        self.golden = self._golden()
        self.contained_at: float | None = None
        self._signal_names = np.array([n for b in self._blocks for n in b.names], dtype=object)
        self._samples: list[tuple[float, np.ndarray, np.ndarray]] = []
        self._flows: list[Chunk] = []
        self._readers = self._reader_of_door()
        self.harm = Harm(self.plant, spec.warmup, spec.sample_interval)
        self.actions: list[dict[str, Any]] = []
        self._last = 0.0
        self.env.process(self._clock())
        self.net.begin()

    # -- public API -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return float(self.env.now)

    def device(self, name: str) -> Device:
        try:
            return self.facility.by_name[name]
        except KeyError:
            raise SimulationError(f"no device {name!r} in {self.facility.name}") from None

    def run_until(self, t: float) -> TelemetryBatch:
        """Advance to time t and return the telemetry produced since the previous call."""
        if t < self.env.now:
            raise SimulationError(f"cannot run back to {t:g} s from {self.env.now:g} s")
        if t > self.env.now:
            self.env.run(until=t)
        return self._collect()

    def act(self, action: Action) -> str:
        """Apply a response now; the next transaction sees it. Logged in the events table."""
        with self.lock:
            what = action.apply(self)
            self.net.apply_policy()
        device = getattr(action, "device", "") or ""
        ip = self.facility.by_name[device].ip if device in self.facility.by_name else ""
        self.events.add(self.now, device, ip, "response", detail=what, user=action.reason)
        self.actions.append(
            {
                "t": self.now,
                "action": type(action).__name__,
                "detail": what,
                "reason": action.reason,
            }
        )
        return what

    def schedule(self, action: Action, at: float) -> None:
        """Apply `action` at simulated time `at` (now if that has passed)."""

        def later() -> Generator[simpy.Event, Any, None]:
            yield self.env.timeout(max(0.0, at - self.env.now))
            self.act(action)

        self.env.process(later())

    def signal(self, name: str) -> float:
        """The current true value of a process signal (as in the process table)."""
        try:
            block, k = self._signal_index[name]
        except KeyError:
            raise SimulationError(f"no process signal {name!r}") from None
        return float(block.value()[k])

    def signal_names(self) -> list[str]:
        return list(self._signal_index)

    def evict(self, position: str, how: str) -> bool:
        """A response took a position from the attacker (or isolated it); records containment."""
        if self.campaign is None or position not in self.campaign.attacker.positions:
            return False
        self.contain()
        if how != "isolate":
            self.campaign.attacker.lose(position)
        return True

    def evict_ip(self, ip: str) -> None:
        """Isolating the address of any position the attacker holds contains them."""
        if self.campaign is None:
            return
        attacker = self.campaign.attacker
        if ip == attacker.origin or ip in attacker.positions.values():
            self.contain()

    def contain(self) -> None:
        if self.contained_at is None:
            self.contained_at = self.now

    def _golden(self) -> dict[tuple[str, str], float]:
        """Every writable register's commissioned value: what 'restore' puts back."""
        from twin.devices import KINDS

        out = {}
        for d in self.facility.devices:
            for reg in KINDS[d.kind].registers:
                if reg.writable:
                    out[(d.name, reg.name)] = self.plant.read(reg.state, d.index)
        return out

    def truth(self) -> pd.DataFrame:
        if self.campaign is None or not self.campaign.rows:
            return empty(TRUTH_COLUMNS)
        df = pd.DataFrame(self.campaign.rows)
        df["flow_ids"] = [self.meter.caused.get(s, []) for s in df["step_id"]]
        df["event_ids"] = [self.events.caused.get(s, []) for s in df["step_id"]]
        return df[list(TRUTH_COLUMNS)].astype(
            {k: v for k, v in TRUTH_COLUMNS.items() if v != "object"}
        )

    # -- the clock --------------------------------------------------------------------------

    def _clock(self) -> Generator[simpy.Event, Any, None]:
        spec = self.spec
        dt = spec.physics_step
        per_sample = max(1, round(spec.sample_interval / dt))
        per_export = max(1, round(spec.export_interval / dt))
        step = 0
        self._sample(0.0)
        while True:
            yield self.env.timeout(dt)
            step += 1
            t = self.env.now
            doors, swipes = self.plant.step(t - dt, dt)
            self.net.after_step()
            for door, n in zip(doors.tolist(), swipes.tolist(), strict=True):
                reader = self._readers[door]
                self.events.add(
                    t,
                    reader.name,
                    reader.ip,
                    "badge_swipe",
                    detail=self.plant.door_names[door],
                    value=float(n),
                )
            if step % per_sample == 0:
                self._sample(t)
            if step % per_export == 0:
                self._flows.append(self.net.export(t))

    def _reader_of_door(self) -> dict[int, Device]:
        out: dict[int, Device] = {}
        for ctrl in self.facility.of_kind("door_controller"):
            out[ctrl.index] = ctrl
        for reader in self.facility.of_kind("badge_reader"):
            door = self.plant.reader_door[reader.name]
            if out[door].kind == "door_controller":
                out[door] = reader
        return out

    def _sample(self, t: float) -> None:
        values = np.concatenate([b.value() for b in self._blocks]) if self._blocks else np.zeros(0)
        reported = (
            np.concatenate([b.reported() for b in self._blocks]) if self._blocks else np.zeros(0)
        )
        self._samples.append((t, values.astype(float), reported.astype(float)))
        self.harm.observe(t)

    def _collect(self) -> TelemetryBatch:
        samples, self._samples = self._samples, []
        n = self._signal_names.size
        if samples:
            process = pd.DataFrame({
                "t": np.repeat([s[0] for s in samples], n),
                "signal": np.tile(self._signal_names, len(samples)),
                "value": np.concatenate([s[1] for s in samples]),
                "reported": np.concatenate([s[2] for s in samples]),
            }).astype(PROCESS_COLUMNS)  # fmt: skip
        else:
            process = empty(PROCESS_COLUMNS)
        flows, self._flows = self._flows, []
        batch = TelemetryBatch(
            self._last,
            self.now,
            flows_frame(flows),
            process,
            self.events.drain(),
        )
        self._last = self.now
        return batch


class Harm:
    """Physical consequences, accumulated at each sample after the warm-up."""

    def __init__(self, plant: Plant, warmup: float, interval: float) -> None:
        self.plant = plant
        self.warmup = warmup
        self.interval = interval
        self.degree_hours = np.zeros(len(plant.rooms))
        self.unsafe_tank_minutes = np.zeros(len(plant.tank_names))
        self.first_impact: float | None = None

    def observe(self, t: float) -> None:
        if t <= self.warmup:
            return
        h, tk = self.plant.hvac, self.plant.tanks
        excess = np.maximum(h.temp - h.band_hi, 0.0) + np.maximum(h.band_lo - h.temp, 0.0)
        self.degree_hours += excess * self.interval / 3600.0
        unsafe = (tk.level > tk.safe_hi) | (tk.level < tk.safe_lo)
        self.unsafe_tank_minutes += unsafe * self.interval / 60.0
        if self.first_impact is None and (np.any(excess > 0) or np.any(unsafe)):
            self.first_impact = t

    def summary(self) -> dict[str, Any]:
        rooms = {
            r: round(float(v), 3)
            for r, v in zip(self.plant.rooms, self.degree_hours, strict=True)
            if v > 0
        }
        tanks = {
            t: round(float(v), 1)
            for t, v in zip(self.plant.tank_names, self.unsafe_tank_minutes, strict=True)
            if v > 0
        }
        return {
            "degree_hours_outside_band": round(float(self.degree_hours.sum()), 3),
            "rooms_outside_band": rooms,
            "unsafe_tank_minutes": round(float(self.unsafe_tank_minutes.sum()), 1),
            "tanks_unsafe": tanks,
            "doors_opened_without_badge": int(self.plant.doors.unbadged_entries.sum()),
            "first_physical_impact_s": self.first_impact,
        }
