"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TOKEN = "browser-test-token"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ROOT = Path(__file__).resolve().parent.parent.parent

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - CI has it
    pytestmark = pytest.mark.skip(reason="playwright (the Python package) is missing")
else:
    if not Path(CHROMIUM).exists():
        pytestmark = pytest.mark.skip(reason=f"chromium (Debian package, {CHROMIUM}) is missing")

pytestmark = [*([pytestmark] if "pytestmark" in globals() else []), pytest.mark.slow]  # type: ignore[has-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dashboard_server(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`twin dashboard` on a free loopback port; stopped (SIGTERM) at the end if still running."""
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())",
             "dashboard", "--port", str(port), "--trainer-token", TOKEN],
            cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One dashboard server for this module's browser tests."""
    with dashboard_server(tmp_path_factory.mktemp("dashboard")) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Tab:
    """One browser context (a person) with its page and the console errors it saw."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page: Page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str = "") -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_function("localStorage.getItem('client') !== null")

    def pick(self, dropdown: str, text: str) -> None:
        self.page.click(f"#{dropdown}")
        self.page.locator("[role=option]").filter(has_text=text).first.click()

    def client(self) -> str:
        return str(json.loads(self.page.evaluate("localStorage.getItem('client')")))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)

    def code(self) -> str:
        self.page.locator("#status").filter(has_text=re.compile(r"exercise [A-Z2-9]{6}")).wait_for()
        m = re.search(r"exercise ([A-Z2-9]{6})", self.page.inner_text("#status"))
        assert m, self.page.inner_text("#status")
        return m.group(1)

    def minutes(self) -> float:
        m = re.search(r"(\d+):(\d\d) of", self.page.inner_text("#status"))
        return int(m.group(1)) * 60 + int(m.group(2)) if m else -1.0

    def close(self) -> None:
        self.context.close()


def dash_call(base: str, output: str | list[str], inputs: list[tuple[str, str, Any]],
              state: list[tuple[str, str, Any]], changed: str, suffixed: bool = False) -> str:  # fmt: skip
    """POST one callback the way the page does, with whatever values we choose (a forgery).
    `suffixed`: the callback has duplicate outputs, named with an @hash the server lists."""
    if isinstance(output, str):
        oid, prop = output.split(".")
        name, outs = output, {"id": oid, "property": prop}
    else:
        name = ".." + "...".join(output) + ".."
        if suffixed:
            with urllib.request.urlopen(base + "_dash-dependencies", timeout=30) as r:
                deps = [d["output"] for d in json.load(r)]
            name = next(d for d in deps if all(o in d for o in output))
        outs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in output]  # type: ignore[assignment]
    body = {
        "output": name, "outputs": outs,
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": [changed],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
    }  # fmt: skip
    req = urllib.request.Request(base + "_dash-update-component", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def start(tab: Tab, speed: str = "600x") -> str:
    tab.go()
    tab.pick("speed", speed)
    tab.page.click("#start")
    return tab.code()


def respond(tab: Tab, device: str, action: str) -> None:
    tab.pick("action-device", device)
    tab.page.locator("#action-kind").filter(has_text=re.compile(".+")).wait_for()
    tab.pick("action-kind", action)
    tab.page.click("#apply")
    tab.page.click("#confirm")
    tab.page.locator("#action-message").filter(has_text="pending").wait_for()


def test_a_whole_exercise(server: str, browser: Browser) -> None:
    """Start the flagship, see an alert, quarantine the camera and restore the air handler, see the
    hall recover, and read the after-action score with its reasons; no console errors."""
    tab = Tab(browser, server)
    try:
        start(tab)
        tab.page.locator("#alert-feed table").wait_for(timeout=120_000)
        tab.shot("alert")
        assert "cam-lobby" in tab.page.inner_text("#alert-feed")
        respond(tab, "cam-lobby", "Quarantine")
        respond(tab, "ahu (", "Restore setpoints")
        tab.page.locator("#my-actions .applied").nth(1).wait_for(timeout=30_000)
        assert "quarantined cam-lobby" in tab.page.inner_text("#my-actions")
        # the hall is back inside its band once the attacker is gone and the setpoint restored
        deadline = time.monotonic() + 120
        hall = "document.querySelector('#physics .js-plotly-plot').data.find(t => t.name === 'server-hall').y.slice(-1)[0]"
        while not (tab.minutes() >= 80 and tab.page.evaluate(hall) < 27.0):
            assert time.monotonic() < deadline, tab.page.inner_text("#status")
            tab.page.wait_for_timeout(500)
        tab.shot("exercise")
        tab.page.click("#stop")
        tab.page.get_by_text("After-action review →").click()
        tab.page.locator("#score-lines table").wait_for(timeout=60_000)
        tab.page.wait_for_timeout(500)
        tab.shot("after-action")
        lines = tab.page.inner_text("#score-lines")
        assert "the attacker was cut off" in lines and "harm avoided" in lines
        assert 50 <= float(tab.page.inner_text("#score-total")) <= 100
        assert tab.errors == []
    finally:
        tab.close()


def test_two_browsers_do_not_see_each_other(server: str, browser: Browser) -> None:
    """Two people each get their own exercise; one cannot join, view or act on the other's, even
    by posting a forged action with the other's exercise code."""
    a, b = Tab(browser, server), Tab(browser, server)
    try:
        code_a, code_b = start(a, "60x"), start(b, "60x")
        assert code_a != code_b and code_a not in b.page.inner_text("#status")
        b.page.fill("#join-code", code_a)
        b.page.click("#join")
        b.page.locator("#setup-message").filter(has_text="no team exercise").wait_for()
        b.page.locator("#status").filter(has_text=code_b).wait_for()
        forged = dash_call(
            server, ["confirm-box.style", "confirm-text.children", "action-message.children"],
            [("apply", "n_clicks", None), ("confirm", "n_clicks", 1), ("cancel", "n_clicks", None)],
            [("action-device", "value", "cam-lobby"), ("action-kind", "value", "quarantine"),
             ("client", "data", b.client()), ("exercise", "data", code_a)],
            "confirm.n_clicks",
        )  # fmt: skip
        assert "not yours" in forged
        a.page.wait_for_timeout(1500)
        assert a.page.inner_text("#my-actions") == ""
        a.page.reload()  # a refresh finds the same exercise again
        assert a.code() == code_a
        b.shot("second-browser")
        assert a.errors == [] and b.errors == []
    finally:
        a.close()
        b.close()


