"""Samples that stay on disk: an image folder decoded item by item, an .npz array mapped into
memory, and the views the splits take of them. Data that fits in memory stays a plain numpy
array; everything that reads samples goes through `take` and `chunks`, which serve both, so
peak memory does not grow with the number of samples beyond a batch and the page cache.

A `Rows` answers len(), .shape, .dtype (always float32) and .nbytes like an array, and
indexing with an int, a slice or an index array returns a float32 ndarray of those rows.
`loader` decodes batches in DataLoader worker processes; a file that changed since the
folder was listed stops the run with one sentence, not a worker's traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Callable

import numpy as np

from edgekd.errors import UserError

CHUNK = 1024   # rows per chunk when a whole split is scanned (fingerprint, statistics, soft targets)
MAX_WORKERS = 4
LOADS = ("auto", "memory", "stream")   # data.load
# data.load = "auto" streams inputs whose float32 arrays would exceed this: a gigabyte is cheap
# to hold on any machine that trains, and epochs over data in memory skip decoding.
IN_MEMORY_BYTES = 1 << 30


def streams(load: str, nbytes: int) -> bool:
    """Whether data of `nbytes` (as float32) is read from disk as needed under data.load."""
    return load == "stream" or (load == "auto" and nbytes > IN_MEMORY_BYTES)


class Rows:
    """An array of samples read from disk on demand."""

    shape: tuple[int, ...]
    dtype = np.dtype(np.float32)


    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def fetch(self, index: np.ndarray) -> np.ndarray:
        """The rows at `index` (int64, any order) as one float32 array."""
        raise NotImplementedError

    def parts(self, index: np.ndarray) -> list[tuple[Rows, np.ndarray, np.ndarray]]:
        """Where the rows at `index` come from: (stored rows, their index there, their places in
        the result). Views resolve to what they view, so a folder's worker pool serves them all."""
        return [(self, index, np.arange(len(index)))]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return self.fetch(np.arange(len(self))[key])
        if np.ndim(key) == 0:
            return self.fetch(np.array([_index(key, len(self))]))[0]
        return self.fetch(np.asarray(key, dtype=np.int64).reshape(-1))

    def __array__(self, dtype=None, copy=None):  # a whole split, on purpose only (small test sets, tests)
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _index(i, n: int) -> int:
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"row {i} of {n}")
    return i % n


class ArrayRows(Rows):
    """A memory-mapped array (an .npz member stored uncompressed), cast to float32 per fetch."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = tuple(array.shape)

    def __reduce__(self):  # to a tune worker process: the mapping, not a copy of the file's bytes
        a = self.array
        if isinstance(a, np.memmap) and a.filename and a.flags.c_contiguous:
            return _remapped, (a.filename, a.dtype.str, a.offset, a.shape)
        return ArrayRows, (np.asarray(a),)

    def fetch(self, index: np.ndarray) -> np.ndarray:
        order = np.argsort(index, kind="stable")  # sorted reads walk the file forwards
        out = np.empty((len(index), *self.shape[1:]), dtype=np.float32)
        out[order] = self.array[index[order]]
        return out


def _remapped(filename: str, dtype: str, offset: int, shape: tuple[int, ...]) -> ArrayRows:
    return ArrayRows(np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape))


class Taken(Rows):
    """The rows of `base` at `index`: a split of data that stays on disk."""

    def __init__(self, base: Rows, index: np.ndarray):
        self.base, self.index = base, np.asarray(index, dtype=np.int64)
        self.shape = (len(self.index), *base.shape[1:])

    def fetch(self, index: np.ndarray) -> np.ndarray:
        return self.base.fetch(self.index[index])

    def parts(self, index: np.ndarray) -> list[tuple[Rows, np.ndarray, np.ndarray]]:
        return self.base.parts(self.index[index])


class Joined(Rows):
    """`first` then `second` (the labelled rows, then the transfer set)."""

    def __init__(self, first, second):
        self.first, self.second = as_rows(first), as_rows(second)
        self.shape = (len(first) + len(second), *first.shape[1:])

    def fetch(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.shape[1:]), dtype=np.float32)
        for rows, i, at in self.parts(index):  # the stored rows each side resolves to
            out[at] = rows.fetch(i)
        return out

    def parts(self, index: np.ndarray) -> list[tuple[Rows, np.ndarray, np.ndarray]]:
        low = index < len(self.first)
        where = np.arange(len(index))
        return [(rows, i, where[side][at]) for side, rows, shift in ((low, self.first, 0),
                                                                      (~low, self.second, len(self.first)))
                if side.any() for rows, i, at in rows.parts(index[side] - shift)]


class InMemory(Rows):
    """A plain array behind the Rows interface, for a Joined with one side on disk."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape = array, tuple(array.shape)

    def fetch(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[index], dtype=np.float32)


