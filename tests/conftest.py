"""Shared fixtures: shipped scenario paths and short real runs reused across tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from twin.run import RunResult, execute
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
FLAGSHIP = SCENARIOS / "flagship.yaml"


def run_flagship(out: Path, **overrides: Any) -> RunResult:
    spec = load_scenario(FLAGSHIP, {"duration": "4h", **overrides})
    return execute(spec, out)


@pytest.fixture(scope="session")
def flat_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_flagship(tmp_path_factory.mktemp("flat"), design="flat")


@pytest.fixture(scope="session")
def zoned_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_flagship(tmp_path_factory.mktemp("zoned"), design="zoned")


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fails a test that leaves threads running (servers and clients must stop their own)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"threads left running: {extra}"
