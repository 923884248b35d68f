"""The one shape all data takes inside edgekd."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edgekd.errors import UserError


@dataclass(frozen=True)
class Splits:
    name: str
    x_train: np.ndarray            # (N, *input_shape) float32
    y_train: np.ndarray            # (N,) int64 in [0, classes)
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    x_transfer: np.ndarray | None = None   # unlabeled inputs only the teacher labels

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": len(self.y_test),
            "transfer": 0 if self.x_transfer is None else len(self.x_transfer),
            "fingerprint": self.fingerprint(),
        }


def check_arrays(where: str, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Cast to float32/int64 and refuse what would silently break training."""
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(f"{where}: inputs are not numeric") from None
    if x.ndim < 2 or len(x) == 0:
        raise UserError(f"{where}: no samples (inputs have shape {x.shape})")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())
        raise UserError(f"{where}: {bad} samples contain NaN or infinite values")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{where}: {len(x)} inputs but labels of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all() or (y != np.round(y)).any():
            raise UserError(f"{where}: labels must be integer class indices")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise UserError(f"{where}: labels must be class indices >= 0, found {y.min()}")
    return x, y


def split_off(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Stratified-enough random split: (x_keep, y_keep, x_out, y_out), fixed by seed."""
    n_out = int(round(len(x) * fraction))
    order = np.random.default_rng(seed).permutation(len(x))
    out, keep = order[:n_out], order[n_out:]
    return x[keep], y[keep], x[out], y[out]
