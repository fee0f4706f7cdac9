"""Scale benchmark: a generated campus of N devices for a day, against an empty SimPy loop."""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIN_DEVICES = 30
REFERENCE_DEVICES = 1000  # the size the wall and memory targets are set for
REFERENCE_HOURS = 24.0
TARGET_WALL_S = 30.0
TARGET_PEAK_MIB = 2048.0
TARGET_RATIO = 2.0
WARMUP_S = 7200.0
BUSY_CPU_SHARE = 0.9  # below this CPU/wall share a run was slowed by other work
VAVS_PER_AHU = 30  # one AHU per floor, 20-40 rooms each
FLOORS_PER_BUILDING = 4
CAMERAS_PER_NVR = 64
SENSORS_PER_GATEWAY = 40
DEVICES_PER_BMS = 2500
INTERNET = "198.51.100.0/24"
CLOUD_IP = "198.51.100.20"
ATTACKER_IP = "198.51.100.66"
# second octet of each site zone inside 10.0.0.0/8
SITE_ZONES = {"bms": 10, "hvac": 20, "access": 30, "cameras": 40, "iot": 50, "ot": 60}
# IEC 62443 target security level of each site zone
SECURITY_LEVEL = {"bms": 3, "hvac": 2, "access": 2, "cameras": 1, "iot": 1, "ot": 3}


# --- the generated campus -------------------------------------------------------------------


def member(group: str, i: int, count: int) -> str:
    """The name the twin gives the i-th (0-based) member of a group of `count`."""
    return group if count == 1 else f"{group}-{i + 1}"


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as integers allow, larger shares first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def campus_mix(n: int) -> dict[str, int]:
    """How many devices of each kind a campus of n devices has; the counts sum to n."""
    if n < MIN_DEVICES:
        raise ValueError(f"a campus needs at least {MIN_DEVICES} devices, got {n}")
    bms = max(1, math.ceil(n / DEVICES_PER_BMS))
    rest = n - bms - 3  # engineering workstation, lobby camera, vendor cloud
    vav = max(2, round(0.36 * rest))  # includes the server hall's box
    ahu = max(1, math.ceil(vav / VAVS_PER_AHU))
    env = max(1, round(0.14 * rest))
    doors = max(1, round(0.09 * rest))
    plc = max(1, round(0.05 * rest))
    gateway = max(1, math.ceil(env / SENSORS_PER_GATEWAY))
    video = rest - (vav + ahu + env + 2 * doors + plc + gateway)
    nvr = max(1, math.ceil(video / (CAMERAS_PER_NVR + 1)))
    mix = {
        "bms": bms,
        "workstation": 1,
        "ahu": ahu,
        "vav": vav,
        "env_sensor": env,
        "door_controller": doors,
        "badge_reader": doors,
        "plc": plc,
        "nvr": nvr,
        "camera": video - nvr + 1,
        "gateway": gateway,
        "cloud": 1,
    }
    assert sum(mix.values()) == n and min(mix.values()) >= 1, mix
    return mix


def _prefix(n: int) -> int:
    """One prefix length for every site zone: /24 while the largest zone fits, else /16."""
    mix = campus_mix(n)
    largest = max(
        mix["ahu"] + mix["vav"] + mix["env_sensor"],
        2 * mix["door_controller"],
        mix["camera"] + mix["nvr"],
    )
    if largest + 12 < 256:
        return 24
    if largest + 12 >= 2**16:
        raise ValueError(f"{n} devices do not fit a /16 per zone")
    return 16


def site_subnet(zone: str, prefix: int) -> str:
    return f"10.{SITE_ZONES[zone]}.0.0/{prefix}"


def scan_subnet() -> str:
    """The first /24 of the HVAC zone, where the air handlers get their addresses."""
    return f"10.{SITE_ZONES['hvac']}.0.0/24"


