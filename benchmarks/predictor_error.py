"""How wrong is the latency predictor? Two honest checks, printed as ratios measured/predicted.

1. This host, models it was not calibrated on: the host's efficiency is taken from one
   model and used to predict the others from their rooflines (reference CNNs and edgekd
   students of several widths). This is the predictor's core assumption: a model's
   efficiency transfers.
2. Real boards: MobileNetV2, ResNet-18 and ResNet-50 (plain torch, random weights) are
   measured here with ONNX Runtime and predicted for each target profile that carries
   published latencies (targets/*.toml [reference_latency_ms], with sources), then compared.
   The published numbers come from other runtimes (mostly ncnn), which is part of the error.
3. The same ncnn figures predicted from this host's ncnn measurement of the same model (pnnx
   export, edgekd's ncnn runtime): like for like, the runtime no longer part of the error.

Run: python -m benchmarks.predictor_error
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgekd import host, runtimes
from edgekd.bench import predict
from edgekd.bench.graph import graph_costs, weight_bytes
from edgekd.bench.local import Job, Settings, run_once
from edgekd.models import ArchSpec, build
from edgekd.report.render import predicted_ms
from edgekd.targets import list_targets, probe_host

sys.path.insert(0, str(Path(__file__).parent))
from reference_models import MODELS  # noqa: E402


def export(model: torch.nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "b"}})
    return path


def measure(path: Path, shape: tuple[int, ...], threads: int, tmp: Path, kind: str = "onnx-fp32") -> float:
    inputs = tmp / f"in-{'x'.join(map(str, shape))}.npz"
    if not inputs.exists():
        np.savez(inputs, x=np.random.default_rng(0).normal(size=(8, *shape)).astype(np.float32), y=np.zeros(8, int))
    settings = Settings(threads=threads, processes=1, warmup=5, min_iters=20, min_seconds=0.5)
    job = Job("ref", kind, path, runtimes.kind(kind).runtime.name)
    p50s = [run_once(job, settings, inputs)["p50_ms"] for _ in range(3)]
    return statistics.median(p50s)


def quantiles(ratios: list[float]) -> str:
    r = sorted(ratios)

    def q(f: float) -> float:
        return r[min(len(r) - 1, int(f * len(r)))]

    within2 = sum(0.5 <= x <= 2 for x in r) / len(r)
    return (f"n={len(r)}  median {statistics.median(r):.2f}  p10 {q(0.1):.2f}  p90 {q(0.9):.2f}  "
            f"min {r[0]:.2f}  max {r[-1]:.2f}  within 2x: {100 * within2:.0f}%")


def main() -> None:
    host_t = probe_host()
    cores = host.cores()
    print(f"# predictor error  (host: {host.cpu_model()}, {cores} cores; probed peak {host_t.peak_gflops_fp32:.0f} "
          f"GFLOP/s, bandwidth {host_t.memory_bandwidth_gbs:.1f} GB/s; "
          f"onnxruntime {host.versions().get('onnxruntime')})")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        models = {name: (export(f(), (3, 224, 224), tmp / f"{name}.onnx"), (3, 224, 224)) for name, f in MODELS.items()}
        for w in (8, 32, 128):
            spec = ArchSpec("cnn", w, 4, (40,), 10)
            models[f"edgekd-cnn{w}"] = (export(build(spec), (40,), tmp / f"cnn{w}.onnx"), (40,))
        costs = {n: (graph_costs(p), weight_bytes(p)) for n, (p, _) in models.items()}

        # 1. host, cross-model
        threads = cores
        hm = predict.Machine(host_t.peak_gflops_fp32, host_t.memory_bandwidth_gbs, cores, threads)
        measured = {n: measure(p, s, threads, tmp) for n, (p, s) in models.items()}
        print(f"\n## 1. this host, {threads} threads: measured / predicted, "
              "calibrated on one model, predicting the others")
        print("| calibrated on | predicted | measured ms | predicted ms | ratio |\n|---|---|---|---|---|")
        ratios1 = []
        for calib in models:
            eff = hm.roofline_s(costs[calib][0]) * 1e3 / measured[calib]
            for m in models:
                if m == calib:
                    continue
                pred = hm.roofline_s(costs[m][0]) * 1e3 / eff
                ratios1.append(measured[m] / pred)
                print(f"| {calib} | {m} | {measured[m]:.3g} | {pred:.3g} | {measured[m] / pred:.2f} |")
        print(f"\nhost cross-model ratio measured/predicted: {quantiles(ratios1)}")

        # 2. published latencies on real boards, predicted from this host's ONNX Runtime measurement
        print("\n## 2. published board latencies: published / predicted from this host's measurement")
        host_ms: dict[tuple[str, int], float] = {}

        def ort_ms(name: str, threads: int) -> float:
            if (name, threads) not in host_ms:
                host_ms[(name, threads)] = measure(models[name][0], (3, 224, 224), threads, tmp)
            return host_ms[(name, threads)]

        rows = _board_rows(costs, host_t, cores, ort_ms, lambda runtime: True)
        _summary("board ratio published/predicted", [r for _, r in rows])
        ncnn = runtimes.kind("ncnn-fp32")
        _summary("of which ncnn's published figures", [r for runtime, r in rows if runtime == ncnn.runtime.name])
        if not ncnn.runtime.installed(converters=True):
            return

        # 3. the same ncnn figures, predicted from this host's ncnn measurement of the same model
        print("\n## 3. ncnn rows like for like: published ncnn latency / predicted from this host's ncnn latency")
        exported: dict[str, Path] = {}

        def ncnn_ms(name: str, threads: int) -> float:
            if name not in exported:
                exported[name] = tmp / "ncnn" / f"{name}.param"
                ncnn.build(runtimes.ExportContext(MODELS[name]().eval(), (3, 224, 224), None, None, exported[name]))
            if (name, -threads) not in host_ms:
                host_ms[(name, -threads)] = measure(exported[name], (3, 224, 224), threads, tmp, ncnn.name)
            return host_ms[(name, -threads)]

        rows = _board_rows(costs, host_t, cores, ncnn_ms, lambda runtime: runtime == ncnn.runtime.name)
        _summary("ncnn rows, ratio published/predicted", [r for _, r in rows])


def _board_rows(costs: dict, host_t, cores: int, host_ms, published_by) -> list[tuple[str, float]]:
    """Each published latency of a reference model (whose runtime `published_by` accepts),
    predicted for its board from `host_ms(model, threads)`: a table row each; returns
    (published runtime, published / predicted) per row."""
    print("| target | model | runtime (published) | threads | published ms | host ms | predicted ms [interval] "
          "| ratio |")
    print("|---|---|---|---|---|---|---|---|")
    out = []
    for target in list_targets():
        for key, published in sorted(target.reference_latency_ms.items()):
            parts = key.split(".")
            if len(parts) != 3 or parts[0] not in MODELS or not published_by(parts[1]):
                continue  # e.g. an int8 or detector figure: no model of ours to match it
            name, runtime, t = parts
            t_threads = int(t.rstrip("t"))
            h_threads = min(t_threads, cores)
            measured = host_ms(name, h_threads)
            got = predict.predict_ms(
                measured, *costs[name], "fp32",
                predict.Machine(host_t.peak_gflops_fp32, host_t.memory_bandwidth_gbs, cores, h_threads),
                predict.Machine(target.peak_gflops_fp32, target.memory_bandwidth_gbs, target.cores, t_threads))
            ratio = published / got["p50_ms"]
            out.append((runtime, ratio))
            print(f"| {target.name} | {name} | {runtime} | {t_threads} | {published:g} | "
                  f"{measured:.3g} | {predicted_ms(got)} | {ratio:.2f} |")
    return out


def _summary(what: str, ratios: list[float]) -> None:
    if ratios:
        inside = sum(predict.LOW <= r <= predict.HIGH for r in ratios) / len(ratios)
        print(f"\n{what}: {quantiles(ratios)}")
        print(f"inside the stated interval x{predict.LOW}-x{predict.HIGH}: {100 * inside:.0f}%")

if __name__ == "__main__":
    main()
