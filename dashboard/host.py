"""Each exercise in a process of its own, so ten exercises use both cores and never the GIL of
the web server; the pages talk to it through the same methods as to a local Exercise."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from multiprocessing.managers import BaseManager
from typing import Any

from dashboard.session import Exercise
from twin.errors import SimulationError
from twin.schema import ScenarioSpec

METHODS = (
    "start", "pause", "resume", "set_speed", "stop", "request", "hint", "inject", "view",
    "log_copy", "script", "request_list", "no_response_harm", "info", "get_state",
)  # fmt: skip


class ExerciseHost(BaseManager):
    """A manager process holding one Exercise."""


ExerciseHost.register("Exercise", Exercise, exposed=METHODS)

_start_lock = threading.Lock()
WATCH_EVERY = 1.0  # s between checks that the web server is still there


def _watch(server_pid: int) -> None:
    """In the exercise's process: end it when the web server is gone, however it went
    (even SIGKILL), so no exercise outlives the server that started it."""

    def watch() -> None:
        while True:
            time.sleep(WATCH_EVERY)
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                os._exit(0)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def _context() -> Any:
    # a fork server forks each exercise from one process that already imported the twin,
    # and never forks the threaded web server itself
    ctx = mp.get_context("forkserver")
    with _start_lock:
        ctx.set_forkserver_preload(["dashboard.session"])
    return ctx


class HostedExercise:
    """An Exercise in its own process. After `archive()` it answers from a final copy and
    the process is gone (a finished exercise needs only its log for the review)."""

    def __init__(self, spec: ScenarioSpec, code: str, **kw: Any) -> None:
        self._manager: ExerciseHost | None = ExerciseHost(ctx=_context())
        self._manager.start(initializer=_watch, initargs=(os.getpid(),))
        try:
            self._proxy: Any = self._manager.Exercise(spec, code, **kw)  # type: ignore[attr-defined]
            self._info: dict[str, Any] = self._proxy.info()
        except BaseException:
            self._manager.shutdown()
            raise
        self.code = code
        self.team = bool(self._info["team"])
        self._final: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        return self._info

    def archive(self) -> None:
        """Keep the final log, views and baseline; end the process."""
        if self._final is not None or self._manager is None:
            return
        self._proxy.stop()
        self._final = {
            "log": self._proxy.log_copy(), "script": self._proxy.script(),
            "requests": self._proxy.request_list(), "baseline": self._proxy.no_response_harm(),
            "view": self._proxy.view(trainer=False), "trainer_view": self._proxy.view(trainer=True),
            "state": self._proxy.get_state(),
        }  # fmt: skip
        self.close()

    def close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.shutdown()

    def __getattr__(self, name: str) -> Any:
        if name not in METHODS:
            raise AttributeError(name)
        final = self.__dict__.get("_final")
        if final is None:
            return getattr(self._proxy, name)
        return _Archived(final).method(name)


class _Archived:
    def __init__(self, final: dict[str, Any]) -> None:
        self.final = final

    def method(self, name: str) -> Any:
        f = self.final
        answers: dict[str, Any] = {
            "log_copy": lambda: [dict(e) for e in f["log"]],
            "script": lambda: list(f["script"]),
            "request_list": lambda: list(f["requests"]),
            "no_response_harm": lambda: f["baseline"],
            "view": lambda trainer=False: f["trainer_view" if trainer else "view"],
            "get_state": lambda: f["state"],
            "stop": lambda: None,
            "pause": lambda: None,
            "resume": lambda: None,
        }
        if name in answers:
            return answers[name]

        def ended(*_: Any, **__: Any) -> Any:
            raise SimulationError("the exercise has ended")

        return ended
