"""INT8 post-training quantization with a calibration set drawn from the training data.

ONNX Runtime: static quantization, QDQ format, per-channel int8 weights, uint8 activations
(the x86 default; ARM runs the same QDQ graph). OpenVINO: NNCF's `quantize` on the fp32 IR.

Both leave the input standardization (the elementwise ops between the raw input and the
first layer) in float: raw inputs may hold columns whose scales differ by orders of
magnitude, and one uint8 scale for all of them would zero the small ones. Quantization
starts at the first layer, whose input is standardized.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgekd.offline import disable_telemetry


def calibration_set(x_train: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    take = min(size, len(x_train))
    return x_train[np.random.default_rng(seed).choice(len(x_train), take, replace=False)]


def quantize_onnx(fp32_path: Path, out_path: Path, calibration: np.ndarray, input_name: str) -> dict:
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekd.runs import atomic_path

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(calibration.astype(np.float32), max(1, len(calibration) // 64)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        with atomic_path(out_path) as target:
            quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=_onnx_standardization(pre, input_name))
    return {"quantizer": f"onnxruntime.quantization {onnxruntime.__version__}", "format": "QDQ",
            "weights": "int8 per-channel", "activations": "uint8", "calibration_samples": len(calibration)}


def quantize_openvino(fp32_xml: Path, out_xml: Path, calibration: np.ndarray) -> dict:
    disable_telemetry()
    import contextlib
    import io
    import logging

    import nncf
    import openvino as ov

    from edgekd.export.openvino import save_ir

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.Core().read_model(str(fp32_xml))
    batches = np.array_split(calibration.astype(np.float32), max(1, len(calibration) // 64))
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws its own progress bars
        quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(calibration),
                                  ignored_scope=nncf.IgnoredScope(names=_openvino_standardization(model)))
    save_ir(quantized, out_xml, fp16=False)
    return {"quantizer": f"nncf {nncf.__version__}", "preset": "performance (symmetric)",
            "calibration_samples": len(calibration)}


ELEMENTWISE_ONNX = {"Sub", "Mul", "Add", "Div"}
ELEMENTWISE_OPENVINO = {"Subtract", "Multiply", "Add", "Divide"}


def _onnx_standardization(path: Path, input_name: str) -> list[str]:
    """Names of the elementwise nodes that lead from the graph input to the first layer."""
    import onnx

    graph = onnx.load(str(path)).graph
    chain, tensor = [], input_name
    while True:
        users = [n for n in graph.node if tensor in n.input]
        if len(users) != 1 or users[0].op_type not in ELEMENTWISE_ONNX:
            return chain
        chain.append(users[0].name)
        tensor = users[0].output[0]


def _openvino_standardization(model) -> list[str]:
    """The same for an OpenVINO model (its converter may fuse the ops into Multiply, Add)."""
    chain, output = [], model.get_parameters()[0].output(0)
    while True:
        users = [i.get_node() for i in output.get_target_inputs()]
        if len(users) != 1 or users[0].get_type_name() not in ELEMENTWISE_OPENVINO:
            return chain
        chain.append(users[0].get_friendly_name())
        output = users[0].output(0)
