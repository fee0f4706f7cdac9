"""The one YAML loader: bounded in size, depth and alias expansion, strict about keys and bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from twin.errors import InputError, ScenarioError
from twin.loader import MAX_BYTES, MAX_DEPTH, MAX_NODES, load_yaml, parse_yaml


def problem(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_yaml(text, "doc.yaml")
    (only,) = info.value.problems
    return str(only)


def test_plain_documents_load_as_data() -> None:
    """Mappings, lists, merges and shared anchors load as plain Python data."""
    doc = parse_yaml("a: &x [1, 2]\nb: [*x, *x]\nc: {<<: {q: 1}, r: 2}\n")
    assert doc == {"a": [1, 2], "b": [[1, 2], [1, 2]], "c": {"q": 1, "r": 2}}
    assert parse_yaml("") is None


def test_a_key_given_twice_names_both_lines() -> None:
    """YAML would keep the last value silently; the loader refuses and says where."""
    msg = problem("name: a\nseed: 1\nname: b\n")
    assert msg.startswith("line 3, column 1") and "'name' is given twice (lines 1 and 3)" in msg


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    """Nine levels of nine-fold aliases (387 M values) are refused at once, in bounded memory."""
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    started = time.perf_counter()
    msg = problem("\n".join(lines) + "\n")
    assert f"over {MAX_NODES:,} values" in msg and time.perf_counter() - started < 5


def test_a_recursive_alias_is_refused() -> None:
    """An alias inside its own anchor would make a structure no validator could walk."""
    assert "recursive" in problem("a: &x [1, *x]\n")


def test_nesting_is_capped_in_the_text_and_through_aliases() -> None:
    """Deep brackets are refused while parsing; aliases cannot stack shallow parts deeper."""
    assert f"deeper than {MAX_DEPTH}" in problem("a: " + "[" * 500 + "]" * 500)
    chain = ["a0: &a0 " + "[" * 40 + "1" + "]" * 40]
    for i in range(1, 4):
        chain.append(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    assert "through its aliases" in problem("\n".join(chain) + "\n")


def test_bytes_that_are_not_text_are_named(tmp_path: Path) -> None:
    """Latin-1 bytes, a NUL and a control character are each one problem with a line."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: x\nstory: caf\xe9\n")
    with pytest.raises(ScenarioError) as info:
        load_yaml(latin)
    assert "not UTF-8 text: byte 0xe9" in str(info.value) and "line 2" in str(info.value)
    assert "NUL" in problem("a: 1\nb: \x00\n")
    assert "U+0007" in problem("a: \x07\n")


def test_only_regular_files_of_bounded_size_are_read(tmp_path: Path) -> None:
    """Devices, directories, missing files and oversized files are refused without reading."""
    for path, words in [
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "is a directory"),
        (tmp_path / "missing.yaml", "no such file"),
    ]:
        with pytest.raises(ScenarioError, match=words):
            load_yaml(path)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ScenarioError, match="may have at most"):
        load_yaml(big)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_yaml(fifo)  # would block forever if opened


def test_unsafe_tags_and_bad_values_are_problems_not_crashes() -> None:
    """Python object tags, unhashable keys, impossible dates and huge integers are problems."""
    assert "constructor" in problem("a: !!python/object:os.system x\n")
    assert "unhashable" in problem("{[1]: 2}\n")
    assert "month" in problem("a: 2020-13-45\n")
    assert "digits" in problem("a: " + "9" * 5000 + "\n")


def test_errors_are_input_errors() -> None:
    """Whatever the loader refuses is an InputError, so the CLI exits 2."""
    with pytest.raises(InputError):
        parse_yaml("a: [\n")
