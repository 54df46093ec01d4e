"""Host (NumPy) arrays the training loop builds before a compiled call: the per-step
learning rates and step counts, and the per-step sample indices. Kept here so that the
code under ``training/`` names no array library."""

from __future__ import annotations

import numpy as np


def step_rows(lrs: list, first_step: int, room: int, float64: bool) -> tuple:
    """(learning rates, step counts): ``len(lrs)`` steps from ``first_step``, each a
    float32 (float64) host array of ``room`` rows, zero-padded."""
    dtype = np.float64 if float64 else np.float32
    lr_rows, ts = np.zeros(room, dtype=dtype), np.zeros(room, dtype=dtype)
    lr_rows[: len(lrs)] = lrs
    ts[: len(lrs)] = np.arange(first_step, first_step + len(lrs))
    return lr_rows, ts


def index_rows(indices, B: int, room: int):
    """Each step's sample indices, a (room, B) int64 host array: ``indices`` holds (order,
    batch number) pairs; an order of None is the stored order."""
    idx = np.zeros((room, B), dtype=np.int64)
    for k, (order, i) in enumerate(indices):
        idx[k] = np.arange(i * B, (i + 1) * B) if order is None else order[i * B : (i + 1) * B]
    return idx


def row_means(backend, a, count: int, per_row: int):
    """The means of ``count`` rows of ``per_row`` values from the first ``count * per_row``
    of the device array ``a``: a float64 host array (one read from the device)."""
    host = np.asarray(backend.to_numpy(a), dtype=np.float64)[: count * per_row]
    return host.reshape(count, per_row).mean(axis=1)
