"""OpenVINO IR (.xml + .bin): converted from the fp32 ONNX, fp16 weights as their own
artifact, and int8 by NNCF's post-training quantization of the fp32 IR.

`openvino.save_model` compresses weights to fp16 by default; we choose explicitly: the fp32
artifact keeps fp32 weights. The CPU plugin infers in bf16 on hosts that have it unless told
otherwise, so artifacts are opened with an explicit inference precision (f32 unless asked).
int8 leaves the input standardization in float, as the ONNX quantizer does.

Imports nothing but the standard library at module level: the bench copies this file to a
device, where `open_model` runs beside the runner with only numpy and openvino.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ELEMENTWISE = {"Subtract", "Multiply", "Add", "Divide"}
_COUNTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*_\d+")
_telemetry_off = False


def disable_telemetry() -> None:
    """Keep OpenVINO's and NNCF's telemetry client from ever sending anything.

    `openvino_telemetry.Telemetry` is a process-wide singleton that declines in CI
    environments. We build it first with that check answering "declined", then make its
    `init` a no-op: OpenVINO's converter calls `init` again to re-decide consent.
    Every process that imports openvino calls this first (edgekd and the bench runner).
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


def open_model(path: str, threads: int, precision: str = "f32"):
    """(predict, settings), with `precision` as the CPU plugin's inference precision."""
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
    output = request.get_output_tensor  # read by index: indexing infer's result costs ~4 us a call

    def predict(x):
        # shared input and output memory, then one copy of the logits: the next call reuses the buffer
        request.infer({0: x}, share_inputs=True, share_outputs=True)
        return output(0).data.copy()
    return predict, settings


NATIVE_TOOL = "benchmark_app"  # ships with the openvino pip package, beside its Python
_NATIVE_MEDIAN = re.compile(r"Median:\s+([\d.]+) (ms|us)")
_NATIVE_COUNT = re.compile(r"Count:\s+(\d+) iterations")


def native_tool() -> str | None:
    """benchmark_app beside this Python (a virtual environment's bin/), else on PATH."""
    beside = Path(sys.executable).with_name(NATIVE_TOOL)
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(NATIVE_TOOL)


def native_latency(path: str, threads: int, shape: tuple[int, ...], seconds: float,
                   precision: str = "f32") -> dict:
    """OpenVINO's own benchmark tool on the same IR, threads, streams and inference precision
    as open_model: its per-request latency is timed inside the runtime (AsyncInferQueue), so
    no Python runs per call. {"p50_ms", "runs", "seconds", "command", "tool"}, or {"missing"}
    when benchmark_app is not installed here, or {"error"}."""
    tool = native_tool()
    if tool is None:
        return {"missing": f"{NATIVE_TOOL} not found beside {sys.executable} or on PATH"}
    whole = max(1, math.ceil(seconds))  # benchmark_app takes whole seconds
    # -hint none: benchmark_app refuses explicit threads and streams beside a hint; 1 stream and
    # 1 request are what the LATENCY hint gives open_model
    argv = [tool, "-m", path, "-d", "CPU", "-hint", "none", "-nthreads", str(threads), "-nstreams", "1",
            "-nireq", "1", "-shape", "[" + ",".join(map(str, shape)) + "]", "-t", str(whole),
            "-infer_precision", precision]
    env = {**os.environ, "CI": "true"}  # its telemetry client declines in CI: a benchmark never phones home
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60 + 2 * whole,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"error": f"{NATIVE_TOOL} did not finish within {60 + 2 * whole} s"}
    median, count = _NATIVE_MEDIAN.search(done.stdout), _NATIVE_COUNT.search(done.stdout)
    if done.returncode != 0 or not median:
        tail = (done.stdout + done.stderr).strip().splitlines() or ["no output"]
        return {"error": f"{NATIVE_TOOL} exited {done.returncode}: {tail[-1][:200]}"}
    p50 = float(median.group(1)) / (1000 if median.group(2) == "us" else 1)
    command = " ".join([NATIVE_TOOL, *argv[1:]])
    return {"p50_ms": p50, "runs": int(count.group(1)) if count else None, "seconds": whole, "command": command,
            "tool": NATIVE_TOOL}


