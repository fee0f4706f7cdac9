"""Real signals on real runs (modelled backend): Ctrl-C, a second Ctrl-C, SIGTERM, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from twin.commands.common import interrupted_outcome
from twin.telemetry import TABLES, read_table

pytestmark = pytest.mark.slow

LONG = "1d"  # long enough that every signal lands mid-run (tens of seconds)


def start(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "run", "flagship", "--duration", LONG, "--out", str(out),
         "-q", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until_writing(proc: subprocess.Popen[str], out: Path) -> None:
    """Until the run streams its first tables (it is inside the simulation loop)."""
    deadline = time.monotonic() + 120
    while not (out / "flows.parquet.part").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=180)
    return proc.returncode, stderr


def assert_orderly(out: Path) -> dict[str, object]:
    """summary.json is whole JSON saying 'interrupted'; every table is whole; no .part left."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert not list(out.glob("*.part"))
    for table in TABLES:
        read_table(out, table)  # a complete parquet file (or absent), never half a file
    assert (out / "report.html").exists()
    return summary


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_signal_finishes_the_run_in_order(tmp_path: Path, signum: int) -> None:
    """Ctrl-C or SIGTERM: exit 130, partial results kept, and the message says so truly."""
    out = tmp_path / "run"
    proc = start(out)
    wait_until_writing(proc, out)
    proc.send_signal(signum)
    status, stderr = finish(proc)
    assert status == 130, stderr
    summary = assert_orderly(out)
    assert f"partial results kept in {out}" in stderr and "Traceback" not in stderr
    assert 0 < float(str(summary["simulated_s"])) < 86400


def test_a_burst_of_signals_cannot_break_the_finish(tmp_path: Path) -> None:
    """A second Ctrl-C 20 ms after the first, and more during the finish, only hurry it."""
    out = tmp_path / "run"
    proc = start(out)
    wait_until_writing(proc, out)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    for _ in range(10):  # through the writing of tables, summary and report
        time.sleep(0.1)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT if _ % 2 else signal.SIGTERM)
    status, stderr = finish(proc)
    assert status == 130, stderr
    assert_orderly(out)
    assert "Traceback" not in stderr


def test_after_sigkill_a_rerun_needs_force_and_leaves_no_leftovers(tmp_path: Path) -> None:
    """SIGKILL leaves .part files; a rerun is refused without --force, and is clean with it."""
    out = tmp_path / "run"
    proc = start(out)
    wait_until_writing(proc, out)
    proc.kill()
    proc.wait(timeout=30)
    assert list(out.glob("*.part")) and not (out / "summary.json").exists()
    again = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", "flagship", "--duration", "3h45m",
         "--out", str(out), "-q"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 2 and "give --force to replace it" in again.stderr
    again = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", "flagship", "--duration", "3h45m",
         "--out", str(out), "-q", "--force"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert not list(out.glob("*.part"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["duration_s"] == 3.75 * 3600


def test_a_second_run_into_the_same_directory_fails_at_once(tmp_path: Path) -> None:
    """While one run writes, another into the same --out exits 2 naming it; the first is intact."""
    out = tmp_path / "run"
    first = start(out)
    wait_until_writing(first, out)
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", "flagship", "--duration", "3h45m",
         "--out", str(out), "-q", "--force"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert second.returncode == 2 and "another twin run is writing into" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert time.monotonic() - started < 60 and first.poll() is None
    first.send_signal(signal.SIGINT)
    status, _ = finish(first)
    assert status == 130
    summary = assert_orderly(out)
    assert summary["source"].endswith("flagship.yaml")


def test_the_interrupted_message_says_only_what_is_true(tmp_path: Path) -> None:
    """Before any result is written, the message says nothing was kept, not 'results kept'."""
    assert "nothing was kept" in interrupted_outcome(tmp_path / "never-made")
    os.makedirs(tmp_path / "empty")
    assert "nothing was kept" in interrupted_outcome(tmp_path / "empty")
