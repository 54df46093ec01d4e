"""Map-style Datasets: the contract every streamed data source of fit, evaluate and predict
reads through, and the ready ones: arrays (in memory or on disk) and a folder of ``.npy``
shards.

A Dataset is read a batch at a time, from the prefetch thread: ``ds[indices]`` gets the
samples of one batch, in that order. Nothing is converted here: the pipeline converts each
batch to the model's dtype and device.
"""

from __future__ import annotations

import glob
import os

import numpy as np


class Dataset:
    """Map-style data set: ``len(ds)`` samples; ``ds[indices]`` (a 1-D NumPy int64 array of sample
    indices) -> ``(X, y)`` or ``(X, y, inputs)`` of NumPy arrays with ``len(indices)`` rows."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, indices):
        raise NotImplementedError


def is_array_like(a) -> bool:
    """Whether ``a`` can be read by rows: ``shape``, ``dtype`` and ``__getitem__``."""
    return all(hasattr(a, name) for name in ("shape", "dtype", "__getitem__"))


def read_rows(a, indices: np.ndarray) -> np.ndarray:
    """Rows ``indices`` (1-D int64, any order) of the array-like ``a`` as a NumPy array.

    NumPy arrays and memmaps take the indices as given (a memmap reads only those rows'
    pages). Other stores (h5py, zarr, ...) are read with sorted indices, which h5py requires
    and which lets a chunked store read each chunk once, and the rows put back in order;
    a contiguous run is read as one slice, the cheapest read there is.
    """
    if indices.size and indices[-1] - indices[0] == indices.size - 1 and _increasing(indices):
        return np.asarray(a[int(indices[0]) : int(indices[-1]) + 1])
    if isinstance(a, np.ndarray):
        return a[indices]
    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    unique, first = np.unique(ordered, return_index=True)  # h5py refuses repeated indices
    reader = getattr(a, "oindex", None)  # zarr's orthogonal indexing (zarr 2 has no fancy __getitem__)
    rows = np.asarray(reader[unique] if reader is not None else a[unique])
    if unique.size != ordered.size:
        rows = rows[np.searchsorted(unique, ordered)]
    out = np.empty_like(rows)
    out[order] = rows
    return out


def _increasing(indices: np.ndarray) -> bool:
    return bool(np.all(indices[1:] > indices[:-1]))


class ArrayDataset(Dataset):
    """Samples along axis 0 of array-likes: NumPy arrays, ``np.memmap`` /
    ``np.load(path, mmap_mode="r")``, h5py datasets, zarr arrays, or any object with
    ``shape``, ``dtype`` and ``__getitem__`` over an index array.

    Args:
        X: (n, ...) samples.
        y: (n, ...) targets, or None.
        inputs: per-sample forward inputs ({"mask": (n, ...)}).
    """

    def __init__(self, X, y=None, **inputs):
        where = "ArrayDataset"
        arrays = {"X": X, **({} if y is None else {"y": y}), **inputs}
        for name, a in arrays.items():
            if not is_array_like(a):
                raise TypeError(
                    f"{where}: {name} must be an array-like with shape, dtype and __getitem__ "
                    f"(a NumPy array, memmap, h5py dataset or zarr array), found {type(a).__name__}"
                )
            if len(a.shape) == 0:
                raise ValueError(f"{where}: {name} must have one entry per sample (axis 0), found shape ()")
            if a.shape[0] != X.shape[0]:
                raise ValueError(f"{where}: X has {X.shape[0]} samples but {name} has {a.shape[0]}")
        self.X, self.y, self.inputs = X, y, inputs

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getitem__(self, indices):
        X = read_rows(self.X, indices)
        y = None if self.y is None else read_rows(self.y, indices)
        if not self.inputs:
            return X, y
        return X, y, {k: read_rows(v, indices) for k, v in self.inputs.items()}


class Subset(Dataset):
    """Samples ``start:stop`` of another Dataset (``validation_split``'s two sides)."""

    def __init__(self, dataset, start: int, stop: int):
        self.dataset, self.start, self.stop = dataset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, indices):
        return self.dataset[indices + self.start]


class NpyShards(Dataset):
    """A folder of ``.npy`` shards read by memory map: ``X-00000.npy``, ``X-00001.npy``, ...
    and ``y-00000.npy``, ... (shard k of y holds the labels of shard k of X; names sort in
    order). Only the rows of each batch are read; no shard is loaded whole.

    Args:
        folder: the folder.
        x_prefix: the stem of the sample shards' names.
        y_prefix: the stem of the label shards' names (None: no labels, for predict).
    """

    def __init__(self, folder, x_prefix: str = "X", y_prefix: str | None = "y"):
        where = "NpyShards"
        self.X = self._open(folder, x_prefix, where)
        self.y = None if y_prefix is None else self._open(folder, y_prefix, where)
        if self.y is not None:
            if len(self.y) != len(self.X):
                raise ValueError(f"{where}: {folder} has {len(self.X)} {x_prefix} shards but {len(self.y)} {y_prefix}")
            for k, (a, b) in enumerate(zip(self.X, self.y)):
                if a.shape[0] != b.shape[0]:
                    raise ValueError(
                        f"{where}: shard {k} has {a.shape[0]} samples in {x_prefix} but {b.shape[0]} in {y_prefix}"
                    )
        self.starts = np.cumsum([0, *(a.shape[0] for a in self.X)])
        first = self.X[0]
        for k, a in enumerate(self.X):
            if a.shape[1:] != first.shape[1:] or a.dtype != first.dtype:
                raise ValueError(
                    f"{where}: every {x_prefix} shard must hold samples of one shape and dtype; shard 0 has "
                    f"{first.shape[1:]} {first.dtype}, shard {k} has {a.shape[1:]} {a.dtype}"
                )
        self.shape = (int(self.starts[-1]), *first.shape[1:])

    @staticmethod
    def _open(folder, prefix, where):
        paths = sorted(glob.glob(os.path.join(glob.escape(str(folder)), f"{prefix}-*.npy")))
        if not paths:
            raise FileNotFoundError(f"{where}: no {prefix}-*.npy shards in {folder}")
        return [np.load(p, mmap_mode="r", allow_pickle=False) for p in paths]

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, shards, indices):
        which = np.searchsorted(self.starts, indices, side="right") - 1
        out = None
        for k in np.unique(which):
            rows = np.flatnonzero(which == k)
            got = shards[k][indices[rows] - self.starts[k]]
            if out is None:
                out = np.empty((len(indices), *got.shape[1:]), got.dtype)
            out[rows] = got
        return out

    def __getitem__(self, indices):
        return self._read(self.X, indices), None if self.y is None else self._read(self.y, indices)
