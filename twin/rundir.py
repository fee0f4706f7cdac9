"""Run directories: a run writes into a directory of its own, under a lock, and finishes cleanly.

The API is small on purpose (the CLI, `twin.run.execute` and studies use it):

- `claim(path, force=False)` makes or takes `path` for one run and returns a `RunDirectory`
  holding an exclusive `flock` on its marker file `.twin-run` until `release()` (or the
  process's death: the kernel drops the lock). It refuses, with an `InputError` (exit 2):
  a path that is not a directory; a non-empty directory that is not a twin run; a directory
  another run is writing into (at once, naming its pid); a previous twin run unless `force`,
  and even then a killed emulated run that `twin reap` has not cleaned. `force` empties the
  previous run first, so no stale table, `.part` file, report.html or dataset/ sits beside
  the new results.
- `claim_results(path, kind)`: a bench's or study's directory, new, empty or its own (resumed).
- `is_twin_run(path)` says whether a directory holds a twin run (its marker, or a summary.json
  written by a twin from before markers).
- `check_name(text, what)` and `fresh_path(parent, *parts)`: names that become paths match
  `NAME`, and a default directory never lands on an existing one.
- `interruptible()` (the CLI, around a run) and `finishing()` (the run, around writing its
  results): the first SIGINT or SIGTERM interrupts the run; any signal after it, or during
  `finishing()`, is only noted, so a second Ctrl-C cannot break the writing of the results.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from twin.errors import InputError

MARKER = ".twin-run"
RESULTS_MARKER = ".twin-results"  # a bench's or a study's directory (claim_results)
EMULATED_STATE = "emulated-state.json"  # a killed emulated run's record of what to reap
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(text: str, what: str = "name") -> str:
    """`text` if it is safe as one path component (see NAME_RULE), else an InputError."""
    if not NAME.match(text) or text in (".", ".."):
        raise InputError(f"{what} {text!r} cannot name a directory: use {NAME_RULE}")
    return text


def fresh_path(parent: Path, *parts: str) -> Path:
    """`parent/<parts joined by '-'>`, with '-2', '-3'... added if that already exists."""
    base = "-".join(check_name(p, "name part") for p in parts)
    candidate = parent / base
    n = 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{base}-{n}"
    return candidate


def _entries(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.name != MARKER]


def is_twin_run(path: Path) -> bool:
    """Whether `path` holds a twin run: its marker, or a summary.json a twin wrote."""
    if (path / MARKER).is_file():
        return True
    summary = path / "summary.json"
    if not summary.is_file():
        return False
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"scenario", "status", "versions"} <= set(data)


def _holder(marker: Path) -> str:
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        return f" (pid {int(info['pid'])}, started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


class RunDirectory:
    """One run's claim on its directory; `release()` (or leaving the `with`) drops the lock."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:
        self.release()


