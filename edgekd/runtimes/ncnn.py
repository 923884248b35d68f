"""ncnn (Tencent's CPU runtime for ARM boards and phones): .param (the graph as text) + .bin
(the weights), converted from a TorchScript trace of the student by pnnx.

Two artifacts: fp32 weights, and fp16 weight storage (pnnx `fp16=1`), half the .bin. int8
is not built: ncnn's int8 needs its ncnn2table and ncnn2int8 tools, which no package
registry ships. ncnn has no batch axis: a net takes one sample, so a batch runs sample by
sample. pnnx names the blobs in0/out0; edgekd renames them to the input and output names
every artifact carries. Opened with fp16/bf16 storage and arithmetic off for f32 (ncnn's
x86 and ARM kernels use them by default where the CPU has them), and no OpenMP spinning
after a call, as ONNX Runtime is opened.

Imports nothing but the standard library at module level: the bench copies this file to a
device, where `open_model` runs beside the runner with only numpy and ncnn.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

PNNX_TIMEOUT_S = 300
MAGIC = "7767517"  # first line of every ncnn .param


def open_model(path: str, threads: int, precision: str = "f32"):
    import ncnn
    import numpy as np

    layers = _read_param(Path(path))
    (inp,), outputs = _inputs(layers), _outputs(layers)
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.openmp_blocktime = 0
    exact = precision == "f32"
    if exact:
        for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
            setattr(net.opt, option, False)
    if net.load_param(path) != 0 or net.load_model(str(Path(path).with_suffix(".bin"))) != 0:
        raise ValueError(f"ncnn could not load {path} and its .bin")

    def predict(x):
        rows = []
        for sample in x:
            with net.create_extractor() as ex:
                ex.input(inp, ncnn.Mat(np.ascontiguousarray(sample)).clone())  # clone: ncnn keeps no numpy reference
                status, out = ex.extract(outputs[0])
                if status != 0:
                    raise RuntimeError(f"ncnn extract of {outputs[0]!r} failed with status {status}")
                rows.append(np.array(out, dtype=np.float32).reshape(-1))
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    settings = {"runtime": "ncnn", "version": ncnn.__version__, "threads": threads, "openmp_blocktime_ms": 0,
                "fp16_storage": not exact, "fp16_arithmetic": not exact,
                "precision": "f32" if exact else "ncnn defaults", "batch": "one sample per call (no batch axis)"}
    return predict, settings


def weight_bytes(path: Path) -> int:
    """The .bin: weights, without the .param graph."""
    return Path(path).with_suffix(".bin").stat().st_size


def output_names(path: str) -> list[str]:
    return _outputs(_read_param(Path(path)))


def export_fp32(ctx) -> dict:
    return _export(ctx, fp16=False)


def export_fp16(ctx) -> dict:
    return _export(ctx, fp16=True)


def _export(ctx, fp16: bool) -> dict:
    """Trace the student at batch 1, convert with the pnnx executable in a child process (it
    prints freely and would take edgekd down with it if it crashed), then write .bin and
    .param (bin first: the param is the artifact's name)."""
    import pnnx
    import torch

    from edgekd.diskspace import writing
    from edgekd.runs import atomic_path
    from edgekd.runtimes import INPUT, OUTPUT

    # pnnx writes in the system's temporary directory: when that is full, its failure (in a
    # child process, or torch's "unexpected pos" tracing) is one sentence naming it
    with tempfile.TemporaryDirectory() as tmp, writing(Path(tempfile.gettempdir())):
        work = Path(tmp)
        example = torch.zeros(1, *ctx.input_shape)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notices are not the user's business
            torch.jit.trace(ctx.model.eval(), (example,)).save(str(work / "trace.ts"))
        outputs = {key: str(work / name) for key, name in (
            ("ncnnparam", "ncnn.param"), ("ncnnbin", "ncnn.bin"), ("ncnnpy", "ncnn.py"), ("pnnxparam", "pnnx.param"),
            ("pnnxbin", "pnnx.bin"), ("pnnxpy", "pnnx.py"), ("pnnxonnx", "pnnx.onnx"))}
        shape = ",".join(str(d) for d in example.shape)
        argv = [pnnx.EXEC_PATH, str(work / "trace.ts"), f"inputshape=[{shape}]f32", f"fp16={int(fp16)}",
                *(f"{key}={value}" for key, value in outputs.items())]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pnnx did not finish within {PNNX_TIMEOUT_S} s") from None
        param = Path(outputs["ncnnparam"])
        if done.returncode != 0 or not param.is_file():
            tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise RuntimeError(f"pnnx exited {done.returncode}: {tail[:200]}")
        layers = _read_param(param)
        names = {**{b: INPUT for b in _inputs(layers)}, **{b: OUTPUT for b in _outputs(layers)}}
        param.write_text(_rename(param.read_text(), names))
        # copied, not renamed: the run may be on another file system than the temporary directory
        for made, dest in ((Path(outputs["ncnnbin"]), ctx.out.with_suffix(".bin")), (param, ctx.out)):
            with atomic_path(dest, made.stat().st_size) as part:
                shutil.copyfile(made, part)
    return {"converter": f"pnnx {_version('pnnx')} (TorchScript trace, torch {torch.__version__})",
            "weights": "fp16" if fp16 else "fp32", "input": INPUT, "output": OUTPUT, "batch": "one sample per call"}


def _read_param(path: Path) -> list[tuple[str, str, list[str], list[str]]]:
    """(type, name, bottoms, tops) of every layer of a .param."""
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != MAGIC:
        raise ValueError(f"{path} is not an ncnn .param (no {MAGIC} magic)")
    layers = []
    for line in lines[2:]:
        t = line.split()
        if len(t) < 4:
            continue
        n_in, n_out = int(t[2]), int(t[3])
        layers.append((t[0], t[1], t[4:4 + n_in], t[4 + n_in:4 + n_in + n_out]))
    return layers


def _inputs(layers) -> list[str]:
    return [top for kind, _, _, tops in layers if kind == "Input" for top in tops]


def _outputs(layers) -> list[str]:
    """Blobs no layer reads: what a caller extracts."""
    consumed = {b for _, _, bottoms, _ in layers for b in bottoms}
    return [top for _, _, _, tops in layers for top in tops if top not in consumed]


def _rename(text: str, names: dict[str, str]) -> str:
    """Rename blobs (and the Input layer, which ncnn names after its blob) in .param text."""
    lines = text.splitlines()
    out = lines[:2]
    for line in lines[2:]:
        t = line.split()
        if len(t) < 4:
            out.append(line)
            continue
        n = 4 + int(t[2]) + int(t[3])
        blobs = [names.get(b, b) for b in t[4:n]]
        name = names.get(t[1], t[1]) if t[0] == "Input" else t[1]
        out.append(" ".join([t[0], name, t[2], t[3], *blobs, *t[n:]]))
    return "\n".join(out) + "\n"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"
