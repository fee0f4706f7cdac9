"""Legitimate device behaviour: polling, streams, schedules, alarms and engineering sessions."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from twin.devices import KINDS, Device
from twin.facility import Facility
from twin.network.base import Network
from twin.network.flows import StandingFlow
from twin.network.sim import HEADER
from twin.network.transactions import READ_FC, Login, ModbusRead, ModbusWrite
from twin.physics.plant import Plant
from twin.telemetry import EventLog

ATTESTATION_INTERVAL = 4 * 3600.0  # firmware attestation (NAC-style), every 4 h


class Behaviour:
    """Starts every legitimate activity of the site as SimPy processes and standing flows."""

    def __init__(
        self,
        env: simpy.Environment,
        facility: Facility,
        plant: Plant,
        net: Network,
        events: EventLog,
        export_interval: float,
        rng: np.random.Generator,
    ) -> None:
        self.env = env
        self.facility = facility
        self.plant = plant
        self.net = net
        self.events = events
        self.interval = export_interval
        self.rng = rng
        self.poll_ports: dict[tuple[str, str], int] = {}  # (poller, device) -> source port

    def start(self) -> None:
        fac = self.facility
        for bms in fac.of_kind("bms"):
            polled = [d for d in fac.resolve_all(bms.params.polls) if "modbus" in d.services]
            for d in polled:
                self._poll(bms, d, bms.params.interval_s)
            self.env.process(self._schedule(bms, polled))
            self.env.process(self._alarms(bms, polled))
        for cam in fac.of_kind("camera"):
            self._stream(fac.pick(cam.params.nvr, cam.member), cam)
        for gw in fac.of_kind("gateway"):
            sensors = [d for d in fac.resolve_all(gw.params.sensors) if "modbus" in d.services]
            for d in sensors:
                self._poll(gw, d, gw.params.interval_s)
            self._publish(gw, fac.pick(gw.params.cloud, 0), len(sensors))
        for ws in fac.of_kind("workstation"):
            if ws.params.sessions_per_day > 0 and (ws.params.targets or ws.params.browses):
                self.env.process(self._engineering(ws))
        self.env.process(self._attestation())

    # -- standing flows ---------------------------------------------------------------------

    def _poll(self, poller: Device, device: Device, every: float) -> None:
        regs = KINDS[device.kind].registers
        blocks = [(t, *span) for t in READ_FC if (span := regs.span(t)) is not None]
        if blocks:
            self.poll_ports[(poller.name, device.name)] = self.net.poll(
                poller, device, every, blocks
            )

    def _stream(self, nvr: Device, cam: Device) -> None:
        media = cam.params.bitrate_mbps * 1e6 / 8 * self.interval
        packets_rev = media / 1400
        self.net.add_standing(
            StandingFlow(
                nvr.ip, cam.ip, self.net.ephemeral_port(), 554, "tcp", "rtsp",
                packets=packets_rev / 8, bytes=packets_rev / 8 * HEADER,
                packets_rev=packets_rev, bytes_rev=media + packets_rev * HEADER, jitter=0.12,
            )
        )  # fmt: skip

    def _publish(self, gw: Device, cloud: Device, n_sensors: int) -> None:
        msgs = max(1, n_sensors) * self.interval / gw.params.interval_s
        self.net.add_standing(
            StandingFlow(
                gw.ip, cloud.ip, self.net.ephemeral_port(), 8883, "tcp", "mqtt",
                packets=msgs, bytes=msgs * (HEADER + 180), packets_rev=msgs / 2,
                bytes_rev=msgs / 2 * (HEADER + 40), jitter=0.05, encrypted=True,
            )
        )  # fmt: skip

    # -- processes --------------------------------------------------------------------------

    def _schedule(self, bms: Device, polled: list[Device]) -> Generator[simpy.Event, Any, None]:
        """Re-command each VAV's scheduled setpoint every hour, as BMS schedules do."""
        vavs = [d for d in polled if d.kind == "vav"]
        reg = KINDS["vav"].registers.get("room_setpoint")
        assert reg is not None
        lo, hi = bms.params.occupied_hours
        while True:
            hour, weekday = self.plant.clock(self.env.now)
            occupied = weekday < 5 and lo <= hour < hi
            value = bms.params.occupied_setpoint_c if occupied else bms.params.unoccupied_setpoint_c
            for vav in vavs:
                self.net.exchange(
                    ModbusWrite(bms.ip, vav.ip, "holding", reg.address, (round(value * reg.scale),),
                                sport=self.poll_ports[(bms.name, vav.name)])
                )  # fmt: skip
            hour, _ = self.plant.clock(self.env.now)
            yield self.env.timeout((1.0 - hour % 1.0) * 3600.0 or 3600.0)  # next clock hour

    def _alarms(self, bms: Device, polled: list[Device]) -> Generator[simpy.Event, Any, None]:
        """Raise and clear communication, high-temperature and tank alarms from polled values.

        Vectorised: only changes of state produce events, and reachability is recomputed
        only when the policy changes (a response or a blocked conduit).
        """
        hvac, tanks = self.plant.hvac, self.plant.tanks
        vav = np.array([d.kind == "vav" for d in polled])
        plc = np.array([d.kind == "plc" for d in polled])
        index = np.array([d.index for d in polled], dtype=np.int64)
        threshold = bms.params.high_temp_alarm_c
        reachable = np.ones(len(polled), dtype=bool)
        lost = np.zeros(len(polled), dtype=bool)
        hot = np.zeros(len(polled), dtype=bool)
        high = np.zeros(len(polled), dtype=bool)
        version = -1
        while True:
            yield self.env.timeout(bms.params.interval_s)  # values arrive with each poll
            t = self.env.now
            if version != self.net.policy.version:
                version = self.net.policy.version
                reachable = np.array(
                    [self.net.reachable(bms.ip, d.ip, 502) for d in polled], dtype=bool
                )
            value = np.full(len(polled), np.nan)
            value[vav] = hvac.measured[index[vav]]
            value[plc] = tanks.level[index[plc]]
            up = reachable & ~self._overloaded(polled, t)
            now_hot = vav & up & (np.nan_to_num(value, nan=-np.inf) > threshold)
            now_high = np.zeros(len(polled), dtype=bool)
            now_high[plc] = up[plc] & (tanks.alarm[index[plc]] > 0)
            for state, new, what in (
                (lost, ~up, "comm_loss"),
                (hot, now_hot, "high_temperature"),
                (high, now_high, "high_level"),
            ):
                for i in np.flatnonzero(state != new):
                    d = polled[i]
                    kind = "alarm_raised" if new[i] else "alarm_cleared"
                    self.events.add(t, d.name, d.ip, kind, detail=what, value=float(value[i]))
                state[:] = new

    def _overloaded(self, polled: list[Device], t: float) -> np.ndarray:
        """Devices that do not answer now because a flood overwhelmed them."""
        mask = np.zeros(len(polled), dtype=bool)
        busy = {name for name, until in self.net.faces.overloaded_until.items() if until > t}
        if busy:
            mask[[i for i, d in enumerate(polled) if d.name in busy]] = True
        return mask

    def _engineering(self, ws: Device) -> Generator[simpy.Event, Any, None]:
        """Work-hours sessions: read (and sometimes re-write) a controller, log into a web UI."""
        targets = [
            d for d in self.facility.resolve_all(ws.params.targets) if "modbus" in d.services
        ]
        browses = [d for d in self.facility.resolve_all(ws.params.browses) if "http" in d.services]
        mean_gap = 10 * 3600.0 / ws.params.sessions_per_day
        while True:
            yield self.env.timeout(float(self.rng.exponential(mean_gap)))
            hour, weekday = self.plant.clock(self.env.now)
            if weekday >= 5 or not 8 <= hour < 18:
                continue
            if targets:
                d = targets[int(self.rng.integers(len(targets)))]
                regs = KINDS[d.kind].registers
                sport = self.net.ephemeral_port()
                span = regs.span("holding")
                if span is not None:
                    for _ in range(5):
                        self.net.exchange(
                            ModbusRead(ws.ip, d.ip, "holding", span[0], span[1], sport=sport)
                        )
                    if self.rng.random() < 0.3:
                        reg = next(r for r in regs if r.writable and r.table == "holding")
                        raw = round(self.plant.read(reg.state, d.index) * reg.scale)
                        self.net.exchange(
                            ModbusWrite(ws.ip, d.ip, "holding", reg.address, (raw,), sport=sport)
                        )
            if browses:
                d = browses[int(self.rng.integers(len(browses)))]
                user, password = self.net.faces.credentials[d.name]
                self.net.exchange(Login(ws.ip, d.ip, "http", user, password))

    def _attestation(self) -> Generator[simpy.Event, Any, None]:
        """Every device announces its running firmware version and hash, at start and every 4 h.

        The report is what the device runs now (an implant shows here), not the inventory.
        """
        firmware = self.net.faces.firmware
        while True:
            t = self.env.now
            for d in self.facility.devices:
                if d.kind != "cloud":
                    version, digest = firmware[d.name]
                    self.events.add(
                        t, d.name, d.ip, "firmware_report", detail=f"{version} {digest}"
                    )
            yield self.env.timeout(ATTESTATION_INTERVAL)
