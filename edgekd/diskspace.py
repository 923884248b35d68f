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
import math
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


# --- the estimate before a run ----------------------------------------------------------------

# Measured on the tiny test run (2 generations, built-in teacher, ONNX + OpenVINO with int8):
# 1.15 MB in 55 files. Small models are mostly headers and graphs: each file carries these
# bytes beyond its weights.
FILE_OVERHEAD = {"model": 12_000, "checkpoint": 36_000, "artifact": 36_000, "record": 8_000}
CHECKPOINT_COPIES = 4  # weights, best weights, AdamW's two moments
REPORT_BYTES = 700_000  # report.html (plots embedded), report.md, results.json, 4 plots as PNG and SVG
REPORT_PER_MEMBER = 60_000
BLOCK = 4096  # files take whole blocks
NPY_HEADER = 128  # an .npy file's header (numpy.lib.format pads it to 64-byte blocks)
MARGIN = 1.25  # the estimate's slack: optimizers, plugins and file systems differ


def run_bytes(recipe, teacher, archs, splits, peers: int) -> int:
    """`estimate` for a planned run: the teacher (built-in: its architecture; a user's: its
    files), every generation's architecture, the test set the bench caches."""
    from edgekd import runtimes

    builtin = teacher.kind == "edgekd" and not recipe.teacher.spec  # trained in the run ("none": dml's peers)
    sources = [m.source for m in (teacher.members or [teacher])] if recipe.teacher.spec else []
    copied = sum(Path(s).stat().st_size for s in sources if Path(s).is_file())
    kinds = [k.precision.weight_bytes
             for k in runtimes.exported_kinds(tuple(recipe.export.formats), recipe.export.int8)]
    rows = len(splits.x_train) + (0 if splits.x_transfer is None else len(splits.x_transfer))
    soft = NPY_HEADER + 2 * rows * splits.classes if splits.on_disk else 0  # edgekd.distill.soft_targets
    return estimate(recipe, _params(teacher.spec) if builtin else None, copied, [_params(a) for a in archs],
                    peers, splits.x_test.nbytes + splits.y_test.nbytes, kinds, soft)


def _params(spec) -> int:
    """A planned model's parameter count, built on the meta device (shapes only, no memory)."""
    import torch

    from edgekd.models import build, count_params

    try:
        with torch.device("meta"):
            return count_params(build(spec))
    except Exception:  # a plugin family that reads its tensors' values: build it for real
        return count_params(build(spec))


def used_bytes(root: Path) -> int:
    """What a run directory holds now."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def estimate(recipe, teacher_params: int | None, teacher_bytes: int, student_params: list[int], peers: int,
             test_bytes: int, kinds: list[int], soft_bytes: int = 0) -> int:
    """Bytes a whole run writes: every trained member's model, checkpoint (and the checkpoint's
    next copy, written beside it before the rename) and records; the exports; the bench
    inputs; the report. `teacher_params` is None for a user's teacher (copied, `teacher_bytes`
    on disk); `kinds` are the bytes per weight of each kind a generation exports; `soft_bytes`
    the soft-target cache a generation keeps while it trains, when the data stays on disk."""
    members: list[tuple[int, int]] = []  # (params, peers) of what is trained
    if teacher_params is not None:
        members.append((teacher_params, 1))
    controls = 2 if recipe.chain.baseline else 0  # at most two scratch controls per generation
    for p in student_params:
        members += [(p, peers)] + [(p, 1)] * controls
    files = 1 if soft_bytes else 0
    total = teacher_bytes + soft_bytes  # one generation's at a time: a finished member deletes its own
    for params, copies in members:
        weights = 4 * params
        checkpoint = CHECKPOINT_COPIES * weights * copies + FILE_OVERHEAD["checkpoint"]
        total += weights + FILE_OVERHEAD["model"] + checkpoint + 2 * FILE_OVERHEAD["record"]
        files += 4
    total += max((CHECKPOINT_COPIES * 4 * p * c for p, c in members), default=0)  # the one being replaced
    if recipe.export.enabled:
        for p in student_params:
            total += sum(weight_bytes * p + FILE_OVERHEAD["artifact"] for weight_bytes in kinds)
            files += 2 * len(kinds) + 1
        for p in [teacher_params or 0] + (student_params if recipe.chain.baseline else []):
            total += 4 * p + FILE_OVERHEAD["artifact"]  # one ONNX each, for the size axis
            files += 2
        if recipe.bench.enabled:
            total += test_bytes + len(recipe.bench.targets) * FILE_OVERHEAD["artifact"]
            files += 1 + len(recipe.bench.targets)
    total += REPORT_BYTES + REPORT_PER_MEMBER * len(members) + 4 * FILE_OVERHEAD["record"]
    files += 14
    return math.ceil((total + files * BLOCK) * MARGIN)


def check_space(directory: Path, needed: int, then: str) -> int | None:
    """Refuse, in one sentence, a run that needs more than `directory`'s file system has free;
    returns the free bytes (None when they cannot be read: nothing is refused then)."""
    free = free_bytes(directory)
    if free is not None and free < needed:
        raise UserError(f"not enough space on {directory} for this run (it needs about {size(needed)}, "
                        f"{size(free)} free); {then}")
    return free
