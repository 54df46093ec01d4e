"""Data files for the ``xpnn`` command, opened without reading the features into memory:
``.npy`` (memory-mapped; labels from a second ``.npy``), ``.npz``, HDF5 (``.h5``/``.hdf5``,
needs h5py) and zarr stores (``.zarr``, needs zarr), X and y named by keys.

The features stay on disk and stream through fit, evaluate and predict a batch at a time;
the labels are read whole (one number per sample). ``split`` holds out a random test
part as index views, copying nothing.
"""

from __future__ import annotations

import os

import numpy as np

SUFFIXES = (".npy", ".npz", ".h5", ".hdf5", ".zarr")


def is_data_file(path: str) -> bool:
    return str(path).lower().rstrip("/").endswith(SUFFIXES)


def open_features(path: str, key: str = "X"):
    """The features of ``path`` as an array-like (memmap, h5py or zarr array): nothing read."""
    path = str(path)
    low = path.lower().rstrip("/")
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    if low.endswith(".npy"):
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError:  # an object array cannot be mapped: NumPy's own message says why
            try:
                np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            raise
    if low.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:  # zipped: read into memory, array by array
            return _key(archive, key, path, list(archive.files))
    if low.endswith((".h5", ".hdf5")):
        h5py = _require("h5py", "h5", path)
        f = h5py.File(path, "r")  # kept open while its datasets are used
        return _key(f, key, path, list(f.keys()))
    if low.endswith(".zarr"):
        zarr = _require("zarr", "zarr", path)
        store = zarr.open(path, mode="r")
        if hasattr(store, "shape"):  # a store holding one array
            return store
        return _key(store, key, path, sorted(store.array_keys()))
    raise ValueError(f"{path}: expected a file ending in {', '.join(SUFFIXES)}")


def open_data(path: str, labels: str | None = None, x_key: str = "X", y_key: str = "y"):
    """(X, y): the features as an array-like on disk and the labels as an int64 array in
    memory; ``labels`` is the .npy of the labels beside an .npy of features."""
    path = str(path)
    X = open_features(path, x_key)
    if labels is not None:
        y = open_features(labels, y_key)
    elif path.lower().endswith(".npy"):
        raise ValueError(f"{path}: an .npy file holds one array; pass its labels with --labels y.npy")
    else:
        y = open_features(path, y_key)
    if len(X.shape) == 0 or len(y.shape) != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{path}: expected features (n, ...) and labels (n,); found {x_key} of shape {tuple(X.shape)} "
            f"and {y_key} of shape {tuple(y.shape)}"
        )
    y = np.asarray(y[:])
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise ValueError(f"{path}: labels must be integers 0, 1, ..., found dtype {y.dtype} (min {y.min()})")
    return X, y.astype(np.int64)


class Rows:
    """Rows ``indices`` (sorted, 1-D) of an array-like, as an array-like: nothing is read
    until a batch asks for it."""

    def __init__(self, base, indices: np.ndarray):
        self.base, self.indices = base, indices
        self.shape = (len(indices), *tuple(base.shape[1:]))
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        from .dataset import read_rows

        if isinstance(key, tuple):  # X[:1, ...]
            key = key[0]
        if isinstance(key, slice):
            key = np.arange(*key.indices(self.shape[0]))
        return read_rows(self.base, self.indices[np.asarray(key)])


def split(X, y, test_size: float = 0.2, seed: int = 0):
    """((X_train, y_train), (X_test, y_test)): a random ``test_size`` of the samples held
    out (seeded), the features as row views of X, read only when used."""
    n = y.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_size))
    train, test = np.sort(order[n_test:]), np.sort(order[:n_test])
    return (Rows(X, train), y[train]), (Rows(X, test), y[test])


def _key(group, key, path, keys):
    if key not in keys:
        raise ValueError(f"{path} has no array {key!r}; it holds {', '.join(map(repr, keys)) or 'none'}")
    return group[key]


def _require(module, extra, path):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f'{path}: reading it needs {module}: pip install "xpnn[{extra}]"') from None
