"""Every model family on the same data: size, cost, accuracy and host latency per artifact,
and whether int8 pays off on a model large enough for it to matter.

1. For digits (8x8 images) and MNIST-1D (signals of 40), one `edgekd distill` run whose
   students are every family at two widths, all taught directly by the data's default
   teacher (chain.direct), exported to ONNX, OpenVINO and ncnn and timed on this host.
2. int8 against fp32 on models of millions of MACs (random weights: latency does not depend
   on them), side by side in one bench, in ONNX Runtime (edgekd's QDQ artifact, and the
   QOperator format as a comparison) and OpenVINO. Goal: int8/fp32 p50 <= 0.7.

Run: python -m benchmarks.families
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgekd import host, runtimes
from edgekd.bench.local import Job, Settings, measure_all
from edgekd.export.pipeline import export_model
from edgekd.models import ArchSpec, build, count_macs, families
from edgekd.report.uncertainty import interval_text
from edgekd.runs import Run

from benchmarks.verdict import ENV, quick, verdict

WIDTHS = quick({"cnn": (16, 32), "mlp": (64, 128), "dscnn": (32, 64), "mobilenetv2": (8, 16), "resnet": (8, 16)},
               {"cnn": (16,), "mlp": (64,)})
DEPTH = {"mlp": 3}   # every other family: 4
DATA = quick({"digits": ["--data", "digits"], "mnist1d": ["--data", "mnist1d", "--transfer", "0"]},
             {"digits": ["--data", "digits", "--epochs", "1", "--teacher-epochs", "1"]})
ARTIFACTS = ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8", "ncnn-fp32")
LARGE = [ArchSpec("mobilenetv2", 32, 6, (3, 32, 32), 10), ArchSpec("mobilenetv2", 32, 8, (3, 96, 96), 10),
         ArchSpec("resnet", 16, 4, (3, 32, 32), 10)][:quick(3, 1)]
INT8_GOAL = 0.7


def students() -> str:
    return ",".join(f"{f}:{w}x{DEPTH.get(f, 4)}" for f in families() if f in WIDTHS for w in WIDTHS[f])


def family_table(folder: Path) -> list[str]:
    lines = []
    for name, flags in DATA.items():
        out = folder / name
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "edgekd", "distill", *flags, "--students", students(),
                        "--set", "chain.direct=true", "--no-baseline", "--set", "bench.processes=1", "--set",
                        'export.formats=["onnx","openvino","ncnn"]', "--out", str(out), "-q"], check=True, cwd=folder,
                       env=ENV)
        seconds = time.perf_counter() - began
        run = Run.open(out)
        m = run.manifest()
        bench = json.loads(run.bench_files()[0].read_text())
        p50 = {(r["member"], r["artifact"]): r.get("p50_ms") for r in bench["rows"]}
        n = m["data"]["test"]
        lines.append(f"\n**{name}** ({m['data']['train']} train / {m['data']['test']} test rows; teacher "
                     f"{m['members']['teacher']['label']} at {interval_text(m['members']['teacher']['test_acc'], n)}; "
                     f"{seconds:.0f} s for the whole command)\n")
        lines.append("| student | params | MACs | accuracy [95% CI] | " + " | ".join(f"{a} p50 ms" for a in ARTIFACTS)
                     + " |")
        lines.append("|---|---|---|---|" + "---|" * len(ARTIFACTS))
        for member in run.members("gen"):
            g = m["members"][member]
            cells = [f"{p50[(member, a)]:.3f}" if p50.get((member, a)) else "-" for a in ARTIFACTS]
            lines.append(f"| {g['label']} | {g['params']:,} | {g['macs']:,} | {interval_text(g['test_acc'], n)} | "
                         + " | ".join(cells) + " |")
    return lines


def qoperator(source: Path, out: Path, calibration: np.ndarray) -> None:
    """The same int8 quantization as edgekd's, in ONNX Runtime's QOperator format (QLinearConv)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(calibration, 4))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {runtimes.INPUT: batch}

    pre = out.with_suffix(".pre.onnx")  # shape inference and folding first, as edgekd's int8 export does
    quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


RATIOS: list[float] = []  # every int8/fp32 ratio of int8_table, for the verdict


