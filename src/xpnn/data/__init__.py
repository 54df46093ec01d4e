"""Streaming data for fit, evaluate and predict: map-style Datasets read a batch at a time,
array-likes on disk, and iterables of batches, with a prefetching pipeline."""

from .dataset import Dataset

__all__ = ["Dataset"]
