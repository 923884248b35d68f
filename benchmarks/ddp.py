"""One process against two under torchrun, on this host's CPUs: what data parallelism costs
and whether it changes the result.

`edgekd distill` runs twice on the default data with the same recipe (the default chain
shortened to one generation, no scratch controls, no export, so the figure is training), once
plainly and once with `--nproc 2` (torchrun, gloo), each process with one torch thread so the
two processes fit the two cores. Wall time is the whole command; samples/s counts the rows
every member saw over its training seconds. Accuracy is paired on the same test rows.
Goals: every member of the 2-process run within noise of the 1-process run (McNemar, paired
on the test rows). On 2 cores no speed-up is expected: the time ratio is the overhead, shown
with no goal.

Run: python -m benchmarks ddp
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

RECIPE = ["--chain", "1", "--no-baseline", "--no-export", "--set", "train.threads=1", "-q"]


def run(out: Path, extra: list[str]) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgekd", "distill", *RECIPE, *extra, "--out", str(out)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"edgekd distill {' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def samples_per_second(manifest: dict) -> float:
    data = manifest["data"]
    seen = sum((data["train"] + (data["transfer"] if m["role"] != "teacher" else 0)) * m["epochs"]
               for m in manifest["members"].values())  # only a teacher labels the transfer rows
    return seen / sum(m["train_seconds"] for m in manifest["members"].values())


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        roots = {n: Path(d) / f"p{n}" for n in (1, 2)}
        wall = {1: run(roots[1], []), 2: run(roots[2], ["--nproc", "2"])}
        manifests = {n: json.loads((r / "manifest.json").read_text()) for n, r in roots.items()}
        n_test = manifests[1]["data"]["test"]
        print(f"# 1 vs 2 torchrun processes  (host: {host.cpu_model()}, {host.cores()} cores; default data, "
              f"`edgekd distill {' '.join(RECIPE)}`, {n_test} test rows)\n")
        print("| processes | wall s | samples/s (training) | " + " | ".join(
            f"{m} acc [95% CI]" for m in manifests[1]["members"]) + " |")
        print("|---|---|---|" + "---|" * len(manifests[1]["members"]))
        for n, m in manifests.items():
            accs = " | ".join(interval_text(m["members"][k]["test_acc"], n_test) for k in manifests[1]["members"])
            print(f"| {n} | {wall[n]:.0f} | {samples_per_second(m):.0f} | {accs} |")
        print(f"\ntime ratio 2 processes / 1: {wall[2] / wall[1]:.2f}x (no goal on 2 cores: this is the overhead of "
              "splitting every batch and averaging gradients)")
        verdicts = []
        for member in manifests[1]["members"]:
            gain = paired_gain(*(read_bools(Run(roots[n]).correct_path(member)) for n in (2, 1)))
            verdicts.append(gain.within_noise)
            print(f"- {member}: 2 processes vs 1: {gain.text()}")
        met = "met" if all(verdicts) else "not met"
        print(f"\ngoal: every member of the 2-process run within noise of the 1-process run: **{met}**")


if __name__ == "__main__":
    main()