def int8_table(folder: Path) -> list[str]:
    threads = host.cores()
    settings = Settings(threads=threads, processes=3, min_seconds=1.0)
    kinds = [runtimes.kind(k) for k in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8")]
    jobs, specs = [], {}
    for i, spec in enumerate(LARGE):
        torch.manual_seed(i)
        model = build(spec).eval()
        rng = np.random.default_rng(i)
        x = rng.normal(size=(64, *spec.input_shape)).astype(np.float32)
        directory = folder / f"large-{i}"
        records = export_model(model, spec.input_shape, kinds, directory, x, x[:8], x[:16],
                               model(torch.from_numpy(x[:16])).argmax(1).numpy(), spec.classes)
        failed = [k for k, r in records.items() if not r.get("built")]
        if failed:
            raise SystemExit(f"{spec.label()}: {failed} failed: {[records[k].get('error') for k in failed]}")
        qoperator(directory / runtimes.kind("onnx-fp32").file, directory / "model.qop.onnx", x)
        member = f"{spec.label()}@{'x'.join(map(str, spec.input_shape))}"
        specs[member] = (spec, count_macs(model, spec.input_shape))
        jobs += [Job(member, k.name, directory / k.file, k.runtime.name) for k in kinds]
        jobs.append(Job(member, "onnx-int8 (QOperator)", directory / "model.qop.onnx", "onnxruntime"))
    by_shape = {}
    for member, (spec, _) in specs.items():  # the bench inputs: one file per input shape
        path = folder / f"inputs-{member.replace(':', '_')}.npz"
        np.savez(path, x=np.random.default_rng(0).normal(size=(4, *spec.input_shape)).astype(np.float32),
                 y=np.zeros(4, int))
        by_shape[member] = path
    results = {}
    for member, path in by_shape.items():  # interleaved within each model, fresh processes
        mine = [j for j in jobs if j.member == member]
        results.update(measure_all(mine, settings, path))
    p50 = {(j.member, j.artifact): r.get("p50_ms") for j, r in results.items()}
    lines = [f"\n**int8 against fp32** (random weights, batch 1, {threads} threads, {settings.processes} fresh "
             "processes interleaved per model; goal int8/fp32 <= "
             f"{INT8_GOAL})\n",
             "| model | MACs | ORT fp32 ms | ORT int8 QDQ ms | ratio | verdict | ORT int8 QOperator ms | ratio | "
             "OpenVINO fp32 ms | OpenVINO int8 ms | ratio | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for member, (spec, macs) in specs.items():
        of, oq, oo = p50[(member, "onnx-fp32")], p50[(member, "onnx-int8")], p50[(member, "onnx-int8 (QOperator)")]
        vf, vq = p50[(member, "openvino-fp32")], p50[(member, "openvino-int8")]

        def word(r):
            return "met" if r <= INT8_GOAL else "NOT met"

        RATIOS.extend((oq / of, vq / vf))
        lines.append(f"| {member} | {macs:,} | {of:.3f} | {oq:.3f} | {oq / of:.2f} | {word(oq / of)} | {oo:.3f} | "
                     f"{oo / of:.2f} | {vf:.3f} | {vq:.3f} | {vq / vf:.2f} | {word(vq / vf)} |")
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(sys.stderr):  # quantizers print
        lines = int8_table(Path(d)) + family_table(Path(d))
    print(f"# Model families  (host: {host.cpu_model()}, {host.cores()} cores)")
    print("\n".join(lines))
    print("\nAccuracy is the torch model's on the test rows, each student distilled from the data's default "
          "teacher for the default epochs (MNIST-1D without its generated transfer set, to keep the run short). "
          "Latency is the host p50 of `edgekd distill`'s own bench (1 process per artifact here, to keep the run "
          f"short; fp32 arithmetic in every runtime). Load average over the last 15 minutes at the end: "
          f"{os.getloadavg()[2]:.1f} on {host.cores()} cores.")
    met = sum(r <= INT8_GOAL for r in RATIOS)
    print(verdict(f"int8 at <= {INT8_GOAL}x fp32 p50 (edgekd's QDQ and NNCF artifacts) on every model of millions of "
                  "MACs", met == len(RATIOS), f"{met} of {len(RATIOS)} met, ratios {min(RATIOS):.2f}-"
                  f"{max(RATIOS):.2f}"))


if __name__ == "__main__":
    main()
