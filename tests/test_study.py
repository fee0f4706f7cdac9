"""Studies: the file's checks, expansion, keyed resumable execution on serial/Dask, sanity."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import ROOT, SCENARIOS
from twin.errors import ScenarioError
from twin.facility import Facility
from twin.scenario import load_facility
from twin.study.design import analyse, attacker_reach, reachability
from twin.study.executor import Cluster, ResultStore, run_all
from twin.study.lifecycle import patched, with_default_credentials
from twin.study.run import run_study
from twin.study.spec import expand, load_study

QUICK = SCENARIOS / "studies" / "scenarios" / "dc-quick-intrusion.yaml"
FACILITY = SCENARIOS / "facilities" / "harbour-dc.yaml"
COMPARED = ["status", "error", "scenario", "design", "seed", "blast_share", "safety_blast_share",
            "harm", "time_to_detect_s", "hops_to_safety", "conduits_to_open", "compromised",
            "conduit_policy.recall", "allowlist.alerts"]  # fmt: skip


def write_study(tmp: Path, **fields: Any) -> Path:
    doc = {
        "name": "t",
        "facility": str(FACILITY),
        "scenarios": [str(QUICK)],
        "designs": ["flat", "zoned", "micro"],
        "seeds": [1],
        **fields,
    }
    path = tmp / "study.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def serial_results(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    tmp = tmp_path_factory.mktemp("serial")
    study = load_study(write_study(tmp))
    run_study(study, tmp / "out", Cluster(serial=True), report=True)
    return pd.read_parquet(tmp / "out" / "results.parquet")  # the table as users read it


# --- the study file ---------------------------------------------------------------------------


def test_every_problem_of_a_study_file_at_once(tmp_path: Path) -> None:
    """A study with several mistakes is refused with each one at its field path."""
    path = write_study(
        tmp_path,
        designs=["flat", "zonned"],
        detector_sets={"ndr": ["alowlist"]},
        lifecycle={"default_credentials": {"min": 0, "max": 1}, "patch_lag_days": [5000]},
        seeds=[1, 1],
        bogus=1,
    )
    with pytest.raises(ScenarioError) as info:
        load_study(path)
    paths = {p.path for p in info.value.problems}
    assert {"designs[1]", "detector_sets.ndr[0]", "lifecycle.default_credentials",
            "lifecycle.patch_lag_days[0]", "seeds", "bogus"} <= paths  # fmt: skip


def test_cli_study_with_a_bad_file_exits_2(tmp_path: Path) -> None:
    """`twin study` on an invalid file exits 2 with the problem and no traceback."""
    path = write_study(tmp_path, designs=["nope"])
    proc = subprocess.run([sys.executable, "-m", "twin.cli", "study", str(path), "--serial"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 2 and "designs[0]" in proc.stderr and "Traceback" not in proc.stderr


def test_full_factorial_and_sampled_expansion(tmp_path: Path) -> None:
    """Factorial crosses every level; Morris gives trajectories x (factors + 1) points per cell."""
    study = load_study(write_study(tmp_path, playbooks=[False, True], seeds=[1, 2],
                                   lifecycle={"default_credentials": [0, 0.5]}))  # fmt: skip
    assert len(expand(study)) == 3 * 2 * 2 * 2
    sampled = load_study(write_study(
        tmp_path, designs=["flat"],
        lifecycle={"default_credentials": {"min": 0, "max": 1}, "patch_lag_days": {"min": 0, "max": 90}},
        sampling={"method": "morris", "samples": 3, "levels": 4},
    ))  # fmt: skip
    runs = expand(sampled)
    assert len(runs) == 3 * (2 + 1)
    assert all(0 <= r["default_credentials"] <= 1 for r in runs)
    lhs = load_study(write_study(
        tmp_path, designs=["flat", "micro"], lifecycle={"patch_lag_days": {"min": 0, "max": 90}},
        sampling={"method": "lhs", "samples": 5},
    ))  # fmt: skip
    lags = sorted({r["patch_lag_days"] for r in expand(lhs)})
    assert len(expand(lhs)) == 2 * 5 and len(lags) == 5  # one point per stratum, shared by designs
    assert [int(lag // 18) for lag in lags] == [0, 1, 2, 3, 4]


# --- lifecycle policies as data ----------------------------------------------------------------


def test_default_credential_shares_are_nested() -> None:
    """A larger share of default credentials holds every device a smaller share did."""
    spec = load_facility(FACILITY)
    sets = []
    for share in (0.0, 0.1, 0.3, 0.6, 1.0):
        fac = with_default_credentials(spec, share)
        sets.append({d.name for d in fac.devices if d.credentials == "default"})
    assert all(a <= b for a, b in itertools.pairwise(sets))
    assert len(sets[-1]) > len(sets[0])


def test_patch_lag_decides_whether_a_listed_fix_is_installed() -> None:
    """The gateway's listed fix (2025-11-03) is in by a run on 2026-01-12 with a 30-day lag,
    not with a 90-day one; a unit past its support end gets no fix unless replaced."""
    import datetime as dt

    spec = load_facility(FACILITY)
    start = dt.date(2026, 1, 12)

    def fw(fac: Any) -> str:
        return str(next(d.firmware for d in fac.devices if d.name == "gateway"))

    assert fw(patched(spec, 30, start, False)) == "1.3.0"
    assert fw(patched(spec, 90, start, False)) == "1.2.1"
    old = spec.model_copy(update={"devices": [
        d.model_copy(update={"support_end": dt.date(2025, 1, 1)}) if d.name == "gateway" else d
        for d in spec.devices
    ]})  # fmt: skip
    assert fw(patched(old, 30, start, False)) == "1.2.1"
    assert fw(patched(old, 30, start, True)) == "1.3.0"


# --- sanity on the reference site -------------------------------------------------------------


def test_removing_a_conduit_never_increases_reachability() -> None:
    """For every design and conduit of the reference site, the graph without it is a subgraph."""
    spec = load_facility(FACILITY)
    for name, design in spec.designs.items():
        full = set(reachability(Facility.build(spec), name).edges)
        for i in range(len(design.conduits)):
            fewer = design.model_copy(
                update={"conduits": design.conduits[:i] + design.conduits[i + 1 :]}
            )
            cut = spec.model_copy(update={"designs": {**spec.designs, name: fewer}})
            assert set(reachability(Facility.build(cut), name).edges) <= full, (name, i)


def test_more_default_credentials_never_decrease_reachability() -> None:
    """What an attacker from the internet can reach only grows as default credentials spread."""
    spec = load_facility(FACILITY)
    for design in ("flat", "zoned", "micro"):
        reach = []
        for share in (0.0, 0.2, 0.5, 1.0):
            site = Facility.build(with_default_credentials(spec, share))
            reach.append(attacker_reach(site, reachability(site, design)))
        assert all(a <= b for a, b in itertools.pairwise(reach)), design
    flat = analyse(spec, "flat")
    assert flat["attacker_reach"] > analyse(spec, "micro")["attacker_reach"]


def test_a_design_written_in_the_study_is_compared(tmp_path: Path) -> None:
    """A study may add its own design; it is expanded and analysed like the facility's."""
    strict = {"kind": "micro", "conduits": [
        {"from": "bms-server", "to": "ahu", "services": ["modbus"]},
        {"from": "bms-server", "to": "vav-hall", "services": ["modbus"]},
    ]}  # fmt: skip
    study = load_study(write_study(tmp_path, designs=["flat", "strict"],
                                   extra_designs={"strict": strict}))  # fmt: skip
    assert {r["design"] for r in expand(study)} == {"flat", "strict"}
    fac = study.scenarios["dc-quick-intrusion"].facility
    assert not isinstance(fac, str)
    assert analyse(fac, "strict")["exposed_to_internet"] == 0
    assert analyse(fac, "flat")["security_level_gaps"]["ot"] == 2  # SL-1 cameras reach SL-3 OT


