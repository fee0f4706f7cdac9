"""bench/detection.py runs its grid on the code base's one executor and resumes a grid."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "bench" / "detection.py"
SHORT = ["--scenarios", "flagship", "--seeds", "1", "--detectors", "conduit_policy,allowlist",
         "--heavy", "", "--duration", "4h"]  # fmt: skip


def detection_bench(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *SHORT, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def without_wall(text: str) -> str:
    return re.sub(r"wall \d+ s", "wall", text)


@pytest.mark.slow
def test_the_grid_runs_on_dask_workers_and_resumes_without_redoing_a_run(tmp_path: Path) -> None:
    """--jobs 2 runs the grid on Dask; run again, every finished run is kept, same figures."""
    out = tmp_path / "runs"
    first = detection_bench("--jobs", "2", "--out", str(out))
    assert "[2/2]" in first.stderr and "flagship-s1-quiet" in first.stderr
    assert sorted(d.name for d in out.iterdir() if (d / "summary.json").is_file()) == [
        "flagship-s1",
        "flagship-s1-quiet",
    ]
    attempts = (out / ".executor" / "attempts.log").read_text().split()
    assert sorted(attempts) == ["flagship-s1", "flagship-s1-quiet"]
    again = detection_bench("--serial", "--out", str(out))
    assert (out / ".executor" / "attempts.log").read_text().split() == attempts  # none redone
    assert without_wall(again.stdout) == without_wall(first.stdout)
    rescored = detection_bench("--rescore", str(out))
    assert without_wall(rescored.stdout) == without_wall(first.stdout)


@pytest.mark.slow
def test_a_run_whose_directory_went_is_run_again(tmp_path: Path) -> None:
    """A finished run's directory removed by hand is executed again on the next call."""
    out = tmp_path / "runs"
    detection_bench("--serial", "--out", str(out))
    for f in (out / "flagship-s1").iterdir():
        f.unlink()
    (out / "flagship-s1").rmdir()
    detection_bench("--serial", "--out", str(out))
    assert (out / "flagship-s1" / "summary.json").is_file()
    attempts = (out / ".executor" / "attempts.log").read_text().split()
    assert sorted(attempts) == ["flagship-s1", "flagship-s1", "flagship-s1-quiet"]
