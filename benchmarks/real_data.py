"""The quality floor on data nobody tuned for: scikit-learn's shipped datasets, run through
`edgekd distill --chain 3` with every default, as a new user would.

Goals (issue 18): the default teacher is at least as accurate as the run's own linear
reference (logistic regression on the standardized inputs, same split), and the smallest
generation is within 3 points of the teacher. Test sets of 30-360 rows are noisy: every
accuracy has its 95% Wilson interval, every gap its paired interval and McNemar p, and a
miss that the test set cannot tell from noise is "within noise", not a pass.

Run: python -m benchmarks.real_data
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekd import host
from edgekd.report.uncertainty import interval_text, member_gain
from edgekd.runs import LINEAR, Run

from benchmarks.verdict import ENV, quick, verdict

GEN_GAP = 3.0  # points: the smallest generation may trail the teacher by this much
QUICK_FLAGS = ["--epochs", "2", "--teacher-epochs", "2", "--set", "train.min_steps=0"]


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, names: list[str]) -> None:
    with path.open("w") as f:
        f.write(",".join([*names, "label"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(f"{v:g}" for v in row) + f",{label}\n")


def datasets(folder: Path) -> list[tuple[str, str]]:
    """(name, --data) for each: digits as images (built in), then the classification tables
    that ship with scikit-learn, written as CSV files (digits too, as a table of 64 columns)."""
    from sklearn import datasets as sk

    found = quick([("digits (images)", "digits")], [])
    for name in quick(("iris", "wine", "breast_cancer", "digits"), ("iris",)):
        bunch = getattr(sk, f"load_{name}")()
        path = folder / f"{name}.csv"
        names = [f"f{i}" for i in range(bunch.data.shape[1])]
        write_csv(path, bunch.data, bunch.target, names)
        found.append((f"{name} (csv)", f"csv:{path}"))
    return found


def verdict_of(gain, goal_points: float) -> str:
    """A gap (a minus b, points) against a goal of at least -goal_points."""
    if gain.points >= -goal_points:
        return "pass"
    return "within noise" if gain.high >= -goal_points else "FAIL"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for name, spec in datasets(folder):
            out = folder / name.replace(" ", "").replace("(", "-").replace(")", "")  # "digits-images"
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edgekd", "distill", "--data", spec, "--chain", "3", "--no-export",
                            *quick([], QUICK_FLAGS), "--out", str(out), "-q"], check=True, cwd=folder, env=ENV)
            seconds = time.perf_counter() - began
            run = Run.open(out)
            m = run.manifest()
            members, n = m["members"], m["data"]["test"]
            smallest = max((k for k in members if k.startswith("gen-")), key=lambda k: int(k.split("-")[1]))
            vs_linear = member_gain(run, m, "teacher", LINEAR)
            vs_teacher = member_gain(run, m, smallest, "teacher")
            rows.append({"name": name, "data": m["data"], "arch": m["architecture"], "seconds": seconds,
                         "linear": m[LINEAR]["test_acc"], "teacher": members["teacher"],
                         "smallest": members[smallest], "smallest_name": smallest,
                         "vs_linear": vs_linear, "vs_teacher": vs_teacher, "n": n})
    print(f"# Real data: the defaults on scikit-learn's datasets  (host: {host.cpu_model()}, {host.cores()} cores)")
    print()
    print("| data | rows train/val/test | teacher | smallest | linear ref. | teacher | smallest gen. | "
          "teacher - linear, pts | verdict (>= 0) | smallest - teacher, pts | verdict (>= -3) | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for r in rows:
        verdicts += [verdict_of(r["vs_linear"], 0.0), verdict_of(r["vs_teacher"], GEN_GAP)]
        d, n = r["data"], r["n"]
        print(f"| {r['name']} | {d['train']}/{d['val']}/{d['test']} | {r['teacher']['label']} | "
              f"{r['smallest']['label']} | {interval_text(r['linear'], n)} | "
              f"{interval_text(r['teacher']['test_acc'], n)} | {interval_text(r['smallest']['test_acc'], n)} | "
              f"{r['vs_linear'].text()} | {verdict_of(r['vs_linear'], 0.0)} | {r['vs_teacher'].text()} | "
              f"{verdict_of(r['vs_teacher'], GEN_GAP)} | {r['seconds']:.0f} |")
    print()
    print("Each run is `edgekd distill --data DATA --chain 3 --no-export` with every other setting at its default; "
          "the architectures are what the data chose (`architecture` in each manifest: "
          + "; ".join(sorted({f"{r['arch']['data']}: {r['arch']['why']}" for r in rows})) + "). "
          "Intervals are 95% (Wilson for an accuracy, Newcombe's paired interval for a gap); a gap is "
          "within noise when McNemar's exact p >= 0.05. A verdict is \"within noise\" when the goal lies "
          "inside the gap's interval though the point estimate misses it. s is the whole command's wall time; "
          f"load average over the last 15 minutes at the end: {os.getloadavg()[2]:.1f} on {host.cores()} cores.")
    counts = {word: verdicts.count(word) for word in ("pass", "within noise", "FAIL")}
    print(verdict("on every dataset the teacher is at least the linear reference and the smallest generation within "
                  f"{GEN_GAP:g} points of the teacher (undecided when a miss is within noise)",
                  False if counts["FAIL"] else (None if counts["within noise"] else True),
                  ", ".join(f"{n} {word}" for word, n in counts.items())))


if __name__ == "__main__":
    main()
