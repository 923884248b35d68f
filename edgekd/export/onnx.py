"""torch -> ONNX, the bare student only, with a dynamic batch axis.

We use torch's TorchScript-based exporter (dynamo=False), deliberately: for these small
convolutional/MLP students it produces the same graph as the dynamo exporter, in well
under a second instead of 1-4 s per model, and writes weights inside the one .onnx file
(dynamo writes a separate .onnx.data by default). Every exported file must pass
onnx.checker's full check and shape inference.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17
INPUT, OUTPUT = "input", "logits"


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> dict:
    import onnx

    from edgekd.runs import atomic_path

    model = model.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices are not the user's business
        torch.onnx.export(model, (torch.zeros(2, *input_shape),), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    return {"exporter": f"torch.onnx (TorchScript) {torch.__version__}", "opset": OPSET,
            "input": INPUT, "output": OUTPUT, "dynamic_axes": ["batch"]}


def initializer_count(path: Path) -> int:
    """Number of weight values stored in the graph (to check only the student is exported)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    return int(sum(np.prod(numpy_helper.to_array(t).shape) for t in onnx.load(str(path)).graph.initializer))
