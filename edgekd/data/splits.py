"""The one shape all data takes inside edgekd."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edgekd.data.rows import ArrayRows, chunks, on_disk, subset
from edgekd.errors import UserError


@dataclass(frozen=True)
class Splits:
    name: str
    x_train: np.ndarray            # (N, *input_shape) float32, or edgekd.data.rows.Rows kept on disk
    y_train: np.ndarray            # (N,) int64 in [0, classes)
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    x_transfer: np.ndarray | None = None   # unlabeled inputs only the teacher labels
    class_names: tuple[str, ...] | None = None  # folder:PATH: class k is sub-folder class_names[k]
    augmentation: str = "noise"    # the label-keeping transforms for these inputs (edgekd.data.augment)
    tabular: bool = False          # columns of a table, each on its own scale: standardized one by one

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def on_disk(self) -> bool:
        """The inputs are read from disk as needed (data.load), not held in memory."""
        return on_disk(self.x_train)

    def fingerprint(self) -> str:
        """A hash of every split's inputs and labels, read chunk by chunk: the same digest whether
        the data is in memory or streamed from disk."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            for chunk in chunks(a):
                h.update(np.ascontiguousarray(chunk).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            **({"class_names": list(self.class_names)} if self.class_names else {}),
            "augmentation": self.augmentation,
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": len(self.y_test),
            "transfer": 0 if self.x_transfer is None else len(self.x_transfer),
            "load": "stream" if self.on_disk else "memory",
            "fingerprint": self.fingerprint(),
        }


def check_arrays(where: str, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Cast to float32/int64 and refuse what would silently break training."""
    _not_complex(where, x)
    x = _cast(where, x)
    bad = _bad_rows(x)
    if bad:
        raise UserError(f"{where}: {bad} samples contain NaN or infinite values")
    return x, None if y is None else check_label_array(where, len(x), y)


def check_rows(where: str, array: np.ndarray) -> ArrayRows:
    """check_arrays for an array mapped from disk, a chunk at a time: one pass over the file,
    none of it kept in memory."""
    _not_complex(where, array)
    if array.ndim < 2 or not len(array):
        check_arrays(where, array)  # refused, in its words
    bad = sum(_bad_rows(_cast(where, chunk)) for chunk in chunks(array))
    if bad:
        raise UserError(f"{where}: {bad} samples contain NaN or infinite values")
    return ArrayRows(array)


def _not_complex(where: str, x) -> None:
    if np.iscomplexobj(x):  # the float32 cast would drop the imaginary part with only a warning
        raise UserError(f"{where}: inputs are complex ({np.asarray(x).dtype}); edgekd needs real numbers")


def _cast(where: str, x) -> np.ndarray:
    try:
        with np.errstate(over="raise"):  # a float64 beyond float32's range would turn into inf with a warning
            x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(f"{where}: inputs are not numeric") from None
    except FloatingPointError:
        raise UserError(f"{where}: inputs hold values beyond float32's range (about ±3.4e38); rescale them") from None
    if x.ndim < 2:
        raise UserError(f"{where}: inputs must hold one row per sample (at least 2-D), found shape {x.shape}")
    if len(x) == 0:
        raise UserError(f"{where}: no samples (inputs have shape {x.shape})")
    if x[0].size == 0:
        raise UserError(f"{where}: samples have no features (inputs have shape {x.shape})")
    return x


def _bad_rows(x: np.ndarray) -> int:
    """Samples holding NaN or an infinity."""
    return 0 if np.isfinite(x).all() else int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())


def check_label_array(where: str, n: int, y: np.ndarray) -> np.ndarray:
    """Labels for n inputs, as int64 class indices >= 0."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{where}: {n} inputs but labels of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all() or (y != np.round(y)).any():
            raise UserError(f"{where}: labels must be integer class indices")
        if np.abs(y).max() >= 2 ** 31:  # cast as they are, 1e20 would wrap around to -9223372036854775808
            raise UserError(f"{where}: labels must be class indices 0..K-1, found {y[np.abs(y).argmax()]:g}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise UserError(f"{where}: labels must be class indices >= 0, found {y.min()}")
    return y


def check_labels(where: str, y: np.ndarray, **held_out: np.ndarray) -> int:
    """The class count K. Training labels (checked by check_arrays: ints >= 0) must be exactly 0..K-1,
    each present, and held-out labels among them: counting max+1 would train phantom classes silently."""
    found = np.unique(y)
    k = len(found)
    if k < 2:
        raise UserError(f"{where}: labels hold a single class ({found[0]}); at least 2 are needed")
    if found[-1] != k - 1:  # k distinct ints >= 0 are 0..k-1 exactly when the largest is k-1
        raise UserError(f"{where}: labels must be the class indices 0..{k - 1} with every class in the "
                        f"training data; found {_listed(found)}")
    for name, labels in held_out.items():
        extra = np.setdiff1d(labels, found)
        if len(extra):
            raise UserError(f"{where}: {name} holds labels the training data does not have ({_listed(extra)}); "
                            f"its classes are 0..{k - 1}")
    return k


def _listed(values: np.ndarray, most: int = 10) -> str:
    text = ", ".join(str(v) for v in values[:most])
    return text + (f", ... ({len(values)} values)" if len(values) > most else "")


def split_off(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Stratified-enough random split: (x_keep, y_keep, x_out, y_out), fixed by seed. Inputs on
    disk are split as views: their rows are read when used."""
    n_out = int(round(len(x) * fraction))
    order = np.random.default_rng(seed).permutation(len(x))
    out, keep = order[:n_out], order[n_out:]
    return subset(x, keep), y[keep], subset(x, out), y[out]
