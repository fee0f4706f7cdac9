"""Who may do what: every call is checked on the server against the session's role and exercise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dashboard.classroom import Classroom, Refused
from twin.scenario import load_scenario

from ..conftest import FLAGSHIP

TOKEN = "trainer-secret-1"


@pytest.fixture
def room() -> Iterator[Classroom]:
    c = Classroom(TOKEN, hosted=False)
    yield c
    for r in list(c.rooms.values()):
        r.exercise.stop()


def spec():  # type: ignore[no-untyped-def]
    return load_scenario(FLAGSHIP, {"duration": "4h"})


def test_session_ids_are_minted_by_the_server(room: Classroom) -> None:
    """A made-up session id is not accepted: the browser gets a fresh one instead."""
    seat = room.enter("made-up")
    assert seat.client != "made-up" and len(seat.client) >= 20
    assert room.enter(seat.client) is seat
    with pytest.raises(Refused):
        room.seat("made-up")


def test_two_trainees_do_not_see_each_others_exercise(room: Classroom) -> None:
    """Each session's exercise is its own; another's code is refused for viewing and acting."""
    a, b = room.enter(None).client, room.enter(None).client
    ra = room.open(a, spec(), 600, team=False, source="t")
    rb = room.open(b, spec(), 600, team=False, source="t")
    assert room.view(a, ra.exercise.code)["code"] == ra.exercise.code
    with pytest.raises(Refused):
        room.view(b, ra.exercise.code)
    with pytest.raises(Refused):
        room.act(b, ra.exercise.code, "quarantine", "cam-lobby")
    with pytest.raises(Refused):
        room.join(b, ra.exercise.code)  # a solo exercise cannot be joined
    assert ra.exercise.requests == [] and rb.exercise.requests == []


def test_trainer_functions_refuse_trainees(room: Classroom) -> None:
    """Without the token a session cannot start team exercises, pause everyone or read rosters."""
    t = room.enter(None).client
    with pytest.raises(Refused, match="only a trainer"):
        room.open(t, spec(), 60, team=True, source="t")
    with pytest.raises(Refused, match="only a trainer"):
        room.pause_everyone(t)
    with pytest.raises(Refused, match="wrong trainer token"):
        room.become_trainer(t, "guess")
    assert room.seat(t).role == "trainee"


def test_team_exercise_trainer_and_trainee(room: Classroom) -> None:
    """A trainee joins by code, acts, sees no compromised flags and cannot control the exercise."""
    trainer, trainee = room.enter(None).client, room.enter(None).client
    room.become_trainer(trainer, TOKEN)
    r = room.open(trainer, spec(), 600, team=True, source="t")
    code = r.exercise.code
    room.join(trainee, code.lower())
    room.act(trainee, code, "quarantine", "cam-lobby")
    assert [q["target"] for q in r.exercise.request_list()] == ["cam-lobby"]
    assert "compromised" not in room.view(trainee, code)
    assert "compromised" in room.view(trainer, code)
    with pytest.raises(Refused, match="only the trainer"):
        room.control(trainee, code, "stop")
    with pytest.raises(Refused):
        room.roster(trainee, code)
    roster = room.roster(trainer, code)
    assert len(roster) == 1 and roster[0]["actions"] == 1


def test_bad_input_is_refused_not_raised(room: Classroom) -> None:
    """Odd values from a browser (wrong types, speeds, codes) are refusals, never crashes."""
    c = room.enter(None).client
    for bad in (None, "fast", 7, 10_000):
        with pytest.raises(Refused):
            room.open(c, spec(), bad, team=False, source="t")
    for code in (None, 42, "", "ZZZZZZ", ["A"]):
        with pytest.raises(Refused):
            room.view(c, code)
        with pytest.raises(Refused):
            room.join(c, code)
    r = room.open(c, spec(), 60, team=False, source="t")
    with pytest.raises(Refused):
        room.act(c, r.exercise.code, None, {"x": 1})
