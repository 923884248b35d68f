"""The default chain on an NVIDIA GPU in bf16 against the same chain on this machine's CPU:
wall time, training samples/s and accuracy side by side (issue 19).

Each side runs `edgekd distill --chain 3 --no-export` on the default data, once with
`--device cuda --precision bf16` and once with `--device cpu --precision fp32`. Accuracy is
paired on the same test rows (McNemar). Goal: every member of the GPU run within noise of the
CPU run; the speed-up is shown with no goal (it depends on the GPU and on how small the models
are: the default students are far too small to fill one).

Without CUDA it measures nothing and says so: a GPU figure is printed only when measured.

Run: python -m benchmarks gpu          (on a machine with an NVIDIA GPU and a CUDA build of torch)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekd import host
from edgekd.report.uncertainty import interval_text, paired_gain
from edgekd.runs import Run, read_bools

from benchmarks.ddp import samples_per_second
from benchmarks.verdict import ENV, quick, verdict

CHAIN = quick(["--chain", "3"], ["--chain", "1", "--epochs", "2", "--teacher-epochs", "2"])
SIDES = {"cuda, bf16": ["--device", "cuda", "--precision", "bf16"],
         "cpu, fp32": ["--device", "cpu", "--precision", "fp32"]}


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        print(f"# The default chain on a GPU against the CPU  (host: {host.cpu_model()}, {host.cores()} cores)\n")
        print(f"No CUDA device on this host (torch {torch.__version__}): nothing was measured, and no GPU figure "
              "is printed. The figures wait for a run of `python -m benchmarks gpu` on a machine with an NVIDIA GPU.")
        print(verdict("every member of the GPU run within noise of the CPU run", None, "nothing: no GPU here"))
        return
    gpu = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as d:
        walls, manifests, roots = {}, {}, {}
        for side, flags in SIDES.items():
            roots[side] = Path(d) / side.split(",")[0]
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "edgekd", "distill", *CHAIN, "--no-export", *flags, "-q",
                                   "--out", str(roots[side])], capture_output=True, text=True, env=ENV)
            if done.returncode:
                sys.exit(f"edgekd distill {' '.join(flags)} failed:\n{done.stderr[-3000:]}")
            walls[side] = time.perf_counter() - began
            manifests[side] = json.loads((roots[side] / "manifest.json").read_text())
        members = list(manifests["cpu, fp32"]["members"])
        n_test = manifests["cpu, fp32"]["data"]["test"]
        print(f"# The default chain on a GPU against the CPU  (GPU: {gpu}; CPU: {host.cpu_model()}, {host.cores()} "
              f"cores; `edgekd distill {' '.join(CHAIN)} --no-export`, {n_test} test rows)\n")
        print("| device, precision | wall s | samples/s (training) | " + " | ".join(f"{m} acc" for m in members) + " |")
        print("|---|---|---|" + "---|" * len(members))
        for side, m in manifests.items():
            accs = " | ".join(interval_text(m["members"][k]["test_acc"], n_test) for k in members)
            print(f"| {side} | {walls[side]:.0f} | {samples_per_second(m):,.0f} | {accs} |")
        print(f"\nspeed-up, wall time CPU / GPU: {walls['cpu, fp32'] / walls['cuda, bf16']:.2f}x (no goal)")
        noise = []
        for member in members:
            gain = paired_gain(*(read_bools(Run(roots[side]).correct_path(member)) for side in SIDES))
            noise.append(gain.within_noise)
            print(f"- {member}: GPU bf16 vs CPU fp32: {gain.text()}")
        print(verdict("every member of the GPU run within noise of the CPU run", all(noise),
                      f"{sum(noise)} of {len(noise)} within noise"))


if __name__ == "__main__":
    main()
