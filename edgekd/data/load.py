"""Turn a data spec string into Splits (and a transfer spec into extra inputs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgekd.data import builtin, user
from edgekd.data.splits import Splits, check_arrays
from edgekd.errors import UserError

AUTO_TRANSFER = "24000"

PREFIXES = {
    "npz": lambda rest, vf, seed, links: user.npz(Path(rest), vf, seed),
    "csv": lambda rest, vf, seed, links: user.csv(rest, vf, seed),
    "folder": lambda rest, vf, seed, links: user.folder(Path(rest), vf, seed, follow_symlinks=links),
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
    splits = load_splits(d["spec"], d["val_fraction"], d["seed"], follow_symlinks=d.get("follow_symlinks", False))
    if splits.fingerprint() != manifest["data"]["fingerprint"]:
        raise UserError(f"{d['spec']} has changed since {where} was trained (its train/val/test splits differ); "
                        "the run needs the data it was trained on")
    return splits


def load_splits(spec: str, val_fraction: float = 0.1, seed: int = 0, *, follow_symlinks: bool = False) -> Splits:
    """The data a spec names; `follow_symlinks` lets an image folder's links lead out of it."""
    if spec in builtin.BUILTIN:
        return builtin.BUILTIN[spec](val_fraction, seed)
    prefix, colon, rest = spec.partition(":")
    if colon and prefix in PREFIXES and rest:
        return PREFIXES[prefix](rest, val_fraction, seed, follow_symlinks)
    raise UserError(
        f"unknown data spec {spec!r}; use one of {', '.join(builtin.BUILTIN)}, npz:PATH, csv:PATH or folder:PATH")


def load_transfer(splits: Splits, spec: str) -> Splits:
    """Attach a transfer set: "auto", "0" (none), N (generated; mnist1d only) or npz:PATH (array `x`)."""
    spec = str(spec).strip()
    if spec == "auto":  # a generated transfer set is the biggest lever for a small student, where we can make one
        spec = AUTO_TRANSFER if splits.name == "mnist1d" else "0"
    if spec in ("", "0"):
        return splits
    if spec.isdigit():
        if splits.name != "mnist1d":
            raise UserError(f"--transfer {spec} generates MNIST-1D inputs; for {splits.name} give npz:PATH")
        x, _ = builtin.mnist1d_arrays(int(spec), builtin.TRANSFER_SEED)
    elif spec.startswith("npz:"):
        path = Path(spec[4:])
        arrays = user.read_npz(path)
        if "x" not in arrays:
            raise UserError(f"{path} must hold an array 'x' of unlabeled inputs")
        x, _ = check_arrays(str(path), arrays["x"])
    else:
        raise UserError(f"unknown transfer spec {spec!r}; use a sample count or npz:PATH")
    if x.shape[1:] != splits.input_shape:
        raise UserError(f"transfer inputs have sample shape {x.shape[1:]}, the data has {splits.input_shape}")
    return dataclasses.replace(splits, x_transfer=np.ascontiguousarray(x))
