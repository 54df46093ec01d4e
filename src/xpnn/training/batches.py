"""Mini-batches: the one batch iterator behind fit, evaluate, predict and user loops.

A batch holds the samples ``lo:hi`` (or the shuffled ones) of X, of y, and of every
per-sample input a layer takes (attention's ``mask``), so that they stay together
whatever the order.
"""

from __future__ import annotations

from typing import Any

from .. import _checks
from ..backends import backend_of

# the batch of inference (evaluate, predict, validation): inference keeps nothing, so this
# bounds its peak memory (one batch's largest activation; benchmarks/predict_memory.py)
INFERENCE_BATCH = 256


class Batch:
    """One mini-batch: ``X``, ``y`` (or None), ``inputs`` (a dict of per-sample arrays for
    forward, e.g. ``{"mask": ...}``) and ``size``. Unpacks as ``(X, y)``.

    A batch is a view of some samples of the whole arrays (``index``: a slice or an index
    array; None for all of them). Each array is cut from the whole one when first read,
    so ``take`` (a hook keeping part of a batch: DataParallel's shard) copies only that
    part, not the batch first.
    """

    __slots__ = ("source", "index", "size", "_cut")

    indices: Any = None
    """A streamed batch's samples' indices in the whole data set (host int64, set by
    xpnn.data.stream.StreamedBatch), for errors naming a bad sample; None here."""

    def __init__(self, X, y=None, inputs=None, size=None, index=None):
        self.source = (X, y, inputs or {})
        self.index = index
        if size is None:
            size = X.shape[0] if index is None else _length(index)
        self.size = size
        self._cut = {}

    @property
    def X(self):
        if self.index is None:  # the whole arrays (full-batch training): read every step
            return self.source[0]
        return self._read("X", self.source[0])

    @property
    def y(self):
        if self.index is None or self.source[1] is None:
            return self.source[1]
        return self._read("y", self.source[1])

    @property
    def inputs(self) -> dict:
        given = self.source[2]
        return {k: self._read(k, v) for k, v in given.items()} if given else {}

    def _read(self, key, whole):
        if self.index is None:  # the whole arrays (full-batch training)
            return whole
        found = self._cut.get(key)
        if found is None:
            if isinstance(self.index, slice):  # a slice: a view, no copy
                found = whole[self.index, ...]
            else:
                found = backend_of(whole).xp.take(whole, self.index, axis=0)
            self._cut[key] = found
        return found

    def take(self, lo: int, hi: int) -> "Batch":
        """Samples lo:hi of this batch, as a view of the same whole arrays."""
        if self.index is None:
            index = slice(lo, hi)
        elif isinstance(self.index, slice):
            index = slice(self.index.start + lo, self.index.start + hi)
        else:
            index = self.index[lo:hi]
        X, y, inputs = self.source
        return Batch(X, y, inputs, size=hi - lo, index=index)

    def __iter__(self):
        yield self.X
        yield self.y

    def __repr__(self) -> str:
        return f"Batch(size={self.size}, inputs={sorted(self.source[2])})"


def _length(index) -> int:
    return index.stop - index.start if isinstance(index, slice) else index.shape[0]


