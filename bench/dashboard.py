"""Dashboard load: N sessions, one-second updates at 60x; callback p95, console errors, memory.

Each session is its own exercise. All but one are driven over HTTP exactly as the page
drives them (the same callback requests, once a second); one is a real Chromium page, whose
console errors are counted. Server memory (RSS) is read at minute 2 and at the end.

    .venv/bin/python bench/dashboard.py                 # the issue's figure: 10 sessions, 10 min
    .venv/bin/python bench/dashboard.py --minutes 3     # a quicker look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-dashboard-token"
TICK_OUTPUTS = ["status.children", "facility-map.elements", "alert-feed.children", "my-actions.children",
                "hints.children", "physics.figure", "physics-t.data", "legend.children", "map-key.data"]  # fmt: skip
BEGIN_OUTPUTS = ["exercise.data", "setup-message.children", "uploaded.data"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(base: str, outputs: list[str], inputs: list[tuple[str, str, Any]],
         state: list[tuple[str, str, Any]], changed: str) -> dict[str, Any]:  # fmt: skip
    """POST one callback as the page does. Outputs are named as in /_dash-dependencies
    (duplicates carry an @hash suffix there, which we look up)."""
    name = _output_name(base, outputs)
    body = {
        "output": name,
        "outputs": [
            {"id": o.split(".")[0], "property": o.split(".")[1].split("@")[0]} for o in outputs
        ]
        if len(outputs) > 1
        else {"id": outputs[0].split(".")[0], "property": outputs[0].split(".")[1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": [changed],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
    }
    req = urllib.request.Request(base + "_dash-update-component", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
    return json.loads(raw) if raw else {}


_NAMES: dict[str, str] = {}


def _output_name(base: str, outputs: list[str]) -> str:
    plain = ".." + "...".join(outputs) + ".." if len(outputs) > 1 else outputs[0]
    if not _NAMES:
        with urllib.request.urlopen(base + "_dash-dependencies", timeout=30) as r:
            for dep in json.load(r):
                key = "|".join(x.split("@")[0] for x in dep["output"].strip(".").split("..."))
                _NAMES[key] = dep["output"]
    return _NAMES.get("|".join(outputs), plain)


def new_client(base: str) -> str:
    out = call(
        base,
        ["client.data"],
        [("url", "pathname", "/")],
        [("client", "data", None)],
        "url.pathname",
    )
    return str(out["response"]["client"]["data"])


def scenario_text(hours: float) -> str:
    text = (ROOT / "scenarios" / "flagship.yaml").read_text()
    # long enough for the whole measurement at 60x; the facility path resolves from scenarios/
    return text.replace("duration: 6h", f"duration: {hours:g}h")


class Session(threading.Thread):
    """One trainee over HTTP: start an exercise, then the page's one-second update."""

    def __init__(self, base: str, text: str, until: float) -> None:
        super().__init__(daemon=True)
        self.base, self.text, self.until = base, text, until
        self.latencies: list[tuple[float, float]] = []  # (wall time, seconds)
        self.errors: list[str] = []
        self.clock: list[tuple[float, float]] = []  # (wall time, exercise minutes shown)

    def run(self) -> None:
        client = new_client(self.base)
        out = call(self.base, BEGIN_OUTPUTS,
                   [("start", "n_clicks", 1), ("join", "n_clicks", None), ("client", "data", client)],
                   [("scenario", "value", "flagship"), ("uploaded", "data", {"text": self.text, "name": "bench"}),
                    ("design", "value", "flat"), ("speed", "value", 60), ("join-code", "value", None)],
                   "start.n_clicks")  # fmt: skip
        code = out["response"]["exercise"]["data"]
        shown_t, shown_map, n = None, None, 0
        while time.monotonic() < self.until:
            t0 = time.monotonic()
            n += 1
            try:
                r = call(self.base, TICK_OUTPUTS,
                         [("tick", "n_intervals", n), ("exercise", "data", code)],
                         [("client", "data", client), ("physics-t", "data", shown_t), ("map-key", "data", shown_map)],
                         "tick.n_intervals")["response"]  # fmt: skip
                shown_t = r.get("physics-t", {}).get("data", shown_t)
                m = re.search(r'"(\d+):(\d\d)"', json.dumps(r["status"]["children"]))
                if m:
                    self.clock.append((time.monotonic(), int(m.group(1)) * 60 + int(m.group(2))))
                shown_map = r.get("map-key", {}).get("data", shown_map)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            dt = time.monotonic() - t0
            self.latencies.append((t0, dt))
            time.sleep(max(0.0, 1.0 - dt))


