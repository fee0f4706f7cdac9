"""The whole physical plant of a facility, assembled from its devices and stepped at once."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from twin.facility import Facility
from twin.physics.doors import Doors
from twin.physics.hvac import Hvac
from twin.physics.tank import TankLoop
from twin.physics.thermal import ThermalNetwork

Array = NDArray[np.float64]
NEIGHBOUR_W_PER_K = 30.0
ENVELOPE_W_PER_M2K = 1.0


def member_name(prefix: str, member: int, count: int) -> str:
    return prefix if count == 1 else f"{prefix}-{member + 1}"


@dataclass(frozen=True)
class SignalBlock:
    """A block of process signals sampled together: names plus true and reported arrays."""

    names: tuple[str, ...]
    value: Callable[[], Array]
    reported: Callable[[], Array]


class Plant:
    """Every subsystem of the site; register states are addressed as 'subsystem.array'."""

    def __init__(
        self,
        facility: Facility,
        start: dt.datetime,
        outdoor_mean: float,
        outdoor_swing: float,
        rng: np.random.Generator,
    ) -> None:
        self.facility = facility
        self.start = start
        self.outdoor_mean = outdoor_mean
        self.outdoor_swing = outdoor_swing
        self.rng = rng
        self.rooms: list[str] = []
        self.hvac = self._build_hvac()
        self.sensor_room = self._build_sensors()
        self.doors, self.door_names, self.reader_door = self._build_doors()
        self.tanks, self.tank_names = self._build_tanks()
        self.sensor_temp = np.zeros(len(self.sensor_room))
        self.sensor_humidity = np.zeros(len(self.sensor_room))
        self.sensor_co2 = np.zeros(len(self.sensor_room))
        self._read_sensors(np.zeros(len(self.sensor_room)))
        self.outdoor_c = self.outdoor(0.0)
        self.vav_stalled = np.full(self.hvac.temp.size, -1.0)
        self.plc_stalled = np.full(self.tanks.level.size, -1.0)
        self.tank_frozen = np.zeros(self.tanks.level.size, dtype=bool)
        self._owners = {
            "ahu": self.hvac, "vav": self.hvac, "tank": self.tanks, "door": self.doors,
        }  # fmt: skip
        self._aliases = {
            "ahu.sa_setpoint": "sa_setpoint", "ahu.fan": "fan", "ahu.sa_temp": "sa_temp",
            "vav.setpoint": "setpoint", "vav.measured": "measured", "vav.damper": "damper",
            "vav.override_enable": "override_enable", "vav.override_value": "override_value",
        }  # fmt: skip

    # -- construction -----------------------------------------------------------------------

    def _build_hvac(self) -> Hvac:
        fac = self.facility
        ahus = fac.of_kind("ahu")
        vavs = fac.of_kind("vav")
        n = len(vavs)
        group_size = {g: len(m) for g, m in fac.groups.items()}
        area = np.array([v.params.area_m2 for v in vavs], dtype=float)
        edges_a, edges_b = [], []
        for i, v in enumerate(vavs):
            prefix = v.params.room or v.group
            self.rooms.append(member_name(prefix, v.member, group_size[v.group]))
            if v.member > 0:  # rooms of one group form a corridor: each touches the previous
                edges_a.append(i - 1)
                edges_b.append(i)
        network = ThermalNetwork(
            capacitance=np.array([v.params.capacitance_kj_per_m2k * 1e3 for v in vavs]) * area,
            ua_ext=ENVELOPE_W_PER_M2K * area,
            edge_a=np.array(edges_a, dtype=np.int64),
            edge_b=np.array(edges_b, dtype=np.int64),
            edge_g=np.full(len(edges_a), NEIGHBOUR_W_PER_K),
        )
        setpoint = np.array([v.params.setpoint_c for v in vavs], dtype=float)
        sa_sp = np.array([a.params.supply_air_setpoint_c for a in ahus], dtype=float)
        return Hvac(
            network=network,
            temp=setpoint.copy(),
            gain_w=np.array([v.params.internal_gain_w for v in vavs], dtype=float),
            occupants_peak=np.array([v.params.occupants_peak for v in vavs], dtype=float),
            area=area,
            band_lo=np.array([v.params.band_c[0] for v in vavs], dtype=float),
            band_hi=np.array([v.params.band_c[1] for v in vavs], dtype=float),
            co2=np.full(n, 450.0),
            humidity=np.full(n, 40.0),
            setpoint=setpoint,
            measured=setpoint.copy(),
            override_enable=np.zeros(n),
            override_value=np.zeros(n),
            frozen=np.zeros(n, dtype=bool),
            damper=np.full(n, 0.5),
            integral=np.full(n, (0.5 / 0.35) * 600.0),
            max_flow=np.array([v.params.max_airflow_kg_s for v in vavs], dtype=float),
            heating_sp=np.array([v.params.heating_setpoint_c for v in vavs], dtype=float),
            reheat_w=np.array(
                [
                    v.params.reheat_w if v.params.reheat_w is not None else 60.0 * v.params.area_m2
                    for v in vavs
                ],
                dtype=float,
            ),
            ahu_of=np.array([fac.pick(v.params.ahu, v.member).index for v in vavs], dtype=np.int64),
            sa_setpoint=sa_sp,
            sa_temp=sa_sp.copy(),
            fan=np.ones(len(ahus)),
            tau=np.array([a.params.time_constant_s for a in ahus], dtype=float),
        )

    def _build_sensors(self) -> NDArray[np.int64]:
        index = {name: i for i, name in enumerate(self.rooms)}
        out = []
        for s in self.facility.of_kind("env_sensor"):
            room = s.params.room
            if room in index:
                out.append(index[room])
            else:
                members = [i for i, r in enumerate(self.rooms) if r.startswith(room + "-")]
                out.append(members[s.member % len(members)])
        return np.array(out, dtype=np.int64)

    def _build_doors(self) -> tuple[Doors, list[str], dict[str, int]]:
        fac = self.facility
        ctrls = fac.of_kind("door_controller")
        group_size = {g: len(m) for g, m in fac.groups.items()}
        names = [
            member_name(c.params.door or c.group, c.member, group_size[c.group]) for c in ctrls
        ]
        n = len(ctrls)
        doors = Doors(
            locked=np.ones(n),
            open=np.zeros(n),
            held_alarm=np.zeros(n),
            forced_alarm=np.zeros(n),
            swipes=np.zeros(n),
            rate_per_h=np.array([c.params.swipes_per_hour for c in ctrls], dtype=float),
            held_s=np.array([c.params.held_open_s for c in ctrls], dtype=float),
            open_for=np.zeros(n),
            unbadged_entries=np.zeros(n),
            pending=np.zeros(n),
        )
        readers = {
            r.name: fac.pick(r.params.controller, r.member).index
            for r in fac.of_kind("badge_reader")
        }
        return doors, names, readers

    def _build_tanks(self) -> tuple[TankLoop, list[str]]:
        plcs = self.facility.of_kind("plc")
        group_size = {g: len(m) for g, m in self.facility.groups.items()}
        names = [member_name(p.params.tank or p.group, p.member, group_size[p.group]) for p in plcs]

        def col(attr: str) -> Array:
            return np.array([getattr(p.params, attr) for p in plcs], dtype=float)

        n = len(plcs)
        level = (col("low_sp_m") + col("high_sp_m")) / 2 if n else np.zeros(0)
        return (
            TankLoop(
                level=level,
                area=col("area_m2"),
                height=col("height_m"),
                pump_flow=col("pump_flow_m3h") / 3600.0,
                outlet_k=col("outflow_m3h") / 3600.0 / math.sqrt(2.0),
                valve=np.full(n, 0.5),
                low_sp=col("low_sp_m"),
                high_sp=col("high_sp_m"),
                trip_sp=col("trip_sp_m"),
                interlock=np.ones(n),
                pump=np.zeros(n),
                alarm=np.zeros(n),
                pressure=9.81 * level,
                vibration=np.zeros(n),
                safe_lo=np.array([p.params.safe_band_m[0] for p in plcs], dtype=float),
                safe_hi=np.array([p.params.safe_band_m[1] for p in plcs], dtype=float),
            ),
            names,
        )

    # -- time of day ------------------------------------------------------------------------

    def clock(self, t: float) -> tuple[float, int]:
        """(hour of day, weekday 0=Mon) at simulated time t."""
        wall = self.start + dt.timedelta(seconds=t)
        hour = wall.hour + wall.minute / 60.0 + wall.second / 3600.0
        return hour, wall.weekday()

    def occupancy(self, t: float) -> float:
        hour, weekday = self.clock(t)
        if weekday >= 5:
            return 0.05
        if 8.0 <= hour < 18.0:
            return 1.0
        if 7.0 <= hour < 8.0 or 18.0 <= hour < 19.0:
            return 0.4
        return 0.0

    def outdoor(self, t: float) -> float:
        hour, _ = self.clock(t)
        return self.outdoor_mean + self.outdoor_swing * math.sin(2 * math.pi * (hour - 9.0) / 24.0)

    def solar(self, t: float) -> float:
        hour, _ = self.clock(t)
        return max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0)) if 6.0 <= hour <= 18.0 else 0.0

    # -- stepping ---------------------------------------------------------------------------

    def step(self, t: float, dt_s: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Advance every subsystem from t to t+dt_s; return door swipes (indices, counts)."""
        self.outdoor_c = self.outdoor(t)
        occ = self.occupancy(t)
        rng = self.rng
        self._freeze(t)
        self.hvac.step(
            dt_s, self.outdoor_c, occ, self.solar(t), rng.standard_normal(self.hvac.temp.size)
        )
        self.tanks.step(dt_s, rng.standard_normal(self.tanks.level.size), self.tank_frozen)
        self._read_sensors(rng.standard_normal(self.sensor_room.size))
        return self.doors.step(dt_s, occ, rng)

    def _freeze(self, t: float) -> None:
        """Controllers flooded past capacity (see Faces) stall their scan until the flood ends."""
        self.hvac.frozen = self.vav_stalled > t
        self.tank_frozen = self.plc_stalled > t

    def stall(self, kind: str, index: int, until: float) -> None:
        if kind == "vav":
            self.vav_stalled[index] = max(self.vav_stalled[index], until)
        elif kind == "plc":
            self.plc_stalled[index] = max(self.plc_stalled[index], until)

    def _read_sensors(self, noise: Array) -> None:
        rooms = self.sensor_room
        self.sensor_temp = np.round(self.hvac.temp[rooms] + 0.1 * noise, 1)
        self.sensor_co2 = np.round(self.hvac.co2[rooms])
        self.sensor_humidity = np.round(self.hvac.humidity[rooms], 1)

    # -- register state ---------------------------------------------------------------------

    def _locate(self, state: str) -> tuple[object, str]:
        if state.startswith("sensor."):
            return self, "sensor_" + state.split(".", 1)[1]
        attr = self._aliases.get(state, state.split(".", 1)[1])
        return self._owners[state.split(".", 1)[0]], attr

    def read(self, state: str, index: int) -> float:
        owner, attr = self._locate(state)
        return float(getattr(owner, attr)[index])

    def write(self, state: str, index: int, value: float) -> None:
        owner, attr = self._locate(state)
        getattr(owner, attr)[index] = value

    # -- sampling ---------------------------------------------------------------------------

    def signals(self) -> list[SignalBlock]:
        h, tk, dr = self.hvac, self.tanks, self.doors
        fac = self.facility
        vavs = [v.name for v in fac.of_kind("vav")]
        ahus = [a.name for a in fac.of_kind("ahu")]
        blocks = [
            SignalBlock(("outdoor.temp_c",), lambda: np.array([self.outdoor_c]), lambda: np.array([self.outdoor_c])),
            SignalBlock(tuple(f"room.{r}.temp_c" for r in self.rooms), lambda: h.temp, lambda: h.measured),
            SignalBlock(tuple(f"room.{r}.co2_ppm" for r in self.rooms), lambda: h.co2, lambda: h.co2),
            SignalBlock(tuple(f"vav.{v}.damper_pct" for v in vavs), lambda: 100 * h.damper, lambda: 100 * h.damper),
            SignalBlock(tuple(f"ahu.{a}.supply_air_c" for a in ahus), lambda: h.sa_temp, lambda: np.round(h.sa_temp, 1)),
            SignalBlock(tuple(f"ahu.{a}.supply_air_setpoint_c" for a in ahus), lambda: h.sa_setpoint, lambda: h.sa_setpoint),
            SignalBlock(tuple(f"tank.{t}.level_m" for t in self.tank_names), lambda: tk.level, lambda: np.round(tk.level, 2)),
            SignalBlock(tuple(f"tank.{t}.pump_on" for t in self.tank_names), lambda: tk.pump, lambda: tk.pump),
            SignalBlock(tuple(f"tank.{t}.alarm" for t in self.tank_names), lambda: tk.alarm, lambda: tk.alarm),
            SignalBlock(tuple(f"door.{d}.open" for d in self.door_names), lambda: dr.open, lambda: dr.open),
            SignalBlock(tuple(f"door.{d}.locked" for d in self.door_names), lambda: dr.locked, lambda: dr.locked),
        ]  # fmt: skip
        return [b for b in blocks if b.names]
