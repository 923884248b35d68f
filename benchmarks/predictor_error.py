"""How wrong is the latency predictor, judged on cases it was not fitted to?

Every model here is one edgekd builds (random weights: latency does not depend on them):
the published layouts MobileNetV2 (`mobilenetv2:32x17/layout=paper`), ResNet-18 (`resnet:64x8`)
and ResNet-50 (`resnet:64x16/block=bottleneck/layout=paper`) at 224x224 and 1000 classes, and
students of each family at the sizes edgekd trains.

1. This host, across models: the host's efficiency is taken from one model and used to
   predict every other from its roofline (the predictor's core assumption: a model's
   efficiency transfers), with and without the per-call/per-operator overhead term
   (edgekd.bench.overhead). Errors by size class.
2. Published board latencies (targets/*.toml [reference_latency_ms], with sources), each
   predicted from this host's ONNX Runtime measurement of the same layout. The interval's
   coverage is measured out of sample: each board's figures are judged with the interval
   drawn from the other boards' errors (leave one board out), and each model's with the
   other models' (leave one model out), for the interval as displayed (clamped at the floor).
3. The same for the published ncnn figures, predicted from this host's ncnn measurement:
   like for like, the runtime no longer part of the error.

Run: python -m benchmarks predictor_error
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd import host, runtimes
from edgekd.bench import predict
from edgekd.bench.graph import graph_costs, weight_bytes
from edgekd.bench.local import Job, Settings, run_once
from edgekd.bench.overhead import measure_overhead
from edgekd.models import ArchSpec, build, count_macs
from edgekd.models.registry import split_arch
from edgekd.targets import list_targets, probe_host

IMAGE = (3, 224, 224)
REFERENCES = {"mobilenet_v2": "mobilenetv2:32x17/layout=paper", "resnet18": "resnet:64x8",
              "resnet50": "resnet:64x16/block=bottleneck/layout=paper"}  # name in targets/*.toml -> edgekd
STUDENTS = {"cnn:8x4": (40,), "cnn:32x4": (40,), "cnn:128x4": (40,), "dscnn:64x4": (10, 49),
            "mobilenetv2:16x4": (1, 28, 28), "resnet:16x4": (1, 28, 28), "mobilenetv2:32x6": (3, 96, 96)}
NOMINAL = 0.8      # the interval is the 10th-90th percentile of the error: 80% should fall inside
COVERAGE_GOAL = 0.7


def spec(label: str, shape: tuple[int, ...], classes: int) -> ArchSpec:
    family, size, options = split_arch(label)
    width, depth = map(int, size.split("x"))
    return ArchSpec(family, width, depth, shape, classes, options=options)


def export(model: torch.nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "b"}})
    return path


def measure(path: Path, shape: tuple[int, ...], threads: int, tmp: Path, kind: str = runtimes.GRAPH_KIND.name) -> float:
    inputs = tmp / f"in-{'x'.join(map(str, shape))}.npz"
    if not inputs.exists():
        np.savez(inputs, x=np.random.default_rng(0).normal(size=(8, *shape)).astype(np.float32), y=np.zeros(8, int))
    settings = Settings(threads=threads, processes=1, warmup=5, min_iters=20, min_seconds=0.5)
    job = Job("ref", kind, path, runtimes.kind(kind).runtime.name)
    return statistics.median(run_once(job, settings, inputs)["p50_ms"] for _ in range(3))


@dataclass
class Model:
    name: str
    label: str
    shape: tuple[int, ...]
    module: torch.nn.Module
    onnx: Path
    macs: float
    costs: list
    weights: float

    @property
    def size(self) -> str:
        return predict.size_class(self.macs)


def errors(pairs: list[tuple[float, float]]) -> str:
    """(actual, predicted) pairs: median absolute percentage error, and the share within 1.25x
    and 2x either way. A median of ratios would let misses in both directions cancel."""
    if not pairs:
        return "n=0"
    ape = [abs(p - a) / a for a, p in pairs]
    ratio = [a / p for a, p in pairs]
    within = {f: sum(1 / f <= r <= f for r in ratio) / len(ratio) for f in (1.25, 2)}
    return (f"n={len(pairs)}, median abs. error {100 * statistics.median(ape):.0f}%, within 1.25x "
            f"{100 * within[1.25]:.0f}%, within 2x {100 * within[2]:.0f}%, median actual/predicted "
            f"{statistics.median(ratio):.2f}")


def by_class(rows: list[tuple[str, float, float]]) -> None:
    """rows: (size class, actual, predicted)."""
    print("| size class (MACs) | error |\n|---|---|")
    lower = 0.0
    for name, upper in predict.SIZE_CLASSES:
        span = f"{_macs(lower)} to {_macs(upper)}" if math.isfinite(upper) else f">= {_macs(lower)}"
        got = [(a, p) for c, a, p in rows if c == name]
        print(f"| {name} ({span}) | {errors(got) if got else 'no reference: not validated'} |")
        lower = upper


def _macs(v: float) -> str:
    return "0" if v == 0 else f"{v / 1e6:g} M"


def quantile(values: list[float], f: float) -> float:
    return float(np.quantile(values, f)) if values else float("nan")


def main() -> None:
    host_t = probe_host()
    cores = host.cores()
    print(f"# predictor error  (host: {host.cpu_model()}, {cores} cores at {host_t.clock_ghz or '?'} GHz; probed peak "
          f"{host_t.peak_gflops_fp32:.0f} GFLOP/s, bandwidth {host_t.memory_bandwidth_gbs:.1f} GB/s; "
          f"onnxruntime {host.versions().get('onnxruntime')})")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        models = [_model(name, label, IMAGE, 1000, tmp) for name, label in REFERENCES.items()]
        models += [_model(label, label, shape, 10, tmp) for label, shape in STUDENTS.items()]
        by_name = {m.name: m for m in models}
        overhead = {t: measure_overhead(t, tmp / f"overhead-{t}") for t in sorted({1, cores})}
        _host_section(models, host_t, cores, overhead[cores], tmp)
        host_ms: dict[tuple[str, str, int], float] = {}

        def ort_ms(name: str, threads: int) -> float:
            if (name, "ort", threads) not in host_ms:
                m = by_name[name]
                host_ms[name, "ort", threads] = measure(m.onnx, m.shape, threads, tmp)
            return host_ms[name, "ort", threads]

        print("\n## 2. published board latencies: published / predicted from this host's ONNX Runtime measurement")
        rows = _board_rows(by_name, host_t, cores, ort_ms, lambda runtime: True, overhead)
        _coverage(rows)
        ncnn = runtimes.kind("ncnn-fp32")
        if not ncnn.runtime.installed(converters=True):
            print("\nncnn is not installed (pip install 'edgekd[ncnn]'): section 3 skipped")
            return
        exported: dict[str, Path] = {}

        def ncnn_ms(name: str, threads: int) -> float:
            m = by_name[name]
            if name not in exported:
                exported[name] = tmp / "ncnn" / f"{name}.param"
                ncnn.build(runtimes.ExportContext(m.module, m.shape, None, None, exported[name]))
            if (name, "ncnn", threads) not in host_ms:
                host_ms[name, "ncnn", threads] = measure(exported[name], m.shape, threads, tmp, ncnn.name)
            return host_ms[name, "ncnn", threads]

        print("\n## 3. ncnn rows like for like: published ncnn latency / predicted from this host's ncnn latency")
        rows = _board_rows(by_name, host_t, cores, ncnn_ms, lambda runtime: runtime == ncnn.runtime.name, None)
        _coverage(rows)


def _model(name: str, label: str, shape: tuple[int, ...], classes: int, tmp: Path) -> Model:
    module = build(spec(label, shape, classes)).eval()
    path = export(module, shape, tmp / f"{name.replace(':', '-')}.onnx")
    return Model(name, label, shape, module, path, count_macs(module, shape), graph_costs(path), weight_bytes(path))


def _host_section(models: list[Model], host_t, cores: int, overhead, tmp: Path) -> None:
    hm = predict.Machine.of(host_t, cores)
    measured = {m.name: measure(m.onnx, m.shape, cores, tmp) for m in models}
    print(f"\nONNX Runtime overhead on this host, {cores} threads: "
          + (f"{1e3 * overhead.call_ms:.1f} us per call, {1e3 * overhead.op_ms:.2f} us per operator, "
             f"{1e3 * overhead.kernel_ms:.2f} us per convolution or matrix product" if overhead else "not measured"))
    print(f"\n## 1. this host, {cores} threads: each model predicted from every other's efficiency\n")
    print("| model | input | MACs | size class | operators | measured ms | of which overhead |")
    print("|---|---|---|---|---|---|---|")
    for m in models:
        fixed = overhead.ms([c.op for c in m.costs]) if overhead else float("nan")
        print(f"| {m.name} | {'x'.join(map(str, m.shape))} | {m.macs / 1e6:.3g} M | {m.size} | {len(m.costs)} | "
              f"{measured[m.name]:.3g} | {min(1.0, fixed / measured[m.name]):.0%} |")
    for with_overhead in (False, True):
        if with_overhead and overhead is None:
            continue
        rows = []
        for calib in models:
            got = predict.predict_ms(measured[calib.name], calib.costs, calib.weights, "fp32", hm, hm,
                                     overhead if with_overhead else None)
            eff = got["host_roofline_fraction"]
            for m in models:
                if m is calib:
                    continue
                fixed = overhead.ms([c.op for c in m.costs]) if with_overhead else 0.0
                pred = fixed + hm.roofline_s(m.costs) * 1e3 / eff
                rows.append((m.size, measured[m.name], pred))
        print(f"\n{'with' if with_overhead else 'without'} the overhead term, measured vs predicted over "
              f"{len(rows)} (calibration, model) pairs:\n")
        by_class(rows)


def _board_rows(by_name: dict[str, Model], host_t, cores: int, host_ms, published_by, overhead: dict | None) -> list:
    """Each published latency of a reference model (whose runtime `published_by` accepts),
    predicted for its board from `host_ms(model, threads)`: one table row each."""
    print("| target | model | runtime (published) | threads | published ms | host ms | predicted ms | floor ms | "
          "published / predicted |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = []
    for target in list_targets():
        for key, published in sorted(target.reference_latency_ms.items()):
            parts = key.split(".")
            if len(parts) != 3 or parts[0] not in REFERENCES or not published_by(parts[1]):
                continue  # e.g. an int8 or detector figure: no model of ours to match it
            name, runtime, t = parts
            m = by_name[name]
            t_threads = int(t.rstrip("t"))
            h_threads = min(t_threads, cores)
            measured = host_ms(name, h_threads)
            got = predict.predict_ms(
                measured, m.costs, m.weights, "fp32",
                predict.Machine.of(host_t, h_threads), predict.Machine.of(target, t_threads),
                (overhead or {}).get(h_threads))
            out.append(Row(target.name, name, m.size, published, got["p50_ms"], got["floor_ms"]))
            print(f"| {target.name} | {name} | {runtime} | {t_threads} | {published:g} | {measured:.3g} | "
                  f"{got['p50_ms']:.3g} | {got['floor_ms']:.3g} | {published / got['p50_ms']:.2f} |")
    return out


@dataclass(frozen=True)
class Row:
    board: str
    model: str
    size: str
    published: float
    predicted: float   # as edgekd shows it
    floor: float       # the target's compute/bandwidth floor, which it does not enforce

    def point(self, clamped: bool) -> float:
        return max(self.predicted, self.floor) if clamped else self.predicted

    def inside(self, low: float, high: float, clamped: bool) -> bool:
        """Inside the interval [point x low, point x high]; clamped, neither end below the floor
        (how edgekd showed it until the clamp was measured and dropped)."""
        floor = self.floor if clamped else 0.0
        p = self.point(clamped)
        return max(p * low, floor) <= self.published <= max(p * high, floor)


def _coverage(rows: list[Row]) -> None:
    if not rows:
        print("\nno published figure to compare with")
        return
    print(f"\n{sum(r.published < r.floor for r in rows)} of {len(rows)} published figures beat the target's "
          f"compute/bandwidth floor (direct-convolution FLOPs at fp32; ncnn's Winograd and fp16 arithmetic do), "
          f"and {sum(r.predicted <= r.floor for r in rows)} predictions fall below it.")
    for clamped, what in ((False, "as edgekd shows it (no floor)"), (True, "clamped at the floor, as before")):
        ratios = [r.published / r.point(clamped) for r in rows]
        print(f"\n### predicted {what}\n")
        by_class([(r.size, r.published, r.point(clamped)) for r in rows])
        print(f"\n10th-90th percentile of published/predicted over all {len(rows)} rows: "
              f"x{quantile(ratios, 0.1):.2f}-x{quantile(ratios, 0.9):.2f} "
              f"(edgekd ships x{predict.LOW}-x{predict.HIGH})")
        print("\n| interval | judged on | rows inside | coverage |\n|---|---|---|---|")
        shipped = sum(r.inside(predict.LOW, predict.HIGH, clamped) for r in rows)
        print(f"| shipped x{predict.LOW}-x{predict.HIGH}, as displayed | every row (in sample) "
              f"| {shipped} of {len(rows)} | {shipped / len(rows):.0%} |")
        verdicts = []
        for held, key in (("board", lambda r: r.board), ("model", lambda r: r.model)):
            inside = total = 0
            for group in sorted({key(r) for r in rows}):
                others = [r.published / r.point(clamped) for r in rows if key(r) != group]
                if len(others) < 5:
                    continue  # too few to draw a 10th-90th percentile from
                lo, hi = quantile(others, 0.1), quantile(others, 0.9)
                judged = [r for r in rows if key(r) == group]
                inside += sum(r.inside(lo, hi, clamped) for r in judged)
                total += len(judged)
            if total:
                print(f"| the other {held}s' 10th-90th percentile, as displayed | each {held} held out "
                      f"| {inside} of {total} | {inside / total:.0%} |")
                verdicts.append((held, inside / total, total))
        for held, cov, total in verdicts:
            met = "met" if cov >= COVERAGE_GOAL else "not met"
            print(f"\ngoal: out-of-sample coverage (one {held} held out) of the nominal {NOMINAL:.0%} interval >= "
                  f"{COVERAGE_GOAL:.0%}: {cov:.0%} over {total} rows, **{met}**")


if __name__ == "__main__":
    sys.exit(main())