def test_blast_radius_flat_ge_zoned_ge_micro(serial_results: pd.DataFrame) -> None:
    """On the reference site the quick intrusion's blast radius orders flat >= zoned >= micro."""
    blast = serial_results.groupby("design")["blast_share"].median()
    assert blast["flat"] >= blast["zoned"] >= blast["micro"]
    assert blast["flat"] > blast["micro"]  # the flat network loses the air handler


def test_static_analysis_sees_the_flat_network_skip_the_dmz() -> None:
    """The flat design lets the internet-exposed camera reach control; zones and micro do not."""
    spec = load_facility(FACILITY)
    assert analyse(spec, "flat")["control_reached_skipping_dmz"] > 0
    assert analyse(spec, "zoned")["control_reached_skipping_dmz"] == 0
    assert (
        analyse(spec, "micro")["separation_failures"] < analyse(spec, "flat")["separation_failures"]
    )


def test_results_table_and_report_are_written(serial_results: pd.DataFrame) -> None:
    """The study writes one row per run with parameters, metrics and scores, and its report."""
    assert len(serial_results) == 3 and (serial_results["status"] == "ok").all()
    for col in ("hops_to_safety", "conduits_to_open", "time_to_compromise_s",
                "time_to_detect_censored", "detected_before_harm", "conduit_policy.recall"):  # fmt: skip
        assert col in serial_results
    flat = serial_results.set_index("design").loc["flat"]
    assert flat["conduits_to_open"] == 0 and flat["safety_blast_share"] > 0


