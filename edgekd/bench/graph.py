"""Work per operator, read from an ONNX graph: FLOPs and bytes moved at a given batch size.

This is what the roofline predictor needs, and it is read from the deployed file, not the
torch model, so it describes exactly what the runtime executes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from edgekd.runtimes.onnx import weight_bytes  # noqa: F401  (the predictor reads both from one graph)

SHAPE_ONLY = {"Constant", "Shape", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Gather",
              "Concat", "Cast", "Slice", "QuantizeLinear", "DequantizeLinear"}


@dataclass(frozen=True)
class OpCost:
    op: str
    flops: float
    bytes: float


def graph_costs(path: Path, batch: int = 1) -> list[OpCost]:
    import onnx

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = batch
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)  # data_prop: shapes built from Shape/Concat
    g = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(g.value_info) + list(g.input) + list(g.output)}
    for t in g.initializer:
        shapes[t.name] = list(t.dims)

    def size(name):
        return math.prod(shapes.get(name, [0])) if name else 0

    costs = []
    for node in g.node:
        if node.op_type in SHAPE_ONLY:
            continue
        out = size(node.output[0])
        moved = 4.0 * (sum(size(i) for i in node.input) + sum(size(o) for o in node.output))
        if node.op_type == "Conv":
            kernel = shapes.get(node.input[1], [1, 1])
            per_out = math.prod(kernel[1:])           # (Cin / groups) * prod(kernel)
            flops = 2.0 * out * per_out
        elif node.op_type in ("Gemm", "MatMul"):
            k = shapes.get(node.input[0], [1])[-1]
            flops = 2.0 * out * k
        else:                                          # element-wise, pooling, reductions
            flops = float(max(out, size(node.input[0])))
        costs.append(OpCost(node.op_type, flops, moved))
    return costs
