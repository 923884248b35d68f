"""Check an exported artifact against the PyTorch student it came from.

Output names and shapes, dynamic batch (1 and 7), max |difference| on held-out inputs
against the tolerance its precision carries in the runtime table, then top-1 accuracy on the
test set computed by the runtime itself, and agreement with the torch student's predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd import runtimes


def verify(path: Path, kind: runtimes.Kind, torch_predict, x_check: np.ndarray, x_test: np.ndarray,
           y_test: np.ndarray, classes: int, threads: int) -> dict:
    """Return the validation record; `passed` says whether every check held."""
    p = kind.precision
    record: dict = {"artifact": kind.name, "runtime": kind.runtime.name, "tolerance": {"atol": p.atol, "rtol": p.rtol}}
    runtime = kind.runtime.module
    predict, settings = runtime.open_model(str(path), threads)  # fp32 inference precision, always
    record["settings"] = settings
    problems = []
    names = runtime.output_names(str(path))
    record["outputs"] = names
    if names != [runtimes.OUTPUT]:
        problems.append(f"outputs are {names}, expected {[runtimes.OUTPUT]}")
    for batch in (1, 7):
        shape = tuple(predict(np.ascontiguousarray(x_check[:batch])).shape)
        record[f"batch_{batch}_shape"] = list(shape)
        if shape != (batch, classes):
            problems.append(f"batch {batch} gives shape {shape}, expected {(batch, classes)}")
    ref = torch_predict(x_check)
    got = _batched(predict, x_check)
    diff = float(np.abs(got - ref).max())
    limit = p.atol + p.rtol * float(np.abs(ref).max())
    record.update(max_abs_diff=diff, limit=limit, checked_samples=len(x_check))
    if not diff <= limit:
        problems.append(f"max |difference| {diff:.3g} exceeds {limit:.3g}")
    test_pred = _batched(predict, x_test).argmax(1)
    record["accuracy"] = float((test_pred == y_test).mean())
    record["agreement"] = float((test_pred == torch_predict(x_test).argmax(1)).mean())
    record["min_agreement"] = p.min_agreement
    if record["agreement"] < p.min_agreement:
        problems.append(f"top-1 agreement with torch {record['agreement']:.3f} is below {p.min_agreement}")
    record["problems"] = problems
    record["passed"] = not problems
    return record


def _batched(predict, x: np.ndarray, size: int = 64) -> np.ndarray:
    return np.concatenate([predict(np.ascontiguousarray(x[i:i + size])) for i in range(0, len(x), size)])