def weight_bytes(path: Path) -> int:
    """The .bin: weights and other constants, without the .xml graph."""
    return Path(path).with_suffix(".bin").stat().st_size


def output_names(path: str) -> list[str]:
    disable_telemetry()
    import openvino as ov

    return [sorted(o.get_names())[0] if o.get_names() else "" for o in ov.Core().read_model(path).outputs]


def convert_fp32(ctx) -> dict:
    return _convert(ctx, fp16=False)


def convert_fp16(ctx) -> dict:
    return _convert(ctx, fp16=True)


def _convert(ctx, fp16: bool) -> dict:
    disable_telemetry()
    import openvino as ov

    model = ov.convert_model(str(ctx.source))
    save_ir(model, ctx.out, fp16)
    return {"converter": f"openvino.convert_model {ov.get_version()}", "weights": "fp16" if fp16 else "fp32",
            "compress_to_fp16": fp16}


def quantize_int8(ctx) -> dict:
    disable_telemetry()
    import contextlib
    import io
    import logging

    import nncf
    import numpy as np
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.Core().read_model(str(ctx.source))
    batches = np.array_split(ctx.calibration.astype(np.float32), max(1, len(ctx.calibration) // 64))
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws its own progress bars
        quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(ctx.calibration),
                                  ignored_scope=nncf.IgnoredScope(names=_standardization(model)))
    save_ir(quantized, ctx.out, fp16=False)
    return {"quantizer": f"nncf {nncf.__version__}", "preset": "performance (symmetric)",
            "calibration_samples": len(ctx.calibration)}


def save_ir(model, xml_path: Path, fp16: bool) -> None:
    """Write .xml and .bin under temporary names, then rename both (bin first: the xml names it)."""
    import openvino as ov

    from edgekd.diskspace import writing

    _stable_names(model)
    tmp_xml = xml_path.with_name(f".{xml_path.stem}.{os.getpid()}.tmp.xml")

    def cleanup():
        tmp_xml.unlink(missing_ok=True)
        tmp_xml.with_suffix(".bin").unlink(missing_ok=True)

    try:
        with writing(xml_path.parent, cleanup=cleanup):  # a full disk: "iostream error", without an errno
            xml_path.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(model, str(tmp_xml), compress_to_fp16=fp16)
            # the .xml refers to its .bin by the same stem, so rename the pair together
            os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
            os.replace(tmp_xml, xml_path)
    finally:
        cleanup()


def _stable_names(model) -> None:
    """Rename ops that carry OpenVINO's per-process counter ("Reshape_5486", also copied onto the
    constants folded from them) by their position instead, so the same model writes the same
    bytes whatever the process converted before: bench rows record the sha256 of what they
    timed, and a counter-named re-export would make them look stale. Inputs and outputs keep
    their names."""
    ops = list(model.get_ordered_ops())
    renamed = [op.get_type_name() not in ("Parameter", "Result")
               and bool(_COUNTER_NAME.fullmatch(op.get_friendly_name())) for op in ops]
    taken = {op.get_friendly_name() for op, r in zip(ops, renamed) if not r}  # names that stay
    for i, op in enumerate(ops):
        if renamed[i]:
            name = f"{op.get_type_name()}_{i}"
            while name in taken:
                name += "_"
            taken.add(name)
            op.set_friendly_name(name)


def _standardization(model) -> list[str]:
    """The elementwise ops from the input to the first layer (the converter may fuse them into
    Multiply, Add)."""
    chain, output = [], model.get_parameters()[0].output(0)
    while True:
        users = [i.get_node() for i in output.get_target_inputs()]
        if len(users) != 1 or users[0].get_type_name() not in ELEMENTWISE:
            return chain
        chain.append(users[0].get_friendly_name())
        output = users[0].output(0)
