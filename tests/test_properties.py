"""Generated scenario files, mutated as careless and hostile users would: never a crash or a hang.

Hypothesis starts from the shipped flagship (facility inline), changes it in one of these ways
and hands the file to `twin validate` (through `main()`, the error boundary):

- wrong types, NaN and infinities, huge, tiny and negative numbers, strings where numbers go
  ("no", "1e-6", "100000d"), deep nesting, long text, at any path of the document;
- missing keys and list items, and extra keys;
- aliases: a subtree shared by two fields, and alias bombs of every size used as a list field;
- text-level damage: a duplicated key, a truncated file, a stray byte (often not UTF-8).

The property: exit status 0, or 2 with at least one problem that has a location (a field path
or a line); never 3 (a bug), within a time bound per file and a memory bound overall. A second
property draws scenarios from the schema's valid ranges and runs them (a smaller budget): each
must finish with a complete, strictly JSON summary. Seeded (derandomize) with a fixed example
budget, so CI sees the same cases.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import FLAGSHIP, SCENARIOS
from twin.cli import main
from twin.errors import ScenarioError
from twin.scenario import load_scenario

BASE = yaml.safe_load(FLAGSHIP.read_text())
BASE["facility"] = yaml.safe_load((SCENARIOS / "facilities" / "harbour-dc.yaml").read_text())
BASE["duration"] = "4h"  # runs of valid mutants stay short
BASE["warmup"] = "3h"
BASE["campaign"]["steps"][0]["at"] = "3h10m"

VALIDATE_EXAMPLES = 400
RUN_EXAMPLES = 8
SECONDS_PER_FILE = 20.0
MEMORY_GROWTH_KB = 1_500_000  # 1.5 GB of peak resident memory over the whole test


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location in a document: the root, each key's value, each list item."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from paths(value, (*prefix, i))


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


ALL_PATHS = list(paths(BASE))[1:]
DICT_PATHS = [p for p in [(), *ALL_PATHS] if isinstance(at(BASE, p), dict)]


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e-9, 1e300, -1, 0, 2**63]),
    st.sampled_from(["no", "yes", "1e-6", "100000d", ".nan", "-1h", "", "../../..", "3h30x"]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.integers(min_value=1, max_value=90).map(deep),
    st.integers(min_value=1_000, max_value=200_000).map(lambda n: "x" * n),
)


def bomb(levels: int) -> str:
    """Anchors each nine times the one before; `detectors` uses the last (9**(levels+1))."""
    lines = ["_defs:", '  z0: &z0 ["a","a","a","a","a","a","a","a","a"]']
    for i in range(1, levels + 1):
        lines.append(f"  z{i}: &z{i} [" + ",".join([f"*z{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\ndetectors: *z{levels}\n"


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(which kind of mutation, the file's bytes)."""
    doc = copy.deepcopy(BASE)
    kind = draw(
        st.sampled_from(
            ["replace", "replace", "replace", "delete", "extra", "share", "bomb", "duplicate",
             "truncate", "byte"]
        )
    )  # fmt: skip
    if kind == "replace":
        path = draw(st.sampled_from(ALL_PATHS))
        at(doc, path[:-1])[path[-1]] = draw(BAD_VALUES)
    elif kind == "delete":
        path = draw(st.sampled_from(ALL_PATHS))
        del at(doc, path[:-1])[path[-1]]
    elif kind == "extra":
        where = at(doc, draw(st.sampled_from(DICT_PATHS)))
        where[draw(st.text(min_size=1, max_size=12))] = draw(BAD_VALUES)
    elif kind == "share":  # the dumper writes the second use as an alias of the first
        source = draw(st.sampled_from(ALL_PATHS))
        target = draw(st.sampled_from(ALL_PATHS))
        if target[: len(source)] != source and source[: len(target)] != target:
            at(doc, target[:-1])[target[-1]] = at(doc, source)
    elif kind == "bomb":
        del doc["detectors"]
        text = yaml.safe_dump(doc, sort_keys=False) + bomb(draw(st.integers(0, 9)))
        return kind, text.encode()
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    data = text.encode()
    if kind == "duplicate":
        data += draw(st.sampled_from([b"name: again\n", b"seed: 3\n", b"design: zoned\n"]))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "byte":
        i = draw(st.integers(0, len(data)))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]
    return kind, data


def validate(path: Path) -> tuple[int, str]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        status = main(["validate", str(path)])
    return status, stderr.getvalue()


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mutants")


@pytest.mark.slow
@settings(
    max_examples=VALIDATE_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutant=mutated_files())
def test_a_mutated_scenario_is_valid_or_located_problems(
    workdir: Path, mutant: tuple[str, bytes]
) -> None:
    """Any mutant: exit 0, or exit 2 naming where each problem is; no traceback; bounded."""
    kind, data = mutant
    path = workdir / "mutant.yaml"
    path.write_bytes(data)
    before = peak_kb()
    started = time.perf_counter()
    status, stderr = validate(path)
    assert time.perf_counter() - started < SECONDS_PER_FILE, kind
    assert peak_kb() - before < MEMORY_GROWTH_KB, kind
    assert "Traceback" not in stderr and status in (0, 2), (kind, stderr[-2000:])
    event(f"{kind}: exit {status}")
    if status == 2:
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        problems = info.value.problems
        assert problems
        documentwide = ("a scenario must be a mapping of fields",)
        assert all(p.path or p.message in documentwide for p in problems), (kind, problems)


@st.composite
def valid_variants(draw: st.DrawFn) -> bytes:
    """The flagship with fields drawn from their valid ranges (as the schema allows them)."""
    doc = copy.deepcopy(BASE)
    doc["seed"] = draw(st.integers(0, 2**32))
    doc["design"] = draw(st.sampled_from(["flat", "zoned", "micro"]))
    doc["duration"] = draw(st.sampled_from(["3h20m", "4h", "4h30m", 15000]))
    doc["physics_step"] = draw(st.sampled_from([5, 10, 20, 30, 60]))
    doc["batch_interval"] = draw(st.sampled_from([60, 300, 900, "1h"]))
    doc["detectors"] = draw(
        st.lists(st.sampled_from(["conduit_policy", "allowlist", "identity", "flow_stats"]),
                 min_size=1, max_size=3, unique=True)
    )  # fmt: skip
    doc["facility"]["outdoor"] = {
        "mean_c": draw(st.floats(-30, 40, allow_nan=False)),
        "swing_c": draw(st.floats(0, 20, allow_nan=False)),
    }
    recon = doc["campaign"]["steps"][1]
    recon["delay"] = draw(st.integers(0, 3600))
    recon["params"]["rate"] = draw(st.integers(1, 500))
    return yaml.safe_dump(doc, sort_keys=False).encode()


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} in summary.json is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
@settings(
    max_examples=RUN_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=valid_variants())
def test_a_generated_valid_scenario_runs_to_a_complete_summary(workdir: Path, data: bytes) -> None:
    """A scenario drawn from the schema's valid ranges runs to the end: exit 0, a complete,
    strict-JSON summary (no NaN), in bounded time."""
    kind = "valid variant"
    path = workdir / "runnable.yaml"
    path.write_bytes(data)
    load_scenario(path)  # drawn from valid ranges: a refusal here is a bug in the bounds
    out = workdir / f"run-{time.monotonic_ns()}"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main(["run", str(path), "--out", str(out), "-q"])
    assert status == 0, (kind, stderr.getvalue()[-2000:])
    summary = strict_json((out / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert math.isclose(summary["simulated_s"], summary["duration_s"])
