"""The emulated backend before and after Mininet, measured side by side in one run.

The CPU is shared, so absolute seconds drift from run to run; both versions are
measured here in the same sitting, one after the other, and compared as ratios. The
old version is the twin at git revision OLD (default: the last commit before the
backend moved onto Mininet), unpacked into a temporary directory with `git archive`;
the new one is this working tree. For each it runs, as separate processes:

- bench/emulated_deploy.py: harbour-dc grown to ~200 devices, bare network (zoned)
- bench/emulated_realtime.py: the same at speed 1 with every face serving and the BMS
  polling for ~1,200 Modbus reads/s: deploy with faces, teardown, reads/s, lag p99
- `twin fidelity flagship`: the flow gap between the modelled and the emulated run
- `twin run flagship --backend mininet --speed 200`: the kernel's lag on the shipped
  flagship at the speed its test runs (35 hosts, 4 h in 72 s), the figure that regressed
  when the backend moved onto Mininet (a run's first frames were dropped for up to 1 s)
- `twin run flagship --backend mininet`, ended by SIGTERM, by a device face killed, and
  by SIGKILL followed by `twin reap`: what is left afterwards (root interfaces, named
  namespaces, root iptables rules, the run's processes, processes in its nodes)

Needs root. Usage: python bench/emulated_compare.py [--old REV] [--seconds 60] [--skip ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OLD = "eedb8b7"  # the hand-made namespace backend, last
PYTHON = sys.executable


@contextlib.contextmanager
def old_tree(rev: str) -> Iterator[Path]:
    """The twin at `rev`, unpacked beside this one (nothing in this checkout changes)."""
    with tempfile.TemporaryDirectory(prefix="twin-old-") as d:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(d, filter="data")
        yield Path(d)


def run_in(tree: Path, argv: list[str], timeout: float = 900) -> str:
    """A Python script or module of that tree, importing that tree's twin first."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    done = subprocess.run(
        [PYTHON, *argv], cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv} in {tree} failed: {done.stderr[-2000:]}")
    return done.stdout


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if not found:
        raise RuntimeError(f"no {pattern!r} in:\n{text}")
    return float(found.group(1))


def deploy(tree: Path) -> dict[str, float]:
    text = run_in(tree, ["bench/emulated_deploy.py", "--design", "zoned"])
    row = re.search(r"^zoned\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", text, re.M)
    if not row:
        raise RuntimeError(text)
    return {"bare deploy s": float(row.group(3)), "bare teardown s": float(row.group(5))}


def realtime(tree: Path, seconds: float) -> dict[str, float]:
    text = run_in(tree, ["bench/emulated_realtime.py", "--seconds", str(seconds)])
    return {
        "deploy with faces s": number(r"captures recording ([\d.]+) s", text),
        "teardown s": number(r"teardown ([\d.]+) s", text),
        "Modbus reads/s": number(r"= (\d+)/s", text),
        "lag p99 ms": number(r"p99 ([\d.]+) ms", text),
    }


def fidelity(tree: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="twin-fid-") as d:
        run_in(
            tree,
            ["-m", "twin.cli", "fidelity", "flagship", "--speed", "240", "--duration", "4h",
             "--out", d, "-q"],
        )  # fmt: skip
        overall = json.loads((Path(d) / "fidelity.json").read_text())
    found = overall.get("overall", overall)
    return {"fidelity flow gap": float(found["flow_gap"])}


def flagship(tree: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="twin-flag-") as d:
        run_in(
            tree,
            ["-m", "twin.cli", "run", "flagship", "--backend", "mininet", "--speed", "200",
             "--duration", "4h", "--out", str(Path(d) / "run"), "-q"],
        )  # fmt: skip
        stats = json.loads((Path(d) / "run" / "summary.json").read_text())["emulated"]
    return {
        "flagship lag p99 ms": float(stats["lag_p99_ms"]),
        "flagship lag max ms": float(stats["lag_max_ms"]),
    }


