"""Check an exported artifact against the PyTorch student it came from.

Output names and shapes, dynamic batch (1 and 7), max |difference| on held-out inputs
against an explicit tolerance per precision, then top-1 accuracy on the test set computed
by the runtime itself, and agreement with the torch student's predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.bench.runner import open_model

# precision -> (atol, rtol): |artifact - torch| <= atol + rtol * max|torch| over every logit.
# int8 logits move by design, so int8 is also held to top-1 agreement with torch.
TOLERANCE = {"fp32": (1e-4, 1e-4), "fp16": (2e-2, 1e-2), "int8": (0.0, 0.25)}
MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.99, "int8": 0.95}
RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}


def output_names(path: Path, fmt: str) -> list[str]:
    if fmt == "onnx":
        import onnx

        return [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
    import openvino as ov

    return [sorted(o.get_names())[0] if o.get_names() else "" for o in ov.Core().read_model(str(path)).outputs]


def verify(path: Path, fmt: str, precision: str, torch_predict, x_check: np.ndarray, x_test: np.ndarray,
           y_test: np.ndarray, classes: int, threads: int) -> dict:
    """Return the validation record; `passed` says whether every check held."""
    atol, rtol = TOLERANCE[precision]
    record: dict = {"artifact": f"{fmt}-{precision}", "runtime": RUNTIME[fmt], "tolerance": {"atol": atol, "rtol": rtol}}
    predict, settings = open_model(str(path), RUNTIME[fmt], threads)  # fp32 inference precision, always
    record["settings"] = settings
    problems = []
    names = output_names(path, fmt)
    record["outputs"] = names
    if names != ["logits"]:
        problems.append(f"outputs are {names}, expected ['logits']")
    for batch in (1, 7):
        shape = tuple(predict(np.ascontiguousarray(x_check[:batch])).shape)
        record[f"batch_{batch}_shape"] = list(shape)
        if shape != (batch, classes):
            problems.append(f"batch {batch} gives shape {shape}, expected {(batch, classes)}")
    ref = torch_predict(x_check)
    got = _batched(predict, x_check)
    diff = float(np.abs(got - ref).max())
    limit = atol + rtol * float(np.abs(ref).max())
    record.update(max_abs_diff=diff, limit=limit, checked_samples=len(x_check))
    if not diff <= limit:
        problems.append(f"max |difference| {diff:.3g} exceeds {limit:.3g}")
    test_pred = _batched(predict, x_test).argmax(1)
    record["accuracy"] = float((test_pred == y_test).mean())
    record["agreement"] = float((test_pred == torch_predict(x_test).argmax(1)).mean())
    record["min_agreement"] = MIN_AGREEMENT[precision]
    if record["agreement"] < MIN_AGREEMENT[precision]:
        problems.append(f"top-1 agreement with torch {record['agreement']:.3f} is below {MIN_AGREEMENT[precision]}")
    record["problems"] = problems
    record["passed"] = not problems
    return record


def _batched(predict, x: np.ndarray, size: int = 64) -> np.ndarray:
    return np.concatenate([predict(np.ascontiguousarray(x[i:i + size])) for i in range(0, len(x), size)])
