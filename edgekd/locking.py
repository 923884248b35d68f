"""One writer per run directory at a time.

An OS file lock (flock) on the run's lock file, held for a whole command and released by the
OS when the process ends: a killed run never leaves a stale lock. Commands that write a run
(distill, distill --resume, export, bench) hold it exclusively; report and compare hold it
shared, so they wait for a writer to finish and never read a half-updated run. Within one
process the lock is re-entrant: distill's export, bench and report run under the lock that
distill took. A second writer is refused in one sentence naming the holder, or waits when
asked to (`--wait`).

A flock belongs to the open file, which a forked child (a DataLoader worker, which can outlive
the command that started it) shares: each child closes its copy at once, so the lock is released
when the command ends, whoever lives on.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from edgekd.errors import UserError
from edgekd.runs import lock_path

_HELD: dict[str, int] = {}  # resolved run directory -> nesting depth, for this process
_FDS: dict[str, int] = {}  # resolved run directory -> the lock's file descriptor


def _forget_in_child() -> None:
    for fd in _FDS.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _FDS.clear()
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


@contextmanager
def run_lock(root: Path, command: str, *, shared: bool = False, wait: bool = False, create: bool = False,
             on_event: Callable[[dict], None] | None = None) -> Iterator[None]:
    """Hold `root`'s lock for the block: exclusively, or `shared` (readers). Refused with a
    UserError naming the holder when it is taken, unless `wait` (then `on_event` gets a
    warning saying whom it waits for).
    `create` makes the directory of a new run (removed again if the run never starts). A
    `root` that is not a directory (and is not to be made one) is not locked: the caller's
    own check says what is wrong with it."""
    root = Path(root)
    key = str(root.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    made = _missing_ancestors(root) if create else []  # runs/ too, for the first run of a checkout
    try:
        if made:
            root.mkdir(parents=True)
        fd = os.open(lock_path(root), os.O_RDWR | os.O_CREAT, 0o644)  # close-on-exec: exec'd children never hold it
    except OSError:
        yield
        return
    try:
        _acquire(fd, root, command, shared, wait, on_event)
        _HELD[key], _FDS[key] = 1, fd
        try:
            yield
        finally:
            del _HELD[key], _FDS[key]
    finally:
        os.close(fd)  # releases the lock
        if made:
            _remove_if_only_lock(root, made)


def _acquire(fd: int, root: Path, command: str, shared: bool, wait: bool,
             on_event: Callable[[dict], None] | None) -> None:
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        if not wait:
            raise UserError(f"{root} is in use by {holder}; let it finish, or pass --wait to queue behind it") from None
        if on_event:
            on_event({"kind": "warning", "text": f"waiting for {holder} to finish with {root}"})
        fcntl.flock(fd, mode)
    if not shared:  # who holds it, for the message a second writer gets
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} edgekd {command}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only the holder's name is lost
            pass


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 256, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    return f"PID {pid} ({command})" if pid.isdigit() and command else "another edgekd process"


def _missing_ancestors(root: Path) -> list[Path]:
    """`root` and those of its parents that do not exist yet, innermost first."""
    missing = []
    for path in (root, *root.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def _remove_if_only_lock(root: Path, made: list[Path]) -> None:
    """The directories this lock made for a run that never started (a refused recipe) go again,
    as long as nothing but the lock was put in them."""
    try:
        if [p.name for p in root.iterdir()] != [lock_path(root).name]:
            return
        lock_path(root).unlink()
        for path in made:
            path.rmdir()  # fails, and stops, at the first directory something else wrote into
    except OSError:
        pass