# --- the executor -----------------------------------------------------------------------------


def flaky(params: dict[str, Any], shared: Any, workdir: Path) -> dict[str, Any]:
    """A task that fails for odd numbers (to exercise retries)."""
    if params["n"] % 2:
        raise ValueError(f"odd {params['n']}")
    return {"metrics": {"double": params["n"] * 2}}


def test_a_failed_run_is_retried_once_then_recorded(tmp_path: Path) -> None:
    """A failing run is attempted twice and recorded with its error; the others finish."""
    store = ResultStore(tmp_path)
    runs = {f"k{n}": {"n": n} for n in range(4)}
    records = run_all(flaky, runs, None, store, Cluster(serial=True))
    assert [records[f"k{n}"]["status"] for n in range(4)] == ["ok", "failed", "ok", "failed"]
    assert "odd 1" in records["k1"]["error"]
    assert Counter(store.attempts()) == {"k0": 1, "k1": 2, "k2": 1, "k3": 2}
    again = run_all(flaky, runs, None, store, Cluster(serial=True))
    assert again["k2"] == records["k2"]
    assert Counter(store.attempts())["k0"] == 1  # finished runs are never redone


def test_each_run_executed_now_is_told_once_and_finished_ones_are_not(tmp_path: Path) -> None:
    """`finished` hears every run executed in this call (failed ones too), never a kept one."""
    store = ResultStore(tmp_path)
    runs = {f"k{n}": {"n": n} for n in range(3)}
    heard: list[tuple[str, str]] = []
    run_all(flaky, runs, None, store, Cluster(serial=True),
            finished=lambda key, rec: heard.append((key, rec["status"])))  # fmt: skip
    assert heard == [("k0", "ok"), ("k1", "failed"), ("k2", "ok")]
    heard.clear()
    run_all(flaky, runs, None, store, Cluster(serial=True),
            finished=lambda key, rec: heard.append((key, rec["status"])))  # fmt: skip
    assert heard == [("k1", "failed")]  # only the failed run is tried again


def test_a_finished_study_needs_no_cluster(tmp_path: Path) -> None:
    """With every run finished, a resumed study neither starts nor reaches a cluster."""
    store = ResultStore(tmp_path)
    runs = {f"k{n}": {"n": n} for n in (0, 2)}
    first = run_all(flaky, runs, None, store, Cluster(serial=True))
    nowhere = Cluster(scheduler=f"tcp://127.0.0.1:{_free_port()}")  # nothing listens there
    assert run_all(flaky, runs, None, store, nowhere) == first


def worker_settings() -> dict[str, Any]:
    """What a worker process runs with (executed on the worker)."""
    import dask

    return {
        "profile": dask.config.get("distributed.worker.profile.enabled"),
        "malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "tick": dask.config.get("distributed.admin.tick.interval"),
    }


