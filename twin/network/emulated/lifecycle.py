"""What an emulated run created, torn down in reverse even after errors, and reaped after a kill.

The inventory is written to a state file as each thing is made, so a run killed with
SIGKILL (no `finally` runs) leaves a list that `reap(state_file)` works through later.
Only two kinds of thing are ever made, each known by pid *and* start time so a recycled
pid is never signalled:

- Mininet nodes: a shell in network namespaces of its own (every bridge, veth, address,
  route and iptables rule of the twin lives inside one, so it goes with it). The
  namespace ends with the last process inside it: the shell is killed, and so is
  anything still in its namespace (found by the namespace's inode, taken while the
  recorded shell is alive, so a namespace that is gone is never mistaken for another).
- processes started in a node (faces, pollers, captures, tools): a session each,
  ended as a group, SIGTERM first so tcpdump can close its file.

Nothing is ever found or ended by name, as Mininet's own cleanup does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from twin.errors import BackendError
from twin.network.emulated import netns as ns

log = logging.getLogger(__name__)

STATE_NAME = "emulated-state.json"
STATE_FORMAT = "twin-emulated-inventory/1"
GRACE = 2.0  # seconds a process gets to end after SIGTERM before SIGKILL


def start_ticks(pid: int) -> int | None:
    """When a live process started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5)


@dataclass(frozen=True)
class ProcessId:
    """A process told apart from any later one that reuses its pid."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        start = start_ticks(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start


@dataclass(frozen=True)
class Reaped:
    """What a teardown or reap ended: counts a caller can report."""

    processes: int
    namespaces: int  # Mininet nodes, each the only holder of its network namespaces


def _signal(proc: ProcessId, group: bool, sig: signal.Signals) -> None:
    if not proc.alive() or proc.pid == os.getpid():
        return
    try:
        if group:  # started as a session leader: its own children share its group id
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop_processes(
    entries: Sequence[dict[str, Any]], popens: dict[int, subprocess.Popen[bytes]]
) -> int:
    procs = [(ProcessId(e["pid"], e["start"]), bool(e.get("group"))) for e in entries]
    live = [(p, g) for p, g in procs if p.alive()]
    for p, g in live:
        _signal(p, g, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        for p, _ in live:
            popen = popens.get(p.pid)
            if popen is not None:
                popen.poll()  # collects our own child; another's is collected by init
        if not any(p.alive() for p, _ in live):
            break
        time.sleep(0.01)
    for p, g in live:
        _signal(p, g, signal.SIGKILL)
    for p, _ in procs:
        popen = popens.pop(p.pid, None)
        if popen is not None:
            popen.wait()
    return len(live)


def _stop_nodes(
    entries: Sequence[dict[str, Any]], popens: dict[int, subprocess.Popen[bytes]]
) -> int:
    """Kill the nodes' shells and everything inside their namespaces; wait until all is gone."""
    nodes = [ProcessId(e["pid"], e["start"]) for e in entries]
    live = [n for n in nodes if n.alive()]
    # only namespaces a live recorded shell is in: the inode of one that is gone may be reused
    namespaces = {i for n in live if (i := ns.inode_of(n.pid)) is not None}
    for node in live:
        _signal(node, True, signal.SIGKILL)  # an interactive shell shrugs off SIGTERM
    deadline = time.monotonic() + GRACE
    while True:
        strays = [p for p in ns.pids_inside(namespaces) if p != os.getpid()]
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for node in nodes:
            popen = popens.get(node.pid)
            if popen is not None:
                popen.poll()  # collects our own child; another's is collected by init
        if (not strays and not any(n.alive() for n in live)) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for node in nodes:
        popen = popens.pop(node.pid, None)
        if popen is not None:
            popen.wait()
    # Thread.join() returns a moment before the kernel task is gone: give them that moment
    deadline = time.monotonic() + 0.5
    lingering = ns.own_threads_inside(namespaces)
    while lingering and time.monotonic() < deadline:
        time.sleep(0.02)
        lingering = ns.own_threads_inside(namespaces)
    if lingering:  # the namespace (and its links) outlives its shell until these end
        log.warning("%d threads of this process are still inside the run's nodes", len(lingering))
    left = [n.pid for n in live if n.alive()] + ns.pids_inside(namespaces)
    if left:
        raise BackendError(f"processes of the run's nodes did not end: {sorted(set(left))[:10]}")
    return len(live)


