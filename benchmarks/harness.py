"""Does edgekd's measurement add overhead? Its host p50 for one artifact against OpenVINO's
own benchmark_app and a bare ONNX Runtime loop, same threads, batch 1. Ratios near 1.0
mean the harness measures the runtime, not itself.

Run: python -m benchmarks.harness [RUN_DIR]   (default: trains a small run first)
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekd import host
from edgekd.bench.local import Job, Settings, measure_all
from edgekd.runtimes import RUNTIMES


def bare_loop(path: Path, runtime: str, x: np.ndarray, threads: int, seconds: float = 2.0) -> float:
    """The runtime's own Python call in a tight loop, in this process: no harness at all."""
    predict, _ = RUNTIMES[runtime].module.open_model(str(path), threads)
    for _ in range(20):
        predict(x)
    times, began = [], time.perf_counter()
    while time.perf_counter() - began < seconds:
        t = time.perf_counter()
        predict(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def benchmark_app(xml: Path, threads: int, seconds: int = 5) -> float:
    exe = Path(sys.executable).with_name("benchmark_app")
    env = {**os.environ, "CI": "true"}  # its telemetry declines in CI: never phone home from a benchmark
    # -hint none: benchmark_app refuses explicit threads/streams with a hint; 1 stream = the latency setting
    out = subprocess.run([str(exe), "-m", str(xml), "-d", "CPU", "-hint", "none", "-nthreads", str(threads),
                          "-nstreams", "1", "-b", "1", "-t", str(seconds), "-infer_precision", "f32"],
                         capture_output=True, text=True, env=env, timeout=300).stdout
    match = re.search(r"Median:\s+([\d.]+) (ms|us)", out)
    if not match:
        raise RuntimeError(f"benchmark_app printed no median:\n{out[-800:]}")
    return float(match.group(1)) / (1000 if match.group(2) == "us" else 1)


def small_run(directory: Path) -> Path:
    from edgekd.pipeline import run_pipeline
    from edgekd.recipe import from_dict

    recipe = from_dict({"chain": {"generations": 1, "baseline": False}, "teacher": {"epochs": 5},
                        "train": {"epochs": 2}, "data": {"transfer": "1000"}, "bench": {"enabled": False}})
    return run_pipeline(recipe, out=directory / "run")[0].root


def main() -> None:
    threads = host.cores()
    with tempfile.TemporaryDirectory() as d:
        run = Path(sys.argv[1]) if len(sys.argv) > 1 else small_run(Path(d))
        member = sorted(p.name for p in run.glob("gen-*"))[0]
        onnx_path, xml = run / member / "model.onnx", run / member / "openvino" / "model.xml"
        x = np.load(run / "bench" / "inputs.npz")["x"][:1] if (run / "bench" / "inputs.npz").exists() else None
        if x is None:
            from edgekd.data import load_splits

            x = load_splits("mnist1d").x_test[:1]
        inputs = Path(d) / "inputs.npz"
        np.savez(inputs, x=x, y=np.zeros(1, int))
        settings = Settings(threads=threads, processes=3, min_seconds=2.0)
        jobs = [Job(member, "onnx-fp32", onnx_path, "onnxruntime"), Job(member, "openvino-fp32", xml, "openvino")]
        ours = measure_all(jobs, settings, inputs)
        ort_bare = bare_loop(onnx_path, "onnxruntime", x.astype(np.float32), threads)
        ov_bare = bare_loop(xml, "openvino", x.astype(np.float32), threads)
        ov_app = benchmark_app(xml, threads)
    e_ort, e_ov = ours[jobs[0]]["p50_ms"], ours[jobs[1]]["p50_ms"]
    print(f"# harness honesty  (host: {host.cpu_model()}, {threads} threads, batch 1, {member} of {run.name})")
    print("| artifact | edgekd p50 ms | reference | reference p50 ms | ratio edgekd/reference |")
    print("|---|---|---|---|---|")
    print(f"| onnx-fp32 | {e_ort:.4f} | bare ONNX Runtime loop | {ort_bare:.4f} | {e_ort / ort_bare:.2f} |")
    print(f"| openvino-fp32 | {e_ov:.4f} | bare OpenVINO Python loop | {ov_bare:.4f} | {e_ov / ov_bare:.2f} |")
    print(f"| openvino-fp32 | {e_ov:.4f} | benchmark_app (C++, 1 stream, f32) | {ov_app:.4f} | {e_ov / ov_app:.2f} |")
    print(f"\nedgekd against the bare loops is the harness's own overhead. The bare Python loop, with no edgekd code "
          f"in it, is {ov_bare / ov_app:.2f}x benchmark_app as well ({1000 * (ov_bare - ov_app):.0f} us per call): "
          "that gap is OpenVINO's Python call path, which any Python application pays, not the harness.")


if __name__ == "__main__":
    main()