def test_trainer_and_trainee_in_one_team_exercise(server: str, browser: Browser) -> None:
    """A trainer starts a team exercise; a trainee joins by code, gets the trainer's hint, shows on
    the roster, never sees compromised flags, and is refused when calling trainer callbacks."""
    trainer, trainee = Tab(browser, server), Tab(browser, server)
    try:
        trainer.go("trainer")
        trainer.page.fill("#trainer-token", TOKEN)
        trainer.page.click("#become-trainer")
        trainer.page.locator("#trainer-message").filter(has_text="unlocked").wait_for()
        trainer.page.click("#team-start")
        trainer.page.locator("#team-code").filter(has_text="Exercise code").wait_for()
        code = re.search(
            r"Exercise code\s*([A-Z2-9]{6})", trainer.page.inner_text("#team-code")
        ).group(1)  # type: ignore[union-attr]
        trainee.go()
        trainee.page.fill("#join-code", code)
        trainee.page.click("#join")
        trainee.page.locator("#status").filter(has_text=f"{code} (team)").wait_for()
        trainer.page.fill("#hint-text", "Look at who the lobby camera talks to.")
        trainer.page.click("#push-hint")
        trainee.page.locator("#hints").filter(has_text="lobby camera").wait_for()
        trainer.page.locator("#roster").filter(has_text="trainee 1").wait_for()
        assert "compromised" not in trainee.page.inner_text("#legend")
        assert "compromised" in trainer.page.inner_text("#team-code")
        trainer.shot("trainer")
        trainee.shot("trainee")
        refused = [
            dash_call(
                server, "trainer-message.children",
                [(i, "n_clicks", 1 if i == which else None) for i in
                 ("become-trainer", "team-start", "pause-all", "resume-team", "stop-team", "inject", "push-hint")],
                [("trainer-token", "value", "guess"), ("team-scenario", "value", "flagship"),
                 ("team-design", "value", "flat"), ("team-speed", "value", 60),
                 ("inject-technique", "value", "flood"), ("inject-target", "value", "ahu"),
                 ("hint-text", "value", "x"), ("client", "data", trainee.client())],
                f"{which}.n_clicks",
            )
            for which in ("become-trainer", "team-start", "pause-all", "stop-team", "inject", "push-hint")
        ]  # fmt: skip
        assert all(
            "refused" in r or "only a trainer" in r or "wrong trainer token" in r for r in refused
        ), refused
        assert "finished" not in trainee.page.inner_text("#status")  # the refused stop did nothing
        assert trainer.errors == [] and trainee.errors == []
    finally:
        trainer.close()
        trainee.close()


def test_every_page_renders(server: str, browser: Browser) -> None:
    """Each page opens without console errors and says what to do next when it has nothing yet;
    an uploaded scenario's problems are shown with their field paths."""
    tab = Tab(browser, server)
    try:
        for path, text in (("after-action", "no exercise yet"), ("detector-lab", "No benchmark yet"),
                           ("what-if", "No study results yet"), ("trainer", "trainer token")):  # fmt: skip
            tab.go(path)
            tab.page.get_by_text(text, exact=False).first.wait_for()
            tab.shot(f"page-{path}")
        tab.go()
        bad = (
            (ROOT / "scenarios" / "flagship.yaml")
            .read_text()
            .replace("design: flat", "design: flatt")
        )
        tab.page.set_input_files("#upload input[type=file]",
                                 files=[{"name": "mine.yaml", "mimeType": "application/x-yaml", "buffer": bad.encode()}])  # fmt: skip
        tab.page.locator("#upload-status").filter(
            has_text="design: unknown design 'flatt'"
        ).wait_for()
        tab.shot("upload-problems")
        assert tab.errors == []
        for wanted in ("/etc", str(ROOT), "../../"):  # only reports of listed studies are served
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(
                    server + "study-report?dir=" + urllib.parse.quote(wanted), timeout=10
                )
    finally:
        tab.close()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_exercises_end_with_the_server(how: str, tmp_path: Path) -> None:
    """However the server ends (SIGTERM, or SIGKILL with no chance to clean up), the processes
    running its exercises end too."""
    import signal

    import psutil

    with dashboard_server(tmp_path) as (base, proc):
        client = json.loads(dash_call(base, "client.data", [("url", "pathname", "/")], [("client", "data", None)],
                                      "url.pathname"))["response"]["client"]["data"]  # fmt: skip
        started = dash_call(
            base, ["exercise.data", "setup-message.children", "uploaded.data"],
            [("start", "n_clicks", 1), ("join", "n_clicks", None), ("client", "data", client)],
            [("scenario", "value", "flagship"), ("uploaded", "data", None), ("design", "value", "flat"),
             ("speed", "value", 60), ("join-code", "value", None)],
            "start.n_clicks", suffixed=True,
        )  # fmt: skip
        assert "started" in started
        ours = psutil.Process(proc.pid).children(recursive=True)
        assert ours
        proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(ours, timeout=20)
        assert alive == []
