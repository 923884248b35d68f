"""User data: npz:PATH, csv:PATH[::label-column], folder:PATH (one sub-folder per class)."""

from __future__ import annotations

import csv as csvlib
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgekd.data.rows import ImageFiles, npz_members, streams, workers_for
from edgekd.data.splits import Splits, check_arrays, check_label_array, check_labels, check_rows, split_off
from edgekd.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# Pixels an image may declare: 2^28 (16384 x 16384) holds a 200-megapixel phone photo. A PNG of a few KB can
# declare 20000 x 20000, which decodes to 1.2 GB: a decompression bomb.
MAX_PIXELS = 1 << 28


def _exists(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    return path


def read_npz(path: Path) -> dict[str, np.ndarray]:
    _exists(path, "data file")
    if not zipfile.is_zipfile(path):  # np.load would guess at a pickle and say so, which misleads
        raise UserError(f"{path} is not an .npz file (numpy.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as f:  # never unpickle user input
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable .npz of plain arrays ({e})") from None


def mapped_npz(path: Path) -> dict[str, np.ndarray]:
    """read_npz's arrays mapped from disk (edgekd.data.rows.npz_members) instead of read."""
    _exists(path, "data file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not an .npz file (numpy.savez writes one)")
    try:
        return npz_members(path)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable .npz of plain arrays ({e})") from None


def npz_streams(path: Path, load: str) -> bool:
    """Whether an .npz is mapped from disk under data.load: its inputs' bytes as stored (float64
    would halve in float32; the rule only needs the order of magnitude)."""
    if load != "auto":
        return load == "stream"
    _exists(path, "data file")
    try:
        with zipfile.ZipFile(path) as z:
            stored = sum(i.file_size for i in z.infolist() if i.filename.startswith("x"))
    except (OSError, zipfile.BadZipFile):
        return False  # read_npz says what is wrong with it
    return streams(load, stored)


def npz(path: Path, val_fraction: float, seed: int, load: str = "auto") -> Splits:
    on_disk = npz_streams(path, load)
    arrays = mapped_npz(path) if on_disk else read_npz(path)
    if "x" not in arrays or "y" not in arrays:
        raise UserError(f"{path} must hold arrays 'x' and 'y' (found: {', '.join(arrays) or 'none'})")

    def inputs(where: str, name: str, labels: str | None):
        if not on_disk:
            return check_arrays(where, arrays[name], arrays.get(labels) if labels else None)
        x = check_rows(where, arrays[name])
        return x, check_label_array(where, len(x), np.asarray(arrays[labels])) if labels in arrays else None

    x, y = inputs(f"{path}:x/y", "x", "y")
    if x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):  # read as C=H, H=W, W=channels
        raise UserError(f"{path}: x has shape {x.shape}, channels last; edgekd takes images as (N, C, H, W): "
                        "save x.transpose(0, 3, 1, 2)")
    parts = {}
    for split in ("val", "test"):
        if f"y_{split}" in arrays and f"x_{split}" not in arrays:
            raise UserError(f"{path}: y_{split} has no matching x_{split}")
        if f"x_{split}" in arrays:
            parts[split] = inputs(f"{path}:x_{split}", f"x_{split}", f"y_{split}")
            if parts[split][1] is None:
                raise UserError(f"{path}: x_{split} has no matching y_{split}")
            if parts[split][0].shape[1:] != x.shape[1:]:
                raise UserError(f"{path}: x_{split} has sample shape {parts[split][0].shape[1:]}, x has {x.shape[1:]}")
    classes = check_labels(str(path), y, **{f"y_{k}": v[1] for k, v in parts.items()})
    return _finish(f"npz:{path}", x, y, classes, parts, val_fraction, seed)


def csv(spec: str, val_fraction: float, seed: int) -> Splits:
    """csv:PATH or csv:PATH::COLUMN; the label column defaults to 'label' or else the last one."""
    path_text, _, column = spec.partition("::") if "::" in spec else (spec, "", "")
    path = _exists(Path(path_text), "data file")
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM, which would otherwise rename the first column
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csvlib.reader(f)
            rows = [(reader.line_num, r) for r in reader if r]  # line_num: the file's line, for messages
    except (OSError, UnicodeDecodeError, csvlib.Error) as e:
        raise UserError(f"{path} is not a readable CSV file ({e})") from None
    # A first row of numbers (empty cells aside) is data, not a header, unless it is pandas' default header 0..n-1
    first = rows[0][1] if rows else []
    cells = [v for v in first if v.strip()]
    headerless = bool(cells) and all(map(_is_number, cells)) and first != [str(i) for i in range(len(first))]
    if headerless:
        header, body = [str(i + 1) for i in range(len(first))], rows  # columns named 1..n
        if column and column not in header:
            raise UserError(f"{path} has no header row: name its label column by number, 1 to {len(header)}")
    else:
        header, body = first, rows[1:]
    if not body:
        raise UserError(f"{path} has no data rows")
    label = column or ("label" if "label" in header else header[-1])
    if label not in header:
        raise UserError(f"{path}: no column {label!r} (columns: {', '.join(header)})")
    if len(header) < 2:
        hint = "; edgekd reads comma-separated values" if any(";" in v or "\t" in v for v in first) else ""
        raise UserError(f"{path} has no feature columns (one column found{hint})")
    li = header.index(label)
    table = []
    for line, row in body:
        if len(row) != len(header):
            raise UserError(f"{path}: line {line} has {len(row)} columns, "
                            f"{'line 1' if headerless else 'the header'} has {len(header)}")
        try:
            table.append([float(v) for v in row])
        except ValueError:
            j = next(j for j, v in enumerate(row) if not _is_number(v))
            where = f"{path}: line {line}, column {header[j]}"
            what = f"{where} is empty" if not row[j].strip() else f"{where}: {row[j]!r} is not numeric"
            raise UserError(what + (" (labels must be the class indices 0..K-1)" if j == li else "")) from None
    table = np.array(table, dtype=np.float64)
    x = np.delete(table, li, axis=1)
    where = f"{path} (label column {label!r})"
    x, y = check_arrays(where, x, table[:, li])
    return _finish(f"csv:{spec}", x, y, check_labels(where, y), {}, val_fraction, seed, tabular=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def folder(path: Path, val_fraction: float, seed: int, follow_symlinks: bool = False, load: str = "auto",
           workers: int = -1) -> Splits:
    """One sub-folder per class. Images are resized to the most common size among them, and
    read as RGB when any of them is in colour, else grey; 16-bit grey keeps its full range.
    A symbolic link out of the folder is refused unless `follow_symlinks`. A folder too large
    for memory (data.load) is decoded image by image as training reads it."""
    _exists(path, "image folder")
    if not path.is_dir():
        raise UserError(f"{path} is not a folder (folder:PATH wants one sub-folder per class)")
    inside = _inside(path, follow_symlinks)
    # hidden entries (.ipynb_checkpoints, macOS ._x.png) are tool debris, never classes or samples
    classes = sorted(inside(p) for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"{path} must hold one sub-folder per class (found {len(classes)})")
    files, ys = [], []
    for label, cls in enumerate(classes):
        found = [inside(f) for f in sorted(cls.iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
        if not found:
            raise UserError(f"class folder {cls} holds no images; add some or remove the folder")
        files += found
        ys += [label] * len(found)
    headers = []  # (mode, size) of every image: the choice must not depend on which file sorts first
    with _opened() as open_image:
        for file in files:
            with open_image(file) as im:
                headers.append((im.mode, im.size))
    mode = "L" if all(m in GREY_MODES for m, _ in headers) else "RGB"
    sizes = Counter(s for _, s in headers)
    size = max(sizes, key=lambda s: (sizes[s], s[0] * s[1]))  # the most common; on a tie the larger
    decode = Decoder(mode, size)
    sample = decode.shape
    y = check_label_array(str(path), len(files), np.array(ys))
    if streams(load, len(files) * int(np.prod(sample)) * 4):
        x = ImageFiles([str(f) for f in files], sample, decode, workers=workers_for(workers))
    else:
        x, _ = check_arrays(str(path), np.stack([decode(f) for f in files]))
    return _finish(f"folder:{path}", x, y, len(classes), {}, val_fraction, seed,
                   class_names=tuple(p.name for p in classes), augmentation="flip+crop")


class Decoder:
    """One image file as a float32 (C, H, W) array in [0, 1]: `mode` (L or RGB), resized to `size`."""

    def __init__(self, mode: str, size: tuple[int, int]):
        self.mode, self.size = mode, size
        self.shape = (1 if mode == "L" else 3, size[1], size[0])

    def __call__(self, file) -> np.ndarray:
        with _opened() as open_image, open_image(Path(file)) as im:
            pixels = _pixels(im, self.mode, self.size)
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _inside(root: Path, follow_symlinks: bool):
    """A check for each entry of the image folder: a symbolic link that leads out of it (to a
    file, or a whole class folder) is refused, so the data is what the folder holds."""
    top = root.resolve()

    def check(entry: Path) -> Path:
        target = entry.resolve()
        if not follow_symlinks and not target.is_relative_to(top):
            raise UserError(f"{entry} is a symbolic link to {target}, outside {root}; copy it in, or set "
                            "data.follow_symlinks = true to read it")
        return entry

    return check


@contextmanager
def _opened() -> Iterator:
    """Image.open for the folder's files: an unreadable file or one declaring over MAX_PIXELS
    (PIL only warns between its own limit and twice it) is a UserError naming the file."""
    from PIL import Image, UnidentifiedImageError

    @contextmanager
    def open_image(file: Path):
        try:
            with Image.open(file) as im:
                yield im
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserError(f"{file} declares over {MAX_PIXELS:,} pixels (a decompression bomb, or far larger than "
                            "a model input); shrink or remove it") from None
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{file} is not a readable image ({e})") from None

    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's module-wide limit, put back as found
        try:
            yield open_image
        finally:
            Image.MAX_IMAGE_PIXELS = limit


GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _pixels(im, mode: str, size: tuple[int, int]) -> np.ndarray:
    """An image as floats in [0, 1], (H, W) grey or (H, W, 3) RGB, at `size`."""
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit grey: convert("L") would clip at 255
        peak = 1.0 if im.mode == "F" else 65535.0
        grey = np.asarray(Image.fromarray(np.asarray(im, dtype=np.float32) / peak, mode="F").resize(size))
        return np.repeat(grey[..., None], 3, axis=-1) if mode == "RGB" else grey
    return np.asarray(im.convert(mode).resize(size), dtype=np.float32) / 255.0


def _finish(name: str, x, y, classes: int, parts: dict, val_fraction: float, seed: int, class_names=None,
            augmentation: str = "noise", tabular: bool = False) -> Splits:
    """Hold out what the user did not give: test first, then val (this order fixes the arrays)."""
    n = len(x)
    if "test" not in parts:
        x, y, *test = split_off(x, y, 0.2, seed + 1)
        parts["test"] = tuple(test)
    if "val" not in parts:
        x, y, *val = split_off(x, y, val_fraction, seed)
        parts["val"] = tuple(val)
    (x_val, y_val), (x_test, y_test) = parts["val"], parts["test"]
    if len(x_val) == 0 or len(x_test) == 0:
        raise UserError(f"{name}: too few samples ({n}) to hold out validation and test sets")
    return Splits(name, x, y, x_val, y_val, x_test, y_test, classes=classes, class_names=class_names,
                  augmentation=augmentation, tabular=tabular)
