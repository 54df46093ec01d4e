"""Data preparation: feature scaling, missing values, outliers, one-hot labels,
train/test splits, mini-batches.

Everything works on NumPy arrays or arrays of any xpnn backend and returns arrays of the
same backend (a host NumPy array next to a device array is copied to that device).
Random choices (the split, the batch order) come from the backend's seeded generator,
whose draws are made on the host, so a seed gives the same split on every backend.

The scalers, the imputer and the clipper follow scikit-learn's conventions: ``fit``
learns statistics and stores them in attributes with a trailing underscore (``mean_``,
``scale_``, ...), ``transform`` applies them, ``inverse_transform`` undoes them (scalers
only), and ``to_dict``/``from_dict`` round-trip a fitted one through JSON (so it can be
saved next to a model: the model must see its inputs prepared the way they were at
training time). Missing values are NaN: SimpleImputer fills them; every scaler and
OutlierClipper ignores them when fitting and keeps them when transforming (as
scikit-learn's scalers do). An infinite value is refused by ``fit``: it would make every
statistic of its column infinite or NaN.

Statistics are accumulated in float64 whatever the input dtype (float32 and float16 sums
lose digits or overflow), where the backend's device has float64, and stored in the
dtype of the fitted X.
"""

from __future__ import annotations

import math

from ._checks import (
    boolean,
    first_true,
    first_true_index,
    is_integer,
    is_number,
    non_negative_int,
    number,
    optional_positive_int,
    positive_number,
)
from .backends import backend_of, common_backend, dtype_name, get_backend, python_scalar
from .functional import bincount

__all__ = [
    "NotFittedError",
    "StandardScaler",
    "MinMaxScaler",
    "RobustScaler",
    "SimpleImputer",
    "OutlierClipper",
    "one_hot",
    "train_test_split",
]


class NotFittedError(ValueError, AttributeError):
    """A scaler, imputer or clipper was used before ``fit`` (a ValueError and an
    AttributeError, as in scikit-learn)."""


def _accumulator(be, X):
    """X in float64 for accumulating statistics, or as it is on a device without float64
    (Apple's MPS, for instance), which the array API's inspection API says."""
    xp = be.xp
    if X.dtype == getattr(xp, "float64", None):
        return X
    try:
        supported = xp.__array_namespace_info__().dtypes(device=be.device, kind="real floating")
        has64 = "float64" in supported
    except (AttributeError, TypeError, ValueError):  # an older library: assume it has
        has64 = hasattr(xp, "float64")
    return xp.astype(X, xp.float64) if has64 else X


def _refuse_infinite(be, X, where):
    """An error naming the first +-inf in X (NaN, a missing value, is allowed): one sync."""
    xp = be.xp
    infinite = xp.isinf(X)
    if bool(be.to_numpy(xp.any(infinite))):
        i, j = first_true_index(xp, infinite)
        raise ValueError(
            f"{where}: X must not hold inf (NaN is a missing value and is skipped), found {float(X[i, j])} "
            f"at row {i}, column {j} (counting from 0)"
        )


def _array(a, argname, where):
    """(backend, a): a list becomes a NumPy array; anything else must be an array."""
    if isinstance(a, (list, tuple)):
        a = get_backend("numpy").asarray(a)
    try:
        return backend_of(a), a
    except TypeError:
        raise TypeError(
            f"{where}: {argname} must be an array (NumPy or an xpnn backend's), found {type(a).__name__}"
        ) from None


# ---- scalers ----------------------------------------------------------------------------


