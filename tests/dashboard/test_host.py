"""An exercise in a process of its own answers as a local one and leaves nothing behind."""

from __future__ import annotations

import contextlib

import psutil
import pytest

from dashboard.host import HostedExercise
from twin.errors import SimulationError
from twin.scenario import load_scenario

from ..conftest import FLAGSHIP


def test_hosted_exercise_answers_and_ends_with_close() -> None:
    """Its methods work across the process boundary (errors included); close ends the process."""
    spec = load_scenario(FLAGSHIP, {"duration": "4h"})
    ex = HostedExercise(spec, "HOST01", speed=60)
    try:
        pid = ex._manager._process.pid  # type: ignore[union-attr]
        assert psutil.pid_exists(pid)
        info = ex.info()
        assert info["code"] == "HOST01" and info["actions"]["ahu"][0] == "quarantine"
        ex.start()
        assert ex.get_state() in ("warming", "running")
        with pytest.raises(SimulationError, match="does not apply"):
            ex.request("restore_setpoints", "cam-lobby", "t1")
        assert ex.view()["code"] == "HOST01"
        ex.archive()  # stops it, keeps its log and views, ends the process
        assert ex.get_state() == "finished"
        assert isinstance(ex.log_copy(), list) and ex.view()["code"] == "HOST01"
        with pytest.raises(SimulationError, match="ended"):
            ex.request("quarantine", "cam-lobby", "t1")
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=10)
        assert not psutil.pid_exists(pid)
    finally:
        ex.close()
