"""`twin audit`: every planted problem of the shipped facilities found, none in a clean site."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, SCENARIOS
from twin.audit import audit, conduit_use, known_exploited, vendor_scorecard
from twin.scenario import load_facility, parse_facility
from twin.schema import FacilitySpec

DAY = dt.date(2026, 1, 12)
FACILITIES = SCENARIOS / "facilities"

# the problems the shipped facilities' stories plant, as (rule, subject)
PLANTED = {
    "harbour-dc": {
        ("default-credentials", "cam-lobby"),
        ("known-exploited", "cam-lobby"),
        ("known-exploited", "gateway"),
        ("unverified-updates", "gateway"),
        ("unneeded-service", "gateway"),  # telnet open, no conduit needs it
        ("insecure-protocol", "internet->cam-lobby"),  # the port forward of the web admin
    },
    "office-hq": {
        ("default-credentials", "cam-car-park"),
        ("default-credentials", "cam-stair"),
        ("shared-credentials", "cam-stair"),
        ("weak-credentials", "gateway"),
        ("end-of-support", "eng-ws"),
        ("unverified-updates", "gateway"),
        ("unneeded-service", "cam-stair"),  # the cheap cameras' telnet
    },
    "plant-line": {
        ("default-credentials", "cam-gate"),
        ("default-credentials", "eng-ws"),
        ("weak-credentials", "cam-dock"),
        ("end-of-support", "eng-ws"),
        ("known-exploited", "gateway"),
        ("unverified-updates", "gateway"),
    },
}

CLEAN: dict[str, Any] = {
    "name": "clean-site",
    "zones": [
        {"name": "internet", "subnet": "198.51.100.0/24", "purpose": "internet", "security_level": 0},
        {"name": "bms", "subnet": "10.9.10.0/24", "purpose": "bms", "security_level": 3},
        {"name": "hvac", "subnet": "10.9.20.0/24", "purpose": "hvac", "security_level": 2},
    ],
    "devices": [
        {"name": "bms-server", "kind": "bms", "zone": "bms", "vendor": "Tridium",
         "model": "Niagara 4", "firmware": "4.12.1", "owner": "facilities",
         "support_end": "2030-06-30", "services": [], "params": {"polls": ["hvac"], "interval_s": 10}},
        {"name": "ahu", "kind": "ahu", "zone": "hvac", "vendor": "Siemens", "model": "PXC36",
         "firmware": "3.2.7", "owner": "facilities", "support_end": "2029-12-31",
         "services": ["modbus"]},
        {"name": "vav", "kind": "vav", "zone": "hvac", "vendor": "Siemens", "model": "PXC7",
         "firmware": "1.4.2", "owner": "facilities", "support_end": "2029-12-31",
         "params": {"ahu": "ahu", "room": "office"}},
    ],
    "designs": {
        "micro": {"kind": "micro", "conduits": [
            {"from": "bms-server", "to": "ahu", "services": ["modbus"]},
            {"from": "bms-server", "to": "vav", "services": ["modbus"]},
        ]},
    },
}  # fmt: skip


def clean() -> FacilitySpec:
    spec, problems = parse_facility(CLEAN)
    assert spec is not None, problems
    return spec


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_every_planted_problem_is_found(name: str) -> None:
    """Each problem a shipped facility's story plants is a finding with its guidance rule."""
    path = FACILITIES / f"{name}.yaml"
    findings = audit(load_facility(path), yaml.safe_load(path.read_text()), DAY)
    found = {(f.rule, f.subject) for f in findings}
    assert PLANTED[name] <= found, PLANTED[name] - found
    assert all(f.guidance for f in findings)


