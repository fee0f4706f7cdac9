"""Who may do what: browser sessions, roles, exercise codes, checked on the server for every call."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.host import HostedExercise
from dashboard.lab import BenchJob
from dashboard.session import SPEEDS, Exercise
from twin.errors import TwinError
from twin.schema import ScenarioSpec

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread aloud
MAX_LIVE = 24  # exercises running at once; more would starve the ones running
MAX_KEPT = 200  # finished exercises kept for their after-action review
KEEP_PROCESSES = 4  # finished exercises whose process stays (beyond: their log is kept)
MAX_CLIENTS = 5000
STUCK_AFTER = 900.0  # s simulated without an action while an attack step is live


class Refused(TwinError):
    """A browser asked for something its session may not do."""


@dataclass
class Seat:
    """One browser session: its role and the exercise it belongs to."""

    client: str
    role: str = "trainee"  # trainee | trainer
    exercise: str | None = None
    name: str = ""


@dataclass
class Room:
    """An exercise with the people in it."""

    exercise: Any  # an Exercise, here or in a process of its own (dashboard.host)
    owner: str  # the client who may start, pause and stop it (the trainer in team mode)
    trainees: list[str] = field(default_factory=list)


def new_code(n: int = 6) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(n))


class Classroom:
    """Every exercise and session of one dashboard server. Nothing lives in module globals."""

    def __init__(
        self,
        trainer_token: str,
        backend: str = "sim",
        workdir: Path | None = None,
        *,
        hosted: bool = True,
    ) -> None:
        if len(trainer_token) < 8:
            raise ValueError("the trainer token needs at least 8 characters")
        self.trainer_token = trainer_token
        self.backend = backend
        self.workdir = workdir or Path("runs") / "dashboard"
        # each exercise in a process of its own (a server); in-process for tests of the rules
        self.hosted = hosted
        self.lock = threading.RLock()
        self.seats: dict[str, Seat] = {}
        self.rooms: dict[str, Room] = {}
        self.jobs: dict[str, BenchJob] = {}  # detector lab, one per session

    # -- sessions ----------------------------------------------------------------------------

    def enter(self, client: Any) -> Seat:
        """The seat of a known session id, or a new session (ids are minted here only)."""
        with self.lock:
            if isinstance(client, str) and client in self.seats:
                return self.seats[client]
            if len(self.seats) >= MAX_CLIENTS:
                idle = [c for c, s in self.seats.items() if s.exercise is None]
                for c in idle[: len(idle) // 2 or 1]:
                    del self.seats[c]
            seat = Seat(secrets.token_urlsafe(18))
            self.seats[seat.client] = seat
            return seat

    def seat(self, client: Any) -> Seat:
        with self.lock:
            seat = self.seats.get(client) if isinstance(client, str) else None
        if seat is None:
            raise Refused("unknown session: reload the page")
        return seat

    def become_trainer(self, client: Any, token: Any) -> Seat:
        seat = self.seat(client)
        if not isinstance(token, str) or not hmac.compare_digest(
            token.strip().encode(), self.trainer_token.encode()
        ):
            raise Refused("wrong trainer token")
        seat.role = "trainer"
        return seat

    def trainer(self, client: Any) -> Seat:
        seat = self.seat(client)
        if seat.role != "trainer":
            raise Refused("only a trainer may do this")
        return seat

    # -- exercises ---------------------------------------------------------------------------

    def open(self, client: Any, spec: ScenarioSpec, speed: Any, *, team: bool, source: str) -> Room:
        """A new exercise: a trainee's own, or (trainers only) a team exercise others join."""
        seat = self.trainer(client) if team else self.seat(client)
        speed = _speed(speed)
        if self.backend != "sim":
            spec = spec.model_copy(update={"backend": self.backend, "speed": speed})
        with self.lock:
            live = [
                r
                for r in self.rooms.values()
                if r.exercise.get_state() in ("warming", "running", "paused")
            ]
            if len(live) >= MAX_LIVE:
                raise Refused(f"the server runs {len(live)} exercises already; stop one first")
            code = new_code()
            while code in self.rooms:
                code = new_code()
            make = HostedExercise if self.hosted else Exercise
            room = Room(make(spec, code, speed=speed, team=team, source=source), seat.client)
            if not team:
                old = self.rooms.get(seat.exercise or "")
                if old is not None and old.owner == seat.client:
                    old.exercise.stop()
            self.rooms[code] = room
            seat.exercise = code
            self._forget_old()
        room.exercise.start()
        return room

    def _forget_old(self) -> None:
        done = [
            c for c, r in self.rooms.items() if r.exercise.get_state() in ("finished", "failed")
        ]
        for c in done[: max(0, len(done) - MAX_KEPT)]:
            gone = self.rooms.pop(c).exercise
            if isinstance(gone, HostedExercise):
                gone.close()
        # finished exercises keep their log; their processes go, all but the latest few
        for c in done[: max(0, len(done) - KEEP_PROCESSES)]:
            if c in self.rooms and isinstance(self.rooms[c].exercise, HostedExercise):
                self.rooms[c].exercise.archive()

    def close(self) -> None:
        """Stop every exercise and end their processes (the server is shutting down)."""
        with self.lock:
            rooms = list(self.rooms.values())
        for r in rooms:
            try:
                r.exercise.stop()
            finally:
                if isinstance(r.exercise, HostedExercise):
                    r.exercise.close()

    def join(self, client: Any, code: Any) -> Room:
        seat = self.seat(client)
        code = code.strip().upper() if isinstance(code, str) else ""
        with self.lock:
            room = self.rooms.get(code)
            if room is None or not room.exercise.team:
                raise Refused(f"no team exercise with code {code!r}")
            if seat.client not in room.trainees and seat.client != room.owner:
                room.trainees.append(seat.client)
            seat.exercise = code
        return room

    def room(self, client: Any, code: Any) -> Room:
        """The exercise this session belongs to; a code that is not its own is refused."""
        seat = self.seat(client)
        with self.lock:
            room = self.rooms.get(code) if isinstance(code, str) else None
            if room is None or seat.exercise != code:
                raise Refused("that exercise is not yours")
            return room

    def mine(self, client: Any) -> Room | None:
        seat = self.seat(client)
        with self.lock:
            return self.rooms.get(seat.exercise or "")

    def control(self, client: Any, code: Any, what: str, speed: Any = None) -> None:
        """Start/pause/resume/stop/speed: the owner only (the trainer in a team exercise)."""
        room = self.room(client, code)
        if room.owner != client:
            raise Refused("only the trainer controls a team exercise")
        ex = room.exercise
        if what == "pause":
            ex.pause()
        elif what == "resume":
            ex.resume()
        elif what == "stop":
            ex.stop()
        elif what == "speed":
            ex.set_speed(_speed(speed))
        else:
            raise Refused(f"unknown control {what!r}")

    def act(self, client: Any, code: Any, kind: Any, target: Any) -> None:
        room = self.room(client, code)
        if not isinstance(kind, str) or not isinstance(target, str):
            raise Refused("choose an action and a target")
        room.exercise.request(kind, target, self.seat(client).client[:6])

    def view(self, client: Any, code: Any) -> dict[str, Any]:
        room = self.room(client, code)
        seat = self.seat(client)
        # compromised flags only for the trainer who runs this exercise
        trainer = seat.role == "trainer" and room.owner == seat.client
        out = room.exercise.view(trainer=trainer)
        out["role"] = "trainer" if trainer else "trainee"
        out["owner"] = room.owner == seat.client
        return out

    # -- trainer -----------------------------------------------------------------------------

    def trainer_room(self, client: Any, code: Any) -> Room:
        seat = self.trainer(client)
        room = self.room(client, code)
        if room.owner != seat.client:
            raise Refused("you do not run this exercise")
        return room

    def pause_everyone(self, client: Any) -> int:
        seat = self.trainer(client)
        with self.lock:
            rooms = [r for r in self.rooms.values() if r.owner == seat.client]
        for r in rooms:
            r.exercise.pause()
        return len(rooms)

    def roster(self, client: Any, code: Any) -> list[dict[str, Any]]:
        """The trainees of a team exercise: their actions, and who looks stuck."""
        room = self.trainer_room(client, code)
        ex = room.exercise
        view = ex.view(trainer=True)
        requests = ex.request_list()
        warmup = ex.info()["warmup"]
        steps = [e for e in view["steps"] if e.get("kind") == "step"]
        first = min(
            [float(e["t_start"]) for e in steps] + list(view["running_steps"].values()),
            default=None,
        )
        live = first is not None and view["contained_at"] is None
        out = []
        for n, c in enumerate(room.trainees, 1):
            mine = [r for r in requests if r["by"] == c[:6]]
            last = max((r["t"] for r in mine if r["t"] is not None), default=None)
            since = max(x for x in (first, last) if x is not None) if live else None
            stuck = since is not None and view["t"] - since > STUCK_AFTER
            out.append({
                "trainee": f"trainee {n} ({c[:6]})",
                "actions": len(mine),
                "applied": sum(r["status"] == "applied" for r in mine),
                "last action": "-" if last is None else f"+{(last - warmup) / 60:.0f} min",
                "stuck": f"STUCK: no action for {STUCK_AFTER / 60:.0f}+ min of a live attack" if stuck else "no",
            })  # fmt: skip
        return out

    # -- detector lab ------------------------------------------------------------------------

    def lab_start(
        self, client: Any, scenarios: list[Path], detectors: list[str], seeds: list[int],
        duration: str | None,
    ) -> BenchJob:  # fmt: skip
        seat = self.seat(client)
        with self.lock:
            if any(j.state == "running" for j in self.jobs.values()):
                raise Refused(
                    "a benchmark is running already; one at a time keeps exercises smooth"
                )
            out = self.workdir / "lab" / f"{time.strftime('%Y%m%d-%H%M%S')}-{seat.client[:6]}"
            job = BenchJob(scenarios, detectors, seeds, out, duration)
            self.jobs[seat.client] = job
        job.start()
        return job

    def lab_job(self, client: Any) -> BenchJob | None:
        seat = self.seat(client)
        with self.lock:
            return self.jobs.get(seat.client)


def _speed(value: Any) -> float:
    try:
        speed = float(value)
    except (TypeError, ValueError):
        raise Refused(f"speed must be one of {', '.join(map(str, SPEEDS))}") from None
    if speed not in SPEEDS:
        raise Refused(f"speed must be one of {', '.join(map(str, SPEEDS))}")
    return speed