class _Transformer:
    """Shared plumbing: input checks, fitted statistics on any backend, JSON round trip.

    Subclasses list their fitted array attributes in ``_stats`` (and fitted plain Python
    values, JSON-able as they are, in ``_host_stats``) and implement ``_fit`` and
    ``_transform`` on a float array X: (samples, features).
    """

    _stats: tuple = ()
    _host_stats: tuple = ()

    def __init__(self):
        self.n_features_in_ = None
        self.n_samples_seen_ = None
        for name in self._stats + self._host_stats:
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
                raise ValueError(
                    f"{where}: X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                    f"with {self.n_features_in_} features"
                )
        if not xp.isdtype(X.dtype, "real floating"):
            fitted = self._stat_dtype_name() if self.fitted else "float32"
            X = xp.astype(X, be.dtype(fitted))
        return be, X

    def _stat_dtype_name(self):
        stat = getattr(self, self._stats[0])
        return dtype_name(stat.dtype)

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
        _refuse_infinite(be, X, self._where("fit"))
        self._in_dtype = X.dtype
        self._fit(be, _accumulator(be, X))
        for name in self._stats:  # computed in float64, kept in X's dtype
            stat = getattr(self, name)
            if stat.dtype != X.dtype:
                setattr(self, name, be.xp.astype(stat, X.dtype))

        self.n_features_in_ = X.shape[1]
        self.n_samples_seen_ = X.shape[0]
        return self

    def transform(self, X):
        """X: (samples, features) scaled; same backend and (floating) dtype as X."""
        be, X = self._input(X, "transform")
        return self._transform(be, X)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    # ---- saving -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-able description: the class, its arguments and, once fitted, the
        statistics as lists of floats (float32 values are exact in a JSON double)."""
        d: dict = {"class": type(self).__name__, "config": self.config()}
        if self.fitted:
            d["n_features_in_"] = self.n_features_in_
            d["n_samples_seen_"] = self.n_samples_seen_
            d["dtype"] = self._stat_dtype_name()
            d["stats"] = {
                name: backend_of(getattr(self, name)).to_numpy(getattr(self, name)).tolist() for name in self._stats
            }
            d["stats"].update({name: getattr(self, name) for name in self._host_stats})
        return d

    @classmethod
    def from_dict(cls, d: dict, backend=None):
        """The scaler ``to_dict`` described, statistics on ``backend`` (default: the current
        default backend)."""
        if not isinstance(d, dict) or d.get("class") != cls.__name__:
            found = d.get("class") if isinstance(d, dict) else type(d).__name__
            raise ValueError(
                f"{cls.__name__}.from_dict: expected a dict from {cls.__name__}.to_dict(), found class {found!r}"
            )
        scaler = cls(**d.get("config", {}))
        if "stats" in d:
            be = get_backend(backend)
            for name in cls._stats:
                setattr(scaler, name, be.asarray(d["stats"][name], dtype=d["dtype"]))
            for name in cls._host_stats:
                setattr(scaler, name, d["stats"][name])
            scaler.n_features_in_ = int(d["n_features_in_"])
            scaler.n_samples_seen_ = int(d["n_samples_seen_"])
        return scaler


class _Scaler(_Transformer):
    """A transformer that can be undone: subclasses also implement ``_inverse``."""

    def inverse_transform(self, X):
        """Undo ``transform``: X: (samples, features) back in the original units."""
        be, X = self._input(X, "inverse_transform")
        return self._inverse(be, X)


class StandardScaler(_Scaler):
    """Each feature shifted to mean 0 and scaled to standard deviation 1:
    ``(X - mean_) / scale_``.

    Fitted attributes (each (features,), on the backend and dtype of the fitted X):
      mean_: the feature means; var_: the population variances (ddof=0);
      scale_: sqrt(var_), or 1 for a constant feature (which then maps to 0 instead of
      dividing by zero); n_features_in_, n_samples_seen_.

    NaN values are skipped when fitting (the statistics are those of each feature's
    values) and stay NaN in ``transform``; a feature with no values at all is an error.

    Example: a feature [1, 2, 3] has mean 2 and std sqrt(2/3), so maps to
    [-1.2247, 0, 1.2247].
    """

    _stats = ("mean_", "var_", "scale_")

    def _fit(self, be, X):
        xp = be.xp
        missing = xp.isnan(X)
        _value_counts(be, missing, self._where("fit"), "the mean and variance")
        count = xp.sum(xp.astype(~missing, X.dtype), axis=0)
        zero = xp.zeros_like(X)
        self.mean_ = xp.sum(xp.where(missing, zero, X), axis=0) / count
        centred = xp.where(missing, zero, X - self.mean_)
        self.var_ = xp.sum(centred * centred, axis=0) / count  # two passes: no cancellation
        # A constant feature gets scale 1, so it maps to 0 instead of 0/0. Its variance may
        # not be exactly 0 (three copies of 0.1 do not average to exactly 0.1), so, as
        # scikit-learn does, a variance within the rounding error of its computation counts
        # as zero: n eps var + (n mean eps)**2 bounds that error.
        eps = xp.finfo(X.dtype).eps
        bound = count * eps * self.var_ + (count * self.mean_ * eps) ** 2
        self.scale_ = xp.where(self.var_ <= bound, xp.ones_like(self.var_), xp.sqrt(self.var_))

    def _transform(self, be, X):
        return (X - self._stat("mean_", be, X.dtype)) / self._stat("scale_", be, X.dtype)

    def _inverse(self, be, X):
        return X * self._stat("scale_", be, X.dtype) + self._stat("mean_", be, X.dtype)


def _nan_min_max(xp, X, missing):
    """Each column's smallest and largest value, skipping NaN ((features,) each)."""
    inf = xp.full_like(X, math.inf)
    return xp.min(xp.where(missing, inf, X), axis=0), xp.max(xp.where(missing, -inf, X), axis=0)


