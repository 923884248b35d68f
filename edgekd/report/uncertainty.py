"""How sure an accuracy, and a gain between two models, is on a test set of n rows.

An accuracy gets a Wilson score interval (sound at 0% and 100% and on a few dozen rows, where
the normal approximation is not). A gain compares two models on the same rows: only the rows
where exactly one of them is right tell them apart, so the test is McNemar's, exact (binomial)
on those discordant rows, and the interval Newcombe's hybrid score interval for a paired
difference. With per-row outcomes missing (runs made before they were saved) a gain falls
back to Newcombe's unpaired interval, which is wider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95%
NOISE_P = 0.05           # a gain is "within noise" unless McNemar's p falls below this


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of a proportion correct/n."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n fair coin flips (McNemar's exact test)."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Gain:
    """Accuracy of `a` minus accuracy of `b`, in points, on the same n test rows."""

    points: float
    low: float             # 95% interval, points
    high: float
    n: int
    p: float | None        # McNemar's exact p; None when unpaired
    wins: int | None = None    # rows only `a` gets right
    losses: int | None = None  # rows only `b` gets right

    @property
    def within_noise(self) -> bool:
        if self.p is not None:
            return self.p >= NOISE_P
        return self.low <= 0 <= self.high

    def text(self, short: bool = False) -> str:
        """"+1.2 pts [-0.3, +2.6]", with "(within noise)" where it is; `short` (a terminal
        column) reads "+1.2 [-0.3, +2.6] noise"."""
        return gain_text(self.to_dict(), short)

    def to_dict(self) -> dict:
        return {"points": self.points, "low": self.low, "high": self.high, "n": self.n, "p": self.p,
                "wins": self.wins, "losses": self.losses, "within_noise": self.within_noise}


def gain_text(gain: dict, short: bool = False) -> str:
    """A Gain.to_dict() record as text (compare reads the records back from --json output)."""
    unit, noise = ("", " noise") if short else (" pts", " (within noise)")
    text = f"{gain['points']:+.1f}{unit} [{gain['low']:+.1f}, {gain['high']:+.1f}]"
    return text + noise if gain["within_noise"] else text


def paired_gain(a_correct: np.ndarray, b_correct: np.ndarray) -> Gain:
    """Gain of model a over model b from their per-row correctness on the same rows: McNemar's
    exact p, and Newcombe's hybrid score interval for a paired difference (his method 10),
    which stays honest when no row or every row differs."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    n = len(a)
    if n == 0:
        return Gain(0.0, -100.0, 100.0, 0, 1.0, 0, 0)
    both, wins, losses = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = n - both - wins - losses
    p1, p2 = (both + wins) / n, (both + losses) / n
    l1, u1 = wilson(both + wins, n)
    l2, u2 = wilson(both + losses, n)
    denominator = (both + wins) * (losses + neither) * (both + losses) * (wins + neither)
    phi = (both * neither - wins * losses) / math.sqrt(denominator) if denominator else 0.0
    low = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    d = p1 - p2
    return Gain(100 * d, 100 * (d - low), 100 * (d + high), n, binomial_two_sided(wins, wins + losses), wins, losses)


def unpaired_gain(acc_a: float, acc_b: float, n: int) -> Gain:
    """The fallback without predictions: Newcombe's interval for a difference of two proportions."""
    la, ha = wilson(round(acc_a * n), n)
    lb, hb = wilson(round(acc_b * n), n)
    d = acc_a - acc_b
    low = d - math.sqrt((acc_a - la) ** 2 + (hb - acc_b) ** 2)
    high = d + math.sqrt((ha - acc_a) ** 2 + (acc_b - lb) ** 2)
    return Gain(100 * d, 100 * low, 100 * high, n, None)


def brackets(acc: float, n: int) -> str:
    """"[96.0, 97.9]": the 95% Wilson interval of an accuracy on n rows, in percent."""
    lo, hi = wilson(round(acc * n), n)
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]" if n else "-"


def interval_text(acc: float, n: int) -> str:
    """"97.1% [96.0, 97.9]": an accuracy on n rows with its 95% interval."""
    return f"{100 * acc:.1f}% {brackets(acc, n)}" if n else f"{100 * acc:.1f}%"


def accuracy_text(acc: float, n: int) -> str:
    """"97.1% [96.0, 97.9] on 1000 test rows"."""
    return f"{interval_text(acc, n)} on {n} test rows"


def member_gain(run, manifest: dict, a: str, b: str) -> Gain | None:
    """Gain of run member `a` over member `b` (either may be LINEAR): paired on their saved
    per-row outcomes, else unpaired on their accuracies; None when either has no accuracy."""
    from edgekd.runs import LINEAR, read_bools

    def record(name: str) -> dict | None:
        return manifest.get(LINEAR) if name == LINEAR else manifest["members"].get(name)

    ra, rb = record(a), record(b)
    if not ra or not rb or "test_acc" not in ra or "test_acc" not in rb:
        return None
    ca, cb = read_bools(run.correct_path(a)), read_bools(run.correct_path(b))
    if ca is not None and cb is not None and len(ca) == len(cb):
        return paired_gain(ca, cb)
    n = manifest.get("data", {}).get("test", 0)
    return unpaired_gain(ra["test_acc"], rb["test_acc"], n) if n else None


def test_rows(manifest: dict) -> int:
    return int(manifest.get("data", {}).get("test", 0))
