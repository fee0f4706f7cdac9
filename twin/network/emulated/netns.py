"""Mininet nodes' network namespaces from Python: tools run inside one, code run inside one.

A node's namespace is reached through its shell's pid (`/proc/<pid>/ns/net`): tools run
with `mnexec -a <pid>` as Mininet's own `popen` does, and Python code in a thread that
entered the namespace with setns(2). A namespace is known by its inode, so the
processes inside it can be found, and ended, after its node's shell is gone.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from twin.errors import BackendError

CLONE_NEWNET = 0x40000000

# Tools run for a deployment die with the process that ran them: a run killed mid-way
# must not leave an `ip` still configuring behind the back of a later reap.
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL")

T = TypeVar("T")
Inode = tuple[int, int]  # (st_dev, st_ino) of a namespace
_libc = ctypes.CDLL(None, use_errno=True)


def path_of(pid: int) -> str:
    """Where the network namespace of a process is reachable while the process lives."""
    return f"/proc/{pid}/ns/net"


def inode_of(pid: int) -> Inode | None:
    """The network namespace a process is in, or None if it is gone."""
    try:
        st = os.stat(path_of(pid))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def inside(pid: int, argv: Iterable[str]) -> list[str]:
    """argv run in the network (and mount) namespace of a node's shell, as Mininet does."""
    return ["mnexec", "-a", str(pid), *argv]


def run(argv: list[str], *, what: str, stdin: str | None = None) -> str:
    """Run a tool to completion; its stdout, or a BackendError saying what failed and why."""
    try:
        done = subprocess.run(
            [*DIE_WITH_PARENT, *argv], input=stdin, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise BackendError(f"{what}: setpriv (util-linux) is not installed") from exc
    if done.returncode == 127:
        raise BackendError(f"{what}: {argv[0]} is not installed (see scripts/setup-system)")
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise BackendError(f"{what}: `{' '.join(argv)}` exited {done.returncode}: {detail}")
    return done.stdout


def run_all(jobs: dict[str, list[str]], *, what: str) -> None:
    """Several tools at once (one per node, say); every failure is reported together."""
    procs = {
        name: subprocess.Popen(
            [*DIE_WITH_PARENT, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in jobs.items()
    }
    failures = []
    for name, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{name}: {err.strip()}")
    if failures:
        raise BackendError(f"{what}: failed in {len(failures)} nodes: {failures[:5]}")


def enter(path: str) -> None:
    """Move the calling thread (only it) into the network namespace at `path`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackendError(f"no network namespace at {path} (its node is gone)") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise BackendError(f"cannot enter network namespace {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class _Outcome:
    value: object = None
    error: BaseException | None = None


def call_in(path: str, fn: Callable[[], T]) -> T:
    """fn() run in a fresh thread inside the namespace at `path`; its result or exception.

    Sockets fn opens stay in that namespace for life, and threads it starts begin there
    (a DeviceFace started here serves inside the host). The thread ends with fn, so the
    namespace switch never leaks into a pooled or long-lived thread.
    """
    outcome = _Outcome()

    def run_inside() -> None:
        try:
            enter(path)
            outcome.value = fn()
        except BaseException as exc:
            outcome.error = exc

    thread = threading.Thread(target=run_inside, name=f"netns:{path}", daemon=True)
    thread.start()
    thread.join()
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[return-value]


def _scan(directory: str, wanted: set[Inode]) -> list[int]:
    found: list[int] = []
    if not wanted:
        return found
    for entry in os.scandir(directory):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"{directory}/{entry.name}/ns/net")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if (st.st_dev, st.st_ino) in wanted:
            found.append(int(entry.name))
    return found


def pids_inside(namespaces: Iterable[Inode]) -> list[int]:
    """Processes in any of these network namespaces."""
    return _scan("/proc", set(namespaces))


def own_threads_inside(namespaces: Iterable[Inode]) -> list[int]:
    """Threads of this process inside these namespaces (a face started by call_in, say)."""
    return _scan("/proc/self/task", set(namespaces))