class MinMaxScaler(_Scaler):
    """Each feature mapped linearly so that its fitted minimum and maximum land on
    ``feature_range``: ``X * scale_ + min_``.

    feature_range: (low, high) with low < high. clip: clip transformed values to the
    range (new data may fall outside what was fitted).

    Fitted attributes ((features,) each): data_min_, data_max_, data_range_
    (= data_max_ - data_min_), scale_ = (high - low) / data_range_ (a constant feature
    gets data_range 1 in this division, so it maps to ``low``), min_ = low -
    data_min_ * scale_.

    NaN values are skipped when fitting and stay NaN in ``transform``; a feature with no
    values at all is an error.

    Example: a feature [2, 4, 6] maps to [0, 0.5, 1] with feature_range (0, 1).
    """

    _stats = ("data_min_", "data_max_", "data_range_", "scale_", "min_")

    def __init__(self, feature_range=(0.0, 1.0), clip: bool = False):
        try:
            low, high = feature_range
        except (TypeError, ValueError):  # not a pair
            low = high = None
        if not all(is_number(v) and math.isfinite(v) for v in (low, high)):
            raise ValueError(
                f"MinMaxScaler: feature_range must be a pair (low, high) of finite numbers, found {feature_range!r}"
            )
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
        missing = xp.isnan(X)
        _value_counts(be, missing, self._where("fit"), "the minimum and maximum")
        self.data_min_, self.data_max_ = _nan_min_max(xp, X, missing)
        self.data_range_ = self.data_max_ - self.data_min_
        # a constant feature: divide by 1, not by zero; as in scikit-learn, a range under 10
        # epsilons of X's dtype counts as zero (dividing by it would blow the values up)
        constant = self.data_range_ < 10 * xp.finfo(self._in_dtype).eps
        self.scale_ = (high - low) / xp.where(constant, xp.ones_like(self.data_range_), self.data_range_)
        self.min_ = low - self.data_min_ * self.scale_

    def _transform(self, be, X):
        Y = X * self._stat("scale_", be, X.dtype) + self._stat("min_", be, X.dtype)
        return be.xp.clip(Y, *self.feature_range) if self.clip else Y

    def _inverse(self, be, X):
        return (X - self._stat("min_", be, X.dtype)) / self._stat("scale_", be, X.dtype)


# ---- statistics that skip NaN (missing values) -------------------------------------------


def _quantile_range(value, where, default):
    """(low, high) percentages with 0 <= low < high <= 100, as floats."""
    try:
        low, high = value
    except (TypeError, ValueError):  # not a pair
        low = high = None
    ok = all(is_number(v) and math.isfinite(v) for v in (low, high)) and 0 <= low < high <= 100
    if not ok:
        raise ValueError(
            f"{where}: quantile_range must be a pair (low, high) of percentages with "
            f"0 <= low < high <= 100, such as {default}, found {value!r}"
        )
    return float(low), float(high)


def _value_counts(be, missing, where, what) -> list:
    """How many values (not NaN) each column holds, as a Python list; a column with none
    is an error naming it, since ``what`` cannot be computed from nothing."""
    counts = be.to_numpy(be.xp.sum(be.xp.astype(~missing, be.xp.int64), axis=0)).tolist()
    empty = [j for j, c in enumerate(counts) if c == 0]
    if empty:
        one = len(empty) == 1
        which = f"column {empty[0]}" if one else f"columns {', '.join(map(str, empty))}"
        raise ValueError(
            f"{where}: {which} of X (counting from 0) {'has' if one else 'have'} no values, only "
            f"NaN (missing), so {what} cannot be computed; drop {'it' if one else 'them'} from X"
        )
    return counts


