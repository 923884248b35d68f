"""The latency predictor: the overhead term, size classes, and what a prediction says of itself."""

from __future__ import annotations

import pytest

from edgekd.bench import predict
from edgekd.bench.graph import OpCost
from edgekd.bench.overhead import Overhead, chain_graph, measure_overhead
from edgekd.report.render import predicted_ms

HOST = predict.Machine(peak_gflops=100.0, bandwidth_gbs=10.0, cores=2, threads=2, clock_ghz=3.0)
BOARD = predict.Machine(peak_gflops=10.0, bandwidth_gbs=5.0, cores=4, threads=4, clock_ghz=1.5)
# (1 M flops, 1 KB moved) per operator: compute-bound on both machines
COSTS = [OpCost("Conv", 1e6, 1e3), OpCost("Relu", 1e6, 1e3), OpCost("Gemm", 1e6, 1e3)]


def test_without_overhead_the_measurement_scales_by_the_roofline_ratio():
    got = predict.predict_ms(1.0, COSTS, 0.0, "fp32", HOST, BOARD)
    assert got["p50_ms"] == pytest.approx(1.0 * BOARD.roofline_s(COSTS) / HOST.roofline_s(COSTS))
    assert got["overhead_ms"] is None


def test_the_overhead_scales_by_the_clock_and_the_rest_by_the_roofline():
    overhead = Overhead(call_ms=0.1, op_ms=0.01, kernel_ms=0.05)
    fixed = 0.1 + 2 * 0.05  # two kernels (Conv, Gemm); the Relu is the call's own operator
    assert overhead.ms([c.op for c in COSTS]) == pytest.approx(fixed)
    got = predict.predict_ms(1.0, COSTS, 0.0, "fp32", HOST, BOARD, overhead)
    ratio = BOARD.roofline_s(COSTS) / HOST.roofline_s(COSTS)
    assert got["p50_ms"] == pytest.approx(fixed * 3.0 / 1.5 + (1.0 - fixed) * ratio)
    assert got["overhead_ms"] == pytest.approx(fixed)


def test_overhead_is_never_more_than_the_measurement():
    got = predict.predict_ms(0.01, COSTS, 0.0, "fp32", HOST, BOARD, Overhead(1.0, 1.0, 1.0))
    assert 0 < got["overhead_ms"] < 0.01 and got["p50_ms"] > 0


@pytest.mark.parametrize("macs,size,validated", [(5e5, "tiny", False), (3e7, "small", False), (3e8, "large", True)])
def test_a_prediction_names_its_size_class_and_whether_it_was_validated(macs, size, validated):
    got = predict.predict_ms(1.0, [OpCost("Conv", 2 * macs, 1e3)], 0.0, "fp32", HOST, BOARD)
    assert (got["size_class"], got["validated"]) == (size, validated)
    assert ("not validated" in predicted_ms(got)) is not validated


def test_chain_graphs_are_what_the_runner_scores(tmp_path):
    import numpy as np
    import onnxruntime as ort

    for op in ("Relu", "Conv"):
        session = ort.InferenceSession(str(chain_graph(tmp_path / f"{op}.onnx", op, 5)))
        out = session.run(None, {"input": np.ones((3, 4, 4), np.float32)})[0]
        assert out.shape == (3, 16) and len(session.get_outputs()) == 1


@pytest.mark.slow
def test_overhead_is_measured_in_fresh_runner_processes(tmp_path):
    got = measure_overhead(1, tmp_path)
    assert got is not None and got.call_ms > 0 and got.op_ms >= 0 and got.kernel_ms >= 0
    assert got.call_ms < 50  # a one-operator graph: anything near 50 ms is not a measurement of dispatch