# vendor, model, firmware per kind, as an asset inventory would list them
PRODUCTS: dict[str, tuple[str, str, str]] = {
    "bms": ("Tridium", "Niagara 4 Supervisor", "4.12.1"),
    "workstation": ("Dell", "Precision 3660", "win11-23h2"),
    "ahu": ("Siemens", "PXC36-E.D", "3.2.7"),
    "vav": ("Siemens", "PXC7-VAV", "1.4.2"),
    "env_sensor": ("Kieback&Peter", "RTS-CO2", "2.0.1"),
    "door_controller": ("HID", "VertX V1000", "5.1.0"),
    "badge_reader": ("HID", "iCLASS SE R40", "3.3"),
    "plc": ("Schneider Electric", "Modicon M241", "5.1.9.34"),
    "nvr": ("Hikvision", "DS-7608NI", "4.30.005"),
    "camera": ("Hikvision", "DS-2CD2043G0-I", "5.5.0"),
    "gateway": ("Advantech", "WISE-6610", "1.2.1"),
    "cloud": ("Advantech", "WISE-PaaS", "1.0.0"),
}
OFFICE = {"area_m2": 40, "internal_gain_w": 300, "occupants_peak": 4, "band_c": [19, 27]}
SERVER_HALL = {
    "room": "server-hall",
    "area_m2": 120,
    "internal_gain_w": 24000,
    "occupants_peak": 0.5,
    "setpoint_c": 22,
    "max_airflow_kg_s": 4.0,
    "capacitance_kj_per_m2k": 35,
    "band_c": [18, 27],
}


def device(name: str, kind: str, zone: str, count: int = 1, **fields: Any) -> dict[str, Any]:
    """One device entry of a facility file (a group when count > 1)."""
    vendor, model, firmware = PRODUCTS[kind]
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "zone": zone,
        "vendor": vendor,
        "model": model,
    }
    entry |= {"firmware": firmware, **({"count": count} if count > 1 else {}), **fields}
    return entry


def campus_facility(n: int) -> dict[str, Any]:
    """A campus of n devices as a raw facility mapping, exactly what a YAML file would give."""
    mix = campus_mix(n)
    prefix = _prefix(n)
    zones: list[dict[str, Any]] = [
        {"name": "internet", "subnet": INTERNET, "purpose": "internet", "security_level": 0}
    ]
    zones += [
        {"name": z, "subnet": site_subnet(z, prefix), "purpose": z, "security_level": level}
        for z, level in SECURITY_LEVEL.items()
    ]

    # One AHU per floor feeding that floor's rooms, a corridor of VAV boxes. The AHUs come
    # first in their zone, so they get addresses in the /24 the attacker sweeps.
    n_ahu = mix["ahu"]
    ahus = [member("ahu", k, n_ahu) for k in range(n_ahu)]
    floors = [
        f"b{k // FLOORS_PER_BUILDING + 1}-f{k % FLOORS_PER_BUILDING + 1}" for k in range(n_ahu)
    ]
    hvac = [
        device("ahu", "ahu", "hvac", n_ahu, support_end="2027-12-31"),
        device("vav-hall", "vav", "hvac", params={"ahu": ahus[0], **SERVER_HALL}),
    ]
    polled = {"ahu": n_ahu, "vav-hall": 1}  # group -> devices, to share out between BMS servers
    sensor_groups = []
    rooms = split(mix["vav"] - 1, n_ahu)
    sensors = split(mix["env_sensor"], n_ahu)
    for ahu, floor, n_rooms, n_sensors in zip(ahus, floors, rooms, sensors, strict=True):
        hvac.append(
            device(
                f"vav-{floor}", "vav", "hvac", n_rooms, params={"ahu": ahu, "room": floor, **OFFICE}
            )
        )
        polled[f"vav-{floor}"] = n_rooms
        if n_sensors:
            hvac.append(
                device(f"env-{floor}", "env_sensor", "hvac", n_sensors, params={"room": floor})
            )
            polled[f"env-{floor}"] = n_sensors
            sensor_groups.append(f"env-{floor}")
    polled |= {"door": mix["door_controller"], "plc": mix["plc"]}

    site = [
        device(
            "door", "door_controller", "access", mix["door_controller"], params={"door": "door"}
        ),
        device(
            "reader", "badge_reader", "access", mix["badge_reader"], params={"controller": "door"}
        ),
        device("plc", "plc", "ot", mix["plc"], support_end="2031-12-31", params={"tank": "chw"}),
        device("nvr", "nvr", "cameras", mix["nvr"]),
        device(
            "cam", "camera", "cameras", mix["camera"] - 1, params={"nvr": "nvr", "bitrate_mbps": 4}
        ),
        # installed by a contractor, never changed, forwarded to the internet
        device(
            "cam-lobby",
            "camera",
            "cameras",
            model="DS-2CD1023G0E-I",
            firmware="5.4.5",
            credentials="default",
            params={"nvr": "nvr", "bitrate_mbps": 2},
        ),
    ]
    n_gw = mix["gateway"]
    gateways = [
        device(
            f"gw-{k + 1}",
            "gateway",
            "iot",
            params={"sensors": sensor_groups[k::n_gw], "cloud": "vendor-cloud", "interval_s": 30},
        )
        for k in range(n_gw)
    ]
    cloud = device("vendor-cloud", "cloud", "internet", ip=CLOUD_IP)
    servers = bms_polls(mix["bms"], polled)
    bms = [
        device(
            name,
            "bms",
            "bms",
            support_end="2030-06-30",
            params={"polls": targets, "interval_s": 10, "high_temp_alarm_c": 30},
        )
        for name, targets in servers.items()
    ]
    workstation = device(
        "eng-ws",
        "workstation",
        "bms",
        owner="controls-engineering",
        params={"targets": ["plc"], "browses": ["cam"], "sessions_per_day": 12},
    )

    conduits = [
        {"from": server, "to": zone, "services": ["modbus"]}
        for server in servers
        for zone in ("hvac", "access", "ot")
    ]
    conduits += [
        {"from": "eng-ws", "to": "ot", "services": ["modbus"]},
        {"from": "eng-ws", "to": "cameras", "services": ["http"]},
        {"from": "iot", "to": "hvac", "services": ["modbus"]},
        {"from": "iot", "to": "internet", "services": ["mqtt"]},
        {"from": "internet", "to": "cam-lobby", "services": ["http"], "note": "port forward"},
    ]
    return {
        "name": f"campus-{n}",
        "description": f"Generated campus: {n} devices in {len(SITE_ZONES)} site zones.",
        "outdoor": {"mean_c": 14.0, "swing_c": 6.0},
        "zones": zones,
        "devices": [*bms, workstation, *hvac, *site, *gateways, cloud],
        "designs": {
            "flat": {
                "kind": "flat",
                "description": "Only the internet edge filters.",
                "conduits": conduits,
            },
            "zoned": {
                "kind": "zoned",
                "description": "Only the conduits pass.",
                "conduits": conduits,
            },
        },
    }


