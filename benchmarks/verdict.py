"""What every benchmark script shares: its goal and computed verdict, MLPerf-style latency
cells, and the quick mode that proves a script runs without spending its full time.

    print(verdict("KD epoch <= 1.10x a plain epoch", ratio <= 1.10, f"{ratio:.2f}x"))

prints `**Goal:** KD epoch <= 1.10x a plain epoch. **Verdict: met** (measured 1.04x).`
"""

from __future__ import annotations

import os
from pathlib import Path

# EDGEKD_BENCH_QUICK=1: fewer epochs, repeats and seconds, to check a script end to end. Its
# figures are not results; the scripts say so in their headings.
QUICK = os.environ.get("EDGEKD_BENCH_QUICK") == "1"


# the edgekd a script's subprocesses run: this checkout's, not whatever the environment installed
CHECKOUT = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [CHECKOUT, os.environ.get("PYTHONPATH")]))}


def quick(full, reduced):
    """`reduced` in quick mode, else `full`."""
    return reduced if QUICK else full


def verdict(goal: str, met: bool | None, measured: str) -> str:
    """One line: the goal, met / NOT met (None: not decided, e.g. nothing measured), and what
    was measured."""
    word = {True: "met", False: "NOT met", None: "not decided"}[met]
    return f"\n**Goal:** {goal}. **Verdict: {word}** (measured {measured}).{quick_note()}"


def quick_note() -> str:
    return " _Quick mode (EDGEKD_BENCH_QUICK=1): reduced settings, not a result._" if QUICK else ""


LATENCY_HEADER = "p50 ms | p90 ms | runs | min duration s"


def latency_cells(row: dict, min_seconds: float) -> str:
    """MLPerf-style cells of a bench row (edgekd.bench.local.aggregate): p50 and p90 (medians
    over processes), the timed runs summed over processes, and the minimum duration: each
    process measured for at least `min_seconds` (and at least its minimum run count)."""
    runs = sum(row.get("iterations") or [])
    return f"{row['p50_ms']:.4f} | {row['p90_ms']:.4f} | {runs:,} | {min_seconds:g} x {row.get('processes', 1)}"
