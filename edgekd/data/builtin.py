"""Built-in data sets, both offline: mnist1d (generated) and scikit-learn's digits (shipped)."""

from __future__ import annotations

import functools

import numpy as np

from edgekd.data.splits import Splits, split_off

MNIST1D_SEED = 42          # the seed of the published MNIST-1D set
TRANSFER_SEED = 12345      # a different seed, so transfer inputs never repeat train/test ones


@functools.lru_cache(maxsize=4)
def _generated(n: int | None, seed: int | None) -> dict:
    """MNIST-1D from its generator (never `get_dataset`: that downloads): the standard set when
    n is None. Generating takes seconds, so a process that loads it again (tests, a later
    command of a library caller) reuses it; callers copy what they keep (astype copies)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    if n is not None:
        args.num_samples, args.seed, args.train_split = n, seed, 1.0
    return make_dataset(args)


def mnist1d_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n samples of MNIST-1D, all in one set."""
    d = _generated(n, seed)
    return d["x"].astype(np.float32), d["y"].astype(np.int64)


def mnist1d(val_fraction: float, seed: int) -> Splits:
    d = _generated(None, None)  # the standard 4000 train / 1000 test
    x, y = d["x"].astype(np.float32), d["y"].astype(np.int64)
    x_train, y_train, x_val, y_val = split_off(x, y, val_fraction, seed)
    return Splits("mnist1d", x_train, y_train, x_val, y_val,
                  d["x_test"].astype(np.float32), d["y_test"].astype(np.int64), classes=10,
                  augmentation="shift+noise")


def digits(val_fraction: float, seed: int) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    x_rest, y_rest, x_test, y_test = split_off(x, y, 0.2, seed + 1)
    x_train, y_train, x_val, y_val = split_off(x_rest, y_rest, val_fraction, seed)
    return Splits("digits", x_train, y_train, x_val, y_val, x_test, y_test, classes=10, augmentation="crop")


BUILTIN = {"mnist1d": mnist1d, "digits": digits}
