"""TokenWindows: the training samples of a language model, cut from one long token array.

A text of n tokens holds n - T windows of T tokens: sample i is tokens[i : i + T] and its
target the same window shifted by one, tokens[i + 1 : i + 1 + T] (at every position the
model predicts the next token). Materialising them would store the text T times over, so
a batch is gathered straight from the token array by index arithmetic,

    rows = start[:, None] + arange(T + 1)      (batch, T + 1) positions in the text
    W = tokens[rows];  X = W[:, :-1];  y = W[:, 1:]

and nothing else is ever copied. On a memmap (``np.load(path, mmap_mode="r")``) that reads
only the pages the batch touches, so the text may be larger than memory.
"""

from __future__ import annotations

import numpy as np

from .. import _checks
from .dataset import Dataset


class TokenWindows(Dataset):
    """Windows of ``seq_len`` tokens and their next-token targets over a 1-D token array.

    Args:
        tokens: 1-D integer array of token ids (a NumPy array or a memmap; a list is
            converted), e.g. ``np.frombuffer(text.encode(), np.uint8)`` for bytes.
        seq_len: T, the number of tokens in a window (the model's context).
        stride: the distance between the starts of two windows: 1 (default) gives every
            window; ``stride=seq_len`` non-overlapping ones (each token predicted once, for
            measuring a held-out perplexity).

    ``len(ds)`` = (len(tokens) - seq_len - 1) // stride + 1 (len(tokens) - seq_len for
    stride 1). ``ds[indices]`` (a 1-D integer array) -> ``(X, y)``: X (batch, seq_len) and
    y (batch, seq_len) int64, y[b, t] = X[b, t + 1] for t < seq_len - 1.
    """

    def __init__(self, tokens, seq_len: int, stride: int = 1):
        where = "TokenWindows"
        if isinstance(tokens, (list, tuple)):
            tokens = np.asarray(tokens)
        if not isinstance(tokens, np.ndarray):
            raise TypeError(
                f"{where}: tokens must be a 1-D NumPy integer array or memmap, found {type(tokens).__name__}; "
                f"convert it with np.asarray(tokens) or open a file with np.load(path, mmap_mode='r')"
            )
        if tokens.ndim != 1:
            raise ValueError(
                f"{where}: tokens must be 1-D (one long sequence), found shape {tokens.shape}; "
                f"join the documents first, or flatten with tokens.reshape(-1)"
            )
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"{where}: tokens must be integer token ids, found dtype {tokens.dtype}")
        self.seq_len = _checks.positive_int(seq_len, "seq_len", where)
        self.stride = _checks.positive_int(stride, "stride", where)
        if len(tokens) < self.seq_len + 1:
            raise ValueError(
                f"{where}: tokens has {len(tokens)} tokens, too few for one window of seq_len={self.seq_len} "
                f"and its target (at least {self.seq_len + 1} needed)"
            )
        self.tokens = tokens
        self._offsets = np.arange(self.seq_len + 1, dtype=np.int64)  # (T + 1,)

    def __len__(self) -> int:
        return (len(self.tokens) - self.seq_len - 1) // self.stride + 1

    def __getitem__(self, indices):
        """indices (batch,) -> X (batch, seq_len), y (batch, seq_len), both int64."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(
                f"TokenWindows[indices]: indices must be a 1-D integer array of window numbers, "
                f"found {'dtype ' + str(idx.dtype) if idx.ndim == 1 else 'shape ' + str(idx.shape)}"
            )
        n = len(self)
        outside = (idx < 0) | (idx >= n)
        if outside.any():
            raise IndexError(
                f"TokenWindows[indices]: window numbers must be in [0, {n}), found {int(idx[outside][0])} "
                f"at position {int(np.argmax(outside))}"
            )
        rows = (idx.astype(np.int64) * self.stride)[:, None] + self._offsets  # (batch, T + 1)
        W = np.asarray(self.tokens[rows], dtype=np.int64)  # the only copy: this batch's tokens
        return np.ascontiguousarray(W[:, :-1]), np.ascontiguousarray(W[:, 1:])

    def __repr__(self) -> str:
        return f"TokenWindows({len(self.tokens)} tokens, seq_len={self.seq_len}, stride={self.stride})"
