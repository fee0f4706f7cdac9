"""The technique-test harness itself runs the flagship chain on the shared site."""

from __future__ import annotations

from tests.attacks.harness import engine, run, skipped


def test_harness_runs_a_campaign_and_returns_truth() -> None:
    """A one-step campaign yields one truth row with the right technique id."""
    e = engine(
        [{"id": "login", "technique": "default_credentials", "at": "1h10m", "target": "cam-lobby"}]
    )
    truth = run(e, until=2 * 3600)
    assert truth.loc["login", "technique"] == "T0812" and bool(truth.loc["login", "succeeded"])
    assert skipped(e) == {}
