"""The linear reference of a run: logistic regression on the standardized, flattened training
rows (scikit-learn). It costs seconds and answers the first question about any network: does
it beat a linear model on the same split? Shown beside the scratch controls.

Large inputs are fitted on a subsample of the training rows (at most MAX_VALUES values), said
in the record, so an image folder of a hundred thousand files does not stall the run here.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from edgekd.data import Splits
from edgekd.data.rows import chunks, take

MAX_VALUES = 20_000_000   # rows x features fitted; beyond it, a subsample of rows
MAX_ITER = 1000


def fit_linear(splits: Splits, seed: int) -> tuple[dict, np.ndarray]:
    """(record, per-row test correctness) of a logistic regression fitted on the training rows."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    x, y = splits.x_train, splits.y_train
    features = int(np.prod(x.shape[1:]))
    rows = min(len(x), max(splits.classes, MAX_VALUES // max(1, features)))
    if rows < len(x):
        keep = np.random.default_rng(seed).choice(len(x), rows, replace=False)
        x, y = take(x, keep), y[keep]
    x = np.asarray(x).reshape(len(x), -1).astype(np.float64)  # one float64 copy, standardized in place
    scaler = StandardScaler(copy=False).fit(x)
    model = LogisticRegression(max_iter=MAX_ITER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(scaler.transform(x), y)
    del x

    def predict(a) -> np.ndarray:  # chunk by chunk: a test split may stay on disk
        return np.concatenate([model.predict(scaler.transform(c.reshape(len(c), -1).astype(np.float64)))
                               for c in chunks(a)])

    correct = predict(splits.x_test) == splits.y_test
    record = {"model": f"LogisticRegression(C=1.0, max_iter={MAX_ITER}) on standardized flattened inputs",
              "test_acc": float(correct.mean()), "val_acc": float((predict(splits.x_val) == splits.y_val).mean()),
              "train_rows": int(rows), "features": int(features), "test_rows": int(len(correct)),
              "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
              "seconds": time.perf_counter() - started}
    return record, correct
