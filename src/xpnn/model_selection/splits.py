"""Cross-validation folds: KFold, StratifiedKFold, and the helpers that turn ``cv`` (a
number of folds or a splitter) into folds and cut data with them.

Folds are host-side bookkeeping: a splitter yields pairs of NumPy int64 index arrays
``(train_idx, test_idx)`` (scikit-learn's semantics), and the data are cut with them where
they live (a NumPy array on the host, a backend array on its device).
"""

from __future__ import annotations

import numpy as np

from .._checks import boolean, integer, is_integer, non_negative_int
from ..backends import backend_of

__all__ = ["KFold", "StratifiedKFold"]

# check_data, take_rows, check_cv and cv_splits are not in __all__: they serve
# cross_validate and the searches (validation.py, search.py), not users.


# ---- data: sample counts, host copies, rows -----------------------------------------------


def _num_samples(a, argname, where) -> int:
    if isinstance(a, (list, tuple)):
        return len(a)
    shape = getattr(a, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: {argname} must be an array (NumPy or an xpnn backend's), found {type(a).__name__}")
    if len(shape) == 0:
        raise ValueError(f"{where}: {argname} must have one entry per sample (axis 0), found a 0-d array")
    return int(shape[0])


def check_data(X, y, where, y_required=True):
    """Number of samples of X and y, which must agree."""
    n = _num_samples(X, "X", where)
    if y is None:
        if y_required:
            raise ValueError(f"{where}: y is required")
        return n
    m = _num_samples(y, "y", where)
    if m != n:
        raise ValueError(f"{where}: X has {n} samples but y has {m}; they must be the same")
    return n


def _to_host(a):
    """A NumPy array of ``a`` (a list, a NumPy array or a backend array): for fold bookkeeping."""
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, (list, tuple)):
        return np.asarray(a)
    return backend_of(a).to_numpy(a)


def take_rows(a, idx):
    """Rows ``idx`` (NumPy int64) of ``a``, on the host or device where ``a`` lives."""
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    if isinstance(a, np.ndarray):
        return a[idx]
    be = backend_of(a)
    return be.xp.take(a, be.asarray(idx, dtype=be.xp.int64), axis=0)


# ---- splitters ----------------------------------------------------------------------------


class KFold:
    """Split n samples into ``n_splits`` consecutive folds; each fold is the test set once.

    The first ``n % n_splits`` folds hold one sample more than the others (as scikit-learn).
    With ``shuffle=True`` the samples are permuted first, by a generator seeded with
    ``seed``: every ``split`` call gives the same folds. Indices come back sorted.
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = False, seed: int = 0):
        where = type(self).__name__
        # at least 2: one part to test, at least one to train on
        self.n_splits = integer(n_splits, "n_splits", where, minimum=2)
        self.shuffle = boolean(shuffle, "shuffle", where)
        self.seed = non_negative_int(seed, "seed", where)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, seed={self.seed})"

    def get_n_splits(self, X=None, y=None) -> int:
        return self.n_splits

    def split(self, X, y=None):
        """Yield ``(train_idx, test_idx)``, NumPy int64 arrays of sorted indices into X.

        X: (n, ...) array (only its length is used); y: ignored (checked for length).
        """
        where = f"{type(self).__name__}.split"
        n = check_data(X, y, where, y_required=False)
        self._check_enough(n, where)
        yield from self._from_test_folds(self._test_folds(n, None))

    def _check_enough(self, n, where):
        if self.n_splits > n:
            raise ValueError(
                f"{where}: n_splits={self.n_splits} is more than the {n} samples in X; "
                f"every fold needs at least one sample"
            )

    def _test_folds(self, n, y_host):
        """(n,) int: the fold in which each sample is tested."""
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng(self.seed).permutation(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        folds = np.empty(n, dtype=np.int64)
        folds[order] = np.repeat(np.arange(self.n_splits), sizes)
        return folds

    def _from_test_folds(self, folds):
        for k in range(self.n_splits):
            test = folds == k
            yield np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)


class StratifiedKFold(KFold):
    """K folds that keep the class proportions of y in every fold.

    y: class labels (n,) or (n, 1) of any type, or one-hot rows (n, C) (their argmax is the
    class). The allocation follows scikit-learn's (so, without shuffle, the folds are
    scikit-learn's): the samples of each class go to the folds in order, and each fold's
    count of a class differs from another fold's by at most one. With ``shuffle=True``
    which samples of a class go to which fold is random (seeded by ``seed``).
    Every class needs at least ``n_splits`` members, else some fold would miss it.
    """

    def split(self, X, y=None):
        """Yield ``(train_idx, test_idx)``, NumPy int64 arrays of sorted indices into X.

        X: (n, ...) array (only its length is used); y: labels (n,) (required).
        """
        where = f"{type(self).__name__}.split"
        if y is None:
            raise ValueError(
                f"{where}: y (the class labels) is required to stratify; use KFold to split without labels"
            )
        n = check_data(X, y, where)
        self._check_enough(n, where)
        yield from self._from_test_folds(self._test_folds(n, _labels(_to_host(y), where)))

    def _test_folds(self, n, y_host):
        k = self.n_splits
        # classes numbered by first appearance, as scikit-learn does
        classes, first, inverse = np.unique(y_host, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))
        encoded = rank[inverse.reshape(-1)]
        counts = np.bincount(encoded, minlength=len(classes))
        if counts.min() < k:
            c = int(np.argmin(counts))
            raise ValueError(
                f"{type(self).__name__}.split: n_splits={k} is more than the {int(counts.min())} "
                f"members of class {classes.tolist()[c]!r} in y; every fold needs every class. "
                f"Use fewer splits, or KFold to split without stratifying"
            )
        # Deal the sorted labels round-robin over the folds: fold i gets the labels at i, i+k, ...
        # so each fold's count of a class is within one of the others'.
        ordered = np.sort(encoded)
        allocation = np.stack([np.bincount(ordered[i::k], minlength=len(classes)) for i in range(k)])
        rng = np.random.default_rng(self.seed) if self.shuffle else None
        folds = np.empty(n, dtype=np.int64)
        for c in range(len(classes)):
            fold_of_member = np.repeat(np.arange(k), allocation[:, c])
            if rng is not None:
                rng.shuffle(fold_of_member)
            folds[encoded == c] = fold_of_member
        return folds


def _labels(y, where):
    """Host labels (n,) from labels (n,), a column (n, 1) or one-hot rows (n, C)."""
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim == 2:
        return np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(f"{where}: y must be labels (n,) or one-hot rows (n, C), found shape {y.shape}")
    return y


def _is_class_labels(y_host) -> bool:
    return (y_host.ndim == 1 or (y_host.ndim == 2 and y_host.shape[1] == 1)) and (
        np.issubdtype(y_host.dtype, np.integer) or y_host.dtype == np.bool_
    )


# ---- cv: a number of folds or a splitter -------------------------------------------------


def check_cv(cv, where):
    """``cv`` as an int >= 2 or a splitter (anything with ``split(X, y)``), else an error."""
    if is_integer(cv):
        if cv < 2:
            raise ValueError(
                f"{where}: cv must be a number of folds >= 2 (one to test, at least one to "
                f"train on) or a splitter, found {cv!r}"
            )
        return int(cv)
    if callable(getattr(cv, "split", None)) and not isinstance(cv, (str, bytes)):  # str has split too
        return cv
    raise TypeError(
        f"{where}: cv must be a number of folds (an integer >= 2) or a splitter with "
        f"split(X, y) such as KFold(5), found {cv!r}"
    )


def cv_splits(cv, X, y, where):
    """The folds, as a list of (train_idx, test_idx): integer cv means StratifiedKFold for
    integer class labels, else KFold (neither shuffled)."""
    y_host = _to_host(y)
    if is_integer(cv):
        cv = StratifiedKFold(cv) if _is_class_labels(y_host) else KFold(cv)
    folds = []
    for i, pair in enumerate(cv.split(X, y_host)):
        try:
            train, test = (np.asarray(a, dtype=np.int64) for a in pair)
        except (TypeError, ValueError):
            raise TypeError(
                f"{where}: {cv!r}.split must yield pairs (train_idx, test_idx) of index arrays, "
                f"found {pair!r} for fold {i}"
            ) from None
        if train.size == 0 or test.size == 0:
            raise ValueError(
                f"{where}: fold {i} of {cv!r} has an empty {'training' if train.size == 0 else 'test'} set"
            )
        folds.append((train, test))
    if not folds:
        raise ValueError(f"{where}: {cv!r} gave no folds")
    return folds
