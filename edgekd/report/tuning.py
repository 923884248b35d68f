"""The report of a run `edgekd tune` made: one summary line and a plot of its trials
(validation accuracy per trial, the best so far) beside the parameters' importance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.runs import Run, read_json


def load(run: Run) -> dict[str, Any] | None:
    """The study's summary (written by edgekd tune), or None for a run no search made."""
    return read_json(run.trials_path) if run.trials_path.is_file() else None


def summary_line(summary: dict[str, Any], val_rows: int) -> str:
    best, counts, default = summary["best"], summary["counts"], (summary.get("default") or {}).get("value")
    settings = ", ".join(f"{k} {v:.3g}" for k, v in best["params"].items())
    own = f"; trial 0, the recipe's own settings: {100 * default:.1f}%" if default is not None else ""
    return (f"Settings chosen by edgekd tune: {len(summary['trials'])} trials ({counts['complete']} complete, "
            f"{counts['pruned']} pruned, {counts['fail']} failed) trained gen-1 against the teacher and were scored "
            f"on the {val_rows} validation rows only; the best, trial {best['number']}, reached "
            f"{100 * best['value']:.1f}%{own}. Its settings ({settings}) trained this run, whose test accuracies are "
            "the only ones measured.")


def plot(summary: dict[str, Any], directory: Path) -> list[Path]:
    from edgekd.report.plots import _plt, _save

    plt = _plt()
    fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    rows = summary["trials"]
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned" and r["last_reported"] is not None]
    ax.scatter([r["number"] for r in done], [100 * r["value"] for r in done], color="#1f77b4", s=30, zorder=3,
               label="completed trial")
    if pruned:
        ax.scatter([r["number"] for r in pruned], [100 * r["last_reported"] for r in pruned], marker="x",
                   color="0.5", s=30, zorder=3, label="pruned (its last reported epoch)")
    steps = [(r["number"], 100 * r["best_so_far"]) for r in rows if r["best_so_far"] is not None]
    if steps:
        ax.step([n for n, _ in steps], [v for _, v in steps], where="post", color="#d62728", lw=1.2,
                label="best so far")
    default = (summary.get("default") or {}).get("value")
    if default is not None:
        ax.axhline(100 * default, color="black", ls=":", lw=1, label="trial 0: the recipe's own settings")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Trials of edgekd tune (gen-1, validation split)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    importance = summary.get("importance")
    if importance:
        names = list(importance)[::-1]  # most important on top
        right.barh(names, [importance[n] for n in names], color="#ff7f0e")
        right.set_xlabel("importance (fANOVA, sums to 1)")
    else:
        right.text(0.5, 0.5, f"importance not computed:\n{summary.get('importance_note') or 'no data'}",
                   ha="center", va="center", wrap=True, fontsize=9, color="0.4", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title("Parameters' importance")
    fig.tight_layout()
    return _save(fig, directory, "tune_trials")