def browser_session(base: str, until: float, errors: list[str], latencies: list[float]) -> None:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        sent: dict[Any, float] = {}
        page.on(
            "request",
            lambda r: sent.__setitem__(r, time.monotonic()) if "_dash-update" in r.url else None,
        )
        page.on(
            "requestfinished",
            lambda r: latencies.append(time.monotonic() - sent.pop(r)) if r in sent else None,
        )
        page.goto(base)
        page.click("#speed")
        page.locator("[role=option]").filter(has_text="60x").first.click()
        page.click("#start")
        while time.monotonic() < until:
            page.wait_for_timeout(1000)
        b.close()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument(
        "--minutes", type=float, default=10.0, help="wall minutes to measure (default 10)"
    )
    ap.add_argument("--no-browser", action="store_true", help="every session over HTTP")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())",
         "dashboard", "--port", str(port), "--trainer-token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base, timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        proc = psutil.Process(server.pid)
        start = time.monotonic()
        until = start + args.minutes * 60
        hours = 3 + args.minutes * 60 * 60 / 3600 + 1  # warm-up, the run at 60x, a margin
        text = scenario_text(hours)
        n_http = args.sessions - (0 if args.no_browser else 1)
        sessions = [Session(base, text, until) for _ in range(n_http)]
        for s in sessions:
            s.start()
        console: list[str] = []
        page_lat: list[float] = []
        browser = None
        if not args.no_browser:
            browser = threading.Thread(
                target=browser_session, args=(base, until, console, page_lat), daemon=True
            )
            browser.start()
        rss: dict[str, float] = {}
        mark = min(120.0, args.minutes * 60 / 5)
        while time.monotonic() < until:
            time.sleep(1.0)
            if "early" not in rss and time.monotonic() - start >= mark:
                rss["early"] = _rss(proc)
        rss["end"] = _rss(proc)
        for s in sessions:
            s.join(timeout=60)
        if browser is not None:
            browser.join(timeout=60)
        # callbacks after the first minute (ten exercises warming up at once) are the steady state
        steady = sorted(
            dt for s in sessions for t0, dt in s.latencies if t0 - start >= 60
        ) + sorted(page_lat)
        steady.sort()
        p95 = steady[int(0.95 * (len(steady) - 1))] * 1000 if steady else float("nan")
        errors = sum(len(s.errors) for s in sessions)
        growth = (rss["end"] - rss["early"]) / rss["early"] * 100
        print(f"sessions {args.sessions} ({n_http} over HTTP, {0 if args.no_browser else 1} in Chromium), "
              f"{args.minutes:g} min at 60x, one-second updates")  # fmt: skip
        print(f"callback latency: p50 {statistics.median(steady) * 1000:.0f} ms, p95 {p95:.0f} ms "
              f"over {len(steady)} callbacks (target p95 <= 300 ms)")  # fmt: skip
        paces = [_pace(s.clock, start + 60) for s in sessions]
        paces = [p for p in paces if p is not None]
        if paces:
            print(f"exercise pace after warm-up: median {statistics.median(paces):.0f}x, slowest {min(paces):.0f}x "
                  f"(simulated seconds per wall second; 60 keeps pace)")  # fmt: skip
        print(f"browser console errors: {len(console)}" + (f" ({console[:3]})" if console else ""))
        print(f"failed callbacks: {errors}")
        print(f"server memory: {rss['early']:.0f} MB at {mark / 60:.1f} min, {rss['end']:.0f} MB at the end: "
              f"{growth:+.1f} % (target <= 10 %)")  # fmt: skip
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


def _pace(clock: list[tuple[float, float]], after: float) -> float | None:
    """Simulated seconds per wall second over the session's clock readings after `after`."""
    live = [(t, m) for t, m in clock if t >= after and m > 0]
    if len(live) < 2 or live[-1][0] - live[0][0] < 10:
        return None
    return (live[-1][1] - live[0][1]) * 60 / (live[-1][0] - live[0][0])


def _rss(proc: psutil.Process) -> float:
    """Resident memory of the server and any processes it started, in MB."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total / 2**20


if __name__ == "__main__":
    sys.exit(main())