def test_a_clean_facility_has_no_findings() -> None:
    """A site with owners, changed unique passwords, supported signed firmware, only the
    services its conduits need, and conduits its baseline traffic uses, has no finding."""
    spec = clean()
    use = conduit_use(spec, "micro", 1800.0)
    assert use and all(u["pairs_used"] == u["pairs_allowed"] for u in use.values())
    assert audit(spec, CLEAN, DAY, use) == []
    assert all(r["score"] == 1.0 for r in vendor_scorecard(spec, DAY))


def test_a_planted_broad_conduit_is_found_by_the_baseline_run() -> None:
    """A zone-wide conduit whose devices the baseline never talks to is reported as broad."""
    raw = json.loads(json.dumps(CLEAN))
    raw["designs"]["micro"]["conduits"].append(
        {"from": "vav", "to": "hvac", "services": ["modbus"]}
    )
    spec, _ = parse_facility(raw)
    assert spec is not None
    findings = audit(spec, raw, DAY, conduit_use(spec, "micro", 1800.0))
    assert [(f.rule, f.subject) for f in findings] == [("broad-conduit", "vav->hvac#2")]


def test_known_exploited_deadline_sets_the_severity() -> None:
    """A listed vulnerability is high before its remediation deadline and critical after."""
    raw = json.loads(json.dumps(CLEAN))
    raw["devices"][1].update(vendor="Advantech", model="WISE-6610-N", firmware="1.2.0")
    spec, _ = parse_facility(raw)
    assert spec is not None
    row = next(r for r in known_exploited() if r.cve == "CVE-2099-1001")

    def severity(day: dt.date) -> list[str]:
        return [f.severity for f in audit(spec, raw, day) if f.rule == "known-exploited"]

    assert severity(row.due_date) == ["high"]
    assert severity(row.due_date + dt.timedelta(days=1)) == ["critical"]


def test_the_table_names_its_source() -> None:
    """The shipped vulnerability table says where each row comes from."""
    text = (ROOT / "twin" / "data" / "known_exploited.csv").read_text()
    assert "cisa.gov/known-exploited-vulnerabilities-catalog" in text
    assert {r.source for r in known_exploited()} <= {"CISA KEV", "illustrative"}


def test_cli_gates_on_severity_and_writes_json(tmp_path: Path) -> None:
    """--fail-on high fails on the reference site; JSON carries every finding with its rule."""
    cmd = [sys.executable, "-m", "twin.cli", "audit", "harbour-dc", "--date", "2026-01-12",
           "--baseline", "0"]  # fmt: skip
    gated = subprocess.run(
        [*cmd, "--fail-on", "high", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert gated.returncode == 1 and "at or above high" in gated.stderr
    js = subprocess.run([*cmd, "--json", "-"], capture_output=True, text=True, cwd=ROOT)
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)
    assert doc["counts"]["critical"] >= 1 and all("guidance" in f for f in doc["findings"])
    path = tmp_path / "clean.yaml"
    path.write_text(yaml.safe_dump(CLEAN))
    ok = subprocess.run([sys.executable, "-m", "twin.cli", "audit", str(path), "--date",
                         "2026-01-12", "--baseline", "30m", "--fail-on", "low", "-q"],
                        capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert ok.returncode == 0, ok.stderr + ok.stdout


def test_a_scenario_is_audited_through_its_facility() -> None:
    """`twin audit flagship` audits the facility the flagship runs on, and says which."""
    cmd = [sys.executable, "-m", "twin.cli", "audit", "--date", "2026-01-12", "--baseline", "0",
           "--json", "-"]  # fmt: skip
    by_scenario = subprocess.run([*cmd, "flagship"], capture_output=True, text=True, cwd=ROOT)
    by_facility = subprocess.run([*cmd, "harbour-dc"], capture_output=True, text=True, cwd=ROOT)
    assert by_scenario.returncode == 0, by_scenario.stderr
    assert "is a scenario: auditing its facility" in by_scenario.stderr
    assert "harbour-dc.yaml" in by_scenario.stderr
    assert json.loads(by_scenario.stdout) == json.loads(by_facility.stdout)
