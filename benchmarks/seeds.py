"""The default recipe over several seeds: how stable are the chain's accuracies and the
gain of distillation over scratch training?

Every run trains two scratch controls per generation, both the same architecture on the
labelled rows only:
- same steps (baseline-k): as many optimizer steps as the distilled student, i.e. the same
  compute; the student's transfer set makes its epochs 7.7x longer;
- same epochs (scratch-k): the recipe's `train.epochs` over the labelled rows, the schedule a
  KD paper or a quick script usually gives its baseline (fewer steps, so a weaker control).

Run: python -m benchmarks.seeds
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from edgekd import host
from edgekd.distill.chain import distill
from edgekd.recipe import Recipe, from_dict
from edgekd.report.results import control_name
from edgekd.runs import CONTROLS, controls_of

from benchmarks.verdict import quick, verdict

SEEDS = quick((0, 1, 2), (0, 1))
QUICK_RECIPE = {"chain": {"generations": 1}, "teacher": {"epochs": 1}, "train": {"epochs": 1, "min_steps": 0},
                "data": {"transfer": "500"}}


def _pcts(values: list[float]) -> str:
    return ", ".join(f"{100 * v:.1f}" for v in values)


def main() -> None:
    rows: dict[str, list[tuple[float, float | None, float | None]]] = {}
    recipe = Recipe()
    with tempfile.TemporaryDirectory() as d:
        for seed in SEEDS:
            settings = quick({}, QUICK_RECIPE)
            settings = {**settings, "train": {**settings.get("train", {}), "seed": seed}}
            manifest = distill(from_dict(settings), out=Path(d) / f"s{seed}").manifest()
            for name, m in manifest["members"].items():
                if name != "teacher" and not name.startswith("gen-"):
                    continue
                controls = controls_of(manifest, name)
                rows.setdefault(f"{name} {m['label']}", []).append(
                    (m["test_acc"], *(controls[kind]["test_acc"] if kind in controls else None for kind in CONTROLS)))
    print(f"# the default recipe over seeds {SEEDS}  (host: {host.cpu_model()}; `train.seed` changes initialisation "
          f"and batch order, the data and its splits stay fixed; lr {recipe.train.lr:g})\n")
    print("| member | test acc per seed | mean | "
          + " | ".join(f"scratch, {control_name(recipe.to_dict(), kind)} | mean gain" for kind in CONTROLS)
          + " |\n|---|---|---|---|---|---|---|")
    mean_gains = {}
    for name, seeds in rows.items():
        accs = [a for a, _, _ in seeds]
        line = f"| {name} | {_pcts(accs)} | {100 * statistics.mean(accs):.1f}% "
        for column in (1, 2):
            scratch = [s[column] for s in seeds]
            if scratch[0] is None:
                line += "| - | - "
                continue
            gains = [a - b for a, b in zip(accs, scratch)]
            each = ", ".join(f"{100 * g:+.1f}" for g in gains)
            line += f"| {_pcts(scratch)} | {100 * statistics.mean(gains):+.1f} ({each}) "
            if column == 1:
                mean_gains[name] = 100 * statistics.mean(gains)
        print(line + "|")
    lows = [f"{n.split()[0]} {g:+.1f}" for n, g in mean_gains.items()]
    print(verdict("distillation's gain over the same-steps scratch control, averaged over seeds, is positive for "
                  "every generation", bool(mean_gains) and all(g > 0 for g in mean_gains.values()),
                  ", ".join(lows) + " points"))


if __name__ == "__main__":
    main()