def bms_polls(n_bms: int, polled: dict[str, int]) -> dict[str, list[str]]:
    """BMS server name -> what it polls: whole zones for one server, else groups shared evenly."""
    if n_bms == 1:
        return {"bms-server": ["hvac", "access", "ot"]}
    names = [f"bms-server-{k + 1}" for k in range(n_bms)]
    load = dict.fromkeys(names, 0)
    out: dict[str, list[str]] = {name: [] for name in names}
    for group, size in sorted(polled.items(), key=lambda kv: -kv[1]):
        least = min(load, key=load.__getitem__)
        out[least].append(group)
        load[least] += size
    return out


def campus_scenario(n: int, design: str, hours: float, seed: int) -> dict[str, Any]:
    """The flagship story on the generated campus, as a raw scenario mapping."""
    duration = hours * 3600.0
    warmup = min(WARMUP_S, duration / 4)
    foothold = warmup + min(5400.0, (duration - warmup) / 3)
    return {
        "name": f"scale-{n}",
        "story": "The flagship intrusion (lobby camera, HVAC sweep, AHU setpoint) on a campus.",
        "facility": campus_facility(n),
        "design": design,
        "duration": duration,
        "warmup": warmup,
        "seed": seed,
        "start": "2026-01-12T06:00:00",
        "campaign": {
            "attacker": {"name": "intruder", "origin": ATTACKER_IP},
            "steps": [
                {
                    "id": "foothold",
                    "technique": "default_credentials",
                    "at": foothold,
                    "target": "cam-lobby",
                },
                {
                    "id": "recon",
                    "technique": "network_scan",
                    "after": "foothold",
                    "delay": "4m",
                    "from": "cam-lobby",
                    "params": {"subnets": [scan_subnet()], "ports": [23, 80, 502], "rate": 50},
                },
                {
                    "id": "overheat",
                    "technique": "modbus_write",
                    "after": "recon",
                    "delay": "3m",
                    "from": "cam-lobby",
                    "target": member("ahu", 0, campus_mix(n)["ahu"]),
                    "params": {"register": "supply_air_setpoint", "value": 35},
                },
            ],
        },
        "detectors": ["conduit_policy", "allowlist"],
    }


