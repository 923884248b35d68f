"""Each speed decision in edgekd, measured before/after side by side in one run.

Every row times the same work two ways, interleaved and rotated over repeats, and reports
the ratio of the median times, before/after (> 1 means the choice edgekd made is faster):

- optimizer: fused AdamW (one kernel for all parameters) vs the default per-tensor loop,
  one epoch of the real trainer, for the smallest and the largest student of the chain;
- soft targets: teacher logits computed once per generation and cached vs a teacher
  forward per batch, one epoch of the real trainer;
- batches: index slicing of in-memory tensors vs a DataLoader over a TensorDataset;
- teacher labelling: `torch.inference_mode` vs an ordinary autograd-recording forward
  over the train + transfer set (what caching the soft targets costs);
- torch threads for training a small and a larger student: the host's cores (edgekd's setting) vs 1;
- measurement: one compiled OpenVINO model reused for 200 calls vs compiling per call.

Run: python -m benchmarks.train_speed
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from edgekd import host
from edgekd.data.builtin import TRANSFER_SEED, mnist1d_arrays
from edgekd.distill import trainer
from edgekd.distill.objective import build_objective
from edgekd.distill.trainer import TrainData
from edgekd.models import ArchSpec, build
from edgekd.recipe import Recipe
from edgekd.runtimes import RUNTIMES, ExportContext
from edgekd.runtimes.onnx import export_fp32

from benchmarks.kd_cost import BATCH, epoch_seconds
from benchmarks.verdict import quick, verdict

# the default chain: 3,600 labelled + 24,000 transfer rows
ROWS, REPEATS, CALLS = quick(27600, 2000), quick(5, 1), quick(200, 20)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    x, y = mnist1d_arrays(ROWS, TRANSFER_SEED)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    mean, std = float(x.mean()), float(x.std())

    def spec(width: int) -> ArchSpec:
        return ArchSpec("cnn", width, 4, (40,), 10, mean, std)

    teacher = build(spec(64)).eval()

    def teacher_logits(mode) -> torch.Tensor:
        with mode():
            return torch.cat([teacher(x[i:i + 4096]) for i in range(0, len(x), 4096)])

    soft = teacher_logits(torch.inference_mode)
    cached = TrainData(x, y, x[:512], y[:512], soft=soft)
    online = TrainData(x, y, x[:512], y[:512], teacher=teacher)
    threads = torch.get_num_threads()

    def epoch(width: int, data: TrainData, adamw: dict | None = None, n_threads: int | None = None):
        def run():
            fused, saved_threads = trainer.ADAMW_OPTIONS, torch.get_num_threads()
            trainer.ADAMW_OPTIONS = fused if adamw is None else adamw  # train() reads it at call time
            torch.set_num_threads(n_threads or saved_threads)
            try:
                epoch_seconds(build_objective(Recipe()), data, spec(width))  # the default recipe's KD objective
            finally:
                trainer.ADAMW_OPTIONS = fused
                torch.set_num_threads(saved_threads)
        return run

    def plain_epoch(loader: bool):
        def run():
            torch.manual_seed(0)
            model = build(spec(8))
            opt = torch.optim.AdamW(model.parameters(), lr=Recipe().train.lr, **trainer.ADAMW_OPTIONS)
            if loader:
                batches = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
            else:
                order = torch.randperm(len(x))
                batches = ((x[idx], y[idx]) for idx in order.split(BATCH))
            for xb, yb in batches:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return run

    tmp = Path(tempfile.mkdtemp(prefix="edgekd-speed-"))
    export_fp32(ExportContext(build(spec(8)).eval(), (40,), None, None, tmp / "gen.onnx"))
    x1 = x[:1].numpy()

    def calls(compile_each: bool):
        def run():
            predict = None
            for _ in range(CALLS):
                if compile_each or predict is None:
                    predict, _ = RUNTIMES["openvino"].module.open_model(str(tmp / "gen.onnx"), threads)
                predict(x1)
        return run

    # (decision, what edgekd does, its alternative): after, before
    pairs = {
        ("optimizer, cnn:8x4 epoch", "fused AdamW", "per-tensor AdamW"):
            (epoch(8, cached), epoch(8, cached, adamw={})),
        ("optimizer, cnn:32x4 epoch", "fused AdamW", "per-tensor AdamW"):
            (epoch(32, cached), epoch(32, cached, adamw={})),
        ("soft targets, cnn:8x4 epoch", "cached once per generation", "teacher forward per batch"):
            (epoch(8, cached), epoch(8, online)),
        ("batches, cnn:8x4 plain epoch", "index slicing", "DataLoader(TensorDataset)"):
            (plain_epoch(False), plain_epoch(True)),
        (f"teacher labels {ROWS} rows", "inference_mode", "autograd recording"):
            (lambda: teacher_logits(torch.inference_mode), lambda: teacher_logits(torch.enable_grad)),
        ("threads, cnn:8x4 epoch", f"{threads} threads", "1 thread"):
            (epoch(8, cached), epoch(8, cached, n_threads=1)),
        ("threads, cnn:32x4 epoch", f"{threads} threads", "1 thread"):
            (epoch(32, cached), epoch(32, cached, n_threads=1)),
        (f"{CALLS} OpenVINO calls, cnn:8x4", "compile once", "compile per call"):
            (calls(False), calls(True)),
    }
    jobs = [(key, side, fn) for key, (after, before) in pairs.items()
            for side, fn in (("after", after), ("before", before))]
    for _, _, fn in jobs[:2]:
        fn()  # warm-up: allocator, kernels, OpenVINO plugin
    times: dict[tuple, list[float]] = {}
    for r in range(REPEATS):
        for key, side, fn in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:
            times.setdefault((key, side), []).append(timed(fn))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"# training and measurement speed, before/after  (host: {host.cpu_model()}, {threads} torch threads, "
          f"torch {torch.__version__}; median of {REPEATS} interleaved, rotated repeats)\n")
    print("| decision | edgekd | s | instead of | s | speed-up |\n|---|---|---|---|---|---|")
    slower = []
    for key in pairs:
        (what, ours, theirs) = key
        after, before = statistics.median(times[(key, "after")]), statistics.median(times[(key, "before")])
        print(f"| {what} | {ours} | {after:.3f} | {theirs} | {before:.3f} | {before / after:.2f}x |")
        if before / after < 1.0:
            slower.append(f"{what} {before / after:.2f}x")
    print("\nspeed-up = alternative's time / edgekd's time, each pair timed in the same run. "
          "The trainer epochs include their validation pass.")
    print(verdict("every choice edgekd made is at least as fast as its alternative (speed-up >= 1.00x)", not slower,
                  "slower: " + "; ".join(slower) if slower else f"all {len(pairs)} at >= 1.00x"))


if __name__ == "__main__":
    main()