def claim(path: str | Path, *, force: bool = False) -> RunDirectory:
    """Make or take `path` for one run, locked for the run's life; see the module docstring."""
    path = Path(path)
    where = str(path)
    with _as_input_error(where, "a run"):
        if path.exists() and not path.is_dir():
            raise InputError(f"{where} exists and is not a directory; give a new --out")
        path.mkdir(parents=True, exist_ok=True)
        if _entries(path) and not is_twin_run(path):
            raise InputError(
                f"{where} is not empty and holds no twin run; refusing to write into it "
                "(give a new or empty --out)"
            )
        fd = os.open(path / MARKER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise InputError(
                f"another twin run is writing into {where}{_holder(path / MARKER)}; "
                "wait for it or give another --out"
            ) from None
        raise InputError(f"cannot lock {where}: {exc.strerror or exc}") from None
    run = RunDirectory(path, fd)
    try:
        previous = _entries(path)
        if previous:
            if (path / EMULATED_STATE).exists():
                raise InputError(
                    f"{where} holds an emulated run that was killed outright and not cleaned "
                    f"up: run `twin reap {where}` first"
                )
            if not force:
                raise InputError(
                    f"{where} holds a previous twin run; give --force to replace it, "
                    "or another --out"
                )
            for entry in previous:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        record = json.dumps(
            {"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ).encode()
        # written in place, never replaced: the lock belongs to this inode
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
    except InputError:
        run.release()
        raise
    except OSError as exc:
        run.release()
        raise InputError(f"cannot prepare {where} for a run: {exc.strerror or exc}") from None
    return run


def claim_results(path: str | Path, kind: str) -> Path:
    """A directory of many runs' results (`kind`: "bench" or "study"): new, empty, or one the
    same kind of command made before, where it resumes. Anything else is refused with an
    InputError, so a results directory never writes over a user's files.

    The mark is `.twin-results` naming the kind; a directory from before the mark is known
    by its `results/` records and `attempts.log`.
    """
    path = Path(path)
    where = str(path)
    mark = path / RESULTS_MARKER
    with _as_input_error(where, f"{kind} results"):
        if path.exists() and not path.is_dir():
            raise InputError(f"{where} exists and is not a directory; give a new --out")
        path.mkdir(parents=True, exist_ok=True)
        entries = [p for p in path.iterdir() if p.name != RESULTS_MARKER]
        made = mark.read_text(encoding="utf-8").strip() if mark.is_file() else None
        if made is None and (path / "results").is_dir() and (path / "attempts.log").is_file():
            made = kind  # a results directory from before the mark
        if entries and made != kind:
            what = f"the results of a twin {made}" if made else "files that are not twin results"
            raise InputError(
                f"{where} holds {what}; refusing to write {kind} results into it "
                "(give a new or empty --out)"
            )
        if made is None or not mark.is_file():
            mark.write_text(kind + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def _as_input_error(where: str, purpose: str) -> Iterator[None]:
    """A path the user gave that cannot be used is bad input (exit 2), named, not a crash."""
    try:
        yield
    except ValueError:  # a NUL byte in the path
        raise InputError(f"not a valid directory path: {where!r}") from None
    except OSError as exc:
        raise InputError(f"cannot use {where} for {purpose}: {exc.strerror or exc}") from None


# --- interruption -----------------------------------------------------------------------------


class _Signals:
    """Process-wide: signal handlers are process-wide too, and run in the main thread."""

    def __init__(self) -> None:
        self.interrupted = False  # the first signal has been turned into KeyboardInterrupt
        self.finishing = 0  # depth of finishing() sections under way
        self.guarded = False  # inside interruptible(): its signals belong to this run
        self.noted: list[int] = []


_STATE = _Signals()
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _STATE.interrupted or _STATE.finishing:
        _STATE.noted.append(signum)
        if len(_STATE.noted) == 1:  # said once; more signals change nothing
            with contextlib.suppress(OSError):
                os.write(2, b"\nstill finishing: the results are being written, then twin exits\n")
        return
    _STATE.interrupted = True
    raise KeyboardInterrupt(f"signal {signum}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(keep_if_interrupted: bool = False) -> Iterator[None]:
    if not _main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in _SIGNALS:
        signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        # after an interruption the process is on its way out: a late signal must not kill
        # it (exit status 130, not death by signal) or cut its last words
        if not (keep_if_interrupted and _STATE.interrupted):
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Around a whole run: SIGINT and SIGTERM interrupt it once (KeyboardInterrupt), then only
    get noted, so the run's orderly finish completes whatever else arrives. After an
    interruption the noting handlers stay, until the process exits."""
    _STATE.interrupted = False
    _STATE.noted = []
    _STATE.guarded = True
    try:
        with _handlers(keep_if_interrupted=True):
            yield
    finally:
        _STATE.guarded = False


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """Around writing a run's results: a signal that arrives meanwhile is only noted."""
    if not _STATE.guarded and not _STATE.finishing:  # a run of its own (no CLI around it)
        _STATE.interrupted = False
        _STATE.noted = []
    _STATE.finishing += 1
    try:
        with _handlers():
            yield
    finally:
        _STATE.finishing -= 1


def was_interrupted() -> bool:
    """Whether a signal arrived in the current run (its `interruptible()` section, or its
    `finishing()` when it runs without one)."""
    return _STATE.interrupted or bool(_STATE.noted)
