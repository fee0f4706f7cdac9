"""Initial access: default credentials, password guessing with lockout, service exploits."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from attacks.access import older
from tests.attacks.harness import device, engine, facility, run, skipped
from twin.devices.base import COMMON_PASSWORDS
from twin.errors import ScenarioError
from twin.facility import Facility
from twin.responses import Quarantine, RotateCredentials
from twin.schema import FacilitySpec

START = 3600.0


def weak_lobby() -> dict[str, Any]:
    def change(fac: dict[str, Any]) -> None:
        device(fac, "cam-lobby")["credentials"] = "weak"

    return facility(change)


def password(fac: dict[str, Any], name: str) -> str:
    return Facility.build(FacilitySpec.model_validate(fac)).by_name[name].password


def guess(interval_s: float, **params: Any) -> dict[str, Any]:
    return {"id": "guess", "technique": "brute_force", "at": "1h", "target": "cam-lobby",
            "params": {"interval_s": interval_s, **params}}  # fmt: skip


def exploit(target: str, **params: Any) -> dict[str, Any]:
    return {"id": "exploit", "technique": "exploit_service", "at": "1h", "target": target,
            "params": {"cve": "CVE-2021-36260", "service": "http", "fixed_in": "5.5.0", **params}}  # fmt: skip


def events_of(e: Any, until: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth by step and the events of the run up to `until`."""
    events = e.run_until(until).events
    return e.truth().set_index("step_id"), events


# -- default credentials ---------------------------------------------------------------------


def test_default_credentials_open_the_port_forwarded_camera() -> None:
    """The lobby camera still has its factory password and is reachable from the internet."""
    e = engine(
        [{"id": "login", "technique": "default_credentials", "at": "1h", "target": "cam-lobby"}]
    )
    truth = run(e, until=START + 60)
    assert bool(truth.loc["login", "succeeded"])
    assert e.campaign is not None and e.campaign.attacker.secrets["cam-lobby"] == ("admin", "admin")


def test_default_credentials_stop_at_the_perimeter() -> None:
    """Even flat, the internet edge passes only the port forward: other cameras are out of reach."""
    e = engine([{"id": "login", "technique": "default_credentials", "at": "1h", "target": "cam-1"}])
    truth = run(e, until=START + 60)
    assert not bool(truth.loc["login", "succeeded"])
    assert (
        truth.loc["login", "blocked_by"] == "design flat: no conduit internet->cameras for port 80"
    )


# -- brute force ------------------------------------------------------------------------------


def short_wordlist(fac: dict[str, Any]) -> list[str]:
    """Five wrong guesses, then the device's real (weak) password: the sixth try is right."""
    right = password(fac, "cam-lobby")
    assert right in COMMON_PASSWORDS
    wrong = [w for w in COMMON_PASSWORDS if w != right]
    return [*wrong[:5], right]


def test_fast_guessing_locks_the_account() -> None:
    """One guess a second trips the 5-failure lockout before the right password is tried."""
    fac = weak_lobby()
    e = engine([guess(1.0, wordlist=short_wordlist(fac))], fac=fac)
    truth, events = events_of(e, START + 120)
    row = truth.loc["guess"]
    assert row["technique"] == "T1110" and not bool(row["succeeded"])
    assert row["detail"] == "account locked after 5 guesses" and row["blocked_by"] == ""
    assert (events["kind"] == "account_locked").sum() == 1
    assert e.campaign is not None and "cam-lobby" not in e.campaign.attacker.positions


def test_patient_guessing_stays_under_the_lockout_and_wins() -> None:
    """One guess every 80 s never has 5 failures in 300 s: the weak password falls."""
    fac = weak_lobby()
    e = engine([guess(80.0, wordlist=short_wordlist(fac))], fac=fac)
    truth, events = events_of(e, START + 600)
    row = truth.loc["guess"]
    assert bool(row["succeeded"]) and row["detail"] == "password of admin guessed after 6 tries"
    assert (events["kind"] == "account_locked").sum() == 0
    assert e.campaign is not None
    assert e.campaign.attacker.positions["cam-lobby"] == e.device("cam-lobby").ip
    assert e.campaign.attacker.secrets["cam-lobby"] == ("admin", password(fac, "cam-lobby"))


def test_slow_guesser_that_trips_the_lock_sits_it_out() -> None:
    """At 61 s a guess, five failures still fall in 300 s: the lock delays the slow guesser only."""
    fac = weak_lobby()
    e = engine([guess(61.0, wordlist=short_wordlist(fac))], fac=fac)
    truth, events = events_of(e, START + 1500)
    assert bool(truth.loc["guess", "succeeded"])
    assert truth.loc["guess", "t_end"] > START + 4 * 61 + 900  # the lock set at the 5th failure
    assert (events["kind"] == "account_locked").sum() == 1


def test_patient_guesser_waits_out_a_lock_it_meets() -> None:
    """A lock tripped by someone else costs the patient guesser one lockout period, not the win."""
    fac = weak_lobby()
    words = short_wordlist(fac)
    noisy = guess(1.0, wordlist=words[:5]) | {"id": "noisy"}
    patient = guess(80.0, wordlist=words[-2:]) | {"at": "1h30s"}  # one wrong guess, then right
    truth, events = events_of(engine([noisy, patient], fac=fac), START + 1200)
    assert truth.loc["noisy", "detail"] == "5 passwords refused"
    assert bool(truth.loc["guess", "succeeded"])
    assert truth.loc["guess", "t_end"] > START + 900.0  # it sat out the lock
    locked = events[
        (events["kind"] == "login_failed") & (events["detail"] == "http account locked")
    ]
    assert len(locked) == 1


