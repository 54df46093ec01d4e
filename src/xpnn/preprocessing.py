"""Data preparation: feature scaling, one-hot labels, train/test splits, mini-batches.

Everything works on NumPy arrays or arrays of any xpnn backend and returns arrays of the
same backend (a host NumPy array next to a device array is copied to that device).
Random choices (the split, the batch order) come from the backend's seeded generator,
whose draws are made on the host, so a seed gives the same split on every backend.

The scalers follow scikit-learn's conventions: ``fit`` learns statistics and stores them
in attributes with a trailing underscore (``mean_``, ``scale_``, ...), ``transform``
applies them, ``inverse_transform`` undoes them, and ``to_dict``/``from_dict`` round-trip
a fitted scaler through JSON (so it can be saved next to a model: the model must see its
inputs scaled the way they were at training time).
"""

from __future__ import annotations

import math

from ._checks import is_integer, is_number, non_negative_int, optional_positive_int
from .backends import backend_of, common_backend, get_backend
from .functional import bincount

__all__ = [
    "NotFittedError",
    "StandardScaler",
    "MinMaxScaler",
    "one_hot",
    "train_test_split",
]

class NotFittedError(ValueError, AttributeError):
    """A scaler was used before ``fit`` (a ValueError and an AttributeError, as in scikit-learn)."""


_FLOAT_NAMES = ("float16", "float32", "float64")


def _dtype_name(xp, dtype) -> str:
    for name in _FLOAT_NAMES:
        if hasattr(xp, name) and dtype == getattr(xp, name):
            return name
    raise TypeError(f"unsupported floating dtype {dtype}")


def _array(a, argname, where):
    """(backend, a): a list becomes a NumPy array; anything else must be an array."""
    if isinstance(a, (list, tuple)):
        a = get_backend("numpy").asarray(a)
    try:
        return backend_of(a), a
    except TypeError:
        raise TypeError(f"{where}: {argname} must be an array (NumPy or an xpnn backend's), "
                        f"found {type(a).__name__}") from None


# ---- scalers ----------------------------------------------------------------------------


class _Scaler:
    """Shared plumbing: input checks, fitted statistics on any backend, JSON round trip.

    Subclasses list their fitted array attributes in ``_stats`` and implement ``_fit``,
    ``_transform`` and ``_inverse`` on a float array X: (samples, features).
    """

    _stats: tuple = ()

    def __init__(self):
        self.n_features_in_ = None
        self.n_samples_seen_ = None
        for name in self._stats:
            setattr(self, name, None)

    def config(self) -> dict:
        """Constructor arguments as JSON-able values."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    @property
    def fitted(self) -> bool:
        return self.n_features_in_ is not None

    # ---- checks ---------------------------------------------------------------------------

    def _where(self, method):
        return f"{type(self).__name__}.{method}"

    def _input(self, X, method):
        """(backend, X as a floating 2-D array). Floating X keeps its dtype; integers (pixel
        bytes, counts) become the fitted dtype, or float32 when fitting."""
        where = self._where(method)
        be, X = _array(X, "X", where)
        xp = be.xp
        if X.ndim != 2:
            hint = "; for a single feature use X[:, None]" if X.ndim == 1 else ""
            raise ValueError(f"{where}: X must be 2-D (samples, features), found shape {tuple(X.shape)}{hint}")
        if not xp.isdtype(X.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{where}: X must hold real numbers, found dtype {X.dtype}")
        if method != "fit":
            if not self.fitted:
                name = type(self).__name__
                raise NotFittedError(f"{where}: this {name} is not fitted yet; call fit(X) (or fit_transform) first")
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"{where}: X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                                 f"with {self.n_features_in_} features")
        if not xp.isdtype(X.dtype, "real floating"):
            fitted = self._stat_dtype_name() if self.fitted else "float32"
            X = xp.astype(X, be.dtype(fitted))
        return be, X

    def _stat_dtype_name(self):
        stat = getattr(self, self._stats[0])
        return _dtype_name(backend_of(stat).xp, stat.dtype)

    def _stat(self, name, be, dtype):
        """Fitted statistic ``name`` (features,) as an array of backend ``be`` in ``dtype``:
        a scaler fitted on the host can transform device arrays and the other way round."""
        stat = getattr(self, name)
        if not be.owns(stat):
            stat = be.asarray(backend_of(stat).to_numpy(stat))
        return stat if stat.dtype == dtype else be.xp.astype(stat, dtype)

    # ---- the scikit-learn interface ---------------------------------------------------------

    def fit(self, X):
        """Learn the statistics of X: (samples, features). Returns self."""
        be, X = self._input(X, "fit")
        if X.shape[0] == 0:
            raise ValueError(f"{self._where('fit')}: X has no samples (shape {tuple(X.shape)})")
        self._fit(be, X)
        self.n_features_in_ = X.shape[1]
        self.n_samples_seen_ = X.shape[0]
        return self

    def transform(self, X):
        """X: (samples, features) scaled; same backend and (floating) dtype as X."""
        be, X = self._input(X, "transform")
        return self._transform(be, X)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """Undo ``transform``: X: (samples, features) back in the original units."""
        be, X = self._input(X, "inverse_transform")
        return self._inverse(be, X)

    # ---- saving -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-able description: the class, its arguments and, once fitted, the
        statistics as lists of floats (float32 values are exact in a JSON double)."""
        d = {"class": type(self).__name__, "config": self.config()}
        if self.fitted:
            d["n_features_in_"] = self.n_features_in_
            d["n_samples_seen_"] = self.n_samples_seen_
            d["dtype"] = self._stat_dtype_name()
            d["stats"] = {name: backend_of(getattr(self, name)).to_numpy(getattr(self, name)).tolist()
                          for name in self._stats}
        return d

    @classmethod
    def from_dict(cls, d: dict, backend=None):
        """The scaler ``to_dict`` described, statistics on ``backend`` (default: the current
        default backend)."""
        if not isinstance(d, dict) or d.get("class") != cls.__name__:
            found = d.get("class") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{cls.__name__}.from_dict: expected a dict from {cls.__name__}.to_dict(), "
                             f"found class {found!r}")
        scaler = cls(**d.get("config", {}))
        if "stats" in d:
            be = get_backend(backend)
            for name in cls._stats:
                setattr(scaler, name, be.asarray(d["stats"][name], dtype=d["dtype"]))
            scaler.n_features_in_ = int(d["n_features_in_"])
            scaler.n_samples_seen_ = int(d["n_samples_seen_"])
        return scaler


