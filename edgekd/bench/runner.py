"""Self-contained inference runner: needs only Python 3, numpy and one runtime.

Run as a script in a fresh process, on this host or copied to a device over ssh with the
runtime's module from edgekd/runtimes (which opens the artifact):

    python3 runner.py ARTIFACT --opener onnx.py --import onnxruntime --threads 4 --inputs test.npz > result.json

Keep it free of edgekd imports: it must run where only a runtime is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

FP32_PRECISION = "f32"


def load_opener(path: str):
    """The runtime's module (edgekd/runtimes/<name>.py, or its copy on a device), loaded by file
    so this script needs no edgekd package; its `open_model` opens artifacts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgekd_runtime_opener", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    if field == "VmHWM":  # not Linux: ru_maxrss (KB on Linux, bytes on macOS)
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r // 1024 if sys.platform == "darwin" else r
    return 0


def measure(path: str, opener: str, imports: list[str], threads: int, inputs: str, batch: int = 1, warmup: int = 10,
            min_iters: int = 200, min_seconds: float = 1.0, precision: str = FP32_PRECISION,
            native: bool = False) -> dict:
    import importlib

    import numpy as np

    with np.load(inputs) as data:
        x_all, y_all = data["x"].astype(np.float32), data["y"]
    sample = np.ascontiguousarray(x_all[:batch])
    start_rss = _rss_kb("VmRSS")
    module = load_opener(opener)
    for name in imports:
        importlib.import_module(name)
    base_rss = _rss_kb("VmRSS")  # after importing the runtime: the delta below is the model's
    started = time.perf_counter()
    predict, settings = module.open_model(path, threads, precision)
    load_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    predict(sample)
    first_ms = (time.perf_counter() - started) * 1e3
    for _ in range(warmup):
        predict(sample)
    times = []
    began = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - began < min_seconds:
        t = time.perf_counter()
        predict(sample)
        times.append((time.perf_counter() - t) * 1e3)
    peak_rss = _rss_kb("VmHWM")
    # accuracy of this artifact in its own runtime, in batches of 1..64 (dynamic batch)
    correct = 0
    for i in range(0, len(x_all), 64):
        correct += int((predict(np.ascontiguousarray(x_all[i:i + 64])).argmax(1) == y_all[i:i + 64]).sum())
    times.sort()

    def pick(q):
        return times[min(len(times) - 1, int(q * len(times)))]
    # the runtime's own benchmark tool on the same file, when its module knows one (OpenVINO's
    # benchmark_app): what a deployment without Python would see
    tool = getattr(module, "native_latency", None) if native else None
    extra = {"native": tool(path, threads, tuple(sample.shape), min_seconds, precision)} if tool else {}
    return {**extra, "load_ms": load_ms, "first_ms": first_ms, "p50_ms": pick(0.5), "p90_ms": pick(0.9),
            "p99_ms": pick(0.99), "mean_ms": sum(times) / len(times), "min_ms": times[0],
            "iterations": len(times), "warmup": warmup, "batch": batch,
            "throughput_per_s": batch * 1e3 / (sum(times) / len(times)),
            "peak_rss_delta_mb": max(0, peak_rss - base_rss) / 1024, "peak_rss_mb": peak_rss / 1024,
            "runtime_import_mb": max(0, base_rss - start_rss) / 1024, "accuracy": correct / len(x_all),
            "settings": settings, "python": platform.python_version(), "machine": platform.machine()}


def _die_with_parent() -> None:
    """On Linux, end this process when the one that started it ends (a killed bench or ssh
    session), instead of measuring on for seconds as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc prctl: nothing to do but finish
        return
    if os.getppid() != parent:  # the parent died just before the line above: already an orphan
        os._exit(5)


def main(argv=None) -> int:
    _die_with_parent()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--opener", required=True, help="the runtime's module file (edgekd/runtimes/*.py)")
    p.add_argument("--import", dest="imports", action="append", default=[],
                   help="a module the runtime needs (imported before the model, so its memory is not counted)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--inputs", required=True, help=".npz with x (inputs) and y (labels)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-iters", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--precision", default=FP32_PRECISION)
    p.add_argument("--native", action="store_true", help="also run the runtime's own benchmark tool, if installed")
    a = p.parse_args(argv)
    try:
        result = measure(a.artifact, a.opener, a.imports, a.threads, a.inputs, a.batch, a.warmup, a.min_iters,
                         a.min_seconds, a.precision, a.native)
    except ImportError as e:
        print(json.dumps({"error": f"a runtime module is not installed here ({e})"}))
        return 3
    except Exception as e:  # reported as a failed row by the caller, never a hang
        print(json.dumps({"error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]}))
        return 4
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
