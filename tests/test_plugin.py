"""A third-party detector package, installed with pip, is found through its entry point and scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PLUGIN = ROOT / "tests" / "plugins" / "twin-example-detector"

SCRIPT = """
import json, sys
from pathlib import Path
from detectors import REGISTRY
from twin.run import execute
from twin.scenario import load_scenario
assert "cleartext_admin" in REGISTRY, sorted(REGISTRY)
spec = load_scenario(Path(sys.argv[1]), {"duration": "4h", "detectors": ["cleartext_admin", "conduit_policy"]})
result = execute(spec, Path(sys.argv[2]))
print(json.dumps(result.summary["scores"]))
"""


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return target


def test_installed_plugin_is_discovered_and_scored(site_packages: Path, tmp_path: Path) -> None:
    """pip-installed into the environment, the plug-in is in the registry and gets a score row."""
    env = {**os.environ, "PYTHONPATH": str(site_packages)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "scenarios" / "flagship.yaml"), str(tmp_path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    scores = {s["detector"]: s for s in json.loads(proc.stdout.strip().splitlines()[-1])}
    assert scores["cleartext_admin"]["recall"] > 0
    assert {"cleartext_admin", "conduit_policy", "union"} <= set(scores)


def test_without_the_package_it_is_unknown() -> None:
    """The plug-in is not built in: without installing it, scenarios naming it are refused."""
    from detectors import REGISTRY

    assert "cleartext_admin" not in REGISTRY
