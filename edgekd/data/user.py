"""User data: npz:PATH, csv:PATH[::label-column], folder:PATH (one sub-folder per class)."""

from __future__ import annotations

import csv as csvlib
import zipfile
from pathlib import Path

import numpy as np

from edgekd.data.splits import Splits, check_arrays, split_off
from edgekd.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _exists(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    return path


def read_npz(path: Path) -> dict[str, np.ndarray]:
    _exists(path, "data file")
    try:
        with np.load(path, allow_pickle=False) as f:  # never unpickle user input
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable .npz of plain arrays ({e})") from None


def npz(path: Path, val_fraction: float, seed: int) -> Splits:
    arrays = read_npz(path)
    if "x" not in arrays or "y" not in arrays:
        raise UserError(f"{path} must hold arrays 'x' and 'y' (found: {', '.join(arrays) or 'none'})")
    x, y = check_arrays(f"{path}:x/y", arrays["x"], arrays["y"])
    parts = {}
    for split in ("val", "test"):
        if f"x_{split}" in arrays:
            parts[split] = check_arrays(f"{path}:x_{split}", arrays[f"x_{split}"], arrays.get(f"y_{split}"))
            if parts[split][1] is None:
                raise UserError(f"{path}: x_{split} has no matching y_{split}")
            if parts[split][0].shape[1:] != x.shape[1:]:
                raise UserError(f"{path}: x_{split} has sample shape {parts[split][0].shape[1:]}, x has {x.shape[1:]}")
    if "test" not in parts:
        x, y, *test = split_off(x, y, 0.2, seed + 1)
        parts["test"] = tuple(test)
    if "val" not in parts:
        x, y, *val = split_off(x, y, val_fraction, seed)
        parts["val"] = tuple(val)
    return _assemble(f"npz:{path}", x, y, parts)


def csv(spec: str, val_fraction: float, seed: int) -> Splits:
    """csv:PATH or csv:PATH::COLUMN; the label column defaults to 'label' or else the last one."""
    path_text, _, column = spec.partition("::") if "::" in spec else (spec, "", "")
    path = _exists(Path(path_text), "data file")
    try:
        with path.open(newline="") as f:
            rows = list(csvlib.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable CSV file ({e})") from None
    if len(rows) < 2:
        raise UserError(f"{path} has no data rows")
    header, body = rows[0], rows[1:]
    label = column or ("label" if "label" in header else header[-1])
    if label not in header:
        raise UserError(f"{path}: no column {label!r} (columns: {', '.join(header)})")
    li = header.index(label)
    try:
        table = np.array([[float(v) for v in r] for r in body if r], dtype=np.float64)
    except ValueError:
        raise UserError(f"{path}: every column must be numeric (a label column of class indices, feature columns)") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise UserError(f"{path}: rows do not all have {len(header)} columns")
    x = np.delete(table, li, axis=1)
    x, y = check_arrays(str(path), x, table[:, li])
    x, y, *test = split_off(x, y, 0.2, seed + 1)
    x, y, *val = split_off(x, y, val_fraction, seed)
    return _assemble(f"csv:{spec}", x, y, {"val": tuple(val), "test": tuple(test)})


def folder(path: Path, val_fraction: float, seed: int) -> Splits:
    """One sub-folder per class; images resized to the first image's size, RGB or grey."""
    from PIL import Image, UnidentifiedImageError

    _exists(path, "image folder")
    if not path.is_dir():
        raise UserError(f"{path} is not a folder (folder:PATH wants one sub-folder per class)")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UserError(f"{path} must hold one sub-folder per class (found {len(classes)})")
    xs, ys, size, mode = [], [], None, None
    for label, cls in enumerate(classes):
        for file in sorted(cls.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as im:
                    mode = mode or ("L" if im.mode in ("L", "1", "I;16") else "RGB")
                    size = size or im.size
                    xs.append(np.asarray(im.convert(mode).resize(size), dtype=np.float32) / 255.0)
            except (UnidentifiedImageError, OSError) as e:
                raise UserError(f"{file} is not a readable image ({e})") from None
            ys.append(label)
    if not xs:
        raise UserError(f"{path}: no images found in its class folders")
    x = np.stack(xs)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (N, C, H, W)
    x, y = check_arrays(str(path), x, np.array(ys))
    x, y, *test = split_off(x, y, 0.2, seed + 1)
    x, y, *val = split_off(x, y, val_fraction, seed)
    return _assemble(f"folder:{path}", x, y, {"val": tuple(val), "test": tuple(test)})


def _assemble(name: str, x, y, parts) -> Splits:
    (x_val, y_val), (x_test, y_test) = parts["val"], parts["test"]
    classes = int(max(y.max(), y_test.max(), y_val.max() if len(y_val) else 0)) + 1
    if classes < 2:
        raise UserError(f"{name}: labels hold a single class; at least 2 are needed")
    if len(x_val) == 0 or len(x_test) == 0:
        raise UserError(f"{name}: too few samples ({len(x)}) to hold out validation and test sets")
    return Splits(name, x, y, x_val, y_val, x_test, y_test, classes=classes)
