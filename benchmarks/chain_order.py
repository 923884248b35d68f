"""Teacher-assistant order or straight from the teacher: which teaches the smallest student better?

Issue 20's chain question. On the default data (MNIST-1D) one built-in teacher is trained
once; then for each seed two runs of `edgekd distill --teacher TEACHER --chain 3` (the
default students, each half as wide as the last, cnn:32x4, 16x4, 8x4): the default, where
each generation is taught by the one before it (Mirzadeh et al. 2020's teacher assistants),
and `--direct`, where every generation is taught by the teacher. A generation starts from
the same weights in both runs of a seed (members.train_member seeds by index), so the runs
differ only in who teaches. Reported: the smallest generation's test accuracy per seed,
mean and standard deviation, the paired difference (chain - direct) with a 95% t interval
over seeds, and a verdict.

Run: python -m benchmarks.chain_order
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from edgekd import host
from edgekd.distill.chain import distill
from edgekd.recipe import Recipe, from_dict

SEEDS = (0, 1, 2)
GENERATIONS = 3
# A third of the recipe's epochs over half its transfer set: the default recipe's 6 chains
# would take ~20 minutes of 2 free cores; these take ~5. Both orders get the same budget.
EPOCHS = 10
TRANSFER = "12000"
T_975 = {2: 4.303, 3: 3.182, 4: 2.776}  # Student's t, 97.5th percentile, by degrees of freedom


def main() -> None:
    base = {"chain": {"generations": GENERATIONS, "baseline": False}, "train": {"epochs": EPOCHS},
            "data": {"transfer": TRANSFER},
            "export": {"enabled": False}, "bench": {"enabled": False}}
    acc: dict[str, list[float]] = {"chain": [], "direct": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        teacher_run = distill(from_dict({**base, "chain": {"generations": 1, "baseline": False}}),
                              out=Path(d) / "teacher")
        teacher = str(teacher_run.model_path("teacher"))
        teacher_acc = teacher_run.manifest()["members"]["teacher"]["test_acc"]
        labels = []
        for seed in SEEDS:
            for order, direct in (("chain", False), ("direct", True)):
                cfg = {**base, "teacher": {"spec": teacher}, "train": {"epochs": EPOCHS, "seed": seed},
                       "chain": {**base["chain"], "direct": direct}}
                manifest = distill(from_dict(cfg), out=Path(d) / f"{order}-{seed}").manifest()
                smallest = manifest["members"][f"gen-{GENERATIONS}"]
                acc[order].append(smallest["test_acc"])
                labels = [manifest["members"][f"gen-{k}"]["label"] for k in range(1, GENERATIONS + 1)]
                transfer = manifest["data"]["transfer"]
    diffs = [c - r for c, r in zip(acc["chain"], acc["direct"])]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = T_975[len(diffs) - 1] * sd / len(diffs) ** 0.5
    verdict = "chain better" if mean - half > 0 else "direct better" if mean + half < 0 else "within noise"
    print(f"# chain order: teacher assistants or straight from the teacher  (host: {host.cpu_model()}, "
          f"{host.cores()} cores; {time.perf_counter() - started:.0f} s)\n")
    print(f"Teacher cnn:64x4 at {100 * teacher_acc:.1f}%, trained once; students {', '.join(labels)}; "
          f"{EPOCHS} epochs each over 3600 labelled + {transfer} transfer inputs (the default recipe has "
          f"{Recipe().train.epochs} epochs and 24000 inputs; fewer here to keep the benchmark near 5 minutes), "
          f"seeds {SEEDS}.\n")
    print("Goal (issue 20): say, over 3 seeds, whether teaching through the chain beats teaching every generation "
          "directly from the teacher, for the smallest student.\n")
    print(f"| order | gen-{GENERATIONS} ({labels[-1]}) test acc per seed | mean | sd |\n|---|---|---|---|")
    for order, name in (("chain", "chain (default: each taught by the one before)"),
                        ("direct", "direct (`--direct`: each taught by the teacher)")):
        values = acc[order]
        print(f"| {name} | {', '.join(f'{100 * v:.1f}' for v in values)} | {100 * statistics.mean(values):.1f}% "
              f"| {100 * statistics.stdev(values):.1f} |")
    print(f"\nPaired difference chain - direct, per seed: {', '.join(f'{100 * x:+.1f}' for x in diffs)} pts; "
          f"mean {100 * mean:+.1f} pts, sd {100 * sd:.1f}, 95% t interval [{100 * (mean - half):+.1f}, "
          f"{100 * (mean + half):+.1f}].\n")
    print(f"Verdict: **{verdict}** (chain better or direct better when the interval excludes 0).")


if __name__ == "__main__":
    main()
