"""Results on disk: complete files only, and an interrupted run loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FLAGSHIP
from twin.network.flows import empty_flows
from twin.run import execute
from twin.scenario import load_scenario
from twin.telemetry import TABLES, RunWriter, read_table


def test_an_unclosed_writer_leaves_only_part_files(tmp_path: Path) -> None:
    """A run killed mid-write leaves `.part` files, never a complete-looking table."""
    writer = RunWriter(tmp_path)
    writer.append("flows", empty_flows())
    assert not (tmp_path / "flows.parquet").exists()
    assert (tmp_path / "flows.parquet.part").exists()
    writer.close()
    assert (tmp_path / "flows.parquet").exists() and not list(tmp_path.glob("*.part"))


def test_interrupted_run_keeps_what_it_computed(tmp_path: Path) -> None:
    """Ctrl-C mid-run: tables are closed and readable, summary.json says 'interrupted'."""
    spec = load_scenario(FLAGSHIP, {"duration": "5h"})

    def progress(t: float, total: float) -> None:
        if t >= 3.75 * 3600:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(spec, tmp_path, progress)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert 3.7 * 3600 <= summary["simulated_s"] < 5 * 3600
    assert not list(tmp_path.glob("*.part"))
    for table in TABLES:
        assert isinstance(read_table(tmp_path, table), pd.DataFrame)
    assert len(read_table(tmp_path, "flows")) > 1000
    assert len(read_table(tmp_path, "truth")) >= 1  # the foothold at 3.5 h was recorded


def test_summary_records_what_reproduces_the_run(tmp_path: Path) -> None:
    """summary.json names the scenario, seed, design, versions and wall-clock epoch."""
    spec = load_scenario(FLAGSHIP, {"duration": "3h10m", "seed": 11})
    execute(spec, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["seed"] == 11
    assert {"twin", "numpy", "simpy", "pandas"} <= set(summary["versions"])
    assert summary["wall_clock_epoch"] > 1.7e9
    assert summary["rows"]["flows"] == len(read_table(tmp_path, "flows"))