class Batches:
    """Mini-batches along axis 0 of X, y and ``inputs``; ``len()`` is the number of batches.

    Args:
        X: (n, ...); y: (n, ...) or None; inputs: {name: (n, ...)} or None. All arrays of
            one backend (no checks here: ``batches()`` and fit check their inputs once).
        batch_size: samples per batch (None: all n at once); the last batch has fewer
            unless ``drop_last``.
        shuffle: a new random order on every iteration, drawn from ``generator`` (the
            model's, so a run is reproducible from its seed); "blocks": contiguous runs of
            batch_size samples in a random order; False: the stored order.
    """

    def __init__(self, X, y=None, inputs=None, batch_size=32, shuffle=False, generator=None, drop_last=False):
        self.X, self.y, self.inputs = X, y, dict(inputs or {})
        self.n = X.shape[0]
        self.batch_size = self.n if batch_size is None else min(batch_size, max(self.n, 1))
        self.shuffle, self.generator, self.drop_last = shuffle, generator, drop_last
        self._whole: tuple | None = None  # the one batch of unshuffled full-batch epochs, made once

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        if not self.shuffle and self.batch_size == self.n and self.n:
            # full-batch gradient descent: every epoch is the same batch (a Batch is never
            # changed: a hook replaces it), so it is made once, not once per step
            if self._whole is None:
                self._whole = (Batch(self.X, self.y, self.inputs, self.n),)
            return iter(self._whole)
        return self._batches()

    def _batches(self):
        order = order_of(self.generator, self.n, self.batch_size, self.shuffle)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.n)
            index = slice(lo, hi) if order is None else order[lo:hi]  # a slice: views, no copies
            if order is None and hi - lo == self.n:
                index = None  # the whole set (full-batch training): not even a view (a copy on JAX)
            yield Batch(self.X, self.y, self.inputs, hi - lo, index)


def order_of(generator, n: int, batch_size: int, shuffle, host: bool = False):
    """An epoch's order of the samples ``0..n-1``: a permutation (shuffle=True), contiguous
    blocks of ``batch_size`` in a random order with the short last block last
    (shuffle="blocks"), or the stored order (None, or ``arange(n)`` if ``host``). A host
    NumPy int64 array if ``host`` (streamed data), else one of the generator's backend.
    Streamed and in-memory data draw the same numbers here: same seed, same batches."""
    if not shuffle and not host:
        return None
    order = generator.host_order(n, batch_size, shuffle)
    return order if host else generator.backend.asarray(order, dtype="int64")


def shuffle_option(shuffle, where: str):
    """``shuffle`` checked: True, False or "blocks"."""
    if isinstance(shuffle, str) and shuffle == "blocks":
        return shuffle
    try:
        return _checks.boolean(shuffle, "shuffle", where)
    except ValueError:
        raise ValueError(f'{where}: shuffle must be True, False or "blocks", found {shuffle!r}') from None


def batches(X, y=None, batch_size: int = 32, shuffle: bool = False, seed: int = 0, drop_last: bool = False, **inputs):
    """Mini-batches along axis 0: ``for X_batch, y_batch in batches(X, y, 32): ...``.

    X: (n, ...); y: (n, ...) or None (then y_batch is None); further keyword arrays
    (``mask=M``) are batched alongside, in each batch's ``inputs``. Batches have
    batch_size samples, the last one fewer unless drop_last. shuffle: a random order from
    ``seed`` (the same on every backend, and the same on every iteration). Checks happen
    here, not at the first batch.
    """
    from ..backends import common_backend

    where = "batches"
    batch_size = _checks.positive_int(batch_size, "batch_size", where)
    arrays = {"X": X, **({} if y is None else {"y": y}), **inputs}
    be, moved = common_backend(where, **arrays)
    arrays = dict(zip(arrays, moved))
    for name, a in arrays.items():
        if a.ndim == 0:
            raise ValueError(f"{where}: {name} must have one entry per sample (axis 0), found a 0-d array")
        if a.shape[0] != arrays["X"].shape[0]:
            raise ValueError(
                f"{where}: X has {arrays['X'].shape[0]} samples but {name} has {a.shape[0]}; they must be the same"
            )
    X, y = arrays.pop("X"), arrays.pop("y", None)
    be.rng(seed)  # a bad seed fails now, not at the first batch
    return _Reseeded(
        X,
        y,
        arrays,
        batch_size,
        _checks.boolean(shuffle, "shuffle", where),
        be,
        seed,
        _checks.boolean(drop_last, "drop_last", where),
    )


class _Reseeded(Batches):
    """Batches whose shuffled order starts from the same seed on every iteration."""

    def __init__(self, X, y, inputs, batch_size, shuffle, backend, seed, drop_last):
        super().__init__(X, y, inputs, batch_size, shuffle, None, drop_last)
        self.backend, self.seed = backend, seed

    def __iter__(self):
        self.generator = self.backend.rng(self.seed)
        return super().__iter__()
