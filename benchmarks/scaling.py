"""How edgekd scales with data: MNIST-1D at about 4k, 16k and 64k training rows (the labelled
set plus a generated transfer set), one generation, in a fresh process per size. It should
grow linearly: time per 1,000 rows and peak memory are printed side by side.

Run: python -m benchmarks.scaling
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekd import host
from edgekd.runs import Run

from benchmarks.verdict import ENV, quick, verdict

LABELLED = 3600
SIZES = quick((4000, 16000, 64000), (4000, 8000))
LINEAR_GOAL = 1.25  # train s per 1k rows at the largest size / at the smallest


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for total in SIZES:
            out = Path(d) / f"n{total}"
            argv = [sys.executable, "-m", "edgekd", "distill", "--chain", "1", "--no-baseline", "--no-export",
                    "--teacher-epochs", str(quick(3, 1)), "--epochs", str(quick(3, 1)),
                    "--transfer", str(max(0, total - LABELLED)), *quick([], ["--set", "train.min_steps=0"]),
                    "--out", str(out), "-q"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.perf_counter()
            subprocess.run(argv, check=True, cwd=d, env=ENV)
            wall = time.perf_counter() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB, the largest child so far
            gen = Run.open(out).manifest()["members"]["gen-1"]
            rows.append((total, wall, gen["train_seconds"], max(peak, before) / 1024))
    print(f"# scaling with data  (host: {host.cpu_model()}, {host.cores()} cores; 1 generation, 3 epochs, "
          "teacher 3 epochs, no export)\n")
    print("| rows | process wall s | generation train s | train s per 1k rows | peak RSS MB |\n|---|---|---|---|---|")
    for total, wall, train_s, peak in rows:
        print(f"| {total:,} | {wall:.1f} | {train_s:.1f} | {1000 * train_s / total:.3f} | {peak:.0f} |")
    first, last = rows[0], rows[-1]
    print(f"\nFrom {first[0]:,} to {last[0]:,} rows ({last[0] / first[0]:.0f}x): "
          f"training time x{last[2] / first[2]:.1f}, "
          f"peak memory x{last[3] / first[3]:.2f}. Peak RSS is the running maximum over the child processes, "
          "so it can only grow from one row to the next.")
    growth = (last[2] / last[0]) / (first[2] / first[0])
    print(verdict(f"training time grows linearly with rows: train s per 1k rows at {last[0]:,} rows <= {LINEAR_GOAL}x "
                  f"that at {first[0]:,}", growth <= LINEAR_GOAL, f"{growth:.2f}x"))


if __name__ == "__main__":
    main()
