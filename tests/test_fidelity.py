"""The fidelity report: per-device flow errors and physics errors between two runs of a scenario."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SCENARIOS
from twin.errors import TwinError
from twin.fidelity import METRICS, compare
from twin.network.flows import empty_flows
from twin.run import execute
from twin.scenario import load_scenario

SCENARIO = SCENARIOS / "plant-rogue-flood.yaml"
SHORT = {"duration": "2h", "warmup": "1h", "campaign": None}  # quiet plant: about a second
PLC = "10.40.60.10"  # plc-mix-1, polled by the SCADA over Modbus
SCADA = "10.40.10.10"
SIGNAL = "room.control-room.temp_c"

Edit = Callable[[pd.DataFrame], pd.DataFrame]


def run_plant(out: Path, **overrides: object) -> Path:
    spec = load_scenario(SCENARIO, {**SHORT, **overrides})
    execute(spec, out, source=str(SCENARIO), counterfactual=False)
    return out


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_plant(tmp_path_factory.mktemp("plant"))


def copy(run: Path, to: Path, flows: Edit | None = None, process: Edit | None = None) -> Path:
    """A copy of a run directory, with its flows or process table changed."""
    shutil.copytree(run, to)
    for table, edit in (("flows", flows), ("process", process)):
        if edit is not None:
            path = to / f"{table}.parquet"
            edit(pd.read_parquet(path)).to_parquet(path, index=False)
    return to


def edit_summary(run: Path, **changes: object) -> None:
    path = run / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def touches(flows: pd.DataFrame, ip: str) -> pd.Series:
    return (flows["src_ip"] == ip) | (flows["dst_ip"] == ip)


def in_window(run: Path, window: dict) -> pd.DataFrame:
    flows = pd.read_parquet(run / "flows.parquet")
    t = flows["t_export"]
    return flows[(t > window["start_s"]) & (t <= window["end_s"])]


def row(devices: pd.DataFrame, ip: str) -> pd.Series:
    return devices.set_index("ip").loc[ip]


def errors(devices: pd.DataFrame) -> pd.DataFrame:
    return devices[[c for c in devices if c.endswith(("_error", "_distance"))]]


def test_a_run_compared_with_itself_has_no_gap(plant: Path) -> None:
    """Identical runs: every error, both headlines and every signal's RMSE are exactly 0."""
    fid = compare(plant, plant)
    assert fid.overall["flow_gap"] == 0.0 and fid.overall["physics_gap"] == 0.0
    assert fid.overall["flow_gap_device_mean"] == 0.0
    assert set(np.unique(errors(fid.devices).fillna(0.0))) == {0.0}
    assert (fid.devices["flow_gap"] == 0.0).all()
    assert (fid.signals[["rmse", "max_abs", "nrmse"]] == 0.0).all().all()
    assert fid.overall["only_in_modelled"] == fid.overall["only_in_emulated"] == []
    assert fid.overall["device_names"] == "facility"
    assert {"scada", "plc-mix-1", "cam-1"} <= set(fid.devices["device"])
    # a device with no Modbus has nothing to compare there: not applicable, not 'no error'
    cam = fid.devices.set_index("device").loc["cam-1"]
    assert math.isnan(cam["modbus_reads_per_min_error"]) and math.isnan(cam["fc_mix_distance"])
    assert fid.overall["window"] == {
        "start_s": 0.0,
        "end_s": 7140.0,
        "minutes": 119.0,
        "interval_s": 60.0,
    }


