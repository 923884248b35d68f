"""What a runtime costs per call and per operator on this host, apart from any arithmetic.

A tiny student's latency is mostly this fixed cost: the runtime's dispatch, not its FLOPs.
Synthetic graphs measure it in the bench runner, in fresh processes like any artifact: a
chain of k operators on a (1, 4, 4) tensor costs call + k x per-operator, so k = 1 and
k = 1 + SPAN give both terms. Convolutions and matrix products (the kernels that pack
weights and pick an algorithm) cost several times an elementwise operator (0.9 vs 0.24 us
per operator in ONNX Runtime on this 2-core EPYC), so each has its own chain. The predictor
(edgekd.bench.predict) subtracts a graph's overhead from its measurement before scaling the
rest by the roofline, and scales the overhead itself by the clock.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from edgekd.bench.local import Job, Settings, run_once

SPAN = 64                                  # extra operators in the long chains
SHAPE = (4, 4)                             # (channels, length) per sample: no arithmetic to speak of
KERNELS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "QLinearConv", "ConvInteger", "MatMulInteger"}
REPEATS = 3                                # fresh processes per graph; the median is kept


@dataclass(frozen=True)
class Overhead:
    call_ms: float     # one inference of a one-operator graph
    op_ms: float       # each further elementwise, pooling or shape operator
    kernel_ms: float   # each further convolution or matrix product

    def ms(self, op_types: list[str]) -> float:
        kernels = sum(t in KERNELS for t in op_types)
        return self.call_ms + kernels * self.kernel_ms + max(0, len(op_types) - kernels - 1) * self.op_ms

    def to_dict(self) -> dict:
        return {"call_ms": self.call_ms, "op_ms": self.op_ms, "kernel_ms": self.kernel_ms}


def chain_graph(path: Path, op: str, ops: int) -> Path:
    """An ONNX graph input (N, 4, 4) -> `ops` Relu (or 3-tap Conv) operators -> flatten -> logits (N, 16)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    names = ["input", *(f"h{i}" for i in range(ops))]
    weights, nodes = [], []
    for i, (a, b) in enumerate(zip(names, names[1:])):
        if op == "Conv":
            weights.append(numpy_helper.from_array(np.full((SHAPE[0], SHAPE[0], 3), 0.1, np.float32), f"w{i}"))
            nodes.append(helper.make_node("Conv", [a, f"w{i}"], [b], pads=[1, 1]))
        else:
            nodes.append(helper.make_node(op, [a], [b]))
    nodes.append(helper.make_node("Flatten", [names[-1]], ["logits"]))  # the runner scores (N, classes) logits
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *SHAPE])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", SHAPE[0] * SHAPE[1]])
    graph = helper.make_graph(nodes, "chain", [x], [y], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def measure_overhead(threads: int, folder: Path, repeats: int = REPEATS) -> Overhead | None:
    """The ONNX Runtime overhead on this host with `threads` threads (None when a graph fails
    to run). Costs 3 x `repeats` short runner processes, about a second each."""
    import numpy as np

    from edgekd.runtimes import GRAPH_KIND

    folder.mkdir(parents=True, exist_ok=True)
    inputs = folder / "chain-inputs.npz"
    np.savez(inputs, x=np.zeros((8, *SHAPE), np.float32), y=np.zeros(8, np.int64))
    settings = Settings(threads=threads, processes=1, warmup=20, min_iters=200, min_seconds=0.3)
    p50 = {}
    for op, ops in (("Relu", 1), ("Relu", 1 + SPAN), ("Conv", 1 + SPAN)):
        path = chain_graph(folder / f"chain-{op}-{ops}.onnx", op, ops)
        runs = [run_once(Job("overhead", GRAPH_KIND.name, path, GRAPH_KIND.runtime.name), settings, inputs)
                for _ in range(repeats)]
        if any("error" in r for r in runs):
            return None
        p50[op, ops] = statistics.median(r["p50_ms"] for r in runs)
    call = p50["Relu", 1]
    return Overhead(call, max(0.0, (p50["Relu", 1 + SPAN] - call) / SPAN),
                    max(0.0, (p50["Conv", 1 + SPAN] - call) / SPAN))


def overhead_of(kind_name: str, overhead: Overhead | None) -> Overhead | None:
    """The measured overhead where it applies: artifacts of the runtime it was measured in
    (ONNX Runtime). OpenVINO's and ncnn's own costs per call differ; their rows keep the plain
    roofline scaling."""
    from edgekd.runtimes import GRAPH_KIND, kind

    return overhead if kind(kind_name).runtime is GRAPH_KIND.runtime else None
