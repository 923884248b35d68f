"""Check an exported artifact against the PyTorch student it came from.

Output names and shapes, dynamic batch (1 and 7), max |difference| on held-out inputs
against the tolerance its precision carries in the runtime table, then top-1 accuracy on the
test set computed by the runtime itself, and top-1 agreement with the torch student on the
test rows and up to AGREEMENT_ROWS more (validation, then training rows: no labels needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd import runtimes
from edgekd.data.rows import chunks, joined

AGREEMENT_ROWS = 2000  # agreement needs no labels: test, then validation, then training rows, up to this


def agreement_inputs(x_test: np.ndarray, x_val: np.ndarray, x_train: np.ndarray, cap: int = AGREEMENT_ROWS):
    """The rows agreement is checked on, test rows first. On a test set of 30 rows one
    disagreement would be 3.3 points of agreement: a bar of 0.95 would pass or fail on one row.
    Data on disk stays there: the rows are a view, read a batch at a time."""
    more_val = min(max(0, cap - len(x_test)), len(x_val))
    more_train = min(max(0, cap - len(x_test) - more_val), len(x_train))
    return joined(joined(x_test, x_val[:more_val]), x_train[:more_train])


def verify(path: Path, kind: runtimes.Kind, torch_predict, x_check: np.ndarray, x_agree: np.ndarray,
           y_test: np.ndarray, classes: int, threads: int) -> dict:
    """Return the validation record; `passed` says whether every check held. `x_agree` holds
    the test rows first (accuracy is scored on those), then more unlabelled rows for agreement."""
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
    for batch in (1, 7):  # rows repeated when the validation split has fewer
        shape = tuple(predict(np.ascontiguousarray(x_check[np.arange(batch) % len(x_check)])).shape)
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
    pred = _batched(predict, x_agree).argmax(1)
    record["accuracy"] = float((pred[:len(y_test)] == y_test).mean())
    record["agreement"] = float((pred == _batched(torch_predict, x_agree).argmax(1)).mean())
    record.update(agreement_rows=len(x_agree), min_agreement=p.min_agreement)
    if record["agreement"] < p.min_agreement:
        problems.append(f"top-1 agreement with torch {record['agreement']:.3f} is below {p.min_agreement}")
    record["problems"] = problems
    record["passed"] = not problems
    return record


def _batched(predict, x: np.ndarray, size: int = 64) -> np.ndarray:
    return np.concatenate([predict(np.ascontiguousarray(c)) for c in chunks(x, size)])