class StandardScaler(_Scaler):
    """Each feature shifted to mean 0 and scaled to standard deviation 1:
    ``(X - mean_) / scale_``.

    Fitted attributes (each (features,), on the backend and dtype of the fitted X):
      mean_: the feature means; var_: the population variances (ddof=0);
      scale_: sqrt(var_), or 1 for a constant feature (which then maps to 0 instead of
      dividing by zero); n_features_in_, n_samples_seen_.

    Example: a feature [1, 2, 3] has mean 2 and std sqrt(2/3), so maps to
    [-1.2247, 0, 1.2247].
    """

    _stats = ("mean_", "var_", "scale_")

    def _fit(self, be, X):
        xp = be.xp
        self.mean_ = xp.mean(X, axis=0)
        self.var_ = xp.mean((X - self.mean_) ** 2, axis=0)  # two passes: no cancellation
        # A constant feature (all its values equal) gets scale 1, so it maps to 0 instead
        # of 0/0. Its variance may not be exactly 0: three copies of 0.1 do not average to
        # exactly 0.1 in floating point, so the test is on the values, not on var_.
        constant = xp.max(X, axis=0) == xp.min(X, axis=0)
        self.scale_ = xp.where(constant, xp.ones_like(self.var_), xp.sqrt(self.var_))

    def _transform(self, be, X):
        return (X - self._stat("mean_", be, X.dtype)) / self._stat("scale_", be, X.dtype)

    def _inverse(self, be, X):
        return X * self._stat("scale_", be, X.dtype) + self._stat("mean_", be, X.dtype)


class MinMaxScaler(_Scaler):
    """Each feature mapped linearly so that its fitted minimum and maximum land on
    ``feature_range``: ``X * scale_ + min_``.

    feature_range: (low, high) with low < high. clip: clip transformed values to the
    range (new data may fall outside what was fitted).

    Fitted attributes ((features,) each): data_min_, data_max_, data_range_
    (= data_max_ - data_min_), scale_ = (high - low) / data_range_ (a constant feature
    gets data_range 1 in this division, so it maps to ``low``), min_ = low -
    data_min_ * scale_.

    Example: a feature [2, 4, 6] maps to [0, 0.5, 1] with feature_range (0, 1).
    """

    _stats = ("data_min_", "data_max_", "data_range_", "scale_", "min_")

    def __init__(self, feature_range=(0.0, 1.0), clip: bool = False):
        try:
            low, high = feature_range
        except (TypeError, ValueError):  # not a pair
            low = high = None
        if not all(is_number(v) and math.isfinite(v) for v in (low, high)):
            raise ValueError(f"MinMaxScaler: feature_range must be a pair (low, high) of finite numbers, "
                             f"found {feature_range!r}")
        low, high = float(low), float(high)
        if not low < high:
            raise ValueError(f"MinMaxScaler: feature_range must have low < high, found {feature_range!r}")
        super().__init__()
        self.feature_range = (low, high)
        self.clip = bool(clip)

    def config(self):
        return {"feature_range": list(self.feature_range), "clip": self.clip}

    def _fit(self, be, X):
        xp = be.xp
        low, high = self.feature_range
        self.data_min_ = xp.min(X, axis=0)
        self.data_max_ = xp.max(X, axis=0)
        self.data_range_ = self.data_max_ - self.data_min_
        # a constant feature: divide by 1, not by zero (max - min of two different floats
        # is never 0, so == 0 finds exactly the constant features)
        constant = self.data_range_ == 0.0
        self.scale_ = (high - low) / xp.where(constant, xp.ones_like(self.data_range_), self.data_range_)
        self.min_ = low - self.data_min_ * self.scale_

    def _transform(self, be, X):
        Y = X * self._stat("scale_", be, X.dtype) + self._stat("min_", be, X.dtype)
        return be.xp.clip(Y, *self.feature_range) if self.clip else Y

    def _inverse(self, be, X):
        return (X - self._stat("min_", be, X.dtype)) / self._stat("scale_", be, X.dtype)


