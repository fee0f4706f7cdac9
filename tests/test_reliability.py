"""Careless and hostile input: every case is one clear problem (exit 2) or a correct run."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FLAGSHIP, ROOT, SCENARIOS
from twin.errors import InputError, ScenarioError
from twin.rundir import MARKER, check_name, claim, fresh_path, is_twin_run
from twin.scenario import load_scenario

FACILITY = yaml.safe_load((SCENARIOS / "facilities" / "harbour-dc.yaml").read_text())
BASE = yaml.safe_load(FLAGSHIP.read_text())
NAN, INF = float("nan"), float("inf")


def document() -> dict[str, Any]:
    """The flagship with its facility inline: one file a test can change anywhere."""
    raw = copy.deepcopy(BASE)
    raw["facility"] = copy.deepcopy(FACILITY)
    return raw


def write(tmp_path: Path, raw: Any, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


def twin(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def device_index(kind: str) -> int:
    return next(i for i, d in enumerate(FACILITY["devices"]) if d["kind"] == kind)


def _set(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        raw = raw[key]
    raw[path[-1]] = value


# (where, value, what the one problem says): each was a crash, a hang or a silent pass
BAD_FIELDS = [
    (("facility", "devices", 0, "services"), 5, "facility.devices[0].services: Input should be a valid list"),
    (("facility", "zones", 0, "name"), ["ot"], "facility.zones[0].name: Input should be a valid string"),
    (("facility", "devices", device_index("bms"), "params", "polls"), [["hvac"]], "params.polls[0]: Input should be a valid string"),
    (("duration",), NAN, "duration: nan is not a finite number"),
    (("duration",), INF, "duration: inf is not a finite number"),
    (("duration",), "100000d", "duration: 8.64e+09 s is longer than the longest run"),
    (("batch_interval",), 1e-6, "batch_interval: Input should be greater than or equal to 1"),
    (("physics_step",), NAN, "physics_step: nan is not a finite number"),
    (("campaign", "steps", 2, "params", "value"), NAN, "campaign.steps[2].params.value: nan is not a finite number"),
    (("campaign", "steps", 2, "params", "value"), 1000, "supply_air_setpoint=1000 is outside (5, 45)"),
    (("campaign", "steps", 0, "at"), "7h", "campaign.steps[0].at: 25200 s is after the run ends"),
    (("name",), "../../..", "name: '../../..' cannot name a run directory"),
    (("seed",), -1, "seed: Input should be greater than or equal to 0"),
    (("facility", "outdoor"), {"mean_c": 10, "wind": 3}, "facility.outdoor: unknown key 'wind'"),
    (("facility", "outdoor"), {"mean_c": NAN}, "facility.outdoor.mean_c: nan is not a finite number"),
    (("facility", "devices", device_index("vav"), "params", "band_c"), [27, 18], "band_c: a band is [low, high]"),
    (("detectors",), [{"name": "allowlist", "params": {"learn_online": "no"}}], "detectors[0].params.learn_online: expected true or false, got 'no'"),
    (("detectors",), [{"name": "flow_stats", "params": {"threshold": INF}}], "detectors[0].params.threshold: inf is not a finite number"),
    (("start",), "9999-12-31T00:00:00", "start: Input should be less than or equal to 2999"),
    (("facility",), "/dev/zero", "/dev/zero is not a regular file"),
]  # fmt: skip


@pytest.mark.parametrize(("where", "value", "said"), BAD_FIELDS, ids=lambda x: str(x)[:30])
def test_a_bad_field_is_one_problem_at_its_path(
    tmp_path: Path, where: tuple[Any, ...], value: Any, said: str
) -> None:
    """A wrongly typed, non-finite, unbounded or unsafe value is one problem, at its path."""
    raw = document()
    _set(raw, where, value)
    (msg,) = problems_of(write(tmp_path, raw))
    assert said in msg


def test_a_mistyped_device_does_not_make_its_name_unknown(tmp_path: Path) -> None:
    """Cross-references to a device whose own entry is mistyped are not reported as unknown."""
    raw = document()
    raw["facility"]["devices"][device_index("ahu")]["services"] = "modbus"
    (msg,) = problems_of(write(tmp_path, raw))
    assert "services: Input should be a valid list" in msg


def test_design_names_that_would_be_paths_are_refused(tmp_path: Path) -> None:
    """A design name builds the default run directory, so '../x' is refused."""
    raw = document()
    raw["facility"]["designs"]["../x"] = raw["facility"]["designs"]["flat"]
    assert any("design name '../x'" in p for p in problems_of(write(tmp_path, raw)))


def test_thirty_thousand_chained_steps_are_refused_quickly(tmp_path: Path) -> None:
    """A campaign over the step bound is refused (it used to take minutes: quadratic checks)."""
    raw = document()
    step = {"technique": "network_scan", "from": "cam-lobby", "params": {"subnets": ["10.20.20.0/24"]}}  # fmt: skip
    raw["campaign"]["steps"] = [{"id": "s0", "at": "3h30m", **step}] + [
        {"id": f"s{i}", "after": f"s{i - 1}", **step} for i in range(1, 12_000)
    ]
    started = time.perf_counter()
    problems = problems_of(write(tmp_path, raw))
    assert any("campaign.steps: List should have at most 10000 items" in p for p in problems)
    assert time.perf_counter() - started < 60


def test_a_long_after_chain_validates_in_linear_time(tmp_path: Path) -> None:
    """Two thousand steps waiting on each other in a chain validate in seconds, cycles found."""
    raw = document()
    step = {"technique": "network_scan", "from": "cam-lobby", "params": {"subnets": ["10.20.20.0/24"]}}  # fmt: skip
    steps = [{"id": "s0", "at": "3h30m", **step}]
    steps += [{"id": f"s{i}", "after": f"s{i - 1}", **step} for i in range(1, 2000)]
    steps += [{"id": "x", "after": "y", **step}, {"id": "y", "after": "x", **step}]
    raw["campaign"]["steps"] = steps
    started = time.perf_counter()
    problems = problems_of(write(tmp_path, raw))
    assert len([p for p in problems if "in a cycle" in p]) == 2
    assert time.perf_counter() - started < 30


def test_a_duration_string_cannot_make_the_parser_backtrack(tmp_path: Path) -> None:
    """A long run of digits with a stray letter is refused at once (it was exponential)."""
    from twin.schema import parse_duration

    started = time.perf_counter()
    with pytest.raises(ValueError):
        parse_duration("1" * 40 + "x")
    assert time.perf_counter() - started < 0.5


def test_run_length_is_bounded_by_steps_and_intervals(tmp_path: Path) -> None:
    """A year in 0.1 s physics steps is refused, naming the count and the bound."""
    raw = document()
    raw.update(duration="300d", physics_step=0.1, sample_interval=60, export_interval=60)
    problems = problems_of(write(tmp_path, raw))
    assert any(p.startswith("physics_step:") and "physics steps" in p for p in problems)


def test_a_shortened_run_says_which_steps_will_not_run(tmp_path: Path) -> None:
    """--duration before a timed step is allowed, and twin run says the step will not run."""
    proc = twin("run", "flagship", "--duration", "3h10m", "--out", str(tmp_path / "r"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "before step(s) foothold start: they will not run" in proc.stderr


# --- run directories ------------------------------------------------------------------------


def test_a_run_refuses_a_directory_that_is_not_a_twin_run(tmp_path: Path) -> None:
    """Other files in --out are never deleted: the run is refused, exit 2, nothing touched."""
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "flows.parquet").write_text("mine")
    (precious / "summary.json").write_text("{}")
    proc = twin("run", "flagship", "--out", str(precious), "--force")
    assert proc.returncode == 2 and "holds no twin run" in proc.stderr
    assert sorted(p.name for p in precious.iterdir()) == ["flows.parquet", "summary.json"]
    assert (precious / "flows.parquet").read_text() == "mine"


def test_a_second_claim_fails_at_once_while_the_first_holds(tmp_path: Path) -> None:
    """The lock is exclusive: a second claim is refused naming the holder's pid."""
    with claim(tmp_path / "r") as held:
        assert held.held and (tmp_path / "r" / MARKER).exists()
        with pytest.raises(InputError, match=r"another twin run is writing into .*\(pid \d+"):
            claim(tmp_path / "r", force=True)
    with claim(tmp_path / "r"):  # released: the directory holds only the marker, so it is free
        pass


