"""Scenario files: shipped ones are valid; bad ones get one clear message per problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FLAGSHIP, SCENARIOS
from twin.errors import ScenarioError
from twin.scenario import json_schema, load_scenario
from twin.schema import parse_duration


def facility() -> dict[str, Any]:
    return yaml.safe_load((SCENARIOS / "facilities" / "harbour-dc.yaml").read_text())


def scenario(tmp_path: Path, fac: dict[str, Any] | None = None, **fields: Any) -> Path:
    raw = yaml.safe_load(FLAGSHIP.read_text())
    raw["facility"] = fac if fac is not None else facility()
    raw.update(fields)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    """Every scenario we ship loads without a problem."""
    assert load_scenario(path).name


def test_unknown_zone_names_the_device_field(tmp_path: Path) -> None:
    """A device in a zone that does not exist is reported at devices[i].zone, with a suggestion."""
    fac = facility()
    fac["devices"][2]["zone"] = "hvak"
    assert problems(scenario(tmp_path, fac)) == [
        "facility.devices[2].zone: unknown zone 'hvak' (did you mean 'hvac'?)"
    ]


def test_duplicate_address(tmp_path: Path) -> None:
    """Two devices pinned to one address are reported at the second one's ip."""
    fac = facility()
    fac["devices"][2]["ip"] = "10.20.20.5"
    fac["devices"][3]["ip"] = "10.20.20.5"
    assert problems(scenario(tmp_path, fac)) == [
        "facility.devices[3].ip: duplicate address 10.20.20.5 (also ahu)"
    ]


def test_negative_duration(tmp_path: Path) -> None:
    """A negative duration is refused at 'duration' with the value shown."""
    (msg,) = problems(scenario(tmp_path, duration="-5h"))
    assert msg.startswith("duration: must be positive, got -18000 s")


def test_unknown_device_kind(tmp_path: Path) -> None:
    """An unknown kind names the field and lists the kinds that exist."""
    fac = facility()
    fac["devices"][2]["kind"] = "ahuu"
    (msg,) = problems(scenario(tmp_path, fac))
    assert msg.startswith(
        "facility.devices[2].kind: unknown device kind 'ahuu' (did you mean 'ahu'?)"
    )
    assert "known: ahu, vav" in msg


def test_conduit_to_missing_zone(tmp_path: Path) -> None:
    """A conduit naming a zone that does not exist is reported at its 'to' field."""
    fac = facility()
    fac["designs"]["zoned"] = {
        "kind": "zoned",
        "conduits": [{"from": "bms", "to": "bms2", "services": ["modbus"]}],
    }
    (msg,) = problems(scenario(tmp_path, fac))
    assert msg.startswith("facility.designs.zoned.conduits[0].to: unknown zone or device 'bms2'")


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    """A YAML syntax error is one problem that says where it is."""
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nfacility: [unclosed\nduration: 1h\n")
    (msg,) = problems(path)
    assert msg.startswith("line 3, column") and "YAML syntax error" in msg


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Several mistakes in one file come back together, not one per attempt."""
    fac = facility()
    fac["devices"][2]["zone"] = "nowhere"
    fac["devices"][3]["kind"] = "toaster"
    fac["devices"][4]["zon"] = "hvac"
    found = problems(scenario(tmp_path, fac, duration="-1h", design="zonned"))
    paths = sorted(m.split(":")[0] for m in found)
    assert paths == [
        "duration",
        "facility.devices[2].zone",
        "facility.devices[3].kind",
        "facility.devices[4].zon",
    ]
    assert any("unknown field 'zon' (did you mean 'zone'?)" in m for m in found)


def test_a_field_of_another_file_kind_is_not_suggested_as_itself(tmp_path: Path) -> None:
    """A scenario's `seed` inside a facility is unknown there, with no 'did you mean seed'."""
    fac = facility()
    fac["seed"] = 3
    found = problems(scenario(tmp_path, fac))
    assert "facility.seed: unknown field 'seed'" in found, found


def test_unknown_design_and_technique(tmp_path: Path) -> None:
    """Cross references into the facility and the technique registry are checked."""
    path = scenario(tmp_path, design="zonned")
    raw = yaml.safe_load(path.read_text())
    raw["campaign"]["steps"][1]["technique"] = "network_scna"
    path.write_text(yaml.safe_dump(raw))
    found = problems(path)
    assert any(
        m.startswith("design: unknown design 'zonned' (did you mean 'zoned'?)") for m in found
    )
    assert (
        "campaign.steps[1].technique: unknown technique 'network_scna' (did you mean 'network_scan'?)"
        in found
    )


def test_attack_inside_warmup_is_refused(tmp_path: Path) -> None:
    """A step timed inside the warm-up would teach the detectors the attack; it is an error."""
    path = scenario(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["campaign"]["steps"][0]["at"] = "1h"
    path.write_text(yaml.safe_dump(raw))
    (msg,) = problems(path)
    assert msg.startswith("campaign.steps[0].at: 3600 s is inside the attack-free warm-up")


def test_unknown_detector_parameter(tmp_path: Path) -> None:
    """A typo in a detector parameter is named, with the parameters it takes."""
    path = scenario(
        tmp_path, detectors=[{"name": "conduit_policy", "params": {"scan_treshold": 5}}]
    )
    (msg,) = problems(path)
    assert msg.startswith("detectors[0].params.scan_treshold: unknown parameter")
    assert "did you mean 'scan_threshold'" in msg


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    """A bad --design override is reported like a bad field in the file."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(FLAGSHIP, {"design": "nope"})
    assert str(info.value.problems[0]).startswith("design: unknown design 'nope'")


def test_durations_parse() -> None:
    """Durations accept seconds and unit suffixes, including compound ones."""
    assert parse_duration("3h30m") == 12600
    assert parse_duration("90") == 90
    assert parse_duration(45) == 45
    with pytest.raises(ValueError):
        parse_duration("3 hours")


def test_json_schema_describes_scenarios() -> None:
    """The published schema lists the top-level fields and device kinds for editors."""
    schema = json_schema()
    assert {"facility", "design", "duration", "campaign", "detectors"} <= set(schema["properties"])
    text = json.dumps(schema)
    assert '"ahu"' in text and '"security_level"' in text


def test_cli_validate_exits_2_without_traceback(tmp_path: Path) -> None:
    """`twin validate` on a bad file prints the problems, exits 2 and shows no traceback."""
    fac = facility()
    fac["devices"][2]["zone"] = "hvak"
    path = scenario(tmp_path, fac)
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "facility.devices[2].zone: unknown zone 'hvak'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_detector_that_reads_captures_needs_the_emulated_network() -> None:
    """suricata on the modelled network is refused when the scenario is read, saying how."""
    with pytest.raises(ScenarioError, match=r"suricata reads packet captures.*--backend mininet"):
        load_scenario(FLAGSHIP, {"detectors": ["suricata"]})
    spec = load_scenario(FLAGSHIP, {"detectors": ["suricata"], "backend": "mininet"})
    assert spec.backend == "mininet"