# --- measured runs (each in its own process) ------------------------------------------------


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used: compared with wall, it shows
    whether other work on the machine slowed the run down."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_twin(n: int, design: str, hours: float, seed: int, out: Path) -> dict[str, Any]:
    """Generate, validate and run the campus; wall time and peak memory of this process."""
    from twin.errors import ScenarioError
    from twin.run import execute
    from twin.scenario import parse_scenario
    from twin.telemetry import read_table

    t0, c0 = time.perf_counter(), cpu_s()
    spec, problems = parse_scenario(campus_scenario(n, design, hours, seed), ROOT / "scenarios")
    if problems or spec is None:
        raise ScenarioError(problems, f"generated campus of {n} devices")
    t1 = time.perf_counter()
    result = execute(spec, out)
    t2 = time.perf_counter()
    summary = result.summary
    truth = read_table(out, "truth")
    return {
        "devices": summary["devices"],
        "mix": campus_mix(n),
        "prefix": _prefix(n),
        "design": design,
        "hours": hours,
        "warmup_h": spec.warmup / 3600.0,
        "status": summary["status"],
        "simulated_h": summary["simulated_s"] / 3600.0,
        "validate_s": t1 - t0,
        "execute_s": t2 - t1,
        "wall_s": t2 - t0,
        "cpu_s": cpu_s() - c0,
        "peak_mib": peak_mib(),
        "rows": summary["rows"],
        "steps": [
            {
                "step_id": r.step_id,
                "technique": r.technique,
                "succeeded": bool(r.succeeded),
                "blocked_by": r.blocked_by,
            }
            for r in truth.itertuples()
        ],
        "not_attempted": [s["step_id"] for s in summary["impact"].get("steps_not_attempted", [])],
        "recall": {s["detector"]: s["recall"] for s in summary["scores"]},
        "degree_hours": summary["impact"].get("degree_hours_outside_band"),
    }


def measure_baseline(n: int, hours: float) -> dict[str, Any]:
    """n SimPy processes that only tick every simulated second, run for `hours`."""
    import simpy

    def tick(env: simpy.Environment) -> Any:
        while True:
            yield env.timeout(1)

    t0, c0 = time.perf_counter(), cpu_s()
    env = simpy.Environment()
    for _ in range(n):
        env.process(tick(env))
    env.run(until=hours * 3600.0)
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu_s() - c0,
        "hours": hours,
        "events": int(n * hours * 3600),
        "peak_mib": peak_mib(),
    }


