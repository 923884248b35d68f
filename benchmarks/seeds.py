"""The default recipe over several seeds: how stable are the chain's accuracies and the
gain of distillation over scratch training (same architecture, same optimizer steps)?

Run: python -m benchmarks.seeds
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from edgekd import host
from edgekd.distill.chain import distill
from edgekd.recipe import from_dict
from edgekd.runs import baseline_of

SEEDS = (0, 1, 2)


def main() -> None:
    table: dict[str, list[tuple[float, float | None]]] = {}
    with tempfile.TemporaryDirectory() as d:
        for seed in SEEDS:
            run = distill(from_dict({"train": {"seed": seed}}), out=Path(d) / f"s{seed}")
            members = run.manifest()["members"]
            for name, m in members.items():
                if name.startswith("baseline"):
                    continue
                b = baseline_of(members, name)
                table.setdefault(f"{name} {m['label']}", []).append((m["test_acc"], b["test_acc"] if b else None))
    print(f"# the default recipe over seeds {SEEDS}  (host: {host.cpu_model()}; `train.seed` changes initialisation "
          "and batch order, the data and its splits stay fixed)\n")
    print("| member | test acc per seed | mean | scratch per seed | gain per seed (pts) | mean gain |\n|---|---|---|---|---|---|")
    for name, rows in table.items():
        accs = [a for a, _ in rows]
        line = f"| {name} | {', '.join(f'{100 * a:.1f}' for a in accs)} | {100 * statistics.mean(accs):.1f}% "
        if rows[0][1] is None:
            print(line + "| - | - | - |")
            continue
        gains = [a - b for a, b in rows]
        print(line + f"| {', '.join(f'{100 * b:.1f}' for _, b in rows)} | {', '.join(f'{100 * g:+.1f}' for g in gains)} "
              f"| {100 * statistics.mean(gains):+.1f} |")


if __name__ == "__main__":
    main()