def _delete_named_namespaces(names: Sequence[str]) -> int:
    """Named namespaces (`ip netns add`) an earlier twin made: what is inside them, then them."""
    paths = [Path("/run/netns") / n for n in names if (Path("/run/netns") / n).exists()]
    inodes = set()
    for path in paths:
        st = path.stat()
        inodes.add((st.st_dev, st.st_ino))
    for pid in ns.pids_inside(inodes):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for path in paths:
        ns.run(["ip", "netns", "del", path.name], what="delete an earlier run's namespace")
    return len(paths)


def _tear_down(
    entries: Sequence[dict[str, Any]], popens: dict[int, subprocess.Popen[bytes]]
) -> tuple[Reaped, list[str]]:
    """Undo entries newest first, a run of one kind at a time; go on past failures."""
    errors: list[str] = []
    stopped = deleted = 0
    pending = list(reversed(entries))
    while pending:
        kind = pending[0]["kind"]
        run: list[dict[str, Any]] = []
        while pending and pending[0]["kind"] == kind:
            run.append(pending.pop(0))
        try:
            if kind == "process":
                stopped += _stop_processes(run, popens)
            elif kind == "node":
                deleted += _stop_nodes(run, popens)
            elif kind == "netns":  # the inventory of a twin from before Mininet
                deleted += _delete_named_namespaces([e["name"] for e in run])
            elif kind == "dir":
                for entry in run:
                    shutil.rmtree(entry["path"], ignore_errors=True)
            else:
                errors.append(f"unknown inventory entry {run[0]!r}")
        except (BackendError, OSError) as exc:
            errors.append(str(exc))
    return Reaped(stopped, deleted), errors


