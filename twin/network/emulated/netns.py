"""Named network namespaces: iproute2 batches, sysctls, and Python code run inside one."""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from twin.errors import BackendError

NETNS_DIR = Path("/run/netns")  # where `ip netns add` pins a namespace by name
CLONE_NEWNET = 0x40000000
PARALLEL = 8  # iproute2 processes at once when configuring many namespaces

# Tools run for a deployment die with the process that ran them: a run killed mid-way
# must not leave an `ip` still adding namespaces behind the back of a later reap.
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL")

T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


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


def _ip_argv(netns: str | None, force: bool) -> list[str]:
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", netns]
    if force:  # go on past a failing line: for teardown, where some things may be gone
        argv.append("-force")
    return [*argv, "-batch", "-"]


def ip_batch(
    commands: Iterable[str], *, what: str, netns: str | None = None, force: bool = False
) -> None:
    """Run `ip` commands (without the leading 'ip') in one process, in `netns` or the root."""
    lines = list(commands)
    if lines:
        run(_ip_argv(netns, force), what=what, stdin="\n".join(lines) + "\n")


def ip_batches(jobs: Mapping[str, Iterable[str]], *, what: str) -> None:
    """One `ip -batch` per namespace, a few at a time; every failure is reported together."""
    running: list[tuple[str, subprocess.Popen[str]]] = []
    failures: list[str] = []

    def finish(netns: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.wait() != 0:
            failures.append(f"{netns}: {err.strip()}")

    try:
        for netns, commands in jobs.items():
            lines = list(commands)
            if not lines:
                continue
            if len(running) >= PARALLEL:
                finish(*running.pop(0))
            proc = subprocess.Popen(
                [*DIE_WITH_PARENT, *_ip_argv(netns, False)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            running.append((netns, proc))
            assert proc.stdin is not None
            proc.stdin.write("\n".join(lines) + "\n")  # a few hundred bytes: never blocks
            proc.stdin.close()
    finally:
        for netns, proc in running:
            finish(netns, proc)
    if failures:
        raise BackendError(f"{what}: ip failed in {len(failures)} namespaces: {failures[:5]}")


def _enter(netns: str) -> None:
    """Move the calling thread (only it) into a named network namespace."""
    try:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackendError(f"no network namespace {netns!r}") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise BackendError(f"cannot enter network namespace {netns!r}: {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class _Outcome:
    value: object = None
    error: BaseException | None = None


def call_in(netns: str, fn: Callable[[], T]) -> T:
    """fn() run in a fresh thread inside `netns`; its result or exception comes back here.

    Sockets fn opens stay in that namespace for life, and threads it starts begin there
    (a DeviceFace started here serves inside the host). The thread ends with fn, so the
    namespace switch never leaks into a pooled or long-lived thread.
    """
    outcome = _Outcome()

    def inside() -> None:
        try:
            _enter(netns)
            outcome.value = fn()
        except BaseException as exc:
            outcome.error = exc

    thread = threading.Thread(target=inside, name=f"netns:{netns}", daemon=True)
    thread.start()
    thread.join()
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[return-value]


def write_sysctls(settings: Mapping[str, Mapping[str, str]]) -> None:
    """Set sysctls per namespace: {netns: {'net/ipv4/ip_forward': '1'}}.

    Keys under net/bridge are skipped where the kernel has no br_netfilter.
    """

    def write_all() -> None:
        for netns, values in settings.items():
            _enter(netns)  # /proc/sys/net shows the namespace of the thread that opens it
            for key, value in values.items():
                path = Path("/proc/sys") / key
                if key.startswith("net/bridge/") and not path.exists():
                    continue
                try:
                    path.write_text(value)
                except OSError as exc:
                    raise BackendError(f"{netns}: cannot set {key}={value}: {exc}") from exc

    if settings:
        call_in(next(iter(settings)), write_all)


def exists(netns: str) -> bool:
    return (NETNS_DIR / netns).exists()


def _inodes(namespaces: Iterable[str]) -> dict[tuple[int, int], str]:
    wanted: dict[tuple[int, int], str] = {}
    for name in namespaces:
        try:
            st = os.stat(NETNS_DIR / name)
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = name
    return wanted


def _scan(directory: str, wanted: dict[tuple[int, int], str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    if not wanted:
        return found
    for entry in os.scandir(directory):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"{directory}/{entry.name}/ns/net")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None:
            found.setdefault(owner, []).append(int(entry.name))
    return found


def pids_inside(namespaces: Iterable[str]) -> dict[str, list[int]]:
    """Processes whose network namespace is one of these, found by the namespace's inode."""
    return _scan("/proc", _inodes(namespaces))


def own_threads_inside(namespaces: Iterable[str]) -> dict[str, list[int]]:
    """Threads of this process inside these namespaces (a face started by call_in, say)."""
    return _scan("/proc/self/task", _inodes(namespaces))
