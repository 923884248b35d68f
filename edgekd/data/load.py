"""Turn a data spec string into Splits (and a transfer spec into extra inputs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgekd.data import builtin, user
from edgekd.data.rows import LOADS
from edgekd.data.splits import Splits, check_arrays, check_rows
from edgekd.errors import UserError

AUTO_TRANSFER = "24000"

PREFIXES = {  # (rest of the spec, val_fraction, seed, follow_symlinks, data.load, data.workers) -> Splits
    "npz": lambda rest, vf, seed, links, load, workers: user.npz(Path(rest), vf, seed, load),
    "csv": lambda rest, vf, seed, links, load, workers: user.csv(rest, vf, seed),
    "folder": lambda rest, vf, seed, links, load, workers: user.folder(Path(rest), vf, seed, follow_symlinks=links,
                                                                       load=load, workers=workers),
}


def resolve(spec: str) -> str:
    """Make the path in a user data spec absolute, so the run works from any directory."""
    prefix, colon, rest = str(spec).partition(":")
    if colon and prefix in (*PREFIXES, "npz") and rest:
        path, sep, column = rest.partition("::")
        return f"{prefix}:{Path(path).resolve()}{sep}{column}"
    return spec


def load_run_splits(manifest: dict, where: object) -> Splits:
    """The data a run was trained on, refused when the file has changed since: its artifacts
    would be checked and measured against other inputs and labels."""
    d = manifest["recipe"]["data"]
    splits = load_splits(d["spec"], d["val_fraction"], d["seed"], follow_symlinks=d.get("follow_symlinks", False),
                         load=d.get("load", "auto"), workers=d.get("workers", -1))
    if splits.fingerprint() != manifest["data"]["fingerprint"]:
        raise UserError(f"{d['spec']} has changed since {where} was trained (its train/val/test splits differ); "
                        "the run needs the data it was trained on")
    return splits


def load_splits(spec: str, val_fraction: float = 0.1, seed: int = 0, *, follow_symlinks: bool = False,
                load: str = "auto", workers: int = -1) -> Splits:
    """The data a spec names; `follow_symlinks` lets an image folder's links lead out of it;
    `load` (edgekd.data.rows.LOADS) keeps large image folders and .npz arrays on disk, and
    `workers` processes decode a streamed folder's images."""
    if load not in LOADS:
        raise UserError(f"data.load must be {', '.join(LOADS)}, not {load!r}")
    if spec in builtin.BUILTIN:
        return builtin.BUILTIN[spec](val_fraction, seed)
    prefix, colon, rest = spec.partition(":")
    if colon and prefix in PREFIXES and rest:
        return PREFIXES[prefix](rest, val_fraction, seed, follow_symlinks, load, workers)
    raise UserError(
        f"unknown data spec {spec!r}; use one of {', '.join(builtin.BUILTIN)}, npz:PATH, csv:PATH or folder:PATH")


def load_transfer(splits: Splits, spec: str, load: str = "auto") -> Splits:
    """Attach a transfer set: "auto", "0" (none), N (generated; mnist1d only) or npz:PATH (array `x`),
    mapped from disk as `load` (data.load) decides for its size."""
    spec = str(spec).strip()
    if spec == "auto":  # a generated transfer set is the biggest lever for a small student, where we can make one
        spec = AUTO_TRANSFER if splits.name == "mnist1d" else "0"
    if spec in ("", "0"):
        return splits
    mapped = False
    if spec.isdigit():
        if splits.name != "mnist1d":
            raise UserError(f"--transfer {spec} generates MNIST-1D inputs; for {splits.name} give npz:PATH")
        x, _ = builtin.mnist1d_arrays(int(spec), builtin.TRANSFER_SEED)
    elif spec.startswith("npz:"):
        path = Path(spec[4:])
        mapped = user.npz_streams(path, load)
        arrays = user.mapped_npz(path) if mapped else user.read_npz(path)
        if "x" not in arrays:
            raise UserError(f"{path} must hold an array 'x' of unlabeled inputs")
        x = check_rows(str(path), arrays["x"]) if mapped else check_arrays(str(path), arrays["x"])[0]
    else:
        raise UserError(f"unknown transfer spec {spec!r}; use a sample count or npz:PATH")
    if x.shape[1:] != splits.input_shape:
        raise UserError(f"transfer inputs have sample shape {x.shape[1:]}, the data has {splits.input_shape}")
    return dataclasses.replace(splits, x_transfer=x if mapped else np.ascontiguousarray(x))
