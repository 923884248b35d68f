"""Self-contained inference runner: needs only Python 3, numpy and onnxruntime or openvino.

It is imported by edgekd (to open artifacts the same way everywhere) and run as a script
in a fresh process, on this host or copied to a device over ssh:

    python3 runner.py ARTIFACT --runtime onnxruntime --threads 4 --inputs test.npz > result.json

Keep it free of edgekd imports: it must run where only a runtime is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

FP32_PRECISION = "f32"


_telemetry_off = False


def disable_telemetry() -> None:
    """Keep OpenVINO's and NNCF's telemetry client from ever sending anything.

    `openvino_telemetry.Telemetry` is a process-wide singleton that declines in CI
    environments. We build it first with that check answering "declined", then make its
    `init` a no-op: OpenVINO's converter calls `init` again to re-decide consent.
    Every process that imports openvino calls this first (edgekd and this runner).
    """
    global _telemetry_off
    if _telemetry_off:
        return
    _telemetry_off = True
    try:
        from openvino_telemetry import Telemetry
    except ImportError:  # no telemetry client installed: nothing can phone home
        return
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        instance = Telemetry(app_name="edgekd", app_version="0", tid="none", backend="ga4",
                             enable_opt_in_dialog=False, disable_in_ci=True)
        instance.consent = False
        instance.init = lambda *args, **kwargs: None
    except Exception:  # a future client with another API: tests catch that
        pass
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved


def open_model(path: str, runtime: str, threads: int, precision: str = FP32_PRECISION):
    """Return (predict, settings): predict(x: float32 array) -> logits array.

    settings records everything that changes the numbers: threads, spinning, hints, precision.
    """
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # ORT's pool busy-waits between calls by default; off, so latency is not bought with idle cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        settings = {"runtime": "onnxruntime", "version": ort.__version__, "intra_op_threads": threads,
                    "inter_op_threads": 1, "spinning": False, "precision": "as stored"}
        return (lambda x: session.run(None, {name: x})[0]), settings
    if runtime == "openvino":
        disable_telemetry()
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        core = ov.Core()
        config = {hints.performance_mode: hints.PerformanceMode.LATENCY, props.inference_num_threads: threads,
                  props.num_streams: 1, hints.inference_precision: precision}
        compiled = core.compile_model(path, "CPU", config)
        request = compiled.create_infer_request()
        settings = {"runtime": "openvino", "version": ov.get_version(), "threads": threads, "streams": 1,
                    "hint": "LATENCY", "inference_precision": compiled.get_property(hints.inference_precision).to_string()}
        # shared input and output memory: no per-call tensor copies in the timed path
        return (lambda x: request.infer({0: x}, share_inputs=True, share_outputs=True)[0].copy()), settings
    if runtime == "torch":  # eager reference; host only (needs edgekd to rebuild the model)
        import torch

        from edgekd.models import load_model

        torch.set_num_threads(threads)
        model, _ = load_model(Path(path))

        def predict(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        return predict, {"runtime": "torch", "version": torch.__version__, "threads": threads, "mode": "eager",
                         "precision": "fp32"}
    raise ValueError(f"unknown runtime {runtime!r}")


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


def measure(path: str, runtime: str, threads: int, inputs: str, batch: int = 1, warmup: int = 10,
            min_iters: int = 200, min_seconds: float = 1.0, precision: str = FP32_PRECISION) -> dict:
    import numpy as np

    with np.load(inputs) as data:
        x_all, y_all = data["x"].astype(np.float32), data["y"]
    sample = np.ascontiguousarray(x_all[:batch])
    start_rss = _rss_kb("VmRSS")
    __import__({"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch"}[runtime])
    base_rss = _rss_kb("VmRSS")  # after importing the runtime: the delta below is the model's
    started = time.perf_counter()
    predict, settings = open_model(path, runtime, threads, precision)
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
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return {"load_ms": load_ms, "first_ms": first_ms, "p50_ms": pick(0.5), "p90_ms": pick(0.9),
            "p99_ms": pick(0.99), "mean_ms": sum(times) / len(times), "min_ms": times[0],
            "iterations": len(times), "warmup": warmup, "batch": batch,
            "throughput_per_s": batch * 1e3 / (sum(times) / len(times)),
            "peak_rss_delta_mb": max(0, peak_rss - base_rss) / 1024, "peak_rss_mb": peak_rss / 1024,
            "runtime_import_mb": max(0, base_rss - start_rss) / 1024, "accuracy": correct / len(x_all),
            "settings": settings, "python": platform.python_version(), "machine": platform.machine()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--runtime", required=True, choices=["onnxruntime", "openvino", "torch"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--inputs", required=True, help=".npz with x (inputs) and y (labels)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-iters", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--precision", default=FP32_PRECISION)
    a = p.parse_args(argv)
    try:
        result = measure(a.artifact, a.runtime, a.threads, a.inputs, a.batch, a.warmup, a.min_iters,
                         a.min_seconds, a.precision)
    except ImportError as e:
        print(json.dumps({"error": f"runtime {a.runtime} is not installed here ({e})"}))
        return 3
    except Exception as e:  # reported as a failed row by the caller, never a hang
        print(json.dumps({"error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]}))
        return 4
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