class _Columns:
    """The values of each column of X (samples, features) without its NaNs, sorted, for
    quantiles and modes: ``sorted`` holds each column's values in ascending order with
    its NaNs (as +inf) after them; ``counts`` (a Python list) says how many values each
    column has (never 0: checked)."""

    def __init__(self, be, X, where, what):
        xp = be.xp
        self.be, self.n = be, X.shape[0]
        missing = xp.isnan(X)
        self.counts = _value_counts(be, missing, where, what)
        # NaN sorts as +inf, after every value (a real +inf ties with it, harmlessly: the
        # first counts[j] entries are still the column's values)
        inf = xp.asarray(math.inf, dtype=X.dtype, device=be.device)
        self.sorted = xp.sort(xp.where(missing, inf, X), axis=0)

    def take(self, rows):
        """``sorted[rows[j], j]`` for every column j: rows is a Python list of row indices."""
        be, xp = self.be, self.be.xp
        k = self.sorted.shape[1]
        flat = [r * k + j for j, r in enumerate(rows)]  # row-major: entry (i, j) is at i * k + j
        return xp.take(xp.reshape(self.sorted, (-1,)), be.asarray(flat, dtype="int64"))

    def quantile(self, q: float):
        """Each column's q-quantile (q in [0, 1]) of its values, interpolated linearly
        between the two nearest ranks: NumPy's default method (np.nanquantile)."""
        xp = self.be.xp
        positions = [(c - 1) * q for c in self.counts]  # Python floats: float64, as NumPy
        below = [math.floor(p) for p in positions]
        above = [min(b + 1, c - 1) for b, c in zip(below, self.counts)]
        a, b = self.take(below), self.take(above)
        t = self.be.asarray([p - lo for p, lo in zip(positions, below)], dtype=a.dtype)
        # NumPy's lerp: from the nearer end, so that t = 1 gives b exactly; equal ends give a
        diff = b - a
        found = xp.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
        return xp.where(a == b, a, found)

    def mode(self):
        """Each column's most frequent value; the smallest of those tied (scikit-learn's rule).

        Dense, with no shape that depends on the data (JAX compiles each new shape): the
        runs of equal values are numbered down each column, and the length of the run
        holding each entry is found by binary search in those numbers."""
        be, xp = self.be, self.be.xp
        S, n = self.sorted, self.n
        k = S.shape[1]
        rows = xp.arange(n, dtype=xp.int64, device=be.device)[:, None]
        valid = rows < be.asarray(self.counts, dtype="int64")[None, :]
        first = xp.ones((1, k), dtype=xp.bool, device=be.device)
        starts = valid & xp.concat([first, S[1:, :] != S[:-1, :]], axis=0)
        # runs 1, 2, ... down each column; the NaN tail (invalid) gets n, above every run
        run = xp.where(valid, xp.cumulative_sum(xp.astype(starts, xp.int64), axis=0), n)
        # one ascending key per entry, column after column: key = column * (n + 1) + run
        column = xp.arange(k, dtype=xp.int64, device=be.device)[None, :]
        keys = xp.reshape(xp.permute_dims(column * (n + 1) + run, (1, 0)), (-1,))
        length = xp.searchsorted(keys, keys, side="right") - xp.searchsorted(keys, keys, side="left")
        length = xp.where(valid, xp.permute_dims(xp.reshape(length, (k, n)), (1, 0)), -1)
        # argmax takes the first of the longest runs: the smallest value, as the column is sorted
        best = xp.argmax(length, axis=0)
        return xp.take(xp.reshape(S, (-1,)), best * k + column[0, :])


# ---- robust scaling, missing values, outliers ---------------------------------------------


