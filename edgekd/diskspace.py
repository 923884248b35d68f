"""Disk space: what a run will need, checked before it starts, and a full, read-only or
forbidden disk as one sentence.

A write that fails for want of space or permission is not a bug: ENOSPC, EDQUOT, EROFS and
EACCES become a DiskError (a UserError: one sentence on stderr, exit 2) naming the directory
and the bytes needed and free. Every write of a run goes through `runs.atomic_path`, so the
failed one leaves its previous file (and the manifest) as they were, and `--resume` goes on
once there is room. torch's and OpenVINO's C++ writers do not say why a write failed
("unexpected pos", "iostream error"); a failure while the disk has almost nothing free is
taken to be the disk's.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekd.errors import UserError

# what each errno means, as the sentence's opening words
WHAT = {errno.ENOSPC: "no space left on", errno.EDQUOT: "disk quota exceeded on",
        errno.EROFS: "read-only file system at", errno.EACCES: "permission denied writing to"}
SPACE = (errno.ENOSPC, errno.EDQUOT)  # the ones that more room cures (the others: permissions)
NEARLY_FULL = 1 << 20  # below this much free space, a write that failed without an errno failed for want of room


class DiskError(UserError):
    """A write refused by the file system. `then` says how to go on; the caller that knows
    the command (distill: `--resume`) replaces the general one."""

    def __init__(self, code: int, directory: Path, needed: int | None = None, then: str | None = None):
        self.code, self.directory, self.needed, self.then = code, Path(directory), needed, then
        self.free = free_bytes(self.directory)  # measured now: after the failed write's partial file is gone
        super().__init__(str(self))

    def __str__(self) -> str:
        amounts = []
        if self.code in SPACE and self.needed:
            amounts.append(f"needed about {size(self.needed)}")
        if self.code == errno.ENOSPC and self.free is not None:  # a quota is not what statvfs reports
            amounts.append(f"{size(self.free)} free")
        cure = "free space" if self.code in SPACE else "make it writable"
        return (f"{WHAT[self.code]} {self.directory}" + (f" ({', '.join(amounts)})" if amounts else "")
                + f"; {cure} and {self.then or 'run the command again'}")


def size(n: int) -> str:
    """Bytes for a sentence: 840 B, 12.3 KB, 3.1 MB, 2.0 GB (powers of 1000, as df -H)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def free_bytes(directory: Path) -> int | None:
    """Free bytes for an unprivileged writer on `directory`'s file system (its nearest existing
    ancestor: a run directory may not exist yet), or None when it cannot be read."""
    for path in (Path(directory), *Path(directory).parents):
        try:
            if path.exists():
                return shutil.disk_usage(path).free
        except OSError:
            return None
    return None


def disk_errno(e: BaseException, directory: Path) -> int | None:
    """The errno of a write into `directory` that failed for the file system's reasons, or
    None for any other failure. Judge it before removing the partial file: its blocks are
    what filled the disk."""
    if isinstance(e, DiskError):
        return None  # already said
    if isinstance(e, OSError):
        return e.errno if e.errno in WHAT else None
    if isinstance(e, Exception) and not isinstance(e, UserError):
        free = free_bytes(directory)
        if free is not None and free < NEARLY_FULL:
            return errno.ENOSPC
    return None


@contextmanager
def writing(directory: Path, needed: int | None = None, cleanup: Callable[[], Any] | None = None) -> Iterator[None]:
    """A block that writes into `directory` (`needed` bytes, when known): a refused write
    leaves it as a DiskError, after `cleanup` removed what it half-wrote."""
    try:
        yield
    except Exception as e:
        code = disk_errno(e, directory)  # judged while the partial file still fills the disk
        if code is None:
            raise
        if cleanup:
            cleanup()
        raise DiskError(code, directory, needed) from None


def from_oserror(e: OSError) -> DiskError | None:
    """The DiskError for an OSError that escaped every `writing` block (the CLI's last resort),
    naming the directory of the file it was about; None when it is not the file system's."""
    if e.errno not in WHAT:
        return None
    where = Path(e.filename) if e.filename else Path.cwd()
    return DiskError(e.errno, where if where.is_dir() else where.parent)


@contextmanager
def then(next_step: str, when: Callable[[], bool] = lambda: True) -> Iterator[None]:
    """Say `next_step` ("run `edgekd distill --resume runs/a`") in any DiskError of the block
    (if `when()` holds once it failed), and turn raw file-system OSErrors into one. The
    outermost caller's word is the one kept."""
    try:
        yield
    except DiskError as e:
        if when():
            e.then = next_step
            e.args = (str(e),)
        raise
    except OSError as e:
        found = from_oserror(e)
        if found is None:
            raise
        if when():
            found.then = next_step
            found.args = (str(found),)
        raise found from None


def check_writable(directory: Path) -> None:
    """Refuse, before any work, a directory this process cannot write: read-only or not ours."""
    if directory.is_dir() and not os.access(directory, os.W_OK):
        readonly = os.statvfs(directory).f_flag & os.ST_RDONLY
        raise DiskError(errno.EROFS if readonly else errno.EACCES, directory)


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) payload about to be torch.save'd: its size on disk,
    near enough (the zip's headers add a few KB)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0

