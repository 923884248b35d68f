"""The teacher's logits on every training row, computed once per member before it trains
(each torchrun rank computes a slice of every block and the slices are gathered).

Data in memory keeps them in memory as float32, as the trainer always had them. Data on disk
(data.load) gets them as a float16 array in the member's directory, memory-mapped: its pages
come and go with the page cache, so a transfer set of millions of rows and a thousand
classes does not hold gigabytes of RAM, and a resumed member reuses the finished file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekd.data.rows import Taken, on_disk
from edgekd.distill import distributed

BLOCK = 8192  # rows labelled (and gathered across ranks) between writes to the file


def soft_targets(teacher, x, cache: Path | None) -> torch.Tensor | np.ndarray:
    """teacher.logits on all of x: a float32 tensor, or (x on disk, `cache` given) a read-only
    float16 memory map of the .npy at `cache`."""
    if not on_disk(x) or cache is None:
        return distributed.gather_rows(teacher.logits, x)
    finished = _cached(cache, len(x))
    if finished is not None:
        return finished
    from edgekd.diskspace import NPY_HEADER
    from edgekd.runs import atomic_path

    first = teacher.logits(x[:1])
    shape = (len(x), first.shape[1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache, NPY_HEADER + 2 * shape[0] * shape[1]) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        for start in range(0, len(x), BLOCK):
            block = Taken(x, np.arange(start, min(start + BLOCK, len(x))))
            out[start:start + len(block)] = distributed.gather_rows(teacher.logits, block).numpy()
        out.flush()
        del out
    return np.load(cache, mmap_mode="r")


def _cached(path: Path, rows: int) -> np.ndarray | None:
    """A finished cache of this member's rows (atomic_path renames it into place only once complete)."""
    if not path.is_file():
        return None
    try:
        cached = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError):
        return None
    return cached if cached.dtype == np.float16 and cached.ndim == 2 and len(cached) == rows else None
