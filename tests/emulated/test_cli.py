"""`twin run --backend mininet --cli`: Mininet's prompt on a live run, driven as a person would.

pexpect types at `mininet>`: a Modbus read from the engineering workstation to the AHU,
over the emulated network for real. The run goes on behind the prompt; leaving it ends
the run with its results kept, and the typed connection is in flows.parquet.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.emulated.test_topology import MISSING

pexpect = pytest.importorskip("pexpect")

pytestmark = [
    pytest.mark.mininet,
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason="emulation unavailable: " + "; ".join(MISSING)),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="no tcpdump"),
]

ROOT = Path(__file__).resolve().parents[2]
AHU = "10.20.20.10"  # harbour-dc's air handler
ENG_WS = "10.20.10.11"  # and its engineering workstation
READ = (  # Modbus/TCP: transaction 0x1234, unit 1, read 1 holding register at 0
    "eng-ws python3 -c \"import socket; s = socket.create_connection(('{ip}', 502), 2); "
    "s.sendall(bytes.fromhex('123400000006010300000001')); "
    "print('reply', s.recv(64).hex(), 'sport', s.getsockname()[1])\""
)


def test_typed_traffic_is_in_the_flows_and_leaving_ends_the_run(tmp_path: Path) -> None:
    """A Modbus read typed at mininet> is answered by the AHU's face and metered from the
    router's captures into flows.parquet (its very source port); `exit` ends the run
    complete, before its duration, with the results written."""
    out = tmp_path / "run"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "twin.cli", "run", "flagship", "--backend", "mininet", "--cli",
         "--speed", "60", "--duration", "4h", "--out", str(out), "-q"],
        cwd=str(ROOT), encoding="utf-8", timeout=120,
    )  # fmt: skip
    try:
        child.expect("CLI on the live run of harbour-dc")
        child.expect("mininet> ")
        child.sendline(READ.format(ip=AHU))
        child.expect(r"reply (\w+) sport (\d+)")
        reply, sport = child.match.group(1), int(child.match.group(2))
        assert reply.startswith("1234") and reply[14:16] == "03"  # the read answered
        child.expect("mininet> ")
        child.sendline("exit")
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["simulated_s"] < 4 * 3600  # ended by leaving the prompt
    flows = pd.read_parquet(out / "flows.parquet")
    # the kernel's own engineering sessions may have used the same source port earlier:
    # the typed connection is the last one from that port
    typed = flows[(flows["src_ip"] == ENG_WS) & (flows["src_port"] == sport)]
    assert len(typed) >= 1, flows.tail()
    row = typed.sort_values("t_start").iloc[-1]
    assert (row["dst_ip"], int(row["dst_port"]), row["app"]) == (AHU, 502, "modbus")
    assert int(row["modbus_reads"]) == 1 and int(row["packets_rev"]) > 0
