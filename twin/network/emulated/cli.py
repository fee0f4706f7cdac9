"""Mininet's own CLI on a live run: the mininet> prompt over the run's network, kernel going on.

The prompt runs in a thread of its own while the kernel, the physics and the detectors
keep real time in the run's main thread. What a person types goes to the hosts' shells
(Mininet's nodes), so it is real traffic: the router's captures record it, it becomes
flows, and detectors may raise alerts on it. Leaving the prompt (`exit`, `quit` or
end of input) ends the run, once the flows of what was typed have been exported.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from mininet.cli import CLI

INTRO = """\
Mininet's CLI on the live run of {facility} ({design}): {hosts} hosts, zone \
switches {switches}, router {router}.
  nodes / net / dump          what is there        {example} ip addr       a host's view
  {example} python3 -c '...'    real traffic, in the flows and seen by the detectors
  py net['{example}'].IP()     Python, with net (Mininet) and run (the twin's network)
exit (or end of input) ends the run; its results are kept.
"""


class RunCLI(CLI):
    """Mininet's CLI with the run's network at hand (`py run.policy`, say)."""

    def __init__(self, net: Any, run: Any, intro: str, stdin: IO[str]) -> None:
        self.run_network = run
        self.intro = intro
        super().__init__(net, stdin=stdin)

    def run(self) -> None:
        self.locals["run"] = self.run_network
        super().run()


def intro_for(net: Any, topology: Any) -> str:
    hosts = [h.name for h in topology.hosts]
    example = next((h.name for h in topology.hosts if h.role == "device"), hosts[0])
    return INTRO.format(
        facility=topology.facility, design=topology.design, hosts=len(hosts),
        switches=", ".join(s.ifname for s in topology.segments), router=topology.router,
        example=example,
    )  # fmt: skip


def open_cli(
    net: Any, run: Any, topology: Any, on_leave: Callable[[], None], stdin: IO[str] = sys.stdin
) -> threading.Thread:
    """The prompt in a daemon thread; `on_leave` is called when the person leaves it."""

    def session() -> None:
        try:
            RunCLI(net, run, intro_for(net, topology), stdin)
        finally:
            on_leave()

    thread = threading.Thread(target=session, name="mininet-cli", daemon=True)
    thread.start()
    return thread
