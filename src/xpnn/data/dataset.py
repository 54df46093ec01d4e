"""The map-style Dataset: the contract every streamed data source of fit, evaluate and
predict reads through."""

from __future__ import annotations


class Dataset:
    """Map-style data set: ``len(ds)`` samples; ``ds[indices]`` (a 1-D NumPy int64 array of sample
    indices) -> ``(X, y)`` or ``(X, y, inputs)`` of NumPy arrays with ``len(indices)`` rows."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, indices):
        raise NotImplementedError