def test_doubled_bytes_of_one_device(plant: Path, tmp_path: Path) -> None:
    """Twice the bytes on the PLC's flows: its byte errors are 1/2, its peer's its share."""

    def double(f: pd.DataFrame) -> pd.DataFrame:
        on = touches(f, PLC)
        f.loc[on, ["bytes", "bytes_rev"]] *= 2
        return f

    fid = compare(plant, copy(plant, tmp_path / "emu", flows=double))
    plc = row(fid.devices, PLC)
    assert plc["bytes_per_min_error"] == pytest.approx(0.5, abs=1e-12)
    assert plc["bytes_per_packet_error"] == pytest.approx(0.5, abs=1e-12)
    assert plc[["flows_per_min_error", "packets_per_min_error", "fc_mix_distance"]].eq(0).all()
    assert plc["flow_gap"] == pytest.approx(1.0 / 6)  # 2 of 6 applicable metrics at 0.5

    flows = in_window(plant, fid.overall["window"])
    scada = flows[touches(flows, SCADA)]
    shared = (scada["bytes"] + scada["bytes_rev"])[touches(scada, PLC)].sum()
    total = (scada["bytes"] + scada["bytes_rev"]).sum()
    assert row(fid.devices, SCADA)["bytes_per_min_error"] == pytest.approx(
        shared / (total + shared), rel=1e-12
    )
    peers = set(flows.loc[touches(flows, PLC), ["src_ip", "dst_ip"]].stack())
    untouched = fid.devices[~fid.devices["ip"].isin(peers)]
    assert set(np.unique(errors(untouched).fillna(0.0))) == {0.0}

    d = fid.devices.dropna(subset=["bytes_per_min_error"])
    weighted = (d["bytes_per_min_error"] * d["weight"]).sum() / d["weight"].sum()
    assert fid.overall["metrics"]["bytes_per_min"] == pytest.approx(weighted)
    assert fid.overall["flow_gap"] == pytest.approx(
        np.mean([v for v in fid.overall["metrics"].values() if v is not None])
    )
    assert fid.overall["totals"]["flows"]["error"] == 0.0


@pytest.mark.parametrize("side", ["modelled", "emulated"])
def test_a_device_seen_in_one_run_only(plant: Path, tmp_path: Path, side: str) -> None:
    """A device with no flows on one side: that side reads 0, every error 1, and it is listed."""
    dropped = copy(plant, tmp_path / "dropped", flows=lambda f: f[~touches(f, PLC)])
    fid = compare(dropped, plant) if side == "emulated" else compare(plant, dropped)
    plc = row(fid.devices, PLC)
    other = "modelled" if side == "emulated" else "emulated"
    assert not plc[f"in_{other}"] and plc[f"in_{side}"]
    assert plc[f"bytes_per_min_{other}"] == 0.0 and plc[f"bytes_per_min_{side}"] > 0
    assert set(errors(fid.devices.set_index("ip").loc[[PLC]]).stack().dropna()) == {1.0}
    assert plc["flow_gap"] == 1.0
    assert fid.overall[f"only_in_{side}"] == ["plc-mix-1"]
    assert fid.overall[f"only_in_{other}"] == []
    assert fid.devices.iloc[0]["ip"] == PLC  # the worst device comes first

    flows = in_window(plant, fid.overall["window"])
    scada = flows[touches(flows, SCADA)]
    share = touches(scada, PLC).sum() / len(scada)
    assert row(fid.devices, SCADA)["flows_per_min_error"] == pytest.approx(share)


def test_function_code_mix_is_compared_by_total_variation(plant: Path, tmp_path: Path) -> None:
    """Reads with fc 1 and 3 against fc 3 and 16: half the mass moved, distance 0.5."""

    def codes(fcs: str) -> Edit:
        def edit(f: pd.DataFrame) -> pd.DataFrame:
            f.loc[touches(f, PLC) & (f["modbus_fc_set"] != ""), "modbus_fc_set"] = fcs
            return f

        return edit

    modelled = copy(plant, tmp_path / "mod", flows=codes("1,3"))
    fid = compare(modelled, copy(plant, tmp_path / "emu", flows=codes("3,16")))
    plc = row(fid.devices, PLC)
    assert plc["fc_mix_distance"] == pytest.approx(0.5)
    assert (plc["fc_mix_modelled"], plc["fc_mix_emulated"]) == ("1:0.5,3:0.5", "3:0.5,16:0.5")
    assert plc["flow_gap"] == pytest.approx(0.5 / 6)  # the other five applicable metrics agree