class RobustScaler(_Scaler):
    """Each feature centred on its median and divided by its interquartile range:
    ``(X - center_) / scale_``; robust to outliers, which barely move either statistic.

    quantile_range: (low, high) percentages whose distance is the scale (default (25, 75),
        the interquartile range). with_centering / with_scaling: subtract the median /
        divide by the range (off: center_ is 0 / scale_ is 1). unit_variance: also divide
        the scale by the distance between those quantiles of a standard normal
        distribution (1.349 for (25, 75)), so normally distributed features end with
        variance 1.

    Fitted attributes ((features,) each): center_ (the medians), scale_ (the ranges; 1 for
    a feature whose range is zero, less than 10 machine epsilons: a constant feature maps
    to 0). NaN values are skipped when fitting and stay NaN in ``transform``; a feature
    with no values at all is an error. Matches scikit-learn's RobustScaler.

    Example: a feature [1, 2, 3, 4, 100] has median 3 and quartiles 2 and 4, so it maps
    to [-1, -0.5, 0, 0.5, 48.5].
    """

    _stats = ("center_", "scale_")

    def __init__(
        self,
        with_centering: bool = True,
        with_scaling: bool = True,
        quantile_range=(25.0, 75.0),
        unit_variance: bool = False,
    ):
        where = "RobustScaler"
        super().__init__()
        self.with_centering = boolean(with_centering, "with_centering", where)
        self.with_scaling = boolean(with_scaling, "with_scaling", where)
        self.quantile_range = _quantile_range(quantile_range, where, "(25, 75)")
        self.unit_variance = boolean(unit_variance, "unit_variance", where)
        if self.unit_variance and not 0 < self.quantile_range[0] < self.quantile_range[1] < 100:
            raise ValueError(
                f"{where}: unit_variance=True needs quantile_range inside (0, 100) (a normal "
                f"distribution has no 0th or 100th percentile), found {quantile_range!r}"
            )

    def config(self):
        return {
            "with_centering": self.with_centering,
            "with_scaling": self.with_scaling,
            "quantile_range": list(self.quantile_range),
            "unit_variance": self.unit_variance,
        }

    def _fit(self, be, X):
        xp = be.xp
        columns = _Columns(be, X, self._where("fit"), "the median and the quantiles")
        k = X.shape[1]
        self.center_ = columns.quantile(0.5) if self.with_centering else xp.zeros(k, dtype=X.dtype, device=be.device)
        if not self.with_scaling:
            self.scale_ = xp.ones(k, dtype=X.dtype, device=be.device)
            return
        low, high = self.quantile_range
        scale = columns.quantile(high / 100) - columns.quantile(low / 100)
        # scikit-learn's rule for a constant feature: a scale under 10 epsilons counts as zero
        scale = xp.where(scale < 10 * xp.finfo(self._in_dtype).eps, xp.ones_like(scale), scale)
        if self.unit_variance:
            from statistics import NormalDist

            normal = NormalDist()
            scale = scale / (normal.inv_cdf(high / 100) - normal.inv_cdf(low / 100))
        self.scale_ = scale

    def _transform(self, be, X):
        return (X - self._stat("center_", be, X.dtype)) / self._stat("scale_", be, X.dtype)

    def _inverse(self, be, X):
        return X * self._stat("scale_", be, X.dtype) + self._stat("center_", be, X.dtype)


IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")


