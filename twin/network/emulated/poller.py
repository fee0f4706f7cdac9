"""A BMS or gateway poller as a process in its host: Modbus reads over the emulated network.

It keeps one connection per polled device and reads every register block of each at
the poll interval (wall-clock: the scenario's interval divided by the run's speed). A
device that does not answer is retried every `retry` seconds rather than every cycle, as
a SCADA master backs off, so a firewall that drops its packets does not stall the rest.
Once a second it prints a status line (JSON) the kernel reads:

    {"t": wall, "reads": n, "failures": n, "down": [ip, ...], "overruns": n}

Run as `python -m twin.network.emulated.poller < plan.json`, where the plan is
{"interval": s, "timeout": s, "retry": s, "source": ip, "targets": [{"ip", "unit", "blocks": [[table,
address, count], ...]}]}.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from twin.errors import BackendError
from twin.modbus import ModbusExceptionError, ModbusPeer

STATUS_EVERY = 1.0


@dataclass
class Target:
    ip: str
    unit: int
    blocks: list[tuple[str, int, int]]
    peer: ModbusPeer
    down_until: float = 0.0  # no retry before this wall time
    down: bool = False
    failures: int = field(default=0)


def poll(plan: dict[str, Any]) -> None:
    interval = float(plan["interval"])
    timeout = float(plan.get("timeout", 0.5))
    retry = float(plan.get("retry", 5.0))
    source = plan.get("source")  # the poller's address, if its host holds several
    targets = [
        Target(
            t["ip"],
            int(t["unit"]),
            [(b[0], int(b[1]), int(b[2])) for b in t["blocks"]],
            ModbusPeer(t["ip"], 502, unit=int(t["unit"]), timeout=timeout, source=source),
        )
        for t in plan["targets"]
    ]
    reads = failures = overruns = 0
    next_status = time.time() + STATUS_EVERY
    due = time.time()
    while True:
        for target in targets:
            now = time.time()
            if target.down and now < target.down_until:
                continue
            try:
                for table, address, count in target.blocks:
                    target.peer.read(table, address, count)
                    reads += 1
                target.down = False
            except ModbusExceptionError:
                reads += 1  # answered, with an exception: the device is there
                target.down = False
            except BackendError:
                failures += 1
                target.peer.close()
                target.down, target.down_until = True, time.time() + retry
        now = time.time()
        if now >= next_status:
            status = {
                "t": now,
                "reads": reads,
                "failures": failures,
                "down": [t.ip for t in targets if t.down],
                "overruns": overruns,
            }
            print(json.dumps(status), flush=True)
            next_status = now + STATUS_EVERY
        due += interval
        if due > now:
            time.sleep(due - now)
        else:
            overruns += 1
            due = now  # behind: poll again at once, but never in a burst to catch up


def main() -> int:
    try:
        poll(json.load(sys.stdin))
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