# ---- labels -----------------------------------------------------------------------------


def one_hot(labels, num_classes: int | None = None, dtype="float32"):
    """Rows with a 1 in each label's column: labels (n,) integers -> (n, num_classes).

    num_classes: default the largest label + 1. The result is on labels' backend.
    Example: one_hot([0, 2, 1], 3) -> [[1, 0, 0], [0, 0, 1], [0, 1, 0]].

    Raises ValueError for a label outside [0, num_classes), naming it and its index.
    """
    where = "one_hot"
    be, labels = _array(labels, "labels", where)
    xp = be.xp
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels must be 1-D (n,), found shape {tuple(labels.shape)}")
    if xp.isdtype(labels.dtype, "bool") or not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"{where}: labels must be integers, found dtype {labels.dtype}; "
                        f"cast them with xp.astype(labels, xp.int64)")
    num_classes = optional_positive_int(num_classes, "num_classes", where)
    labels = xp.astype(labels, xp.int64)  # a uint8 label compared with 300 classes would overflow
    n = labels.shape[0]
    if num_classes is None:
        if n == 0:
            raise ValueError(f"{where}: labels is empty, so the number of classes is unknown; pass num_classes")
        low, high = (int(v) for v in be.to_numpy(xp.stack([xp.min(labels), xp.max(labels)])).tolist())
        C = high + 1
        if low < 0:
            i = int(xp.argmax(xp.astype(labels < 0, xp.int8)))
            raise ValueError(f"{where}: labels must be non-negative integers, found {int(labels[i])} at index {i}")
    else:
        C = num_classes
        bad = (labels < 0) | (labels >= C)
        if n and bool(xp.any(bad)):
            i = int(xp.argmax(xp.astype(bad, xp.int8)))  # argmax returns the first hit
            raise ValueError(f"{where}: labels must be integers in [0, {C}), found {int(labels[i])} at index {i}")
    classes = xp.arange(C, dtype=xp.int64, device=be.device)
    return xp.astype(labels[:, None] == classes[None, :], be.dtype(dtype))


# ---- splitting and batching -------------------------------------------------------------


def _test_count(test_size, n, where):
    """How many of n samples go to the test split (the ceiling, as scikit-learn)."""
    if is_integer(test_size):
        n_test = int(test_size)
    elif is_number(test_size):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"{where}: test_size must be a fraction in (0, 1) or a count in [1, {n - 1}], "
                             f"found {test_size!r}")
        n_test = math.ceil(float(test_size) * n)
    else:
        raise TypeError(f"{where}: test_size must be a fraction in (0, 1) or a count, found {test_size!r}")
    if not 1 <= n_test <= n - 1:
        raise ValueError(f"{where}: test_size={test_size!r} gives {n_test} test and {n - n_test} training samples "
                         f"out of {n}; both splits need at least one (a count must lie in [1, {n - 1}])")
    return n_test


def _allocate(counts, n_test):
    """Test samples per class: each class's share of n_test, rounded down, then the
    samples left over go one at a time to the classes with the largest remainders (ties:
    the lower class). Every class keeps at least one training sample."""
    n = sum(counts)
    exact = [n_test * c / n for c in counts]
    alloc = [min(math.floor(e), c - 1) for e, c in zip(exact, counts)]
    by_remainder = sorted(range(len(counts)), key=lambda k: (-(exact[k] - alloc[k]), k))
    left = n_test - sum(alloc)
    while left > 0:  # terminates: the caller checked n_test <= n - (number of classes)
        for k in by_remainder:
            if left and alloc[k] < counts[k] - 1:
                alloc[k] += 1
                left -= 1
    return alloc