def in_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run a job in a fresh interpreter, so its peak memory is its own; its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(job)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode == 2:  # the generated scenario did not validate; it printed why
        raise SystemExit(2)
    if proc.returncode != 0:
        raise SystemExit(
            f"scale: the {job['kind']} run failed (exit {proc.returncode}); see its error above"
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "twin":
        return measure_twin(
            job["devices"], job["design"], job["hours"], job["seed"], Path(job["out"])
        )
    return measure_baseline(job["devices"], job["hours"])


# --- figures --------------------------------------------------------------------------------


def judge(twin: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """PASS/FAIL per target; None where a target does not apply to this size."""
    reference = twin["devices"] == REFERENCE_DEVICES and twin["hours"] == REFERENCE_HOURS
    ratio = baseline["extrapolated_wall_s"] / twin["wall_s"] if baseline else None
    attack = None
    if twin["design"] == "flat":
        attack = len(twin["steps"]) == 3 and all(s["succeeded"] for s in twin["steps"])
    checks = {
        "completed": twin["status"] == "complete",
        "wall": twin["wall_s"] <= TARGET_WALL_S if reference else None,
        "memory": twin["peak_mib"] <= TARGET_PEAK_MIB if reference else None,
        "ratio": ratio >= TARGET_RATIO if ratio is not None else None,
        "attack": attack,
    }
    return {"ratio": ratio, "checks": checks, "pass": all(v is not False for v in checks.values())}


def _mark(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "-"}[ok]


def _line(label: str, value: str, target: str = "", ok: bool | None = None) -> str:
    judged = f"   {target}   {_mark(ok)}" if target else ""
    return f"  {label:<20}{value}{judged}"


def _outcome(step: dict[str, Any]) -> str:
    if step["succeeded"]:
        return f"{step['step_id']} ok"
    blocked = f"blocked by {step['blocked_by']}" if step["blocked_by"] else "failed"
    return f"{step['step_id']} {blocked}"


def report(twin: dict[str, Any], baseline: dict[str, Any] | None, verdict: dict[str, Any]) -> str:
    """The figures block, one line per figure, with the target and PASS/FAIL where judged."""
    c = verdict["checks"]
    rows = twin["rows"]
    at = f"at {REFERENCE_DEVICES:,} devices x {REFERENCE_HOURS:g} h"
    steps = [_outcome(s) for s in twin["steps"]] + [
        f"{s} not attempted" for s in twin["not_attempted"]
    ]
    expect = "flat: all succeed" if twin["design"] == "flat" else "judged on flat only"
    recall = [f"{d} {r:.2f}" if r is not None else f"{d} -" for d, r in twin["recall"].items()]
    lines = [
        f"twin scale benchmark: campus of {twin['devices']:,} devices, design {twin['design']}, "
        f"{twin['hours']:g} h simulated (warm-up {twin['warmup_h']:g} h)",
        _line("devices by kind", ", ".join(f"{k} {v:,}" for k, v in twin["mix"].items())),
        _line("zone subnets", f"/{twin['prefix']} per site zone (6) + internet"),
        _line("status", twin["status"], f"{twin['simulated_h']:g} h simulated", c["completed"]),
        _line("generate+validate", f"{twin['validate_s']:8.2f} s"),
        _line("run (execute)", f"{twin['execute_s']:8.2f} s"),
        _line("cpu (user+sys)", f"{twin['cpu_s']:8.2f} s"),
        _line("wall", f"{twin['wall_s']:8.2f} s", f"<= {TARGET_WALL_S:g} s {at}", c["wall"]),
        _line(
            "peak memory",
            f"{twin['peak_mib']:8.0f} MiB",
            f"<= {TARGET_PEAK_MIB:g} MiB {at}",
            c["memory"],
        ),
        _line("flow rows", f"{rows['flows']:>12,}"),
        _line("process rows", f"{rows['process']:>12,}"),
        _line("event rows", f"{rows['events']:>12,}"),
        _line("alerts", f"{rows['alerts']:>12,}"),
        _line("attack steps", ", ".join(steps), expect, c["attack"]),
        _line("detector recall", ", ".join(recall)),
    ]
    if baseline is None:
        lines.append(_line("baseline", "skipped (--no-baseline)"))
    else:
        events = int(twin["devices"] * twin["hours"] * 3600)
        how = (
            f"measured over the full {baseline['hours']:g} h"
            if not baseline["extrapolated"]
            else f"EXTRAPOLATED linearly from {baseline['hours']:g} simulated h "
            f"({baseline['wall_s']:.1f} s measured; SimPy's cost is linear in events)"
        )
        lines += [
            _line("baseline", f"{twin['devices']:,} SimPy processes, 1 s tick, {events:,} events"),
            _line("baseline wall", f"{baseline['extrapolated_wall_s']:8.2f} s   {how}"),
            _line("baseline peak mem", f"{baseline['peak_mib']:8.0f} MiB"),
            _line(
                "baseline/twin", f"{verdict['ratio']:8.2f} x", f">= {TARGET_RATIO:g} x", c["ratio"]
            ),
        ]
    for name, run in (("twin", twin), ("baseline", baseline)):
        if run is not None and run["cpu_s"] < BUSY_CPU_SHARE * run["wall_s"]:
            lines.append(
                f"  WARNING: the {name} got only {run['cpu_s'] / run['wall_s']:.0%} of a CPU "
                "(other work on this machine?); its wall time is inflated"
            )
    lines.append(_line("verdict", "PASS" if verdict["pass"] else "FAIL"))
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/scale.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Scale benchmark of the twin.

Builds a generated campus facility of N devices - BMS servers and an engineering
workstation; air handlers each feeding ~{VAVS_PER_AHU} VAV boxes (one room each) plus a server
hall; room sensors; door controllers with badge readers; PLCs with tanks; NVRs with IP
cameras; IoT gateways publishing to a cloud - in 6 site zones (bms, hvac, access, ot,
cameras, iot; /24 each while they fit, else /16 each inside 10.0.0.0/8) plus an internet
zone. The facility and scenario are plain mappings checked by twin.scenario.parse_scenario
exactly like a user's file. The scenario is the flagship intrusion: default credentials on
the lobby camera (forwarded to the internet), a sweep of the first /24 of the HVAC zone,
and a Modbus write of an AHU supply-air setpoint. It runs through twin.run.execute with
polling, physics and both detectors (conduit_policy, allowlist), writing Parquet to a
temporary directory that is deleted afterwards unless --keep.

Figures (printed, or as JSON with --json):
  wall          generate + validate + execute, measured in a fresh process
  cpu           user + system CPU time of the same; a warning is printed when it is
                well below wall (the machine was busy and the timings are inflated)
  peak memory   that process's peak resident set (getrusage ru_maxrss)
  rows          flow, process, event and alert rows written
  baseline      N SimPy processes each doing `yield env.timeout(1)` forever - an empty
                loop with one event per device per simulated second - in its own process.
                By default it runs the full duration for N <= 1,000 and 1 simulated hour
                above that, and is extrapolated linearly to the full duration (SimPy's
                cost is linear in events; the output says when it extrapolated).
  ratio         baseline wall / twin wall

Targets (each figure is marked PASS, FAIL, or '-' where it is not judged):
  wall <= {TARGET_WALL_S:g} s and peak memory <= {TARGET_PEAK_MIB:g} MiB at the reference size,
  {REFERENCE_DEVICES:,} devices x {REFERENCE_HOURS:g} h; other sizes need only complete.
  ratio >= {TARGET_RATIO:g} at every size.
  On the flat design all three attack steps succeed (on zoned the sweep is blocked).
Exit status 0 whether or not targets pass, unless --check (then 1 on any FAIL);
2 when the generated scenario does not validate.

Example:  python bench/scale.py --devices 1000
""",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=REFERENCE_DEVICES,
        metavar="N",
        help=f"devices in the campus, at least {MIN_DEVICES} (default {REFERENCE_DEVICES})",
    )
    p.add_argument(
        "--hours",
        type=float,
        default=REFERENCE_HOURS,
        help="simulated hours (default 24; warm-up is 2 h, or a quarter of a shorter run)",
    )
    p.add_argument(
        "--design",
        choices=("flat", "zoned"),
        default="flat",
        help="segmentation design: flat (attack succeeds) or zoned (default flat)",
    )
    p.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    p.add_argument(
        "--baseline-hours",
        type=float,
        default=None,
        metavar="H",
        help="simulated hours to actually run the naive baseline for, then extrapolate "
        "to --hours (default: --hours when N <= 1000, else 1)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the run directory (Parquet tables, summary.json) and print its path",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the twin in this process instead of a fresh one, e.g. under "
        "python -m cProfile; peak memory then includes this process",
    )
    p.add_argument("--check", action="store_true", help="exit status 1 when any target fails")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--job", help=argparse.SUPPRESS)  # internal: one measured run, JSON on stdout
    return p


def main(argv: list[str] | None = None) -> int:
    from twin.errors import ScenarioError

    args = parser().parse_args(argv)
    try:
        if args.job:
            print(json.dumps(run_job(json.loads(args.job))))
            return 0
        return bench(args)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2


def bench(args: argparse.Namespace) -> int:
    """Measure the twin and the baseline, each in a fresh process, and print the figures."""
    n, hours = args.devices, args.hours
    if n < MIN_DEVICES:
        parser().error(f"--devices must be at least {MIN_DEVICES}")
    if hours <= 0:
        parser().error("--hours must be positive")
    base_hours = args.baseline_hours
    if base_hours is None:
        base_hours = hours if n <= REFERENCE_DEVICES else min(1.0, hours)
    if not 0 < base_hours <= hours:
        parser().error("--baseline-hours must be in (0, --hours]")

    out = Path(tempfile.mkdtemp(prefix=f"twin-scale-{n}-"))
    try:
        job = {
            "kind": "twin",
            "devices": n,
            "design": args.design,
            "hours": hours,
            "seed": args.seed,
            "out": str(out),
        }
        print(f"scale: twin, {n:,} devices x {hours:g} h ...", file=sys.stderr, flush=True)
        twin = run_job(job) if args.in_process else in_child(job)
    finally:
        if args.keep:
            print(f"scale: run directory kept: {out}", file=sys.stderr)
        else:
            shutil.rmtree(out, ignore_errors=True)

    baseline = None
    if not args.no_baseline:
        print(
            f"scale: baseline, {n:,} processes x {base_hours:g} h ...", file=sys.stderr, flush=True
        )
        baseline = in_child({"kind": "baseline", "devices": n, "hours": base_hours})
        baseline["extrapolated_wall_s"] = baseline["wall_s"] * hours / base_hours
        baseline["extrapolated"] = base_hours < hours
    verdict = judge(twin, baseline)
    if args.json:
        print(json.dumps({"twin": twin, "baseline": baseline, **verdict}, indent=2))
    else:
        print(report(twin, baseline, verdict))
    return 1 if args.check and not verdict["pass"] else 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # `python bench/scale.py` from a checkout without install
    sys.exit(main())