class SimpleImputer(_Transformer):
    """Missing values (NaN) replaced, column by column, by a value learnt in ``fit``.

    strategy: "mean" or "median" of the column's values, "most_frequent" (the smallest
        of the most frequent ones when several tie), or "constant" (``fill_value``).
    fill_value: the number for strategy "constant" (default 0); only with that strategy.
    add_indicator: also append one 0/1 column per feature that had missing values in
        ``fit`` (1 where the value was missing): a model can then learn from the fact
        that a value was missing, not only from the value filled in.

    Fitted attributes: statistics_ (features,) the fill values, on the backend and dtype
    of the fitted X; indicator_features_ (with add_indicator) the indices of the features
    that had missing values in fit, a list; n_features_in_, n_samples_seen_.

    Fit the imputer on the training data only and transform the test data with it: the
    test data's own means would leak into the model's inputs. A column without any value
    in fit is an error (except with "constant"): there is nothing to compute its fill
    value from. Matches scikit-learn's SimpleImputer (whose default is to drop such
    columns instead).

    Example: a column [1, NaN, 3, 3] is filled with 7/3 ("mean"), 3 ("median" and
    "most_frequent") or fill_value ("constant").
    """

    _stats = ("statistics_",)
    _host_stats = ("indicator_features_",)

    def __init__(self, strategy: str = "mean", fill_value=None, add_indicator: bool = False):
        where = "SimpleImputer"
        if strategy not in IMPUTE_STRATEGIES:
            raise ValueError(
                f"{where}: strategy must be one of {', '.join(map(repr, IMPUTE_STRATEGIES))}, found {strategy!r}"
            )
        if fill_value is not None and strategy != "constant":
            raise ValueError(
                f"{where}: fill_value is used only with strategy='constant', found strategy "
                f"{strategy!r} and fill_value={fill_value!r}"
            )
        super().__init__()
        self.strategy = strategy
        self.fill_value = None if fill_value is None else number(fill_value, "fill_value", where)
        self.add_indicator = boolean(add_indicator, "add_indicator", where)

    def config(self):
        return {"strategy": self.strategy, "fill_value": self.fill_value, "add_indicator": self.add_indicator}

    def _fit(self, be, X):
        xp = be.xp
        missing = xp.isnan(X)
        if self.strategy == "constant":
            fill = 0.0 if self.fill_value is None else self.fill_value
            self.statistics_ = xp.full(X.shape[1], fill, dtype=X.dtype, device=be.device)
        elif self.strategy == "mean":
            _value_counts(be, missing, self._where("fit"), "strategy 'mean'")
            present = xp.astype(~missing, X.dtype)
            self.statistics_ = xp.sum(xp.where(missing, xp.zeros_like(X), X), axis=0) / xp.sum(present, axis=0)
        else:
            columns = _Columns(be, X, self._where("fit"), f"strategy {self.strategy!r}")
            self.statistics_ = columns.quantile(0.5) if self.strategy == "median" else columns.mode()
        if self.add_indicator:
            found = be.to_numpy(xp.any(missing, axis=0)).tolist()
            self.indicator_features_ = [j for j, m in enumerate(found) if m]

    def _transform(self, be, X):
        xp = be.xp
        missing = xp.isnan(X)
        Y = xp.where(missing, self._stat("statistics_", be, X.dtype)[None, :], X)
        if not self.add_indicator:
            return Y
        columns = be.asarray(self.indicator_features_, dtype="int64")
        return xp.concat([Y, xp.astype(xp.take(missing, columns, axis=1), X.dtype)], axis=1)