class ImageFiles(Rows):
    """An image folder's files, decoded and resized one by one by `decode(path) -> array`, by
    `workers` DataLoader processes that start at the first read and live as long as it.
    Each file's size and modification time are kept from the listing: a file that changes
    afterwards (a sync still running, another job writing) is refused when it is read."""

    def __init__(self, files: list[str], sample_shape: tuple[int, ...], decode: Callable[[str], np.ndarray],
                 workers: int = 0):
        self.files, self.decode, self.workers = files, decode, workers
        self.stats = np.array([_stat(f) for f in files], dtype=np.int64).reshape(-1, 2)
        self.shape = (len(files), *sample_shape)
        self._pool = None

    def __getstate__(self) -> dict:  # a worker process (DataLoader's, or edgekd tune's) gets no pool
        return {**self.__dict__, "_pool": None}

    def pool(self) -> _Pool:
        if self._pool is None:
            self._pool = _Pool(self, self.workers)
        return self._pool

    def fetch(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.shape[1:]), dtype=np.float32)
        for k, i in enumerate(index):
            file = self.files[i]
            if tuple(self.stats[i]) != _stat(file):
                raise UserError(f"{file} changed while edgekd was reading the image folder (its size or time "
                                "differs from the listing); the run needs the images it started with: let the "
                                "copy finish, then start again")
            out[k] = self.decode(file)
        return out


def _stat(file: str) -> tuple[int, int]:
    try:
        st = os.stat(file)
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def as_rows(x) -> Rows:
    return x if isinstance(x, Rows) else InMemory(x)


def on_disk(x) -> bool:
    return isinstance(x, Rows)


def take(x, index) -> np.ndarray:
    """Rows at `index` (an int array or tensor) as a float32 array, whether x is in memory or not."""
    index = np.asarray(index, dtype=np.int64)
    return x.fetch(index) if isinstance(x, Rows) else x[index]


def subset(x, index: np.ndarray):
    """x's rows at `index`: a copy in memory, a view on disk (a split of a large folder stays there)."""
    return Taken(x, index) if isinstance(x, Rows) else x[index]


def joined(first, second):
    """`first` then `second`: concatenated in memory, or a Joined view when either is on disk."""
    if isinstance(first, Rows) or isinstance(second, Rows):
        return Joined(first, second)
    return np.concatenate([first, second])


def chunks(x, size: int = CHUNK) -> Iterator[np.ndarray]:
    """x in consecutive chunks of `size` rows (views of an in-memory array)."""
    if not isinstance(x, Rows):
        for i in range(0, len(x), size):
            yield x[i:i + size]
        return
    yield from loader(x, [np.arange(i, min(i + size, len(x))) for i in range(0, len(x), size)])