def test_force_replaces_a_previous_run_and_its_leftovers(tmp_path: Path) -> None:
    """--force empties a previous twin run: no stale table, .part, report or dataset is left."""
    run = tmp_path / "r"
    with claim(run):
        (run / "flows.parquet.part").write_text("stale")
        (run / "report.html").write_text("stale")
        (run / "dataset").mkdir()
        (run / "dataset" / "flows.csv").write_text("stale")
    with pytest.raises(InputError, match="holds a previous twin run; give --force"):
        claim(run)
    with claim(run, force=True):
        assert [p.name for p in run.iterdir()] == [MARKER]


def test_a_killed_emulated_run_must_be_reaped_first(tmp_path: Path) -> None:
    """--force does not throw away the record of what a killed emulated run left running."""
    run = tmp_path / "r"
    with claim(run):
        (run / "emulated-state.json").write_text("{}")
    with pytest.raises(InputError, match="twin reap"):
        claim(run, force=True)


def test_an_old_twin_run_is_recognised_by_its_summary(tmp_path: Path) -> None:
    """A run from before markers counts as a twin run through its summary.json."""
    (tmp_path / "summary.json").write_text(
        json.dumps({"scenario": "x", "status": "complete", "versions": {}})
    )
    assert is_twin_run(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2]")
    assert not is_twin_run(tmp_path)


