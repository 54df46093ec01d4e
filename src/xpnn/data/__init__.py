"""Streaming data for fit, evaluate and predict: map-style Datasets read a batch at a time,
array-likes on disk, and iterables of batches, with a prefetching pipeline."""

from .dataset import Dataset
from .tokens import TokenWindows

__all__ = ["Dataset", "TokenWindows"]
