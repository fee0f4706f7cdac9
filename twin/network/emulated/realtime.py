"""A SimPy clock that keeps pace with the wall clock, for the emulated backend."""

from __future__ import annotations

import threading
import time

import simpy


class RealTime(simpy.Environment):
    """A SimPy environment that keeps pace with the wall clock at `speed` sim s per wall s.

    Unlike simpy.rt it holds `lock` only while an event is processed, never while it
    waits, so other threads (the faces' answers) can change the model between events.
    `lags` records, at each physics step, how late the kernel was (wall seconds).
    """

    def __init__(self, speed: float, lock: threading.RLock) -> None:
        super().__init__()
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self.lock = lock
        self.epoch: float | None = None  # wall-clock time of t=0
        self.lags: list[float] = []

    def begin(self) -> float:
        if self.epoch is None:
            self.epoch = time.time() - self.now / self.speed
        return self.epoch

    def wall(self, t: float) -> float:
        return self.begin() + t / self.speed

    def step(self) -> None:
        if self.peek() == simpy.core.Infinity:
            super().step()  # nothing scheduled: simpy says so
            return
        due = self.wall(self.peek())
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        with self.lock:
            super().step()

    def mark(self) -> None:
        """Record the lag of the event being processed now (call from the physics step)."""
        self.lags.append(max(0.0, time.time() - self.wall(self.now)))
