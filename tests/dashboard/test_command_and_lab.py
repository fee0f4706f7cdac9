"""`twin dashboard` flags, the detector lab's background benchmark, and reading a study."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dashboard.figures import study_figure
from dashboard.lab import BenchJob, call_bench, find_studies, read_study
from twin.cli import main

from ..conftest import FLAGSHIP


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--trainer-token", "short"], "at least 8 characters"),
        (["--port", "70000"], "not a TCP port"),
    ],
)
def test_bad_flags_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad flags end with exit status 2 and one line saying why, before anything is served."""
    assert main(["dashboard", *argv]) == 2
    assert says in capsys.readouterr().err


def test_bench_is_called_with_what_its_signature_takes(tmp_path: Path) -> None:
    """The lab passes only the keywords bench accepts, so bench may change under it."""
    seen: dict[str, Any] = {}

    def old_bench(scenarios: list[Path], detectors: list[str], seeds: list[int], out: Path) -> str:
        seen.update(scenarios=scenarios, detectors=detectors, seeds=seeds, out=out)
        return "ok"

    job = BenchJob([FLAGSHIP], ["allowlist"], [1], tmp_path, duration="4h")
    assert call_bench(old_bench, job) == "ok"
    assert seen == {
        "scenarios": [FLAGSHIP],
        "detectors": ["allowlist"],
        "seeds": [1],
        "out": tmp_path,
    }


@pytest.mark.slow
def test_lab_benchmark_runs_in_the_background(tmp_path: Path) -> None:
    """A benchmark started from the lab reports progress and ends with a leaderboard."""
    job = BenchJob([FLAGSHIP], ["conduit_policy"], [1], tmp_path / "lab", duration="4h")
    job.start()
    deadline = time.monotonic() + 300
    while job.state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job.state == "done", job.error
    assert job.board is not None and "conduit_policy" in set(job.board["detector"])
    assert job.total >= 1 and job.done == job.total


def test_a_study_directory_is_found_and_read(tmp_path: Path) -> None:
    """A study's results table and report are found under the roots and compared per design."""
    study = tmp_path / "runs" / "study-seg"
    study.mkdir(parents=True)
    (tmp_path / "runs" / "20260101-flagship").mkdir()
    (tmp_path / "runs" / "20260101-flagship" / "report.html").write_text("a run, not a study")
    pd.DataFrame(
        {"design": ["flat", "flat", "zoned"], "seed": [1, 2, 1], "blast_radius": [3, 4, 1]}
    ).to_parquet(study / "results.parquet")
    (study / "report.html").write_text("<h1>study</h1>")
    (study / "study.json").write_text("{}")
    assert find_studies([tmp_path / "runs"]) == [study]
    results, report = read_study(study)
    assert results is not None and len(results) == 3 and report == str(study / "report.html")
    fig = study_figure(results)
    bars = {t.name: list(t.y) for t in fig.data}
    assert bars == {"blast_radius": [3.5, 1.0]}
    assert find_studies([tmp_path / "nothing"]) == []