def train_test_split(X, y=None, test_size=0.2, stratify=None, seed: int = 0, shuffle: bool = True):
    """Split samples (axis 0) into a training and a test part.

    X: (n, ...) features; y: (n, ...) targets or None.
    test_size: a fraction in (0, 1) (the test part gets ceil(test_size * n) samples) or
        a count.
    stratify: labels (n,) or one-hot rows (n, C) (usually y; ``True`` means y) whose
        class proportions both parts keep: each class gives its share of the test part, rounded so the sizes add up
        (every class needs 2 samples or more).
    seed: seeds the shuffle (the same split on every backend). shuffle=False puts the
        first samples in the training part and the last ones in the test part (it cannot
        be stratified).

    Returns ``X_train, X_test, y_train, y_test`` (scikit-learn's order), or
    ``X_train, X_test`` without y, on X's backend. Example: 10 samples, test_size=0.2 ->
    8 training and 2 test samples.
    """
    where = "train_test_split"
    arrays = {"X": X} if y is None else {"X": X, "y": y}
    if stratify is True:
        if y is None:
            raise ValueError(f"{where}: stratify=True stratifies by y, but y is None")
        stratify = y
    if stratify is not None:
        arrays["stratify"] = stratify
    for argname, a in arrays.items():
        _array(a, argname, where)  # a clear TypeError for anything that is not an array
    be, moved = common_backend(where, **arrays)
    arrays = dict(zip(arrays, moved))
    xp = be.xp
    for argname, a in arrays.items():
        if a.ndim == 0:
            raise ValueError(f"{where}: {argname} must have one entry per sample (axis 0), found a 0-d array")
    n = arrays["X"].shape[0]
    for argname, a in arrays.items():
        if a.shape[0] != n:
            raise ValueError(f"{where}: X has {n} samples but {argname} has {a.shape[0]}; they must be the same")
    n_test = _test_count(test_size, n, where)
    if shuffle:  # the seed is only used (and so only checked) for a shuffled split
        seed = non_negative_int(seed, "seed", where)

    if stratify is not None:
        if not shuffle:
            raise ValueError(f"{where}: a stratified split needs shuffle=True")
        train_idx, test_idx = _stratified(be, arrays["stratify"], n_test, seed, where)
    elif shuffle:
        perm = be.rng(seed).permutation(n)
        train_idx, test_idx = perm[n_test:], perm[:n_test]
    else:
        train_idx = test_idx = None

    out = []
    for argname in ("X", "y") if y is not None else ("X",):
        a = arrays[argname]
        if train_idx is None:
            out += [a[:n - n_test, ...], a[n - n_test:, ...]]
        else:
            out += [xp.take(a, train_idx, axis=0), xp.take(a, test_idx, axis=0)]
    return tuple(out)


def _stratified(be, labels, n_test, seed, where):
    """(train indices, test indices), each class split in proportion."""
    xp = be.xp
    if labels.ndim == 2:  # a column (n, 1), or one-hot rows (n, C): the class of each row
        labels = labels[:, 0] if labels.shape[1] == 1 else xp.argmax(labels, axis=1)
    if labels.ndim != 1:
        raise ValueError(f"{where}: stratify must be labels (n,) or one-hot rows (n, C), "
                         f"found shape {tuple(labels.shape)}")
    n = labels.shape[0]
    values, codes = xp.unique_inverse(labels)  # codes: each sample's class as 0 .. K-1
    codes = xp.astype(codes, xp.int64)
    K = values.shape[0]
    counts = be.to_numpy(bincount(be, codes, K)).tolist()
    smallest = min(range(K), key=lambda k: counts[k])
    if counts[smallest] < 2:
        raise ValueError(f"{where}: stratify class {_item(values[smallest])} has only {counts[smallest]} sample; "
                         f"every class needs at least 2 to appear in both parts")
    if n_test < K or n - n_test < K:
        raise ValueError(f"{where}: with {K} classes both parts need at least {K} samples to hold every class, "
                         f"found {n - n_test} training and {n_test} test samples; change test_size")
    alloc = _allocate(counts, n_test)

    rng = be.rng(seed)
    perm = rng.permutation(n)
    # sample indices grouped class by class, in random order within each class
    grouped = xp.take(perm, xp.argsort(xp.take(codes, perm), stable=True))
    train_parts, test_parts, start = [], [], 0
    for count, k_test in zip(counts, alloc):
        test_parts.append(grouped[start:start + k_test])
        train_parts.append(grouped[start + k_test:start + count])
        start += count
    # the parts are class by class: shuffle them so a batch sees a mix of classes
    train_idx, test_idx = xp.concat(train_parts), xp.concat(test_parts)
    return (xp.take(train_idx, rng.permutation(n - n_test)), xp.take(test_idx, rng.permutation(n_test)))


def _item(a):
    xp = backend_of(a).xp
    return int(a) if xp.isdtype(a.dtype, "integral") else a
