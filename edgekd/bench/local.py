"""Measure artifacts on this host, each in its own fresh process, repeated as several
whole processes in interleaved order: medians move more between processes than within
one, so the spread between processes is what says whether a number is stable.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekd.runtimes import RUNTIMES

RUNNER = Path(__file__).with_name("runner.py")
UNSTABLE_SPREAD = 0.25   # (max - min) / median of the per-process p50s
# A median this many times the fastest run means most runs were preempted: catches a busy
# machine even with --processes 1 (undisturbed runs here stay under 1.7x).
UNSTABLE_JITTER = 3.0
# A p90 this many times the median means one run in ten or more was preempted (quiet rows
# here stay under 1.8x): the median may hold while the tail a user would feel does not.
UNSTABLE_TAIL = 5.0


@dataclass(frozen=True)
class Job:
    member: str
    artifact: str          # an artifact kind's name (edgekd.runtimes.KINDS)
    path: Path
    runtime: str           # its runtime's name (edgekd.runtimes.RUNTIMES)


@dataclass(frozen=True)
class Settings:
    threads: int
    batch: int = 1
    processes: int = 3
    warmup: int = 10
    min_iters: int = 100
    min_seconds: float = 0.5
    timeout_s: float = 120.0
    native: bool = False   # also the runtime's own benchmark tool (benchmark_app), in every process


def runner_command(job: Job, settings: Settings, inputs: Path, python: str = sys.executable,
                   runner: Path = RUNNER, opener: Path | None = None) -> list[str]:
    """The runner's command line; `runner` and `opener` default to this host's files (a device
    session passes its copies)."""
    runtime = RUNTIMES[job.runtime]
    imports = [arg for name in runtime.imports for arg in ("--import", name)]
    return [python, str(runner), str(job.path), "--opener", str(opener or runtime.opener), *imports,
            "--threads", str(settings.threads), "--batch", str(settings.batch), "--inputs", str(inputs),
            "--warmup", str(settings.warmup), "--min-iters", str(settings.min_iters),
            "--min-seconds", str(settings.min_seconds), *(["--native"] if settings.native else [])]


def run_once(job: Job, settings: Settings, inputs: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads), "PYTHONPATH": _package_root()}
    try:
        done = subprocess.run(runner_command(job, settings, inputs), capture_output=True, text=True,
                              timeout=settings.timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {settings.timeout_s:.0f} s"}
    return parse_runner_output(done.stdout, done.stderr, done.returncode)


def parse_runner_output(stdout: str, stderr: str, code: int) -> dict:
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"runner exited {code}: {tail[:200]}"}


def measure_all(jobs: list[Job], settings: Settings, inputs: Path,
                on_event: Callable[[dict], None] | None = None,
                run: Callable[[Job, Settings, Path], dict] = run_once) -> dict[Job, dict]:
    """Interleave: process 1 of every job, then process 2 of every job, ..."""
    runs: dict[Job, list[dict]] = {job: [] for job in jobs}
    for rep in range(settings.processes):
        for job in jobs:
            if runs[job] and "error" in runs[job][-1]:
                continue  # a failed artifact fails the same way again: do not wait for it twice
            if on_event:
                on_event({"kind": "bench", "member": job.member, "artifact": job.artifact, "process": rep + 1})
            # the native tool runs in every process too: one benchmark_app process can sit 1.5x from
            # the next on this host (where its threads land), as the Python figures can
            runs[job].append(run(job, settings, inputs))
    return {job: aggregate(results) for job, results in runs.items()}


def aggregate(results: list[dict]) -> dict:
    good = [r for r in results if "error" not in r]
    if not good:
        return {"error": results[0]["error"] if results else "not measured"}

    def med(key):
        return statistics.median(r[key] for r in good)
    p50s = [r["p50_ms"] for r in good]
    spread = (max(p50s) - min(p50s)) / statistics.median(p50s) if len(p50s) > 1 else 0.0
    fastest = min(r["min_ms"] for r in good)
    jitter = statistics.median(p50s) / fastest if fastest > 0 else 1.0
    tail = med("p90_ms") / med("p50_ms") if med("p50_ms") > 0 else 1.0
    reasons = ([f"p50 varied {100 * spread:.0f}% between processes"] if spread > UNSTABLE_SPREAD else []) + \
              ([f"median {jitter:.1f}x the fastest run"] if jitter > UNSTABLE_JITTER else []) + \
              ([f"p90 {tail:.0f}x the median"] if tail > UNSTABLE_TAIL else [])
    return {
        "p50_ms": med("p50_ms"), "p90_ms": med("p90_ms"), "p99_ms": med("p99_ms"), "mean_ms": med("mean_ms"),
        "min_ms": min(r["min_ms"] for r in good), "first_ms": med("first_ms"), "load_ms": med("load_ms"),
        "throughput_per_s": med("throughput_per_s"), "peak_rss_delta_mb": med("peak_rss_delta_mb"),
        "peak_rss_mb": med("peak_rss_mb"), "runtime_import_mb": med("runtime_import_mb"),
        "accuracy": good[0]["accuracy"], "process_p50s_ms": p50s, "spread": spread,
        "jitter": jitter, "unstable": bool(reasons), **({"unstable_reason": ", ".join(reasons)} if reasons else {}),
        "processes": len(good),
        "iterations": [r["iterations"] for r in good], "warmup": good[0]["warmup"], "batch": good[0]["batch"],
        "settings": good[0]["settings"], **_native(good),
    }


def _native(good: list[dict]) -> dict:
    """The native tool's figures, as row fields: {"native_p50_ms"} (the median of its processes'
    medians, as for the Python figures), {"native_p50s_ms"}, {"native_runs"} (summed), ...; or
    {"native_missing"} / {"native_error"} saying why there are none."""
    found = [r["native"] for r in good if "native" in r]
    timed = [n for n in found if "p50_ms" in n]
    if not timed:
        return {f"native_{k}": v for k, v in found[0].items()} if found else {}
    runs = [n["runs"] for n in timed if n.get("runs") is not None]
    return {"native_p50_ms": statistics.median(n["p50_ms"] for n in timed),
            "native_p50s_ms": [n["p50_ms"] for n in timed], "native_runs": sum(runs) if runs else None,
            "native_seconds": sum(n["seconds"] for n in timed), "native_command": timed[0]["command"],
            "native_tool": timed[0]["tool"]}


def _package_root() -> str:
    # the runner imports edgekd only for the torch reference; make it importable from a checkout
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return root if not existing else f"{root}{os.pathsep}{existing}"
