"""Every distillation method on MNIST-1D with the same teacher, student and budget.

One built-in teacher is trained once; then for each method and seed a cnn:8x4 student
(48x smaller than the teacher) is distilled for the same number of epochs over the same
train + transfer set. Reported: test accuracy (mean and spread over 3 seeds) and training
time per epoch and per training row relative to plain training (cross-entropy only, same data).

Run: python -m benchmarks.methods
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from edgekd import host
from edgekd.distill.chain import distill
from edgekd.recipe import from_dict

SEEDS = (0, 1, 2)
EPOCHS = 15
TRANSFER = "12000"
# (label, recipe.distill overrides); born-again keeps the teacher's architecture and dml has no teacher,
# so those two rows answer a different question and say so
METHODS = [
    ("plain (no teacher)", {"methods": ["kd"], "alpha": 0.0}),
    ("kd", {"methods": ["kd"]}),
    ("mse-logits", {"methods": ["mse-logits"]}),
    ("fitnet + kd", {"methods": ["kd", "fitnet"]}),
    ("attention + kd", {"methods": ["kd", "attention"], "weights": ["attention=100"]}),
    ("rkd + kd", {"methods": ["kd", "rkd"]}),
    ("dml, 2 peers (no teacher)", {"methods": ["dml"], "alpha": 0.5}),
]


def main() -> None:
    base = {"chain": {"generations": 1, "baseline": False}, "student": {"width": 8},
            "train": {"epochs": EPOCHS}, "data": {"transfer": TRANSFER},
            "export": {"enabled": False}, "bench": {"enabled": False}}
    rows = []
    with tempfile.TemporaryDirectory() as d:
        teacher_run = distill(from_dict({**base, "chain": {"generations": 1, "baseline": False},
                                         "train": {"epochs": 1}}), out=Path(d) / "teacher")
        teacher = str(teacher_run.model_path("teacher"))
        teacher_acc = teacher_run.manifest()["members"]["teacher"]["test_acc"]
        for label, distill_cfg in METHODS:
            accs, per_epoch, per_row = [], [], []
            for seed in SEEDS:
                cfg = {**base, "distill": distill_cfg, "train": {"epochs": EPOCHS, "seed": seed}}
                if distill_cfg["methods"] != ["dml"]:
                    cfg["teacher"] = {"spec": teacher}
                else:  # no teacher labels a transfer set
                    cfg["data"] = {"transfer": "0"}
                run = distill(from_dict(cfg), out=Path(d) / f"{label.split()[0]}-{seed}")
                manifest = run.manifest()
                gen, data = manifest["members"]["gen-1"], manifest["data"]
                accs.append(gen["test_acc"])
                rows_seen = data["train"] + data["transfer"]
                per_epoch.append(gen["train_seconds"] / gen["epochs"])
                per_row.append(per_epoch[-1] / rows_seen)
            rows.append((label, accs, statistics.median(per_epoch), statistics.median(per_row)))
    plain_epoch, plain_row = rows[0][2:]
    print(f"# distillation methods  (host: {host.cpu_model()}; teacher cnn:64x4 at {100 * teacher_acc:.1f}%, "
          f"student cnn:8x4, {EPOCHS} epochs over 3600 labelled + {TRANSFER} transfer inputs, seeds {SEEDS})\n")
    print("| method | test accuracy mean | spread (min-max) | time per epoch vs plain | per training row vs plain |")
    print("|---|---|---|---|---|")
    for label, accs, epoch, row in rows:
        print(f"| {label} | {100 * statistics.mean(accs):.1f}% | {100 * min(accs):.1f}-{100 * max(accs):.1f}% "
              f"| {epoch / plain_epoch:.2f}x | {row / plain_row:.2f}x |")
    print("\n`plain` is the same objective with alpha 0 (cross-entropy on the labelled rows only, the transfer rows "
          "contribute nothing). dml trains two peers on labelled data only, with alpha 0.5: its epochs are shorter, "
          "so compare its cost per training row.")


if __name__ == "__main__":
    main()
