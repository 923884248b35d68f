"""ONNX, run by ONNX Runtime: torch -> ONNX (fp32) and static int8 quantization (QDQ).

Export uses torch's TorchScript-based exporter (dynamo=False), deliberately: for these small
convolutional/MLP students it produces the same graph as the dynamo exporter, in well
under a second instead of 1-4 s per model, and writes weights inside the one .onnx file
(dynamo writes a separate .onnx.data by default). Every exported file must pass
onnx.checker's full check and shape inference.

int8: static quantization, QDQ format, per-channel int8 weights, uint8 activations (the x86
default; ARM runs the same QDQ graph). The input standardization (the elementwise ops
between the raw input and the first layer) stays in float: raw inputs may hold columns whose
scales differ by orders of magnitude, and one uint8 scale for all of them would zero the
small ones.

Imports nothing but the standard library at module level: the bench copies this file to a
device, where `open_model` runs beside the runner with only numpy and onnxruntime.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

OPSET = 17
ELEMENTWISE = {"Sub", "Mul", "Add", "Div"}


def open_model(path: str, threads: int, precision: str = "f32"):
    """(predict, settings). ORT runs an artifact at the precision it stores; `precision` is not
    a session option here."""
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


def output_names(path: str) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(path, load_external_data=False).graph.output]


def export_fp32(ctx) -> dict:
    """The bare student with a dynamic batch axis."""
    import onnx
    import torch

    from edgekd.runs import atomic_path
    from edgekd.runtimes import INPUT, OUTPUT

    model = ctx.model.eval()
    with atomic_path(ctx.out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices are not the user's business
        torch.onnx.export(model, (torch.zeros(2, *ctx.input_shape),), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    return {"exporter": f"torch.onnx (TorchScript) {torch.__version__}", "opset": OPSET,
            "input": INPUT, "output": OUTPUT, "dynamic_axes": ["batch"]}


def quantize_int8(ctx) -> dict:
    import numpy as np
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekd.runs import atomic_path
    from edgekd.runtimes import INPUT

    calibration = ctx.calibration

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(calibration.astype(np.float32), max(1, len(calibration) // 64)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(ctx.source), str(pre), skip_symbolic_shape=True)
        with atomic_path(ctx.out) as target:
            quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=_standardization(pre, INPUT))
    return {"quantizer": f"onnxruntime.quantization {onnxruntime.__version__}", "format": "QDQ",
            "weights": "int8 per-channel", "activations": "uint8", "calibration_samples": len(calibration)}


def _standardization(path: Path, input_name: str) -> list[str]:
    """Names of the elementwise nodes that lead from the graph input to the first layer."""
    import onnx

    graph = onnx.load(str(path)).graph
    chain, tensor = [], input_name
    while True:
        users = [n for n in graph.node if tensor in n.input]
        if len(users) != 1 or users[0].op_type not in ELEMENTWISE:
            return chain
        chain.append(users[0].name)
        tensor = users[0].output[0]


def weight_bytes(path: Path) -> int:
    """Bytes of the graph's stored constants (initializers and Constant nodes), at their own
    dtypes: what quantization shrinks. For tiny models the graph's description outweighs them,
    so an int8 file can be larger than its fp32 source while its weights are smaller."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = list(graph.initializer) + [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute
                                           if a.type == onnx.AttributeProto.TENSOR]
    return int(sum(numpy_helper.to_array(t).nbytes for t in constants))


def initializer_count(path: Path) -> int:
    """Number of weight values stored in the graph (to check only the student is exported)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    return int(sum(np.prod(numpy_helper.to_array(t).shape) for t in onnx.load(str(path)).graph.initializer))
