"""Collect a run's numbers into flat rows: the one table the plots, reports and
results.json are drawn from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from edgekd import runtimes
from edgekd.runs import CONTROLS, Run, read_bench, read_jsonl

SCHEMA = 1


@dataclass
class RunResults:
    run: Run
    manifest: dict
    points: list[dict]                   # one per member x artifact: size and accuracy
    bench: dict[str, dict]               # target -> bench report
    curves: dict[str, list[dict]]        # member -> metrics.jsonl rows
    missing: list[str] = field(default_factory=list)
    stale: dict[str, int] = field(default_factory=dict)  # target -> bench rows left out: their artifacts changed
    label: str = ""                      # set by compare when two runs share a directory name

    @property
    def name(self) -> str:
        return self.label or self.run.root.name

    def teacher_acc(self) -> float | None:
        t = self.manifest["members"].get("teacher")
        return t["test_acc"] if t else None

    def rows(self) -> list[dict]:
        """results.json rows: one per generation x artifact x target (target None: no bench)."""
        out = []
        for p in self.points:
            timed = [(t, r) for t, rep in self.bench.items() for r in rep["rows"]
                     if r["member"] == p["member"] and r["artifact"] == p["artifact"]]
            if not timed:
                out.append({**p, "target": None})
            for target, r in timed:
                pred = r.get("predicted") or {}
                out.append({**p, "target": target, "runtime": r["runtime"], "measured_on": r.get("measured_on"),
                            "latency_p50_ms": r.get("p50_ms"), "latency_p90_ms": r.get("p90_ms"),
                            "predicted_p50_ms": pred.get("p50_ms"), "predicted_low_ms": pred.get("low_ms"),
                            "predicted_high_ms": pred.get("high_ms"), "peak_rss_delta_mb": r.get("peak_rss_delta_mb"),
                            "fits_ram": r.get("fits_ram"), "unstable": r.get("unstable"), "error": r.get("error")})
        return out


def collect(run_dir: Path) -> RunResults:
    run = Run.open(run_dir)
    manifest = run.manifest()
    members = manifest["members"]
    points, missing = [], []
    for name, entry in members.items():
        role = entry.get("role", name.split("-")[0])
        if role == "scratch":  # a shorter control for the chain table, not a model to ship or plot
            continue
        base = {"member": name, "role": role, "index": entry.get("index", 0), "params": entry.get("params"),
                "macs": entry.get("macs"), "arch": entry.get("label"), "torch_acc": entry["test_acc"]}
        artifacts = {k: a for k, a in entry.get("artifacts", {}).items() if a.get("built")}
        for art, a in artifacts.items():
            if art not in runtimes.KINDS:
                continue  # a kind this version does not know
            kind = runtimes.kind(art)
            points.append({**base, "artifact": art, "format": kind.format.name, "precision": kind.precision.name,
                           "size_bytes": a["bytes"],
                           "weight_bytes": a.get("weight_bytes"), "accuracy": a["accuracy"],
                           "verified": a.get("passed", False)})
        if not artifacts and "size_bytes" in entry:  # not exported: the weights file (or a teacher's ONNX) stands in
            kind = runtimes.find(entry.get("size_format", runtimes.REFERENCE.format.name))
            points.append({**base, "artifact": kind.name, "format": kind.format.name, "precision": kind.precision.name,
                           "size_bytes": entry["size_bytes"], "accuracy": entry["test_acc"], "verified": True})
    if manifest.get("status") == "running":
        planned = len(manifest.get("students", [])) or "?"
        missing.append(f"the run is not finished: {len(run.members('gen'))} of {planned} "
                       f"generations trained (`edgekd distill --resume {run.root}` continues it)")
    if not any(p["role"] == "gen" and runtimes.FORMATS[p["format"]].exported for p in points):
        missing.append("no exported artifacts (run `edgekd export`)")
    bench = {p.stem: read_bench(p) for p in run.bench_files()}
    stale = {target: n for target, rep in bench.items() if (n := _drop_stale(run, manifest, rep))}
    if not bench:
        missing.append("no benchmark results (run `edgekd bench RUN --target NAME`)")
    curves = {}
    for name in members:
        rows = read_jsonl(run.metrics_path(name))
        if rows:
            curves[name] = rows
    return RunResults(run, manifest, points, bench, curves, missing, stale)


def _drop_stale(run: Run, manifest: dict, rep: dict) -> int:
    """Keep only rows that timed the artifact as it is now, each with the manifest's word on
    whether that artifact passed verification (older bench files do not record it); returns
    how many were dropped."""
    fresh = [r for r in rep["rows"] if run.timed_current(r, manifest)]
    for r in fresh:
        r["verified"] = run.artifact_verified(r["member"], r["artifact"], manifest)
    dropped = len(rep["rows"]) - len(fresh)
    rep["rows"] = fresh
    return dropped


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: smaller x and higher y are better.

    Returned in increasing x. A point with equal x and lower y, or higher x and not
    higher y than some other, is dominated.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def deployable(rep: dict) -> list[dict]:
    """Rows that could ship to the target: measured, verified against torch, in a runtime the
    target has, with a latency for the target itself."""
    return [r for r in rep["rows"] if "error" not in r and r.get("verified", True)
            and r.get("runtime_on_target", True) and target_p50(r, rep) is not None]


def target_p50(r: dict, rep: dict) -> float | None:
    """The row's latency on its target: predicted when the bench predicts (a host measurement
    is not the target's), measured when the target is this host or the device itself."""
    if rep.get("prediction_method"):
        return (r.get("predicted") or {}).get("p50_ms")
    return r.get("p50_ms")


def shown_controls(controls: list[dict[str, dict]]) -> list[str]:
    """The control kinds worth a column, from each generation's controls_of: both, unless
    one run stood for both in every generation."""
    kinds = [k for k in CONTROLS if any(k in c for c in controls)]
    if all(c.get("steps") is c.get("epochs") for c in controls):
        return kinds[:1]
    return kinds


def control_name(recipe: dict, kind: str) -> str:
    """What a scratch control of a run with this (manifest) recipe held equal: "same steps", "30 epochs"."""
    if kind == "steps":
        return "same steps"
    epochs = recipe["train"].get("baseline_epochs") or recipe["train"]["epochs"]
    return f"{epochs} epoch{'s' * (epochs != 1)}"


def ms(v: float) -> str:
    """A latency without exponents: three significant digits below 100 ms (0.0816, 1.8, 28.5,
    0.0000123), whole milliseconds above (285, 1,240)."""
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1e-4 or v <= 0:
        return f"{v:.3g}"
    return f"{v:.{2 - math.floor(math.log10(v))}f}"  # where .3g would switch to an exponent
