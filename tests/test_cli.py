"""The `twin` command as a user meets it: help, listings, runs, and wrong input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def twin(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["schema"], ["list"]])
def test_help_everywhere(command: list[str]) -> None:
    """Every command answers --help with a usage line and exits 0."""
    proc = twin(*command, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: twin")


def test_wrong_flag_is_named_with_status_2() -> None:
    """A mistyped flag is named; nothing runs."""
    proc = twin("run", "flagship", "--desing", "zoned")
    assert proc.returncode == 2 and "--desing" in proc.stderr


def test_list_shows_scenarios_kinds_detectors_techniques() -> None:
    """`twin list` names what ships: the flagship and its story, kinds, detectors, techniques."""
    proc = twin("list")
    assert proc.returncode == 0
    for word in (
        "flagship",
        "A contractor left the lobby camera",
        "door_controller",
        "allowlist",
        "T0846",
    ):
        assert word in proc.stdout


def test_schema_is_json() -> None:
    """`twin schema` prints a JSON Schema document."""
    assert json.loads(twin("schema").stdout)["title"] == "twin scenario"


def test_run_prints_truth_and_scores(tmp_path: Path) -> None:
    """`twin run` with overrides prints the steps, the score table and where results are."""
    out = tmp_path / "r"
    proc = twin(
        "run",
        "flagship",
        "--design",
        "zoned",
        "--duration",
        "3h45m",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "blocked: design zoned" in proc.stdout
    assert "scores: flagship on zoned (seed 3)" in proc.stdout
    assert "union" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["duration_s"] == 3.75 * 3600 and summary["seed"] == 3
    assert (out / "report.html").exists()


def test_run_of_a_missing_file_says_so(tmp_path: Path) -> None:
    """A scenario path that does not exist is one clear line and status 2."""
    proc = twin("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_override_exits_2(tmp_path: Path) -> None:
    """A negative --duration is reported against the field, exit 2, no traceback."""
    proc = twin("run", "flagship", "--duration=-1h", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "duration: must be positive" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_holdout_facility_is_refused_before_any_run(tmp_path: Path) -> None:
    """`twin bench --holdout-facility` with a name no scenario runs on: exit 2 naming the
    facilities there are, and no bench directory is started."""
    out = tmp_path / "bench"
    proc = twin("bench", "--holdout-facility", "harbour-cd", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "harbour-cd" in proc.stderr and "harbour-dc" in proc.stderr
    assert not out.exists()


def test_holdout_facility_adds_its_held_out_files() -> None:
    """Without --scenarios, the held-out facility's own files join the library's."""
    from twin.commands.bench import HOLDOUT, holdout_paths
    from twin.commands.common import shipped_scenarios

    library = list(shipped_scenarios().values())
    paths = holdout_paths(library, "holdout-labs", given=False)
    added = set(paths) - set(library)
    assert added and all(p.parent == HOLDOUT and p.stem.startswith("holdout-labs") for p in added)
    assert holdout_paths(library, "harbour-dc", given=False) == library


def test_bench_and_study_never_write_into_a_users_directory(tmp_path: Path) -> None:
    """--out naming a directory of the user's files: exit 2, the files untouched; a bench's own
    directory is taken again (it resumes), but not by a study."""
    users = tmp_path / "mine"
    users.mkdir()
    (users / "leaderboard.csv").write_text("my numbers\n")
    grid = ("--scenarios", "flagship", "--seeds", "1", "--detectors", "allowlist",
            "--duration", "4h", "--no-attack-free", "--serial", "-q")  # fmt: skip
    refused = twin("bench", *grid, "--out", str(users))
    assert refused.returncode == 2 and "not twin results" in refused.stderr, refused.stderr
    assert [p.name for p in users.iterdir()] == ["leaderboard.csv"]
    assert (users / "leaderboard.csv").read_text() == "my numbers\n"
    ours = tmp_path / "bench"
    for _ in range(2):  # the second time resumes: every run is already finished
        proc = twin("bench", *grid, "--out", str(ours))
        assert proc.returncode == 0, proc.stderr
    study = twin(
        "study", str(ROOT / "scenarios" / "studies" / "harbour-dc-quick.yaml"), "--out", str(ours)
    )
    assert study.returncode == 2 and "results of a twin bench" in study.stderr, study.stderr
