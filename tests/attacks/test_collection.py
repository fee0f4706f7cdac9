"""Exfiltration: slow encrypted uploads leave through an egress conduit, or are stopped."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.attacks.harness import engine, facility, run
from twin.errors import ScenarioError
from twin.responses import Quarantine

H = 3600.0
DROP = "198.51.100.99"
FOOTHOLD = {"id": "foothold", "technique": "default_credentials", "at": "1h", "target": "cam-lobby"}
MB = 1024 * 1024


def drop_server(fac: dict[str, Any]) -> None:
    """The attacker's server answers HTTPS on the internet (sim faces only answer inventory hosts)."""
    fac["devices"].append({"name": "drop", "kind": "cloud", "zone": "internet", "ip": DROP})


def egress(fac: dict[str, Any]) -> None:
    """Drop server, plus a cameras->internet https conduit ('P2P cloud service' left open)."""
    drop_server(fac)
    for design in fac["designs"].values():
        design["conduits"] = [
            *design["conduits"],
            {"from": "cameras", "to": "internet", "services": ["https"], "note": "P2P cloud"},
        ]


def exfil(**params: Any) -> dict[str, Any]:
    return {"id": "exfil", "technique": "exfiltration", "after": "foothold", "from": "cam-lobby",
            "params": {"destination": DROP, "total_mb": 2, "chunk_kb": 256, "interval_s": 60,
                       **params}}  # fmt: skip


def test_exfiltration_uploads_everything_through_an_egress_conduit() -> None:
    """Eight 256 KB uploads a minute apart: the flows carry ~2 MB, encrypted, from the camera."""
    e = engine([FOOTHOLD, exfil()], design="zoned", fac=facility(egress), duration="2h")
    flows = e.run_until(H + 900).flows
    truth = e.truth().set_index("step_id")
    assert bool(truth.loc["exfil", "succeeded"])
    assert truth.loc["exfil", "detail"] == f"2.00 MB in 8 uploads to {DROP}"
    assert truth.loc["exfil", "t_end"] - truth.loc["exfil", "t_start"] == pytest.approx(
        7 * 60, abs=1
    )
    out = flows[(flows.src_ip == e.device("cam-lobby").ip) & (flows.dst_port == 443)]
    assert out.bytes.sum() == pytest.approx(2 * MB, rel=0.05)
    assert len(out) == 8 and out.encrypted.all() and (out.app == "https").all()


def test_exfiltration_jitter_spreads_the_uploads() -> None:
    """With step jitter the gaps between uploads vary, the total still arrives."""
    step = {**exfil(), "jitter": 0.5}
    e = engine([FOOTHOLD, step], fac=facility(egress), duration="2h")
    flows = e.run_until(H + 900).flows
    out = flows[(flows.src_ip == e.device("cam-lobby").ip) & (flows.dst_port == 443)]
    gaps = out.t_start.sort_values().diff().dropna()
    assert gaps.nunique() > 1 and gaps.between(29, 91).all()
    assert out.bytes.sum() == pytest.approx(2 * MB, rel=0.05)


def test_site_edge_blocks_exfiltration_without_an_egress_conduit() -> None:
    """harbour-dc has no cameras->internet https conduit: the first upload is dropped at the edge."""
    e = engine([FOOTHOLD, exfil()], fac=facility(drop_server), duration="2h")
    truth = run(e, until=H + 900)
    assert not bool(truth.loc["exfil", "succeeded"])
    assert (
        truth.loc["exfil", "blocked_by"] == "design flat: no conduit cameras->internet for port 443"
    )
    assert truth.loc["exfil", "detail"].startswith("0.00 MB sent, 2.00 MB left")


def test_quarantine_midway_stops_exfiltration() -> None:
    """Quarantining the camera after three uploads stops the theft; truth says how much is left."""
    e = engine([FOOTHOLD, exfil()], fac=facility(egress), duration="2h")
    batches = [e.run_until(H + 150)]
    e.act(Quarantine(device="cam-lobby"))
    batches.append(e.run_until(H + 900))
    truth = e.truth().set_index("step_id")
    assert not bool(truth.loc["exfil", "succeeded"])
    assert truth.loc["exfil", "blocked_by"] == "response: cam-lobby quarantined"
    assert truth.loc["exfil", "detail"].startswith("0.75 MB sent, 1.25 MB left")
    flows = pd.concat([b.flows for b in batches])
    out = flows[(flows.src_ip == e.device("cam-lobby").ip) & (flows.dst_port == 443)]
    assert out[~out.blocked].bytes.sum() == pytest.approx(0.75 * MB, rel=0.05)


def test_exfiltration_destination_must_be_outside() -> None:
    """A destination inside the site is a scenario problem, reported before the run."""
    with pytest.raises(ScenarioError, match="not in an internet zone"):
        engine([FOOTHOLD, exfil(destination="10.20.10.5")])
