"""Uploaded scenarios are checked as `twin validate` checks files: every problem, with its path."""

from __future__ import annotations

import base64

from dashboard.widgets import load_shipped, parse_upload

from ..conftest import FLAGSHIP


def upload(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return "data:application/x-yaml;base64," + base64.b64encode(data).decode()


def test_a_valid_upload_gives_its_scenario() -> None:
    """The flagship, uploaded, is the flagship (its facility path resolves from scenarios/)."""
    spec, _, problems = parse_upload(upload(FLAGSHIP.read_text()))
    assert problems == [] and spec is not None and spec.name == "flagship"


def test_every_problem_comes_with_its_field_path() -> None:
    """A scenario with two mistakes reports both, each located by its field path."""
    text = FLAGSHIP.read_text()
    bad = text.replace("duration: 6h", "duration: soon").replace("seed: 7", "seed: -3")
    spec, _, problems = parse_upload(upload(bad))
    assert spec is None
    assert any(p.startswith("duration:") for p in problems)
    assert any(p.startswith("seed:") for p in problems)
    _, _, problems = parse_upload(upload(text.replace("design: flat", "design: flatt")))
    assert any(p.startswith("design:") and "flatt" in p for p in problems)


def test_junk_is_refused_with_a_reason() -> None:
    """Not base64, not UTF-8, not YAML, or not a file at all: a problem, never an exception."""
    assert parse_upload("no comma")[2] == ["the upload is not a file"]
    assert parse_upload("data:x;base64,@@@")[2] == ["the upload is not valid base64"]
    assert parse_upload(upload(b"\xff\xfe\x00"))[2] == ["the file is not UTF-8 text"]
    assert parse_upload(upload("a: [unclosed"))[0] is None
    assert parse_upload(upload("a: &x [*x]"))[0] is None
    assert parse_upload(upload("- just\n- a list\n"))[2]


def test_only_shipped_names_are_loaded() -> None:
    """A browser naming a path instead of a shipped scenario is refused, never read."""
    import pytest

    from twin.errors import ScenarioError

    for name in ("../pyproject.toml", "/etc/passwd", None, 3):
        with pytest.raises(ScenarioError):
            load_shipped(name)
    assert load_shipped("flagship", "zoned").design == "zoned"
