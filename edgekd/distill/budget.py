"""Latency and size budgets: what a budget is, which candidate meets it, and the chain built
from the candidates that do. Pure functions of measurements, so the rules are tested without
training (the search that measures lives in edgekd.distill.candidates).

A candidate is one untrained student architecture with, per exported artifact kind, its
bytes on disk and its latency on the target (predicted from this host's measurement, or
measured when the target is this host). It meets the budget when one of the artifact kinds
the budget allows is within every limit given; the kind recorded is the first that does in
precision order (fp32, then fp16, then int8: the least lossy), the fastest within a precision.

The chain: the feasible candidates ranked by MACs (then parameters), the largest first;
each next generation is the largest feasible candidate with at most `ratio` (0.5) of the
previous generation's MACs, until `generations` are chosen or none is left that small.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from edgekd.errors import UserError
from edgekd.runtimes import PRECISIONS, kind

# a size budget's units, matched without regard to case: decimal KB/MB as disks and boards
# count, binary KiB/MiB as the report shows sizes
SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000 ** 2, "kib": 1024, "mib": 1024 ** 2}
SIZE_RANGE = (1, 2 ** 31)  # ONNX's protobuf cannot hold a model file of 2 GiB or more
LATENCY_RANGE = (1e-3, 3.6e6)  # 1 us is below any runtime's per-call overhead; an hour per sample is no edge budget
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """"100KB" -> 100000, "1.5MiB" -> 1572864, "2048" -> 2048 (bytes without a unit)."""
    match = _NUMBER.match(str(text))
    if not match:
        if str(text).strip().startswith("-"):
            raise UserError(f"--size-budget {text!r} must be a positive size, e.g. 100KB")
        raise UserError(f"--size-budget {text!r}: expected a number and a unit, e.g. 100KB or 1.5MiB")
    number, unit = float(match.group(1)), match.group(2).lower() or "b"
    if unit not in SIZE_UNITS:
        raise UserError(f"--size-budget {text!r}: unknown unit {match.group(2)!r}; use B, KB, MB, KiB or MiB")
    size = number * SIZE_UNITS[unit]
    if not size > 0:
        raise UserError(f"--size-budget {text!r} must be a positive size, e.g. 100KB")
    check_size(size, f"--size-budget {text!r}")
    return max(1, round(size))


def check_size(size: float, where: str) -> None:
    low, high = SIZE_RANGE
    if not low <= size < high:
        raise UserError(f"{where} must be from {low} byte to under 2 GiB (ONNX cannot hold a larger model "
                        f"file), not {size:,.0f} bytes")


def check_latency(ms: float, where: str) -> None:
    low, high = LATENCY_RANGE
    if not math.isfinite(ms) or ms <= 0:
        raise UserError(f"{where} must be a positive number of milliseconds, not {ms:g}")
    if not low <= ms <= high:
        raise UserError(f"{where} must be from {low:g} ms (below that is any runtime's per-call overhead) to "
                        f"{high:g} ms (an hour), not {ms:g}")


def size_text(n: float) -> str:
    """Bytes as the budget messages show them: decimal KB/MB, as a user writes a size budget."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def ms_text(v: float) -> str:
    return f"{v:.3g} ms"


@dataclass(frozen=True)
class Budget:
    latency_ms: float | None          # p50 at batch 1 on `target`; None: no latency budget
    size_bytes: int | None            # the artifact's files on disk; None: no size budget
    target: str | None = None         # the target profile's name
    artifacts: tuple[str, ...] = ()   # the artifact kinds that may meet it

    def fits(self, measured: dict) -> bool:
        """Whether one artifact's record ({"bytes", "latency_ms"}) is within every limit given."""
        if "error" in measured:
            return False
        if self.size_bytes is not None and not measured.get("bytes", math.inf) <= self.size_bytes:
            return False
        return self.latency_ms is None or measured.get("latency_ms", math.inf) <= self.latency_ms

    def describe(self) -> str:
        parts = ([f"{ms_text(self.latency_ms)} on {self.target}"] if self.latency_ms is not None else []) + \
                ([size_text(self.size_bytes)] if self.size_bytes is not None else [])
        return " and ".join(parts)


@dataclass(frozen=True)
class Candidate:
    family: str
    width: int
    depth: int
    params: int
    macs: int
    artifacts: dict[str, dict] = field(default_factory=dict)  # kind -> {"bytes", "latency_ms", ...} or {"error"}

    @property
    def label(self) -> str:
        return f"{self.family}:{self.width}x{self.depth}"

    def to_dict(self) -> dict:
        return {"family": self.family, "width": self.width, "depth": self.depth, "label": self.label,
                "params": self.params, "macs": self.macs, "artifacts": self.artifacts}

    @classmethod
    def from_dict(cls, d: dict) -> Candidate:
        return cls(d["family"], d["width"], d["depth"], d["params"], d["macs"], d.get("artifacts", {}))


def _preference(name: str, measured: dict) -> tuple:
    """fp32 before fp16 before int8 (the least lossy first), then the fastest, then the smallest."""
    return (list(PRECISIONS).index(kind(name).precision.name), measured.get("latency_ms", 0.0),
            measured.get("bytes", 0))