def test_names_that_build_paths_are_pattern_checked(tmp_path: Path) -> None:
    """'..', slashes and empty names cannot name a run directory; clashes get a suffix."""
    for bad in ("..", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(InputError):
            check_name(bad)
    first = fresh_path(tmp_path, "20260101", "flagship", "flat", "s7")
    first.mkdir()
    assert fresh_path(tmp_path, "20260101", "flagship", "flat", "s7").name.endswith("-s7-2")


def test_unwritable_and_odd_out_paths_are_one_line(tmp_path: Path) -> None:
    """--out on a file, under /proc or with a NUL is an InputError, not a traceback."""
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", Path("/proc/twin-run"), Path("a\x00b")):
        with pytest.raises(InputError):
            claim(out)


# --- the error boundary ------------------------------------------------------------------------


def test_help_lists_the_exit_statuses() -> None:
    """`twin --help` documents 0, 1, 2, 3 and 130."""
    text = twin("--help").stdout
    assert "exit status:" in text
    for line in ("invalid input", "failed", "a bug in the twin", "interrupted"):
        assert line in text


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "flagship", "--seed", "-1"], "seed: Input should be greater than or equal to 0"),
        (["run", "flagship", "--speed", "nan"], "speed: nan is not a finite number"),
        (["run", "/dev/zero"], "not a regular file"),
        (["run", "flagship", "--out", "/dev/null"], "is not a directory"),
        (["schema", "-o", "/tmp"], "is a directory"),
        (["export", "/nonexistent"], "not a finished run directory"),
        (["fidelity", "--compare", "/nonexistent", "/nonexistent2"], "no summary.json"),
        (["reap", "/nonexistent"], "is not a directory"),
    ],
    ids=lambda x: " ".join(x)[:40] if isinstance(x, list) else None,
)
def test_misuse_is_one_line_and_exit_2(args: list[str], said: str) -> None:
    """Bad flags, paths and data files exit 2 with one clear line, never a traceback."""
    proc = twin(*args)
    assert proc.returncode == 2, proc.stderr
    assert said in proc.stderr and "Traceback" not in proc.stderr