def loader(x: Rows, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Each batch of row indices fetched, in order. Rows of an image folder with workers are
    decoded by its pool, a few batches ahead of the caller; the rest are read here."""
    batches = [np.asarray(b, dtype=np.int64) for b in batches]
    plans = [x.parts(b) for b in batches]
    pooled = {id(rows): rows for plan in plans for rows, _, _ in plan
              if isinstance(rows, ImageFiles) and rows.workers > 0}
    if len(pooled) != 1:  # nothing to decode in parallel (or, never so far, two folders): read here
        yield from (x.fetch(b) for b in batches)
        return
    (folder,) = pooled.values()
    mine = [[(i, at) for rows, i, at in plan if rows is folder] for plan in plans]
    decoded = folder.pool().run([np.concatenate([i for i, _ in parts]) if parts else np.empty(0, np.int64)
                                 for parts in mine])
    for b, plan, parts, images in zip(batches, plans, mine, decoded):
        out = np.empty((len(b), *x.shape[1:]), dtype=np.float32)
        if parts:
            out[np.concatenate([at for _, at in parts])] = images
        for rows, i, at in plan:
            if rows is not folder:
                out[at] = rows.fetch(i)
        yield out


class _Pool:
    """A folder's DataLoader with persistent workers: started once, then given each pass's
    batches (a training epoch, a validation pass) through its sampler."""

    def __init__(self, folder: ImageFiles, workers: int):
        from torch.utils.data import DataLoader

        self.sampler = _Batches()
        self.loader = DataLoader(_Fetch(folder), sampler=self.sampler, batch_size=None, num_workers=workers,
                                 collate_fn=_identity, prefetch_factor=4, persistent_workers=True)

    def run(self, batches: list[np.ndarray]) -> Iterator[np.ndarray]:
        self.sampler.items = batches
        for batch in self.loader:
            if isinstance(batch, _Failed):  # raised here, in the run's words, not as a worker's traceback
                raise UserError(batch.message)
            yield batch


class _Batches:
    items: list[np.ndarray] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def workers_for(setting: int) -> int:
    """data.workers: -1 = one per core beyond the first, at most MAX_WORKERS (a 2-core machine
    decodes in one worker while the training process computes); 0 = in the reading process."""
    from edgekd import host

    return setting if setting >= 0 else min(MAX_WORKERS, max(0, host.cores() - 1))


class _Failed:
    def __init__(self, message: str):
        self.message = message


def _identity(batch):
    return batch


class _Fetch:
    """A map-style dataset whose items are whole batches: one call decodes a batch's files."""

    def __init__(self, x: Rows):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index) -> np.ndarray | _Failed:
        try:
            return self.x.fetch(np.asarray(index, dtype=np.int64))
        except UserError as e:
            return _Failed(str(e))


def save_npz(file, **arrays) -> None:
    """numpy.savez, uncompressed, for arrays in memory or Rows on disk: written a chunk at a
    time, so the file can outgrow memory (and npz_members can map it back)."""
    import zipfile

    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, x in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(x.dtype)), "fortran_order": False,
                          "shape": tuple(x.shape)}
                np.lib.format.write_array_header_2_0(f, header)
                for chunk in chunks(x):
                    f.write(np.ascontiguousarray(chunk).tobytes())


HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def npz_members(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed .npz (numpy.savez), memory-mapped in place: nothing is read
    until it is used. A compressed member (savez_compressed) cannot be mapped and is refused."""
    import zipfile

    arrays = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            if info.compress_type != zipfile.ZIP_STORED:
                raise UserError(f"{path}: array {name!r} is compressed (numpy.savez_compressed), so it cannot be "
                                "streamed from disk; save it with numpy.savez, or set data.load = \"memory\"")
            f.seek(info.header_offset)
            local = f.read(30)
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
                + int.from_bytes(local[28:30], "little")
            f.seek(start)
            version = np.lib.format.read_magic(f)
            if version not in HEADER_READERS:
                raise UserError(f"{path}: array {name!r} is in .npy format {version}, which edgekd cannot map; "
                                "set data.load = \"memory\"")
            shape, fortran, dtype = HEADER_READERS[version](f)
            if dtype.hasobject:
                raise UserError(f"{path}: array {name!r} holds Python objects; edgekd reads plain numbers only")
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                                     order="F" if fortran else "C")
    return arrays
