"""The default recipe over several seeds: how stable are the chain's accuracies and the
gain of distillation over scratch training?

Two scratch baselines per generation, both the same architecture on the labelled rows only:
- same steps (edgekd's baseline): as many optimizer steps as the distilled student, i.e. the
  same compute; the student's transfer set makes its epochs 7.7x longer;
- same epochs: the recipe's `train.epochs` over the labelled rows, the schedule a KD paper
  or a quick script usually gives its baseline (fewer steps, so a weaker control).
The second is trained by resuming a copy of the run with only `train.baseline_epochs`
changed, so the distilled generations are the same ones.

Run: python -m benchmarks.seeds
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from edgekd import host
from edgekd.distill.chain import distill
from edgekd.recipe import Recipe, from_dict
from edgekd.runs import Run, baseline_of

SEEDS = (0, 1, 2)


def same_epochs_copy(run: Run, epochs: int) -> Run:
    """A copy of `run` whose baselines are retrained for `epochs` epochs; generations kept."""
    root = run.root.with_name(run.root.name + "-same-epochs")
    shutil.copytree(run.root, root)
    for directory in root.glob("baseline-*"):
        shutil.rmtree(directory)

    def budget(m: dict) -> None:
        m["recipe"]["train"]["baseline_epochs"] = epochs
        for name in [n for n in m["members"] if n.startswith("baseline")]:
            del m["members"][name]

    Run.open(root).update_manifest(budget)
    return distill(resume=root)


def _pcts(values: list[float]) -> str:
    return ", ".join(f"{100 * v:.1f}" for v in values)


def main() -> None:
    rows: dict[str, list[tuple[float, float | None, float | None]]] = {}
    recipe = Recipe()
    with tempfile.TemporaryDirectory() as d:
        for seed in SEEDS:
            run = distill(from_dict({"train": {"seed": seed}}), out=Path(d) / f"s{seed}")
            short = same_epochs_copy(run, recipe.train.epochs).manifest()["members"]
            members = run.manifest()["members"]
            for name, m in members.items():
                if name.startswith("baseline"):
                    continue
                steps, epochs = baseline_of(members, name), baseline_of(short, name)
                rows.setdefault(f"{name} {m['label']}", []).append(
                    (m["test_acc"], steps and steps["test_acc"], epochs and epochs["test_acc"]))
    print(f"# the default recipe over seeds {SEEDS}  (host: {host.cpu_model()}; `train.seed` changes initialisation "
          f"and batch order, the data and its splits stay fixed; lr {recipe.train.lr:g})\n")
    print("| member | test acc per seed | mean | scratch, same steps | mean gain | "
          f"scratch, same epochs ({recipe.train.epochs}) | mean gain |\n|---|---|---|---|---|---|---|")
    for name, seeds in rows.items():
        accs = [a for a, _, _ in seeds]
        line = f"| {name} | {_pcts(accs)} | {100 * statistics.mean(accs):.1f}% "
        for column in (1, 2):
            scratch = [s[column] for s in seeds]
            if scratch[0] is None:
                line += "| - | - "
                continue
            gains = [a - b for a, b in zip(accs, scratch)]
            line += f"| {_pcts(scratch)} | {100 * statistics.mean(gains):+.1f} ({', '.join(f'{100 * g:+.1f}' for g in gains)}) "
        print(line + "|")


if __name__ == "__main__":
    main()