def machine() -> dict[str, Any]:
    def lines(argv: list[str]) -> list[str]:
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()

    rules = [re.sub(r"\[\d+:\d+\]", "", x) for x in lines(["iptables-save"]) if x[:1] != "#"]
    return {
        "links": {x.split(":")[1].strip().split("@")[0] for x in lines(["ip", "-o", "link"])},
        "netns": {x.split()[0] for x in lines(["ip", "netns", "list"]) if x},
        "rules": rules,
    }


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def inode(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def inside(namespaces: set[tuple[int, int]]) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and inode(int(entry.name)) in namespaces:
            out.append(int(entry.name))
    return out


def ending(tree: Path, how: str) -> int:
    """Things left on the machine after a flagship run ended `how` (and reaped, for kill)."""
    before = machine()
    with tempfile.TemporaryDirectory(prefix="twin-end-") as d:
        out = Path(d) / "run"
        env = os.environ | {"PYTHONPATH": str(tree)}
        proc = subprocess.Popen(
            [PYTHON, "-m", "twin.cli", "run", "flagship", "--backend", "mininet", "--speed",
             "60", "--out", str(out), "-q"],
            cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        state = wait_deployed(out, proc)
        pids = [e["pid"] for e in state["entries"] if "pid" in e]
        namespaces = {i for p in pids if (i := inode(p)) is not None} - {inode(os.getpid())}
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        elif how == "face":
            zygote = next(
                e["pid"] for e in state["entries"] if "faceproc" in " ".join(e.get("argv", []))
            )
            children = Path(f"/proc/{zygote}/task/{zygote}/children").read_text().split()
            os.kill(int(children[0]), signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=120)
        if how == "sigkill":
            run_in(tree, ["-m", "twin.cli", "reap", str(out)])
        time.sleep(0.5)
        after = machine()
        left = len(after["links"] - before["links"]) + len(after["netns"] - before["netns"])
        left += len(set(after["rules"]) ^ set(before["rules"]))
        left += sum(alive(p) for p in pids) + len(inside(namespaces))
        return left


def wait_deployed(out: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the run ended before it deployed")
        polls = out / "captures" / "bms.pcap"
        if polls.exists() and polls.stat().st_size > 24:
            state = json.loads((out / "emulated-state.json").read_text())
            if any("faceproc" in " ".join(e.get("argv", [])) for e in state["entries"]):
                return state
        time.sleep(0.2)
    raise RuntimeError("the run did not deploy in time")


def endings(tree: Path) -> dict[str, float]:
    return {
        "left after SIGTERM": ending(tree, "sigterm"),
        "left after a dying face": ending(tree, "face"),
        "left after SIGKILL + reap": ending(tree, "sigkill"),
    }


TARGETS = {
    "bare deploy s": "",
    "bare teardown s": "",
    "deploy with faces s": "<= 20",
    "teardown s": "<= 10",
    "Modbus reads/s": ">= 1000",
    "lag p99 ms": "<= 100",
    "fidelity flow gap": "(0.004 before)",
    "flagship lag p99 ms": "<= 100",
    "flagship lag max ms": "",
    "left after SIGTERM": "0",
    "left after a dying face": "0",
    "left after SIGKILL + reap": "0",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default=OLD, help=f"git revision of the old backend ({OLD})")
    parser.add_argument("--seconds", type=float, default=60.0, help="real-time run length")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["deploy", "realtime", "fidelity", "flagship", "endings"],
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    phases: dict[str, Callable[[Path], dict[str, float]]] = {
        "deploy": deploy,
        "realtime": lambda t: realtime(t, args.seconds),
        "fidelity": fidelity,
        "flagship": flagship,
        "endings": endings,
    }
    figures: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    with old_tree(args.old) as old:
        trees = {"old": old, "new": ROOT}
        for phase, measure in phases.items():
            if phase in args.skip:
                continue
            for side in ("old", "new"):  # one after the other, in the same sitting
                figures[side].update(measure(trees[side]))
                print(f"{phase} {side}: {figures[side]}", file=sys.stderr, flush=True)
    print(f"{'figure':<28}{'old':>10}{'new':>10}{'new/old':>10}  target")
    for name, target in TARGETS.items():
        if name not in figures["new"]:
            continue
        a, b = figures["old"].get(name), figures["new"][name]
        ratio = f"{b / a:.2f}" if a else "-"
        old = f"{a:.3g}" if a is not None else "-"
        print(f"{name:<28}{old:>10}{b:>10.3g}{ratio:>10}  {target}")


if __name__ == "__main__":
    main()