def test_a_corrupt_or_empty_table_given_to_export_is_exit_2(tmp_path: Path) -> None:
    """A parquet file that is empty or not parquet is named, exit 2, no traceback."""
    for content in (b"", b"not parquet at all"):
        (tmp_path / "flows.parquet").write_bytes(content)
        proc = twin("export", str(tmp_path), "--out", str(tmp_path / "d"))
        assert proc.returncode == 2 and "cannot be read" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_bug_shows_a_traceback_and_asks_for_a_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is a bug: traceback, a request to report it, exit 3."""
    from twin import cli
    from twin.commands import listing

    def broken(args: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(listing, "cmd_list", broken)
    lines: list[str] = []
    monkeypatch.setattr(cli.err, "print", lambda text, **kw: lines.append(str(text)))
    parser = cli.parser()
    args = parser.parse_args(["list"])
    args.func = broken
    monkeypatch.setattr(cli, "parser", lambda: _Fixed(args))
    assert cli.main(["list"]) == 3
    assert any("this is a bug in twin" in line for line in lines)


class _Fixed:
    def __init__(self, args: Any) -> None:
        self.args = args

    def parse_args(self, argv: Any) -> Any:
        return self.args


def test_problems_are_not_wrapped_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    """A long problem line stays one line in a log (rich wrapped it at 132 columns)."""
    raw = document()
    raw["facility"]["devices"][0]["zone"] = "z" * 200
    proc = twin("validate", str(write(tmp_path, raw)))
    assert proc.returncode == 2
    assert any(len(line) > 200 and "unknown zone" in line for line in proc.stderr.splitlines())


# --- detector parameters and documented bounds ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "said"),
    [
        ("allowlist", {"learn_online": "no"}, "expected true or false, got 'no'"),
        ("allowlist", {"learn_online": 0}, "expected true or false, got 0"),
        ("conduit_policy", {"scan_threshold": 2.5}, "expected a whole number"),
        ("conduit_policy", {"scan_threshold": 10**12}, "is outside"),
        ("flow_stats", {"alpha": float("nan")}, "not a finite number"),
        ("flow_stats", {"threshold": "7"}, "expected a number, got '7'"),
        ("federated", {"mode": "both"}, "expected one of 'federated', 'central'"),
        ("federated", {"seed": -5}, "is outside 0.."),
        ("kitsune", {"lambdas": [1.0, float("inf")]}, "not a finite number"),
    ],
)
def test_detector_parameters_are_typed_finite_and_bounded(
    name: str, params: dict[str, Any], said: str
) -> None:
    """A detector parameter of the wrong type, non-finite or out of bounds is one problem."""
    from detectors import REGISTRY, check_params

    (problem,) = check_params(REGISTRY[name], params)
    assert problem.path == f".{next(iter(params))}" and said in problem.message


def test_valid_detector_parameters_pass() -> None:
    """Real booleans, whole numbers for floats and Literal members are accepted."""
    from detectors import REGISTRY, check_params

    assert check_params(REGISTRY["allowlist"], {"learn_online": False, "level": "device"}) == []
    assert check_params(REGISTRY["flow_stats"], {"threshold": 8, "alpha": 0.2}) == []
    assert check_params(REGISTRY["federated"], {"mode": "central", "seed": 3}) == []


def test_twin_schema_states_the_bounds() -> None:
    """`twin schema` says what every scenario is bounded by, in its --help and in the schema."""
    from twin.schema import BOUNDS

    schema = json.loads(twin("schema").stdout)
    assert schema["x-twin-bounds"] == BOUNDS and "366 d" in schema["description"]
    assert "at most 5,000,000 steps" in twin("schema", "--help").stdout.replace("\n", " ")
