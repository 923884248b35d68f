"""Data larger than memory: does peak memory stay flat as an image folder grows tenfold, and
does time grow linearly? And does the in-memory path (the default MNIST-1D run) cost what it
did before streaming existed?

(a) Two image folders of small generated images (32x32 RGB PNG, 10 classes, a class-dependent
    pattern plus noise), 20,000 and 200,000 files, each trained by `edgekd distill --load
    stream` (one generation, no controls, no export, a cnn:8 teacher, one epoch each, one torch
    thread, one decoding worker). Peak RSS is the largest process's (ru_maxrss of the children:
    the training process; each DataLoader worker is smaller). Held in memory, the 200k folder's
    inputs alone would be 200,000 x 3 x 32 x 32 x 4 bytes = 2.5 GB.
    Goals (issue 19): peak RSS at 200k within 1.3x of 20k; training time linear in the rows
    (seconds per trained row at 200k within 1.3x of 20k).
(b) The default data in memory, `edgekd distill --chain 1 --no-baseline --no-export --epochs 5
    --threads 1`, at this checkout and at BASE (the last commit before streaming), alternated
    A, B, A, B; the faster of each pair counts. Goal: this checkout not slower than BASE beyond
    5% (the spread of two runs on a shared machine).

Run: python -m benchmarks streaming            (EDGEKD_BENCH_QUICK=1: 2k and 20k images)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekd import host

from benchmarks.verdict import CHECKOUT, ENV, quick, verdict

SIZES = quick((20_000, 200_000), (2_000, 20_000))
SIDE, CLASSES = 32, 10
BASE = "a1691c6"  # main before data streaming landed
STREAM = ["--chain", "1", "--no-baseline", "--no-export", "--load", "stream", "--workers", "1",
          "--teacher-arch", "cnn", "--teacher-width", "8", "--epochs", "1", "--teacher-epochs", "1",
          "--set", "train.min_steps=0", "--threads", "1", "-q"]
DEFAULT = ["--chain", "1", "--no-baseline", "--no-export", "--epochs", "5", "--threads", "1", "-q"]


def make_folder(root: Path, n: int) -> None:
    """n PNGs: class k is a bright bar at row 3k (+-1) on noise, so the task is learnable."""
    from PIL import Image

    rng = np.random.default_rng(n)
    for k in range(CLASSES):
        (root / f"class{k}").mkdir(parents=True)
    for i in range(n):
        k = i % CLASSES
        pixels = rng.integers(0, 120, (SIDE, SIDE, 3), dtype=np.uint8)
        row = 3 * k + int(rng.integers(-1, 2)) + 1
        pixels[row:row + 2] = 230
        Image.fromarray(pixels).save(root / f"class{k}" / f"{i:06d}.png", compress_level=1)


def timed(args: list[str], cwd: str, env: dict) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes of the largest process) of `python -m edgekd ARGS`."""
    began = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "edgekd", *args], cwd=cwd, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"edgekd {' '.join(args)} failed:\n{child.stderr.read()[-3000:]}")
    return seconds, usage.ru_maxrss * 1024


def trained_rows(manifest: dict) -> tuple[int, float]:
    """(rows every member saw, summed over epochs; their training seconds)."""
    members = manifest["members"].values()
    return (sum(manifest["data"]["train"] * m["epochs"] for m in members),
            sum(m["train_seconds"] for m in members))


def main() -> None:
    print(f"# Data larger than memory  (host: {host.cpu_model()}, {host.cores()} cores; load average at start "
          f"{os.getloadavg()[0]:.1f})\n")
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        for n in SIZES:
            folder = Path(d) / f"images-{n}"
            began = time.perf_counter()
            make_folder(folder, n)
            made = time.perf_counter() - began
            out = Path(d) / f"run-{n}"
            wall, rss = timed(["distill", "--data", f"folder:{folder}", *STREAM, "--out", str(out)], CHECKOUT, ENV)
            manifest = json.loads((out / "manifest.json").read_text())
            seen, seconds = trained_rows(manifest)
            gen = manifest["members"]["gen-1"]
            rows[n] = {"wall": wall, "rss": rss, "seen": seen, "seconds": seconds, "made": made,
                       "teacher": manifest["members"]["teacher"]["test_acc"], "gen": gen["test_acc"],
                       "test": manifest["data"]["test"], "load": manifest["data"]["load"]}
    print(f"(a) `edgekd distill --data folder:DIR {' '.join(STREAM)}`\n")
    print("| images | data.load | peak RSS | wall s (whole command) | training s | trained rows/s | "
          "teacher acc | gen-1 acc | test rows |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in rows.items():
        print(f"| {n:,} | {r['load']} | {r['rss'] / 2**20:.0f} MiB | {r['wall']:.0f} | {r['seconds']:.0f} | "
              f"{r['seen'] / r['seconds']:,.0f} | {100 * r['teacher']:.1f}% | {100 * r['gen']:.1f}% | {r['test']:,} |")
    small, large = rows[SIZES[0]], rows[SIZES[1]]
    rss_ratio = large["rss"] / small["rss"]
    per_row = (large["seconds"] / large["seen"]) / (small["seconds"] / small["seen"])
    print(f"\nInputs the {SIZES[1]:,}-image folder would hold in memory: "
          f"{SIZES[1] * 3 * SIDE * SIDE * 4 / 1e9:.2f} GB (float32). Generating the folders took "
          f"{small['made']:.0f} s and {large['made']:.0f} s (not counted).")
    print(verdict(f"peak RSS at {SIZES[1]:,} images within 1.3x of {SIZES[0]:,}", rss_ratio <= 1.3,
                  f"{rss_ratio:.2f}x"))
    print(verdict("training seconds per trained row at 10x the images within 1.3x (time linear)", per_row <= 1.3,
                  f"{per_row:.2f}x"))

    print(f"\n(b) The default data in memory: `edgekd distill {' '.join(DEFAULT)}`, this checkout against {BASE}\n")
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), BASE], cwd=CHECKOUT, check=True,
                       capture_output=True)
        try:
            env_base = {**os.environ, "PYTHONPATH": str(base)}
            walls = {"this checkout": [], BASE: []}
            for i in range(2):
                walls["this checkout"].append(timed(["distill", *DEFAULT, "--out", f"{d}/a{i}"], CHECKOUT, ENV)[0])
                walls[BASE].append(timed(["distill", *DEFAULT, "--out", f"{d}/b{i}"], str(base), env_base)[0])
            accs = [json.loads(Path(f"{d}/{x}0/manifest.json").read_text())["members"]["gen-1"]["test_acc"]
                    for x in "ab"]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=CHECKOUT, capture_output=True)
    print("| code | wall s, run 1 | wall s, run 2 |\n|---|---|---|")
    for name, w in walls.items():
        print(f"| {name} | {w[0]:.1f} | {w[1]:.1f} |")
    ratio = min(walls["this checkout"]) / min(walls[BASE])
    print(f"\ngen-1 test accuracy: {100 * accs[0]:.1f}% here, {100 * accs[1]:.1f}% at {BASE} "
          f"({'identical' if accs[0] == accs[1] else 'different'}).")
    print(verdict(f"the in-memory default run not slower than at {BASE} beyond 5%", ratio <= 1.05,
                  f"{ratio:.3f}x, faster run of each"))


if __name__ == "__main__":
    main()
