"""Data-parallel training across processes: `torchrun --nproc-per-node N -m edgekd distill ...`.

Every rank runs the same chain on the same data, seeds and plan, so every decision (which
epoch to keep, when to stop, what to skip on resume) comes out the same everywhere; the ranks
differ only in which rows of each batch they compute. A global batch of `batch_size` rows is
split by rank (rows r, r + N, ...), each rank backpropagates its share's mean loss, and the
gradients are averaged across ranks (one flat all-reduce per step, what DistributedDataParallel
does, kept outside the model because feature methods hook into the student's own submodules
and their adapters live in the objective). Soft targets are computed once in all: each rank
labels a slice of the rows and the slices are gathered.

Rank 0 alone writes the run directory and goes on to export, bench and report. The other
ranks write what the chain writes into a private copy (a temporary directory, removed at the
end): what one rank writes and reads back then matches rank 0's. A checkpoint holds nothing
that depends on the number of processes, so a run resumes with any number of them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from edgekd.data.rows import Taken, on_disk

# A rank that stops answering (killed, or stuck) fails the others' next collective after this
# long; torchrun's agent usually ends them sooner, when it sees a worker exit.
TIMEOUT = datetime.timedelta(minutes=10)


def launched() -> bool:
    """Started by torchrun (or any launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def writer() -> bool:
    """This process writes the run and speaks for it: rank 0 of a torchrun, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


MAX_PROCESSES = 1024


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """`edgekd ARGS` as torchrun's N processes on this machine (--standalone: it picks a free
    port); see the README for several machines."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "edgekd", *args]


@contextlib.contextmanager
def session(cuda: bool):
    """The process group for this run, when launched by torchrun: NCCL between GPUs, gloo on CPUs."""
    if not launched() or dist.is_initialized():
        yield
        return
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def my_rows(batch: torch.Tensor) -> torch.Tensor:
    """This rank's share of a global batch of row indices."""
    return batch[rank()::world()] if world() > 1 else batch


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Every rank's gradients replaced by their mean over the ranks, in one all-reduce. A
    parameter without a gradient on this rank counts as zero, so every rank sends the same
    shapes."""
    if world() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p)
        offset += n


def gather_rows(compute, x: torch.Tensor) -> torch.Tensor:
    """`compute(x)` for all rows, each rank computing one contiguous slice: (N, ...) on the CPU
    everywhere."""
    if world() == 1:
        return compute(x)
    n, size = len(x), world()
    per = -(-n // size)
    start, stop = rank() * per, min(n, (rank() + 1) * per)
    part = Taken(x, np.arange(start, max(start, stop))) if on_disk(x) else x[start:stop]  # on disk: read by workers
    mine = compute(part if len(part) else x[:1])[:len(part)]  # a rank past the end computes no row
    padded = torch.zeros((per, *mine.shape[1:]), dtype=mine.dtype, device=_collective_device())
    padded[:len(mine)] = mine.to(padded.device)
    slices = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(slices, padded)
    return torch.cat([s.cpu() for s in slices])[:n]


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Per-epoch figures (loss terms) averaged over the ranks, so every rank logs the same."""
    if world() == 1 or not values:
        return values
    keys = sorted(values)
    flat = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(flat)
    return dict(zip(keys, (flat / world()).tolist()))


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if world() > 1:
        dist.barrier()


@contextlib.contextmanager
def private_root(root: Path, resume: bool):
    """Where this rank writes: `root` on rank 0; elsewhere a temporary copy (of the run so far,
    when resuming), taken before rank 0 may change anything and removed at the end."""
    if rank() == 0:
        barrier()  # the other ranks copy the run first
        yield root
        return
    from edgekd.runs import LOCK

    scratch = Path(tempfile.mkdtemp(prefix=f"edgekd-rank{rank()}-"))
    mine = scratch / root.name
    try:
        if resume:
            shutil.copytree(root, mine, ignore=shutil.ignore_patterns(LOCK), symlinks=True)
        barrier()
        yield mine
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