def meeting_artifact(candidate: Candidate, budget: Budget) -> str | None:
    """The artifact kind with which `candidate` meets `budget`, or None."""
    fitting = [(name, m) for name, m in candidate.artifacts.items()
               if (not budget.artifacts or name in budget.artifacts) and budget.fits(m)]
    return min(fitting, key=lambda nm: _preference(*nm))[0] if fitting else None


def select_chain(candidates: list[Candidate], budget: Budget, generations: int, ratio: float = 0.5) -> list[Candidate]:
    """The chain, largest first (see the module's docstring); [] when no candidate meets the budget."""
    feasible = sorted((c for c in candidates if meeting_artifact(c, budget)), key=lambda c: (-c.macs, -c.params))
    chain: list[Candidate] = []
    for c in feasible:
        if len(chain) == generations:
            break
        if not chain or c.macs <= ratio * chain[-1].macs:
            chain.append(c)
    return chain


def closest(candidates: list[Candidate], budget: Budget) -> str:
    """What the search found nearest the budget, and what to change: the refusal's sentence."""
    allowed = [(c, m) for c in candidates for name, m in c.artifacts.items()
               if "error" not in m and (not budget.artifacts or name in budget.artifacts)]
    if not allowed:
        return "no candidate could be exported and measured"
    parts = []
    if budget.latency_ms is not None:
        c, m = min(allowed, key=lambda cm: cm[1].get("latency_ms", math.inf))
        parts.append(f"the fastest, {c.label}, takes {ms_text(m['latency_ms'])} on {budget.target}")
    if budget.size_bytes is not None:
        c, m = min(allowed, key=lambda cm: cm[1].get("bytes", math.inf))
        parts.append(f"the smallest, {c.label}, takes {size_text(m['bytes'])}")
    return "; ".join(parts)


def verdict(artifacts: dict[str, dict], budget: Budget) -> dict:
    """A trained generation against the budget again: its artifacts' records ({kind: {"bytes",
    "latency_ms", "predicted"}}) -> {"met", "artifact", "text"}; a miss says by how much."""
    allowed = {n: m for n, m in artifacts.items() if (not budget.artifacts or n in budget.artifacts)
               and "error" not in m}
    probe = Candidate("", 0, 0, 0, 0, allowed)
    name = meeting_artifact(probe, budget)
    if name is not None:
        m = allowed[name]
        how = "predicted" if m.get("predicted") else "measured"
        latency = f", {ms_text(m['latency_ms'])} {how}" if budget.latency_ms is not None else ""
        return {"met": True, "artifact": name, "latency_ms": m.get("latency_ms"), "bytes": m.get("bytes"),
                "text": f"met: {name}{latency}, {size_text(m['bytes'])}"}
    if not allowed:
        return {"met": False, "artifact": None, "text": "not checked: no allowed artifact was measured"}
    misses = []
    if budget.latency_ms is not None:
        best = min(m.get("latency_ms", math.inf) for m in allowed.values())
        if best > budget.latency_ms:
            misses.append(f"{ms_text(best - budget.latency_ms)}" if math.isfinite(best) else "no latency measured")
    if budget.size_bytes is not None:
        best = min(m.get("bytes", math.inf) for m in allowed.values())
        if best > budget.size_bytes:
            misses.append(size_text(best - budget.size_bytes))
    text = f"missed by {' and '.join(misses)}" if misses else \
        "missed: no single artifact meets both the latency and the size budget"
    return {"met": False, "artifact": None, "text": text}


def from_record(record: dict) -> Budget:
    """The Budget a run's manifest["budget"] describes."""
    return Budget(record.get("latency_ms"), record.get("size_bytes"), record.get("target"),
                  tuple(record.get("artifacts", ())))


def recheck(manifest: dict, bench: dict | None) -> dict[str, dict]:
    """Each trained generation against the run's budget again, {gen: verdict}: sizes from its
    exported artifacts (verified ones only), latencies from the target's bench result `bench`
    (rows in a runtime the target has; predicted, or measured when the target is host)."""
    budget = from_record(manifest["budget"])
    rows = {(r["member"], r["artifact"]): r for r in (bench or {}).get("rows", [])
            if "error" not in r and r.get("runtime_on_target", True)}
    predicted = bool((bench or {}).get("prediction_method"))
    verdicts = {}
    for member, entry in manifest["members"].items():
        if not member.startswith("gen-"):
            continue
        artifacts = {}
        for name, a in entry.get("artifacts", {}).items():
            if not a.get("passed"):
                continue
            measured = {"bytes": a.get("bytes")}
            row = rows.get((member, name))
            if budget.latency_ms is not None:
                latency = ((row.get("predicted") or {}).get("p50_ms") if predicted else row.get("p50_ms")) \
                    if row else None
                if latency is None:
                    continue  # not timed for the target: it cannot count as meeting, nor as missing
                measured.update(latency_ms=latency, predicted=predicted)
            artifacts[name] = measured
        verdicts[member] = verdict(artifacts, budget)
    return verdicts