def test_changed_password_is_in_no_wordlist() -> None:
    """A properly changed password survives the whole common wordlist (patient, so no lock)."""
    truth = run(engine([guess(80.0, max_attempts=4)]), until=START + 600)
    assert not bool(truth.loc["guess", "succeeded"])
    assert truth.loc["guess", "detail"] == "4 passwords refused"


def test_rotated_credentials_defeat_the_guesser() -> None:
    """A response rotating the password before the attack leaves the wordlist without a hit."""
    fac = weak_lobby()
    e = engine([guess(80.0, wordlist=short_wordlist(fac))], fac=fac)
    truth = run(e, until=START + 600, actions=[(START - 60, RotateCredentials(device="cam-lobby"))])
    assert not bool(truth.loc["guess", "succeeded"]) and truth.loc["guess", "blocked_by"] == ""
    assert truth.loc["guess", "detail"] == "6 passwords refused"


def test_guessing_telnet_is_blocked_at_the_perimeter() -> None:
    """Only the web admin is forwarded: telnet guesses from the internet never arrive."""
    truth = run(engine([guess(1.0, service="telnet")]), until=START + 60)
    assert not bool(truth.loc["guess", "succeeded"])
    assert (
        truth.loc["guess", "blocked_by"] == "design flat: no conduit internet->cameras for port 23"
    )


# -- exploit ----------------------------------------------------------------------------------


def test_version_comparison_is_numeric() -> None:
    """Versions compare part by part as numbers, and missing parts count as zero."""
    assert older("5.4.9", "5.4.10") and not older("5.4.10", "5.4.9")
    assert not older("5.5", "5.5.0") and older("4.30.005", "4.31")


def test_exploit_unpatched_camera_after_discovery() -> None:
    """An old firmware behind the port forward gives code execution once the port is found."""
    lobby = "10.20.40.17"
    scan = {"id": "scan", "technique": "network_scan", "at": "1h",
            "params": {"subnets": [f"{lobby}/32"], "ports": [80]}}  # fmt: skip
    e = engine([scan, exploit("cam-lobby") | {"at": None, "after": "scan"}])
    assert e.device("cam-lobby").ip == lobby
    truth = run(e, until=START + 60)
    row = truth.loc["exploit"]
    assert bool(row["succeeded"]) and row["technique"] == "T0866"
    assert row["detail"] == "CVE-2021-36260 via http: code execution (firmware 5.4.5 < 5.5.0)"
    assert e.campaign is not None and "cam-lobby" in e.campaign.attacker.positions


def test_exploit_needs_the_port_discovered() -> None:
    """Without a scan that found the web port, the exploit is never attempted."""
    e = engine([exploit("cam-lobby")])
    truth = run(e, until=START + 60)
    assert "exploit" not in truth.index
    assert skipped(e) == {"exploit": "cam-lobby (10.20.40.17) was not discovered with port 80 open"}


def test_exploit_fails_on_firmware_patched_in_the_field() -> None:
    """The device's current firmware counts, not the inventory's: a patched camera is safe."""
    e = engine([exploit("cam-lobby", requires_discovery=False)])
    e.faces.firmware["cam-lobby"] = ("5.5.1", "patched")
    truth = run(e, until=START + 60)
    assert not bool(truth.loc["exploit", "succeeded"])
    assert truth.loc["exploit", "detail"] == "patched (firmware 5.5.1 >= 5.5.0)"


def test_exploit_from_a_foothold_is_blocked_by_zones() -> None:
    """Zoned: the camera cannot reach the air handler's web server; flat, it can."""
    steps: list[dict[str, Any]] = [
        {"id": "login", "technique": "default_credentials", "at": "1h", "target": "cam-lobby"},
        {"id": "exploit", "technique": "exploit_service", "after": "login", "target": "ahu",
         "params": {"cve": "CVE-2022-24040", "service": "http", "fixed_in": "3.3",
                    "requires_discovery": False}},
    ]  # fmt: skip
    zoned = run(engine(steps, design="zoned"), until=START + 60)
    assert not bool(zoned.loc["exploit", "succeeded"])
    assert (
        zoned.loc["exploit", "blocked_by"] == "design zoned: no conduit cameras->hvac for port 80"
    )
    flat = run(engine(steps), until=START + 60)
    assert bool(flat.loc["exploit", "succeeded"])


def test_exploit_is_stopped_by_quarantine() -> None:
    """A quarantined camera is unreachable: the truth row names the response."""
    e = engine([exploit("cam-lobby", requires_discovery=False)])
    truth = run(e, until=START + 60, actions=[(START - 60, Quarantine(device="cam-lobby"))])
    assert truth.loc["exploit", "blocked_by"] == "response: cam-lobby quarantined"


def test_exploit_checks_service_and_version_before_the_run() -> None:
    """A service the target lacks and a firmware with no version number are scenario errors."""
    with pytest.raises(ScenarioError) as err:
        engine([exploit("cam-lobby", service="telnet"), exploit("eng-ws") | {"id": "x2"}])
    text = str(err.value)
    assert "cam-lobby has no telnet (has: http, rtsp)" in text
    assert "eng-ws has no http" in text and "eng-ws firmware 'win11-23h2'" in text