def _write_state(path: Path, owner: ProcessId | None, entries: list[dict[str, Any]]) -> None:
    owner_json = None if owner is None else {"pid": owner.pid, "start": owner.start}
    state = {"format": STATE_FORMAT, "owner": owner_json, "entries": entries}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)  # a reader sees the old list or the new one, never half


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackendError(f"no inventory at {path}") from None
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read inventory {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise BackendError(f"{path} is not a {STATE_FORMAT} inventory")
    return state


class Inventory:
    """Everything one emulated run made, in order, mirrored to a state file as it grows.

    A context manager: leaving it tears everything down newest first, whatever raised.
    The state file is removed once teardown succeeded, and kept (for `reap`) if not.
    """

    def __init__(self, state_file: Path) -> None:
        self.state_file = Path(state_file)
        self.owner = ProcessId.of(os.getpid())
        self._entries: list[dict[str, Any]] = []
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()  # hosts may start processes from several threads
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists():
            raise BackendError(f"{self.state_file} already lists a run's leftovers; reap it first")
        self._save()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raising=exc is None)

    @property
    def nodes(self) -> list[ProcessId]:
        return [ProcessId(e["pid"], e["start"]) for e in self._entries if e["kind"] == "node"]

    @property
    def processes(self) -> list[ProcessId]:
        return [ProcessId(e["pid"], e["start"]) for e in self._entries if e["kind"] == "process"]

    def _save(self) -> None:
        _write_state(self.state_file, self.owner, self._entries)

    def started_node(self, name: str, shell: subprocess.Popen[bytes]) -> None:
        """Record a Mininet node just created: its shell holds its namespaces."""
        pid = ProcessId.of(shell.pid)
        if pid is None:
            raise BackendError(f"the shell of Mininet node {name} ended at once")
        entry = {"kind": "node", "pid": pid.pid, "start": pid.start, "name": name}
        with self._lock:
            self._popens[shell.pid] = shell
            self._entries.append(entry)
            self._save()

    def started(self, popen: subprocess.Popen[bytes], *, where: str, argv: Sequence[str]) -> None:
        """Record a process just started in a session of its own (so its group is its pid)."""
        pid = ProcessId.of(popen.pid)
        if pid is None:  # it ended already; nothing to track but its exit status
            popen.wait()
            return
        entry = {
            "kind": "process",
            "pid": pid.pid,
            "start": pid.start,
            "group": True,
            "where": where,
            "argv": list(argv),
        }
        with self._lock:
            self._popens[popen.pid] = popen
            self._entries.append(entry)
            self._save()

    def made_dir(self, path: str | Path) -> None:
        """Record a scratch directory of the run's (its faces' socket, outside the run
        directory for the socket path's length limit): a SIGKILLed run's is reaped too."""
        with self._lock:
            self._entries.append({"kind": "dir", "path": str(path)})
            self._save()

    def adopted(self, processes: Sequence[tuple[int, str, str]]) -> None:
        """Record processes another recorded one started, (pid, where, what) each: a face
        forked by the face parent, say. Ended by pid alone, never as a group."""
        entries = []
        for pid, where, what in processes:
            known = ProcessId.of(pid)
            if known is not None:
                entries.append(
                    {
                        "kind": "process",
                        "pid": known.pid,
                        "start": known.start,
                        "group": False,
                        "where": where,
                        "argv": [what],
                    }
                )
        with self._lock:
            self._entries += entries
            self._save()

    def stop(self, popen: subprocess.Popen[bytes]) -> None:
        """End one tracked process (and its group) now, and forget it."""
        with self._lock:
            entries = [e for e in self._entries if e["kind"] == "process" and e["pid"] == popen.pid]
        if not entries:
            raise ValueError(f"process {popen.pid} is not in this inventory")
        _stop_processes(entries, self._popens)
        with self._lock:
            self._entries = [e for e in self._entries if e not in entries]
            self._save()

    def close(self, *, raising: bool = True) -> Reaped:
        """Tear everything down newest first; BackendError lists what could not be undone."""
        with self._lock:
            entries = list(self._entries)
        reaped, errors = _tear_down(entries, self._popens)
        if errors:
            message = f"teardown left things behind ({self.state_file} keeps the list): {errors}"
            if raising:
                raise BackendError(message)
            log.error("%s", message)  # another error is on its way up; do not mask it
            return reaped
        with self._lock:
            self._entries = []
            self.state_file.unlink(missing_ok=True)
        return reaped


def owner_alive(state_file: Path) -> bool:
    """Is the process that wrote this inventory still running?"""
    owner = _read_state(state_file).get("owner")
    return owner is not None and ProcessId(owner["pid"], owner["start"]).alive()


def reap(state_file: str | Path) -> Reaped:
    """Undo what a dead run's inventory lists; the state file goes once all is gone.

    Fine on a run that had made nothing yet; a second call finds no inventory and says
    so. Refuses while the run that wrote it is alive (it tears down itself).
    """
    path = Path(state_file)
    state = _read_state(path)
    owner = state.get("owner")
    if (
        owner is not None
        and owner["pid"] != os.getpid()
        and ProcessId(owner["pid"], owner["start"]).alive()
    ):
        raise BackendError(f"{path}: the run that owns it (pid {owner['pid']}) is alive")
    reaped, errors = _tear_down(state.get("entries", []), {})
    if errors:
        raise BackendError(f"reap of {path} left things behind: {errors}")
    path.unlink(missing_ok=True)
    return reaped


def stale_states(runs: str | Path) -> list[Path]:
    """Inventories under runs/<id>/ whose run is gone: what a new invocation should reap."""
    out = []
    for path in sorted(Path(runs).glob(f"*/{STATE_NAME}")):
        try:
            if not owner_alive(path):
                out.append(path)
        except BackendError:
            continue
    return out
