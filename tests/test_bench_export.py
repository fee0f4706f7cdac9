"""`twin bench` pools detectors' scores over scenarios; `twin export` labels a run's flows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import ROOT, SCENARIOS
from twin.bench import bench
from twin.export import export_run
from twin.run import RunResult


def test_leaderboard_pools_runs_and_counts_quiet_days(tmp_path: Path) -> None:
    """Two seeds plus an attack-free run give one pooled row per detector and the tables on disk."""
    board, per_run = bench(
        [SCENARIOS / "flagship.yaml"],
        ["conduit_policy", "allowlist"],
        [1, 2],
        tmp_path,
        duration="4h",
    )
    assert sorted(board["detector"]) == ["allowlist", "conduit_policy"]
    row = board.set_index("detector").loc["conduit_policy"]
    assert row["runs"] == 2 and row["steps"] == 6 and row["detected"] >= 1
    attacked = per_run[~per_run["attack_free"] & (per_run["detector"] == "conduit_policy")]
    assert (
        row["recall"] == attacked["detected"].sum() / attacked["steps"].sum()
    )  # pooled, not averaged
    assert row["attack_free_false_alarms_per_day"] == 0.0  # no attack, nothing forbidden happens
    assert len(per_run) == 2 * 3  # 2 detectors x (2 seeds + 1 attack-free run)
    for name in ("leaderboard.parquet", "leaderboard.csv", "per_run.csv", "leaderboard.html"):
        assert (tmp_path / name).exists()
    assert pd.read_parquet(tmp_path / "leaderboard.parquet").equals(board)


def test_bench_resumes_on_the_study_executor(tmp_path: Path) -> None:
    """Bench runs are keyed study runs: a second bench into the same directory executes
    none again and gives the same leaderboard; a new seed executes only its own run."""
    from collections import Counter

    from twin.study.executor import ResultStore

    args = ([SCENARIOS / "flagship.yaml"], ["conduit_policy"])
    first, _ = bench(*args, [1], tmp_path, duration="4h", attack_free=False)
    again, _ = bench(*args, [1], tmp_path, duration="4h", attack_free=False)
    assert again.equals(first) and len(ResultStore(tmp_path).attempts()) == 1
    bench(*args, [1, 2], tmp_path, duration="4h", attack_free=False)
    assert sorted(Counter(ResultStore(tmp_path).attempts()).values()) == [1, 1]


def test_cli_bench_prints_the_leaderboard(tmp_path: Path) -> None:
    """The command prints a leaderboard row per detector and says where the results are."""
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "bench", "--scenarios", "flagship", "--detectors", "conduit_policy",
         "--duration", "4h", "--no-attack-free", "--jobs", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "detector leaderboard" in proc.stdout and "conduit_policy" in proc.stdout


def test_cli_bench_names_an_unknown_detector(tmp_path: Path) -> None:
    """A typo in --detectors is named, with the known ones, and nothing runs."""
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "bench", "--detectors", "alowlist", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown detector: alowlist" in proc.stderr


def test_export_labels_every_flow_a_step_caused(flat_run: RunResult, tmp_path: Path) -> None:
    """Flows caused by attack steps carry label 1 and their technique; the rest label 0."""
    rows = export_run(flat_run.directory, tmp_path)
    flows = pd.read_parquet(tmp_path / "flows.parquet")
    assert rows["flows"] == len(flows)
    truth = pd.read_parquet(flat_run.directory / "truth.parquet")
    caused = {int(f) for ids in truth["flow_ids"] for f in ids}
    assert set(flows.loc[flows["label"] == 1, "flow_id"]) == caused
    assert set(flows.loc[flows["label"] == 1, "technique"]) == {"T0812", "T0846", "T0836"}
    assert (tmp_path / "flows.csv").exists() and (tmp_path / "events.csv").exists()
