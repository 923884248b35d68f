"""Which epoch's weights should a member keep? The best validation epoch, the last one, or
edgekd's default "auto" (the best only when it beats the last beyond the validation split's
noise). On a split of a dozen rows the best epoch is often just the luckiest.

Each dataset's default teacher architecture is trained from scratch on the labelled rows
with the default schedule (warm-up, cosine decay, train.min_steps), over 3 seeds; after
every epoch its test accuracy is recorded too (never used for choosing). Each rule then
picks an epoch from the validation history alone, and its test accuracy is what the rule
would have shipped. Goal: auto is not below the better of best and last beyond the seed
spread, on any dataset.

Run: python -m benchmarks.selection
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from edgekd import host
from edgekd.data import load_splits
from edgekd.distill.defaults import choose
from edgekd.distill.objective import Objective
from edgekd.distill.students import input_stats
from edgekd.distill.trainer import Schedule, TrainData, at_least_steps, evaluate, select_epoch, train
from edgekd.models import ArchSpec, build
from edgekd.recipe import SELECT, Recipe

from benchmarks.real_data import write_csv
from benchmarks.verdict import quick, verdict

SEEDS = quick((0, 1, 2), (0,))


def histories(spec: str, seed: int) -> tuple[list[dict], list[float], int, str]:
    """(validation history, test accuracy per epoch, validation rows, architecture)."""
    recipe = Recipe()
    splits = load_splits(spec, recipe.data.val_fraction, recipe.data.seed)
    t = choose(recipe, splits).recipe.teacher
    arch = ArchSpec(t.arch, t.width, t.depth, splits.input_shape, splits.classes,
                    *input_stats(splits, recipe.data.standardize))
    torch.manual_seed(seed)
    model = build(arch)
    data = TrainData(*(torch.from_numpy(a) for a in (splits.x_train, splits.y_train, splits.x_val, splits.y_val)))
    r = recipe.train
    epochs = at_least_steps(t.epochs, len(splits.x_train), r.batch_size, r.min_steps)
    schedule = Schedule(epochs, 0, r.batch_size, r.lr, r.weight_decay, 0, seed)
    x_test, y_test = torch.from_numpy(splits.x_test), torch.from_numpy(splits.y_test)
    tests: list[float] = []
    result = train(model, Objective(), data, schedule, on_epoch=lambda row: tests.append(evaluate(model, x_test,
                                                                                                  y_test)[0]))
    return result["history"], tests, len(splits.y_val), arch.label()


def main() -> None:
    from sklearn import datasets as sk

    table = []
    with tempfile.TemporaryDirectory() as d:
        specs = quick({"mnist1d": "mnist1d", "digits (images)": "digits"}, {})
        for name in quick(("iris", "wine", "breast_cancer"), ("iris",)):
            bunch = getattr(sk, f"load_{name}")()
            path = Path(d) / f"{name}.csv"
            write_csv(path, bunch.data, bunch.target, [f"f{i}" for i in range(bunch.data.shape[1])])
            specs[f"{name} (csv)"] = f"csv:{path}"
        for name, spec in specs.items():
            picked = {rule: [] for rule in SELECT}
            differ = 0
            for seed in SEEDS:
                hist, tests, n_val, label = histories(spec, seed)
                best = max(range(len(hist)), key=lambda i: (hist[i]["val_acc"], -hist[i]["val_loss"])) + 1
                chosen = {rule: select_epoch(hist, best, rule, n_val) for rule in SELECT}
                differ += chosen["best"] != chosen["last"]
                for rule, epoch in chosen.items():
                    picked[rule].append(100 * tests[epoch - 1])
            table.append((name, label, n_val, len(hist), differ, picked))
    print(f"# Checkpoint selection: best vs last vs auto  (host: {host.cpu_model()}, {len(SEEDS)} seeds)")
    print()
    print("| data | model | val rows | epochs | best != last | test acc: best | last | auto | spread (sd) | "
          "verdict: auto >= max(best, last) - sd |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = []
    for name, label, n_val, epochs, differ, picked in table:
        mean = {rule: statistics.mean(v) for rule, v in picked.items()}
        spread = max(statistics.pstdev(v) for v in picked.values())
        ok = mean["auto"] >= max(mean["best"], mean["last"]) - max(spread, 1e-9)
        failed += [] if ok else [name]
        print(f"| {name} | {label} | {n_val} | {epochs} | {differ}/{len(SEEDS)} | {mean['best']:.2f} | "
              f"{mean['last']:.2f} | {mean['auto']:.2f} | {spread:.2f} | {'pass' if ok else 'FAIL'} |")
    print()
    print("Test accuracy (%) of the epoch each rule keeps, mean over seeds; the spread is the largest standard "
          "deviation over seeds of the three rules. Test accuracy is recorded after every epoch for this "
          "measurement only; the rules see the validation history alone.")
    print(verdict("auto is not below the better of best and last by more than the seed spread, on every dataset",
                  not failed, f"failed on {', '.join(failed)}" if failed else f"passed on all {len(table)}"))


if __name__ == "__main__":
    main()