class OutlierClipper(_Transformer):
    """Each feature clipped to bounds learnt in ``fit``: values below ``lower_`` become
    ``lower_``, values above ``upper_`` become ``upper_`` (winsorizing).

    method: "quantile": the bounds are the ``quantile_range`` percentiles of the feature
        (default (1, 99)); "zscore": they are ``threshold`` standard deviations (default
        3) either side of the mean.

    Fitted attributes ((features,) each): lower_, upper_. NaN values are skipped when
    fitting and stay NaN in ``transform``; a feature with no values at all is an error.

    Example: with method "zscore" and threshold 1, a feature [0, 0, 0, 4] (mean 1, std
    sqrt(3)) is clipped to [-0.732, 2.732]: [0, 0, 0, 2.732].
    """

    _stats = ("lower_", "upper_")

    def __init__(self, method: str = "quantile", quantile_range=(1.0, 99.0), threshold: float = 3.0):
        where = "OutlierClipper"
        if method not in ("quantile", "zscore"):
            raise ValueError(f"{where}: method must be 'quantile' or 'zscore', found {method!r}")
        super().__init__()
        self.method = method
        self.quantile_range = _quantile_range(quantile_range, where, "(1, 99)")
        self.threshold = positive_number(threshold, "threshold", where)

    def config(self):
        return {"method": self.method, "quantile_range": list(self.quantile_range), "threshold": self.threshold}

    def _fit(self, be, X):
        xp = be.xp
        if self.method == "quantile":
            columns = _Columns(be, X, self._where("fit"), "the quantiles")
            low, high = self.quantile_range
            self.lower_, self.upper_ = columns.quantile(low / 100), columns.quantile(high / 100)
            return
        missing = xp.isnan(X)
        _value_counts(be, missing, self._where("fit"), "the mean and standard deviation")
        count = xp.sum(xp.astype(~missing, X.dtype), axis=0)
        mean = xp.sum(xp.where(missing, xp.zeros_like(X), X), axis=0) / count
        centred = xp.where(missing, xp.zeros_like(X), X - mean)
        std = xp.sqrt(xp.sum(centred * centred, axis=0) / count)  # population std (ddof 0), as StandardScaler
        self.lower_, self.upper_ = mean - self.threshold * std, mean + self.threshold * std

    def _transform(self, be, X):
        xp = be.xp
        # minimum/maximum rather than clip: clip with array bounds is not in every library
        # the backends wrap; a NaN stays NaN in both
        return xp.minimum(xp.maximum(X, self._stat("lower_", be, X.dtype)), self._stat("upper_", be, X.dtype))


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
        raise TypeError(
            f"{where}: labels must be integers, found dtype {labels.dtype}; cast them with xp.astype(labels, xp.int64)"
        )
    num_classes = optional_positive_int(num_classes, "num_classes", where)
    labels = xp.astype(labels, xp.int64)  # a uint8 label compared with 300 classes would overflow
    n = labels.shape[0]
    if num_classes is None:
        if n == 0:
            raise ValueError(f"{where}: labels is empty, so the number of classes is unknown; pass num_classes")
        low, high = (int(v) for v in be.to_numpy(xp.stack([xp.min(labels), xp.max(labels)])).tolist())
        C = high + 1
        if low < 0:
            i = first_true(xp, labels < 0)
            raise ValueError(f"{where}: labels must be non-negative integers, found {int(labels[i])} at index {i}")
    else:
        C = num_classes
        bad = (labels < 0) | (labels >= C)
        if n and bool(xp.any(bad)):
            i = first_true(xp, bad)
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
            raise ValueError(
                f"{where}: test_size must be a fraction in (0, 1) or a count in [1, {n - 1}], found {test_size!r}"
            )
        n_test = math.ceil(float(test_size) * n)
    else:
        raise TypeError(f"{where}: test_size must be a fraction in (0, 1) or a count, found {test_size!r}")
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"{where}: test_size={test_size!r} gives {n_test} test and {n - n_test} training samples "
            f"out of {n}; both splits need at least one (a count must lie in [1, {n - 1}])"
        )
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
            out += [a[: n - n_test, ...], a[n - n_test :, ...]]
        else:
            out += [xp.take(a, train_idx, axis=0), xp.take(a, test_idx, axis=0)]
    return tuple(out)


def _stratified(be, labels, n_test, seed, where):
    """(train indices, test indices), each class split in proportion."""
    xp = be.xp
    if labels.ndim == 2:  # a column (n, 1), or one-hot rows (n, C): the class of each row
        labels = labels[:, 0] if labels.shape[1] == 1 else xp.argmax(labels, axis=1)
    if labels.ndim != 1:
        raise ValueError(
            f"{where}: stratify must be labels (n,) or one-hot rows (n, C), found shape {tuple(labels.shape)}"
        )
    n = labels.shape[0]
    values, codes = xp.unique_inverse(labels)  # codes: each sample's class as 0 .. K-1
    codes = xp.astype(codes, xp.int64)
    K = values.shape[0]
    counts = be.to_numpy(bincount(be, codes, K)).tolist()
    smallest = min(range(K), key=lambda k: counts[k])
    if counts[smallest] < 2:
        raise ValueError(
            f"{where}: stratify class {python_scalar(values[smallest])} has only {counts[smallest]} sample; "
            f"every class needs at least 2 to appear in both parts"
        )
    if n_test < K or n - n_test < K:
        raise ValueError(
            f"{where}: with {K} classes both parts need at least {K} samples to hold every class, "
            f"found {n - n_test} training and {n_test} test samples; change test_size"
        )
    alloc = _allocate(counts, n_test)

    rng = be.rng(seed)
    perm = rng.permutation(n)
    # sample indices grouped class by class, in random order within each class
    grouped = xp.take(perm, xp.argsort(xp.take(codes, perm), stable=True))
    train_parts, test_parts, start = [], [], 0
    for count, k_test in zip(counts, alloc):
        test_parts.append(grouped[start : start + k_test])
        train_parts.append(grouped[start + k_test : start + count])
        start += count
    # the parts are class by class: shuffle them so a batch sees a mix of classes
    train_idx, test_idx = xp.concat(train_parts), xp.concat(test_parts)
    return (xp.take(train_idx, rng.permutation(n - n_test)), xp.take(test_idx, rng.permutation(n_test)))