def test_auth_failures_on_one_side_only(plant: Path, tmp_path: Path) -> None:
    """Failed logins only the emulated run saw: error 1 for that device, counted in totals."""

    def fail(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[f.index[touches(f, PLC)][-3:], "auth_failures"] = 2
        return f

    fid = compare(plant, copy(plant, tmp_path / "emu", flows=fail))
    plc = row(fid.devices, PLC)
    assert (plc["auth_failures_modelled"], plc["auth_failures_emulated"]) == (0.0, 6.0)
    assert plc["auth_failures_error"] == 1.0
    assert fid.overall["metrics"]["auth_failures"] == 1.0
    assert fid.overall["totals"]["auth_failures"] == {
        "modelled": 0.0,
        "emulated": 6.0,
        "error": 1.0,
    }


def test_a_physics_offset_gives_its_rmse(plant: Path, tmp_path: Path) -> None:
    """Half a degree added to one room: RMSE and max difference 0.5, the others stay 0."""

    def warmer(p: pd.DataFrame) -> pd.DataFrame:
        p.loc[p["signal"] == SIGNAL, "value"] += 0.5
        return p

    fid = compare(plant, copy(plant, tmp_path / "emu", process=warmer))
    sig = fid.signals.set_index("signal")
    room = pd.read_parquet(plant / "process.parquet").query("signal == @SIGNAL")["value"]
    assert sig.loc[SIGNAL, "rmse"] == pytest.approx(0.5)
    assert sig.loc[SIGNAL, "max_abs"] == pytest.approx(0.5)
    assert sig.loc[SIGNAL, "nrmse"] == pytest.approx(0.5 / (room.max() - room.min()))
    assert (sig.drop(SIGNAL)["rmse"] == 0.0).all()
    assert fid.overall["worst_signals"][0]["signal"] == SIGNAL
    assert fid.overall["physics_gap"] == 0.0  # the median of 21 signals, 20 of them exact
    assert fid.overall["flow_gap"] == 0.0


def test_emulated_samples_off_the_modelled_grid_are_matched(plant: Path, tmp_path: Path) -> None:
    """Samples 13 s late (a real-time kernel) still pair with the nearest modelled sample."""

    def late(p: pd.DataFrame) -> pd.DataFrame:
        return p.assign(t=p["t"] + 13.0)

    fid = compare(plant, copy(plant, tmp_path / "emu", process=late))
    assert (fid.signals["rmse"] == 0.0).all() and (fid.signals["unmatched"] == 0).all()
    assert fid.overall["physics_window"]["start_s"] == 13.0  # only the span both runs cover
    assert (fid.signals["matched"] == 119).all()


def test_partial_first_and_last_export_intervals_are_dropped(plant: Path, tmp_path: Path) -> None:
    """A capture that starts at 75 s and a run that stops at 3030 s: whole intervals only."""

    def late_capture(f: pd.DataFrame) -> pd.DataFrame:
        f = f[(f["t_export"] > 60) & (f["t_export"] <= 3060)].copy()
        first = f["t_export"] == 120
        f.loc[first, "t_start"] = f.loc[first, "t_start"].clip(lower=75.0)
        f.loc[first, ["packets", "bytes"]] //= 2  # what a capture from 75 s would hold
        return f

    emulated = copy(plant, tmp_path / "emu", flows=late_capture)
    edit_summary(emulated, simulated_s=3030.0)
    fid = compare(plant, emulated)
    assert fid.overall["window"] == {
        "start_s": 120.0,
        "end_s": 3000.0,
        "minutes": 48.0,
        "interval_s": 60.0,
    }
    assert fid.overall["flow_gap"] == 0.0


def test_no_emulated_flows_at_all(plant: Path, tmp_path: Path) -> None:
    """An empty capture: every device is modelled-only, with a flow gap of 1."""
    fid = compare(plant, copy(plant, tmp_path / "emu", flows=lambda f: empty_flows()))
    assert (fid.devices["flow_gap"] == 1.0).all()
    assert fid.overall["flow_gap"] == fid.overall["flow_gap_device_mean"] == 1.0
    assert sorted(fid.overall["only_in_modelled"]) == sorted(fid.devices["device"])
    assert fid.overall["totals"]["flows"]["emulated"] == 0.0
    assert "flow gap 1.000" in fid.text()


def test_missing_values_are_skipped_not_propagated(plant: Path, tmp_path: Path) -> None:
    """NaN samples and byte counts: samples left out, counts read as 0, no NaN in the JSON.

    The holes are in the modelled trace: a hole in the emulated one is filled by the
    nearest sample within one interval, which is the join's purpose.
    """

    def holes(p: pd.DataFrame) -> pd.DataFrame:
        p.loc[p.index[p["signal"] == SIGNAL][:10], "value"] = np.nan
        return p

    def unknown_bytes(f: pd.DataFrame) -> pd.DataFrame:
        f = f.astype({"bytes": float})
        f.loc[touches(f, PLC), "bytes"] = np.nan
        return f

    modelled = copy(plant, tmp_path / "mod", process=holes)
    fid = compare(modelled, copy(plant, tmp_path / "emu", flows=unknown_bytes))
    sig = fid.signals.set_index("signal").loc[SIGNAL]
    assert (sig["rmse"], sig["unmatched"], sig["matched"]) == (0.0, 0, 110)  # 120 samples, 10 holes
    plc = row(fid.devices, PLC)
    assert 0 < plc["bytes_per_min_error"] < 1 and plc["bytes_per_min_emulated"] > 0
    json.dumps(fid.as_dict(), allow_nan=False)


def test_runs_of_another_seed_are_refused(plant: Path, tmp_path: Path) -> None:
    """Different seeds make different traffic: comparing them would measure nothing."""
    other = run_plant(tmp_path / "seed7", seed=7)
    with pytest.raises(TwinError, match=r"seed: modelled 19, emulated 7"):
        compare(plant, other)


@pytest.mark.parametrize(
    ("key", "value"), [("scenario", "flagship"), ("design", "micro"), ("facility", "harbour-dc")]
)
def test_runs_of_another_scenario_or_design_are_refused(
    plant: Path, tmp_path: Path, key: str, value: str
) -> None:
    """The summaries must name the same scenario, facility and design; the message says which."""
    other = copy(plant, tmp_path / "other")
    edit_summary(other, **{key: value})
    with pytest.raises(TwinError, match=rf"not of the same scenario.*\n  {key}: modelled"):
        compare(plant, other)


@pytest.mark.parametrize(
    ("break_run", "message"),
    [
        (lambda d: edit_summary(d, status="interrupted", error="interrupted by the user"),
         r"emulated run .* is 'interrupted' \(interrupted by the user\), not complete"),
        (lambda d: (d / "summary.json").unlink(), r"no summary.json"),
        (lambda d: (d / "process.parquet").unlink(), r"incomplete: no process.parquet"),
    ],
)  # fmt: skip
def test_an_unfinished_run_is_refused(
    plant: Path, tmp_path: Path, break_run: Callable[[Path], None], message: str
) -> None:
    """Half a run would read as a huge gap; the comparison refuses it and says why."""
    emulated = copy(plant, tmp_path / "emu")
    break_run(emulated)
    with pytest.raises(TwinError, match=message):
        compare(plant, emulated)


def test_without_the_scenario_file_devices_are_named_from_events(
    plant: Path, tmp_path: Path
) -> None:
    """Runs made without a source path still compare; names come from what devices announced."""
    modelled, emulated = copy(plant, tmp_path / "mod"), copy(plant, tmp_path / "emu")
    for run in (modelled, emulated):
        edit_summary(run, source="")
    fid = compare(modelled, emulated)
    assert fid.overall["device_names"] == "events"
    assert fid.overall["flow_gap"] == 0.0
    named = fid.devices.set_index("ip")["device"]
    assert named[PLC] == "plc-mix-1"


def test_written_files(plant: Path, tmp_path: Path) -> None:
    """json, two csv tables and a self-contained html page; the text leads with the headlines."""

    def warmer(p: pd.DataFrame) -> pd.DataFrame:
        p.loc[p["signal"] == SIGNAL, "value"] += 0.5
        return p

    fid = compare(plant, copy(plant, tmp_path / "emu", process=warmer))
    paths = fid.write(tmp_path / "out")
    assert [p.name for p in paths] == [
        "fidelity.json",
        "fidelity-devices.csv",
        "fidelity-signals.csv",
        "fidelity.html",
    ]
    data = json.loads(paths[0].read_text())
    assert data["overall"]["flow_gap"] == 0.0 and len(data["devices"]) == len(fid.devices)
    assert len(pd.read_csv(paths[1])) == len(fid.devices)
    assert pd.read_csv(paths[2])["signal"].iloc[0] == SIGNAL
    page = paths[3].read_text()
    assert "Plotly" in page and "plc-mix-1" in page and "<script src=" not in page
    text = fid.text().splitlines()
    assert text[1] == "flow gap 0.000 (device mean 0.000)   physics gap (median nRMSE) 0.000"
    assert any(line.strip().startswith(SIGNAL) for line in text)
    assert len(METRICS) == 8