@pytest.mark.slow
def test_the_embedded_clusters_workers_run_a_simulation_as_serial_does() -> None:
    """Workers run without Dask's 10 ms stack sampler and glibc trimming, one BLAS thread,
    and an event loop that wakes every 500 ms, not every 20."""
    from twin.study.executor import client_for

    saved = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # as a fresh `twin study` process has it
    try:
        with client_for(Cluster(workers=1)) as client:
            settings = list(client.run(worker_settings).values())
    finally:
        if saved is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = saved
    assert settings == [
        {"profile": False, "malloc_trim": None, "blas_threads": "1", "tick": "500ms"}
    ]


@pytest.mark.slow
def test_a_killed_study_resumes_without_redoing_finished_runs(tmp_path: Path) -> None:
    """SIGKILL a study midway; started again it finishes, each finished run executed once."""
    path = write_study(tmp_path, seeds=[1, 2])
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "twin.cli",
        "study",
        str(path),
        "--serial",
        "-q",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "results").glob("*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {p.stem for p in (out / "results").glob("*.json")}
    assert 2 <= len(before) < 6
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    attempts = Counter(ResultStore(out).attempts())
    assert len(attempts) == 6 and all(attempts[k] == 1 for k in before)
    assert len(pd.read_parquet(out / "results.parquet")) == 6


@pytest.mark.slow
def test_local_cluster_gives_the_serial_results(
    serial_results: pd.DataFrame, tmp_path: Path
) -> None:
    """The embedded LocalCluster (2 worker processes) gives exactly the serial results."""
    study = load_study(write_study(tmp_path))
    run_study(study, tmp_path / "out", Cluster(workers=2), report=False)
    dask = pd.read_parquet(tmp_path / "out" / "results.parquet")
    same = [c for c in serial_results if c != "wall_time_s"]
    assert dask[COMPARED].equals(serial_results[COMPARED])
    assert dask[same].equals(serial_results[same])  # every parameter, metric and score


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dask_cluster(tmp: Path) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped by PID."""
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "scheduler.log").open("w"),
    )]  # fmt: skip
    try:
        for i in range(2):
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp / f"w{i}")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=(tmp / f"worker{i}.log").open("w"),
            ))  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.mark.slow
def test_external_scheduler_gives_the_serial_results(
    serial_results: pd.DataFrame, tmp_path: Path
) -> None:
    """A study through --scheduler on a real scheduler and two workers matches --serial."""
    path = write_study(tmp_path)
    out = tmp_path / "out"
    with dask_cluster(tmp_path) as address:
        proc = subprocess.run(
            [sys.executable, "-m", "twin.cli", "study", str(path), "--scheduler", address,
             "-q", "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    external = pd.read_parquet(out / "results.parquet")
    same = [c for c in serial_results if c != "wall_time_s"]
    assert external[same].equals(serial_results[same])


# --- statistics and the report ----------------------------------------------------------------


def test_paired_differences_use_common_seeds_only() -> None:
    """Differences against the baseline pair runs on the same seed; unpaired seeds are left out."""
    from twin.study.stats import paired_differences

    frame = pd.DataFrame({
        "status": "ok", "scenario": "s", "design": ["flat"] * 3 + ["micro"] * 2,
        "seed": [1, 2, 3, 1, 2], "blast_share": [0.5, 0.4, 0.9, 0.1, 0.2],
    })  # fmt: skip
    diff = paired_differences(frame, "blast_share", "flat").set_index("design").loc["micro"]
    assert diff["pairs"] == 2 and diff["median_difference"] == pytest.approx(-0.3)
    assert diff["ci_low"] <= diff["median_difference"] <= diff["ci_high"]


def test_censored_runs_keep_the_ecdf_below_one() -> None:
    """An undetected run is censored: the ECDF of time to detect tops out at the detected share."""
    from twin.study.stats import ecdf

    xs, ys, censored = ecdf(
        pd.Series([60.0, None, 120.0, None]), pd.Series([False, True, False, True])
    )
    assert list(xs) == [60.0, 120.0] and ys[-1] == 0.5 and censored == 2


def test_morris_ranks_the_factor_that_matters_first() -> None:
    """Morris mu* is large for the factor the outcome depends on and zero for the other."""
    from twin.study.stats import sensitivity

    problem = {"num_vars": 2, "names": ["default_credentials", "patch_lag_days"],
               "bounds": [[0.0, 1.0], [0.0, 120.0]]}  # fmt: skip
    from SALib.sample import morris

    x = morris.sample(problem, 6, num_levels=4, seed=0)
    frame = pd.DataFrame({"status": "ok", "design": "flat", "sample": range(len(x)),
                          "blast_share": 0.8 * x[:, 0]})  # fmt: skip
    s = sensitivity(frame, problem, "morris", "blast_share", x).set_index("factor")
    assert s.loc["default_credentials", "mu_star"] > 0.5 > s.loc["patch_lag_days", "mu_star"] == 0


def test_sobol_first_order_indices_split_an_additive_outcome() -> None:
    """Sobol S1 of y = 2a + b (a, b uniform on [0, 1]) is about 0.8 for a and 0.2 for b."""
    from SALib.sample import sobol

    from twin.study.stats import sensitivity

    problem = {"num_vars": 2, "names": ["default_credentials", "patch_lag_days"],
               "bounds": [[0.0, 1.0], [0.0, 1.0]]}  # fmt: skip
    x = sobol.sample(problem, 256, calc_second_order=False, seed=0)
    frame = pd.DataFrame({"status": "ok", "design": "micro", "sample": range(len(x)),
                          "blast_share": 2 * x[:, 0] + x[:, 1]})  # fmt: skip
    s = sensitivity(frame, problem, "sobol", "blast_share", x).set_index("factor")
    assert s.loc["default_credentials", "S1"] == pytest.approx(0.8, abs=0.1)
    assert s.loc["patch_lag_days", "S1"] == pytest.approx(0.2, abs=0.1)


def test_report_ranks_designs_with_a_sentence_each(
    serial_results: pd.DataFrame, tmp_path: Path
) -> None:
    """The report holds the ranking (one sentence per design), paired differences and ECDFs."""
    from twin.study.report import write_report
    from twin.study.stats import ranking

    study = load_study(write_study(tmp_path))
    ranked = ranking(serial_results)
    assert [r["design"] for r in ranked][-1] == "flat" and len(ranked) == 3
    designs = {d: analyse(load_facility(FACILITY), d) for d in study.designs}
    write_report(study, serial_results, designs, tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text()
    for needle in ("Recommendation", "Differences against flat", "ECDF of time to detect",
                   "Designs (static analysis)", ranked[0]["why"][:40]):  # fmt: skip
        assert needle in text


def test_every_shipped_study_loads_and_compares_the_three_designs() -> None:
    """Each shipped facility has a study comparing flat, zoned and micro, and every file loads."""
    facilities = set()
    for path in sorted((SCENARIOS / "studies").glob("*.yaml")):
        study = load_study(path)
        assert expand(study), path
        if {"flat", "zoned", "micro"} <= set(study.designs):
            facilities.add(Path(study.spec.facility).stem)
    assert {"harbour-dc", "office-hq", "plant-line"} <= facilities


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


@pytest.mark.slow
def test_sigterm_stops_a_study_and_its_local_cluster(tmp_path: Path) -> None:
    """SIGTERM ends a study on the embedded cluster with status 130, its finished runs kept
    and no worker process left behind."""
    path = write_study(tmp_path, seeds=[1, 2])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "twin.cli", "study", str(path), "--workers", "2", "-q",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        children = _descendants(proc.pid)
        assert children, "the cluster's worker processes"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr

    def alive() -> list[int]:
        out = []
        for p in children:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(p)
        return out

    deadline = time.monotonic() + 15  # the resource tracker and workers finish exiting
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive()
    assert ResultStore(out).attempts()


def test_any_one_field_broken_is_refused_with_a_path_or_loads(tmp_path: Path) -> None:
    """Property: a valid study with any one field set to an arbitrary value either loads or
    is refused as a ScenarioError whose every problem has a path; nothing else escapes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    fields = ["name", "facility", "scenarios", "designs", "baseline", "detector_sets", "playbooks",
              "lifecycle", "sampling", "seeds", "duration", "warmup", "extra_designs"]  # fmt: skip
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )  # fmt: skip

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(st.sampled_from(fields), values)
    def check(field: str, value: Any) -> None:
        path = write_study(tmp_path, **{field: value})
        try:
            load_study(path)
        except ScenarioError as exc:
            assert exc.problems and all(p.path for p in exc.problems), exc.render()

    check()
