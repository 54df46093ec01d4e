"""Streaming data for fit, evaluate and predict: map-style Datasets read a batch at a time,
array-likes on disk (np.memmap, h5py, zarr), and iterables of ``(X, y)`` batches, through a
seeded sampler and a prefetching thread (xpnn.data.stream)."""

from .dataset import ArrayDataset, Dataset, NpyShards, Subset
from .tokens import TokenWindows

__all__ = ["Dataset", "ArrayDataset", "NpyShards", "Subset", "TokenWindows"]
