"""Model selection: cross-validation folds, ``cross_validate`` and hyper-parameter searches.

Folds are host-side bookkeeping: a splitter yields pairs of NumPy int64 index arrays
``(train_idx, test_idx)`` (scikit-learn's semantics), and the data are cut with them where
they live (a NumPy array on the host, a backend array on its device). Training and scoring
run on the model's backend; a score comes back as a Python float.

A model is made by ``build_fn(**params)``, which returns a *compiled* model (a fresh one per
call: every fold and every trial starts from scratch). Seeds live in the model (its
``seed=``) and in the searches' ``seed=``, so a search is reproducible: the same seed gives
the same trials and the same scores (the timings differ, of course).

    def build(hidden=32, lr=1e-3):
        model = xpnn.NeuralNetwork(64, hidden, 10, seed=0)
        return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr), metrics=["accuracy"])

    search = GridSearch(build, {"hidden": [16, 64], "lr": [1e-3, 1e-2]}, cv=3,
                        fit_kwargs={"epochs": 5}).fit(X, y)
    search.best_params_, search.best_score_, search.best_model_
    print(search.to_markdown())

Scores: ``scoring`` is a metric name (see ``xpnn.metrics.METRICS``), ``"loss"`` (the model's
own loss), or a callable ``metric(y_true, y_pred)``. Whether larger is better comes from
``METRIC_MODE`` (so ``scoring="mse"`` and ``"loss"`` are minimised), or from a callable's
``higher_is_better`` attribute (default True). A callable gets what the metrics in fit's
logs get: the targets and ``model.loss.predict(outputs)`` (probabilities for the
cross-entropies), both on the model's device.

BayesSearch needs Optuna (``pip install "xpnn[tune]"``): its TPE sampler proposes the
next trial from the scores so far, a pruner stops hopeless trials early (see BayesSearch),
and ``storage="sqlite:///study.db"`` lets several processes work on one study.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from ..backends import backend_of
from ..callbacks import Callback
from ..metrics import METRIC_MODE, get_metric

__all__ = [
    "KFold",
    "StratifiedKFold",
    "cross_validate",
    "Distribution",
    "Choice",
    "Uniform",
    "LogUniform",
    "IntUniform",
    "GridSearch",
    "RandomSearch",
    "BayesSearch",
]

_TUNE_HELP = 'needs Optuna: pip install "xpnn[tune]" (or pip install "optuna>=3")'


# ---- small checks -------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_n_splits(n_splits, where):
    if not _is_int(n_splits) or n_splits < 2:
        raise ValueError(f"{where}: n_splits must be an integer >= 2 (one part to test, at least one "
                         f"to train on), found {n_splits!r}")
    return int(n_splits)


def _check_seed(seed, where):
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, found {seed!r}")
    return int(seed)


def _check_positive(value, argname, where):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{where}: {argname} must be a positive integer, found {value!r}")
    return int(value)


def _num_samples(a, argname, where) -> int:
    if isinstance(a, (list, tuple)):
        return len(a)
    shape = getattr(a, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: {argname} must be an array (NumPy or an xpnn backend's), "
                        f"found {type(a).__name__}")
    if len(shape) == 0:
        raise ValueError(f"{where}: {argname} must have one entry per sample (axis 0), found a 0-d array")
    return int(shape[0])


def _check_data(X, y, where, y_required=True):
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


def _take(a, idx):
    """Rows ``idx`` (NumPy int64) of ``a``, on the host or device where ``a`` lives."""
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    if isinstance(a, np.ndarray):
        return a[idx]
    be = backend_of(a)
    return be.xp.take(a, be.asarray(idx, dtype=be.xp.int64), axis=0)


def _python(value):
    """NumPy scalars as Python numbers: a NumPy float64 reaching a model would upcast float32."""
    return value.item() if isinstance(value, np.generic) else value


# ---- splitters ----------------------------------------------------------------------------


class KFold:
    """Split n samples into ``n_splits`` consecutive folds; each fold is the test set once.

    The first ``n % n_splits`` folds hold one sample more than the others (as scikit-learn).
    With ``shuffle=True`` the samples are permuted first, by a generator seeded with
    ``seed``: every ``split`` call gives the same folds. Indices come back sorted.
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = False, seed: int = 0):
        self.n_splits = _check_n_splits(n_splits, type(self).__name__)
        if not isinstance(shuffle, bool):
            raise TypeError(f"{type(self).__name__}: shuffle must be True or False, found {shuffle!r}")
        self.shuffle = shuffle
        self.seed = _check_seed(seed, type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, seed={self.seed})"

    def get_n_splits(self, X=None, y=None) -> int:
        return self.n_splits

    def split(self, X, y=None):
        """Yield ``(train_idx, test_idx)``, NumPy int64 arrays of sorted indices into X.

        X: (n, ...) array (only its length is used); y: ignored (checked for length).
        """
        where = f"{type(self).__name__}.split"
        n = _check_data(X, y, where, y_required=False)
        self._check_enough(n, where)
        yield from self._from_test_folds(self._test_folds(n, None))

    def _check_enough(self, n, where):
        if self.n_splits > n:
            raise ValueError(f"{where}: n_splits={self.n_splits} is more than the {n} samples in X; "
                             f"every fold needs at least one sample")

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
            raise ValueError(f"{where}: y (the class labels) is required to stratify; use KFold to split "
                             f"without labels")
        n = _check_data(X, y, where)
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
            raise ValueError(f"{type(self).__name__}.split: n_splits={k} is more than the {int(counts.min())} "
                             f"members of class {_python(classes[c])!r} in y; every fold needs every class. "
                             f"Use fewer splits, or KFold to split without stratifying")
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
    return (y_host.ndim == 1 or (y_host.ndim == 2 and y_host.shape[1] == 1)) and \
        (np.issubdtype(y_host.dtype, np.integer) or y_host.dtype == np.bool_)


def _check_cv(cv, where):
    if _is_int(cv):
        if cv < 2:
            raise ValueError(f"{where}: cv must be a number of folds >= 2 (one to test, at least one to "
                             f"train on) or a splitter, found {cv!r}")
        return int(cv)
    if callable(getattr(cv, "split", None)) and not isinstance(cv, (str, bytes)):  # str has split too
        return cv
    raise TypeError(f"{where}: cv must be a number of folds (an integer >= 2) or a splitter with "
                    f"split(X, y) such as KFold(5), found {cv!r}")


def _splits(cv, X, y, where):
    """The folds, as a list of (train_idx, test_idx): integer cv means StratifiedKFold for
    integer class labels, else KFold (neither shuffled)."""
    y_host = _to_host(y)
    if _is_int(cv):
        cv = StratifiedKFold(cv) if _is_class_labels(y_host) else KFold(cv)
    folds = []
    for i, pair in enumerate(cv.split(X, y_host)):
        try:
            train, test = (np.asarray(a, dtype=np.int64) for a in pair)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: {cv!r}.split must yield pairs (train_idx, test_idx) of index arrays, "
                            f"found {pair!r} for fold {i}") from None
        if train.size == 0 or test.size == 0:
            raise ValueError(f"{where}: fold {i} of {cv!r} has an empty "
                             f"{'training' if train.size == 0 else 'test'} set")
        folds.append((train, test))
    if not folds:
        raise ValueError(f"{where}: {cv!r} gave no folds")
    return folds


# ---- scoring ------------------------------------------------------------------------------


class _Scorer:
    """One score of a fitted model on held-out data: a metric name, "loss" or a callable.

    name: the key in results ("accuracy"); mode: "max" or "min" (which is better).
    """

    def __init__(self, spec, where):
        if isinstance(spec, str) and spec.lower() == "loss":
            self.name, self.fn, self.mode = "loss", None, "min"
            return
        try:
            self.fn = get_metric(spec)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if isinstance(spec, str):
            self.name, self.mode = spec, METRIC_MODE[spec.lower()]
        else:
            self.name = getattr(spec, "__name__", "score")
            self.mode = "max" if getattr(spec, "higher_is_better", True) else "min"

    def better(self, a, b) -> bool:
        """Whether score a beats score b (strictly)."""
        return a > b if self.mode == "max" else a < b


def _model_scores(model, X, y, scorers, where) -> list:
    """Each scorer's value (Python floats) for a fitted model on (X, y).

    The outputs and the targets stay on the model's device, prepared as fit prepares them
    (``_to_device``), and ``loss.predict`` turns the outputs into what metrics read, exactly
    as the metrics in fit's logs: one forward pass serves every scorer.
    """
    Xd = model._to_device(X, "X", where)
    yd = model._to_device(y, "y", where, target=True)
    out = model._batched_forward(Xd, 1024, where)
    predicted = None
    values = []
    for s in scorers:
        if s.fn is None:
            values.append(model.backend.to_float(model.loss.forward(out, yd)))
        else:
            if predicted is None:
                predicted = model.loss.predict(out)
            values.append(float(s.fn(yd, predicted)))
    return values


def _build(build_fn, params, where):
    try:
        model = build_fn(**params)
    except TypeError as exc:
        raise TypeError(f"{where}: build_fn(**{params!r}) failed: {exc}; build_fn must accept every "
                        f"parameter name searched over") from exc
    if not callable(getattr(model, "fit", None)) or not hasattr(model, "loss"):
        raise TypeError(f"{where}: build_fn must return a model (e.g. a Sequential), found {type(model).__name__}")
    if model.loss is None:
        raise TypeError(f"{where}: build_fn returned a model that is not compiled; call "
                        f"model.compile(loss=..., optimizer=...) inside build_fn and return the model")
    return model


def _check_fit_kwargs(fit_kwargs, where) -> dict:
    if fit_kwargs is None:
        fit_kwargs = {}
    if not isinstance(fit_kwargs, dict):
        raise TypeError(f"{where}: fit_kwargs must be a dict of model.fit arguments (e.g. "
                        f"{{'epochs': 5}}), found {type(fit_kwargs).__name__}")
    for key in ("X", "y", "x"):
        if key in fit_kwargs:
            raise ValueError(f"{where}: fit_kwargs must not hold {key!r}: the data come from the folds")
    return {"verbose": 0, **fit_kwargs}  # silent unless asked: many models are trained


def _run_folds(build_fn, params, X, y, folds, fit_kwargs, scorers, where, watch_first_fold=None) -> dict:
    """Train a fresh model per fold and score it on the fold's test part.

    Returns {"test_<name>": [one per fold], "fit_time": [...], "score_time": [...]}.
    ``watch_first_fold(X_test, y_test)``, if given, makes a callback for the first fold's fit;
    its ``after_fit(fit_seconds)`` runs after that fit (BayesSearch's pruning raises there).
    """
    out = {f"test_{s.name}": [] for s in scorers}
    out["fit_time"], out["score_time"] = [], []
    for i, (train, test) in enumerate(folds):
        model = _build(build_fn, params, where)
        X_test, y_test = _take(X, test), _take(y, test)
        kwargs = dict(fit_kwargs)
        watcher = None
        if i == 0 and watch_first_fold is not None:
            watcher = watch_first_fold(X_test, y_test)
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), watcher]
        start = time.perf_counter()
        model.fit(_take(X, train), _take(y, train), **kwargs)
        out["fit_time"].append(time.perf_counter() - start)
        if watcher is not None:
            watcher.after_fit(out["fit_time"][-1])
        start = time.perf_counter()
        for s, v in zip(scorers, _model_scores(model, X_test, y_test, scorers, where)):
            out[f"test_{s.name}"].append(v)
        out["score_time"].append(time.perf_counter() - start)
    return out


def cross_validate(build_fn, X, y, cv=5, fit_kwargs=None, metrics=("accuracy",), *, params=None) -> dict:
    """Train and score a fresh model on each of ``cv`` folds.

    Args:
        build_fn: ``build_fn(**params)`` returns a compiled model (a new one per call).
        X: (n, ...) features, NumPy or a backend array; y: (n,) labels or (n, k) targets.
        cv: a number of folds (StratifiedKFold for integer class labels, else KFold; not
            shuffled) or a splitter with ``split(X, y)`` (KFold(5, shuffle=True, seed=1), ...).
        fit_kwargs: arguments for ``model.fit`` (epochs, batch_size, ...; verbose=0 unless given).
        metrics: metric names, "loss" or callables ``metric(y_true, y_pred)``, scored on each
            fold's test part.
        params: keyword arguments for build_fn (default none).

    Returns:
        {"test_<metric>": [one float per fold], ..., "fit_time": [seconds per fold],
        "score_time": [seconds per fold]}.
    """
    where = "cross_validate"
    if not callable(build_fn):
        raise TypeError(f"{where}: build_fn must be a function returning a compiled model, found {build_fn!r}")
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    metrics = list(metrics)
    if not metrics:
        raise ValueError(f"{where}: metrics must name at least one metric, found an empty list")
    scorers = [_Scorer(m, where) for m in metrics]
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"{where}: params must be a dict of build_fn arguments, found {type(params).__name__}")
    fit_kwargs = _check_fit_kwargs(fit_kwargs, where)
    cv = _check_cv(cv, where)
    _check_data(X, y, where)
    return _run_folds(build_fn, dict(params or {}), X, y, _splits(cv, X, y, where), fit_kwargs, scorers, where)


# ---- search spaces ------------------------------------------------------------------------


class Distribution:
    """Where a hyper-parameter is drawn from. ``sample(rng)`` draws a Python value with a
    NumPy Generator (RandomSearch); ``suggest(trial, name)`` asks an Optuna trial (BayesSearch);
    ``decode(stored)`` turns what Optuna stored back into the value."""

    def sample(self, rng):
        raise NotImplementedError

    def suggest(self, trial, name):
        raise NotImplementedError

    def decode(self, stored):
        return stored

    def size(self):
        """The number of distinct values, or None for a continuous range."""
        return None

    def values(self):
        """Every value, in order (discrete distributions only)."""
        raise NotImplementedError


def _number(v, argname, where) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(v):
        raise ValueError(f"{where}: {argname} must be a finite number, found {v!r}")
    return float(v)


class Choice(Distribution):
    """One of ``options``, each equally likely (a plain list means the same)."""

    _OPTUNA_TYPES = (type(None), bool, int, float, str)

    def __init__(self, options):
        if isinstance(options, (str, bytes)) or not hasattr(options, "__iter__"):
            raise TypeError(f"Choice: options must be a list of values, found {options!r}")
        self.options = [_python(o) for o in options]
        if not self.options:
            raise ValueError("Choice: options is empty; give at least one value")
        # Optuna stores only None, bool, int, float and str; other options (a tuple of layer
        # sizes, an optimizer object) are suggested by their index and decoded back.
        self._by_index = not all(type(o) in self._OPTUNA_TYPES for o in self.options)

    def __repr__(self) -> str:
        return f"Choice({self.options!r})"

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def suggest(self, trial, name):
        if self._by_index:
            return self.options[trial.suggest_categorical(name, list(range(len(self.options))))]
        return trial.suggest_categorical(name, self.options)

    def decode(self, stored):
        return self.options[stored] if self._by_index else stored

    def size(self):
        return len(self.options)

    def values(self):
        return list(self.options)


class Uniform(Distribution):
    """A float uniformly in [low, high)."""

    def __init__(self, low, high):
        where = type(self).__name__
        self.low, self.high = _number(low, "low", where), _number(high, "high", where)
        if not self.low < self.high:
            raise ValueError(f"{where}: low must be below high, found low={low!r}, high={high!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.low!r}, {self.high!r})"

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high)


class LogUniform(Uniform):
    """A float in [low, high) whose logarithm is uniform: as likely in [1e-4, 1e-3) as in
    [1e-3, 1e-2). The usual prior for learning rates and weight decays. Needs 0 < low."""

    def __init__(self, low, high):
        super().__init__(low, high)
        if self.low <= 0.0:
            raise ValueError(f"LogUniform: low must be positive (it is a logarithmic range), found {low!r}")

    def sample(self, rng):
        value = math.exp(float(rng.uniform(math.log(self.low), math.log(self.high))))
        return min(max(value, self.low), self.high)  # exp(log(x)) may round just outside

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high, log=True)


class IntUniform(Distribution):
    """An integer in [low, high], both ends included, each equally likely."""

    def __init__(self, low, high):
        for argname, v in (("low", low), ("high", high)):
            if not _is_int(v):
                raise ValueError(f"IntUniform: {argname} must be an integer, found {v!r}")
        if low > high:
            raise ValueError(f"IntUniform: low must not exceed high, found low={low!r}, high={high!r}")
        self.low, self.high = int(low), int(high)

    def __repr__(self) -> str:
        return f"IntUniform({self.low}, {self.high})"

    def sample(self, rng):
        return int(rng.integers(self.low, self.high + 1))

    def suggest(self, trial, name):
        return trial.suggest_int(name, self.low, self.high)

    def size(self):
        return self.high - self.low + 1

    def values(self):
        return list(range(self.low, self.high + 1))


def _space(param_distributions, where) -> dict:
    """{name: Distribution} from a dict of distributions or lists of values."""
    if not isinstance(param_distributions, dict):
        raise TypeError(f"{where}: param_distributions must be a dict {{name: distribution}}, "
                        f"found {type(param_distributions).__name__}")
    if not param_distributions:
        raise ValueError(f"{where}: param_distributions is empty; give at least one parameter to search")
    space = {}
    for name, spec in param_distributions.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: parameter names must be strings (build_fn keywords), found {name!r}")
        if isinstance(spec, Distribution):
            space[name] = spec
        elif isinstance(spec, (list, tuple, range)):
            try:
                space[name] = Choice(spec)
            except ValueError:
                raise ValueError(f"{where}: param_distributions[{name!r}] is an empty list; give at least "
                                 f"one value") from None
        else:
            raise TypeError(f"{where}: param_distributions[{name!r}] must be Choice, Uniform, LogUniform, "
                            f"IntUniform or a list of values, found {type(spec).__name__} {spec!r} "
                            f"(for a fixed value use a list: [{spec!r}])")
    return space


def _grid(param_grid, where) -> list:
    """Every combination of a grid (a dict of value lists, or a list of such dicts), in order:
    the last parameter varies fastest."""
    grids = param_grid if isinstance(param_grid, list) else [param_grid]
    if not grids:
        raise ValueError(f"{where}: param_grid is an empty list; give a dict {{name: [values]}}")
    candidates = []
    for g, grid in enumerate(grids):
        label = f"param_grid[{g}]" if isinstance(param_grid, list) else "param_grid"
        if not isinstance(grid, dict):
            raise TypeError(f"{where}: {label} must be a dict {{name: [values]}}, found {type(grid).__name__}")
        if not grid:
            raise ValueError(f"{where}: {label} is empty; give at least one parameter and its values")
        names, value_lists = [], []
        for name, values in grid.items():
            if not isinstance(name, str):
                raise TypeError(f"{where}: parameter names must be strings (build_fn keywords), found {name!r}")
            if isinstance(values, Choice):
                values = values.options
            elif isinstance(values, Distribution):
                raise TypeError(f"{where}: {label}[{name!r}] is {values!r}, a range a grid cannot enumerate; "
                                f"give a list of values, or use RandomSearch or BayesSearch")
            elif isinstance(values, np.ndarray) and values.ndim == 1:
                values = values.tolist()
            elif not isinstance(values, (list, tuple, range)):
                raise TypeError(f"{where}: {label}[{name!r}] must be a list of values, found "
                                f"{type(values).__name__} {values!r} (for a fixed value use [{values!r}])")
            if len(values) == 0:
                raise ValueError(f"{where}: {label}[{name!r}] is an empty list; give at least one value")
            names.append(name)
            value_lists.append([_python(v) for v in values])
        candidates += [dict(zip(names, combo)) for combo in itertools.product(*value_lists)]
    return candidates


# ---- searches -----------------------------------------------------------------------------


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


class _Search:
    """What the searches share: checks, scoring a candidate on the folds, choosing and
    refitting the best, the results table.

    After ``fit``: ``results_`` (one dict per trial: params, mean_score, std_score, scores
    per fold, fit_time in seconds summed over the folds), ``best_params_``, ``best_score_``,
    ``best_index_`` (into results_) and ``best_model_`` (refit on all the data).
    """

    def __init__(self, build_fn, cv, fit_kwargs, scoring, verbose):
        where = type(self).__name__
        if not callable(build_fn):
            raise TypeError(f"{where}: build_fn must be a function returning a compiled model, found {build_fn!r}")
        self.build_fn = build_fn
        self.cv = _check_cv(cv, where)
        self.fit_kwargs = _check_fit_kwargs(fit_kwargs, where)
        self.scoring = scoring
        self._scorer = _Scorer(scoring, where)
        self.verbose = verbose

    @property
    def mode(self) -> str:
        """"max" if a larger score is better, "min" if a smaller one is."""
        return self._scorer.mode

    def _where(self, method):
        return f"{type(self).__name__}.{method}"

    def _prepare(self, X, y):
        where = self._where("fit")
        _check_data(X, y, where)
        self._folds = _splits(self.cv, X, y, where)

    def _evaluate(self, params, X, y, watch_first_fold=None) -> dict:
        """Cross-validate one candidate: its results_ entry."""
        runs = _run_folds(self.build_fn, params, X, y, self._folds, self.fit_kwargs, [self._scorer],
                          self._where("fit"), watch_first_fold)
        scores = runs[f"test_{self._scorer.name}"]
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))  # population std, as sklearn
        return {"params": dict(params), "mean_score": mean, "std_score": std, "scores": scores,
                "fit_time": sum(runs["fit_time"])}

    def fit(self, X, y):
        """Score each of ``self.candidates`` on the folds, then refit the best on all of
        (X, y). Returns self. (BayesSearch proposes its candidates as it goes instead.)"""
        self._prepare(X, y)
        self.results_ = []
        for i, params in enumerate(self.candidates):
            self.results_.append(self._evaluate(params, X, y))
            self._report(i, len(self.candidates), self.results_[-1])
        return self._finish(X, y)

    def _report(self, i, total, result):
        if self.verbose:
            score = "pruned" if result.get("pruned") else \
                f"{self._scorer.name} {result['mean_score']:.4f} +/- {result['std_score']:.4f}"
            print(f"[{type(self).__name__} {i + 1}/{total}] {result['params']}: {score} "
                  f"({result['fit_time']:.2f}s)", flush=True)

    def _finish(self, X, y):
        """Pick the best finite score (the earliest on ties) and refit it on all the data."""
        best = None
        for i, r in enumerate(self.results_):
            if _finite(r["mean_score"]) and (best is None or self._scorer.better(r["mean_score"],
                                                                                 self.results_[best]["mean_score"])):
                best = i
        if best is None:
            raise RuntimeError(f"{self._where('fit')}: no trial finished with a finite score "
                               f"({len(self.results_)} trials: all pruned or diverged); check the data, "
                               f"the learning rates and the number of epochs")
        self.best_index_ = best
        self.best_params_ = dict(self.results_[best]["params"])
        self.best_score_ = self.results_[best]["mean_score"]
        model = _build(self.build_fn, self.best_params_, self._where("fit"))
        model.fit(X, y, **self.fit_kwargs)
        self.best_model_ = model
        return self

    def _sorted(self) -> list:
        """results_ best first; unscored (pruned, NaN) trials last, in trial order."""
        sign = -1.0 if self.mode == "max" else 1.0
        return sorted(self.results_, key=lambda r: (0, sign * r["mean_score"]) if _finite(r["mean_score"])
                      else (1, 0.0))

    def to_markdown(self) -> str:
        """A Markdown table of the trials, best score first."""
        if not hasattr(self, "results_"):
            raise RuntimeError(f"{self._where('to_markdown')}: nothing to show yet; call fit(X, y) first")
        names = []
        for r in self.results_:
            names += [k for k in r["params"] if k not in names]
        with_trial = any("number" in r for r in self.results_)
        direction = "higher" if self.mode == "max" else "lower"
        head = (["trial"] if with_trial else []) + ["rank", *names,
                                                    f"mean {self._scorer.name} ({direction} is better)",
                                                    "std", "fit time (s)"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        rank = 0
        for r in self._sorted():
            scored = _finite(r["mean_score"])
            rank += scored
            if scored:
                score, std = f"{r['mean_score']:.4f}", f"{r['std_score']:.4f}"
            elif r.get("pruned"):
                score, std = f"pruned (epoch {r['pruned_at_epoch'] + 1})", ""
            else:
                score, std = f"{r['mean_score']}", ""
            cells = ([str(r["number"])] if with_trial else []) + [str(rank) if scored else "-"]
            cells += [_fmt(r["params"][k]) if k in r["params"] else "" for k in names]
            cells += [score, std, f"{r['fit_time']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scoring={self.scoring!r}, cv={self.cv!r})"


class GridSearch(_Search):
    """Cross-validate every combination of a grid of hyper-parameters.

    Args:
        build_fn: ``build_fn(**params)`` returns a compiled model.
        param_grid: {name: [values]} (every combination is tried; the last name varies
            fastest), or a list of such dicts (their grids one after the other).
        cv: folds, as in cross_validate; the same folds serve every candidate.
        fit_kwargs: arguments for model.fit (epochs, batch_size, ...).
        scoring: the metric that ranks the candidates (see the module docstring).
        verbose: 1 prints a line per trial.
    """

    def __init__(self, build_fn, param_grid, cv=3, fit_kwargs=None, scoring="accuracy", verbose: int = 0):
        super().__init__(build_fn, cv, fit_kwargs, scoring, verbose)
        self.param_grid = param_grid
        self.candidates = _grid(param_grid, type(self).__name__)


class RandomSearch(_Search):
    """Cross-validate ``n_iter`` candidates drawn from ``param_distributions``.

    Args:
        param_distributions: {name: Choice / Uniform / LogUniform / IntUniform, or a list
            (a Choice)}.
        n_iter: how many candidates. Draws are distinct; when every parameter is discrete
            and the space holds at most n_iter combinations, each is tried once instead
            (in a seeded random order), so fewer than n_iter trials run.
        seed: seeds the draws: the same seed gives the same candidates.
        The other arguments are as in GridSearch.
    """

    def __init__(self, build_fn, param_distributions, n_iter: int = 10, cv=3, seed: int = 0, fit_kwargs=None,
                 scoring="accuracy", verbose: int = 0):
        where = type(self).__name__
        super().__init__(build_fn, cv, fit_kwargs, scoring, verbose)
        self.param_distributions = param_distributions
        self._dists = _space(param_distributions, where)
        self.n_iter = _check_positive(n_iter, "n_iter", where)
        self.seed = _check_seed(seed, where)
        self.candidates = self._draw()

    def _draw(self) -> list:
        rng = np.random.default_rng(self.seed)
        sizes = [d.size() for d in self._dists.values()]
        if all(s is not None for s in sizes) and math.prod(sizes) <= self.n_iter:
            grid = [dict(zip(self._dists, combo))
                    for combo in itertools.product(*(d.values() for d in self._dists.values()))]
            return [grid[i] for i in rng.permutation(len(grid))]
        candidates, seen = [], set()
        for _ in range(100 * self.n_iter):  # a bound, though a space above n_iter never runs dry
            params = {name: d.sample(rng) for name, d in self._dists.items()}
            key = repr(list(params.values()))
            if key not in seen:
                seen.add(key)
                candidates.append(params)
                if len(candidates) == self.n_iter:
                    break
        return candidates


def _import_optuna(where):
    try:
        import optuna
    except ImportError:
        raise ImportError(f"{where} {_TUNE_HELP}") from None
    return optuna


class _Pruning(Callback):
    """Reports the held-out score after each epoch of the first fold's fit to an Optuna
    trial, and stops the fit when the pruner says the trial is hopeless."""

    def __init__(self, optuna, trial, scorer, X_test, y_test, where):
        self.optuna, self.trial, self.scorer = optuna, trial, scorer
        self.X_test, self.y_test, self.where = X_test, y_test, where
        self.pruned_at = None

    def on_epoch_end(self, epoch, logs):
        (score,) = _model_scores(self.model, self.X_test, self.y_test, [self.scorer], self.where)
        self.trial.report(score, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            self.model.stop_training = True

    def after_fit(self, fit_seconds):
        if self.pruned_at is not None:
            self.trial.set_user_attr("fit_time", fit_seconds)
            self.trial.set_user_attr("pruned_at_epoch", self.pruned_at)
            raise self.optuna.TrialPruned(f"pruned after epoch {self.pruned_at + 1}")


class BayesSearch(_Search):
    """Bayesian optimisation with Optuna's TPE sampler: each trial's candidate is proposed
    from the scores of the trials before it. Needs Optuna: ``pip install "xpnn[tune]"``.

    Args:
        param_distributions: as in RandomSearch (Choice, Uniform, LogUniform, IntUniform
            or lists).
        n_iter: the trials this ``fit`` adds to the study.
        seed: seeds the sampler (offset by the number of trials already in a loaded study,
            so that a continued study does not propose its first candidates again): the
            same seed on the same study gives the same trials.
        storage: None (the study lives in memory, a new one per fit), or an Optuna storage
            URL such as ``"sqlite:///study.db"``: the study is created there, or loaded if
            it exists, so several processes (or several fits) can work on one study. Give
            each concurrent process its own seed, or they will propose the same candidates.
        study_name: the study's name in the storage ("xpnn" by default when storage is given).
        pruning: True stops unpromising trials early with Optuna's MedianPruner: during the
            first fold's fit, the held-out score is reported after every epoch, and a trial
            whose score at that epoch is worse than the median of earlier trials' scores at
            the same epoch is stopped (nothing is pruned before 5 trials have finished). It is a callback
            added to the first fold's fit, so the training itself is the same as without it;
            the cost is one forward pass over the held-out fold per epoch. False: no pruning;
            an ``optuna.pruners.BasePruner`` instance is used as given.

    After fit, besides the shared attributes: ``study_`` (the Optuna study) and, in each
    results_ entry, "number" (the trial number in the study), "pruned" and, for a pruned
    trial, "pruned_at_epoch" (its mean_score and std_score are None). results_ holds every
    finished trial of the study, including those run by other processes.
    """

    def __init__(self, build_fn, param_distributions, n_iter: int = 10, cv=3, seed: int = 0, fit_kwargs=None,
                 scoring="accuracy", storage=None, study_name=None, pruning=True, verbose: int = 0):
        where = type(self).__name__
        self._optuna = _import_optuna(where)
        super().__init__(build_fn, cv, fit_kwargs, scoring, verbose)
        self.param_distributions = param_distributions
        self._dists = _space(param_distributions, where)
        self.n_iter = _check_positive(n_iter, "n_iter", where)
        self.seed = _check_seed(seed, where)
        if storage is not None and not isinstance(storage, str) and \
                not isinstance(storage, self._optuna.storages.BaseStorage):
            raise TypeError(f"{where}: storage must be None, an Optuna storage URL such as "
                            f"'sqlite:///study.db' or an optuna storage, found {storage!r}")
        if study_name is not None and not isinstance(study_name, str):
            raise TypeError(f"{where}: study_name must be a string, found {study_name!r}")
        if not isinstance(pruning, bool) and not isinstance(pruning, self._optuna.pruners.BasePruner):
            raise TypeError(f"{where}: pruning must be True, False or an optuna pruner, found {pruning!r}")
        self.storage, self.pruning = storage, pruning
        self.study_name = study_name if study_name is not None or storage is None else "xpnn"

    def _pruner(self):
        pruners = self._optuna.pruners
        if self.pruning is True:
            return pruners.MedianPruner()
        return pruners.NopPruner() if self.pruning is False else self.pruning

    def fit(self, X, y):
        """Run n_iter trials on the study, then refit the best trial of the whole study on
        all of (X, y). Returns self."""
        optuna = self._optuna
        where = self._where("fit")
        self._prepare(X, y)
        direction = "maximize" if self.mode == "max" else "minimize"
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # it logs every trial; verbose=1 prints ours
        try:
            study = optuna.create_study(storage=self.storage, study_name=self.study_name, direction=direction,
                                        sampler=optuna.samplers.TPESampler(seed=self.seed),
                                        pruner=self._pruner(), load_if_exists=True)
            if study.direction.name.lower() != direction:
                raise ValueError(f"{where}: study {self.study_name!r} in {self.storage!r} is set to "
                                 f"{study.direction.name.lower()}, but scoring={self.scoring!r} must be "
                                 f"{direction}d; use another study_name")
            already = len(study.trials)
            if already:
                study.sampler = optuna.samplers.TPESampler(seed=self.seed + already)

            def objective(trial):
                params = {name: d.suggest(trial, name) for name, d in self._dists.items()}
                watch = None
                if self.pruning is not False:
                    def watch(X_test, y_test):
                        return _Pruning(optuna, trial, self._scorer, X_test, y_test, where)
                result = self._evaluate(params, X, y, watch)
                for key in ("mean_score", "std_score", "scores", "fit_time"):
                    trial.set_user_attr(key, result[key])
                return result["mean_score"]

            def report(study, trial):
                entry = self._result(trial)
                if entry is not None:
                    self._report(trial.number - already, self.n_iter, entry)

            study.optimize(objective, n_trials=self.n_iter, callbacks=[report])
        finally:
            optuna.logging.set_verbosity(verbosity)
        self.study_ = study
        self.results_ = [r for r in (self._result(t) for t in study.trials) if r is not None]
        return self._finish(X, y)

    def _result(self, trial):
        """The results_ entry of a finished trial, None for a running or failed one."""
        state = self._optuna.trial.TrialState
        attrs = trial.user_attrs
        if trial.state == state.PRUNED:
            score = {"mean_score": None, "std_score": None, "scores": [], "pruned": True,
                     "pruned_at_epoch": attrs.get("pruned_at_epoch", trial.last_step or 0)}
        elif "mean_score" in attrs and trial.state in (state.COMPLETE, state.FAIL):  # FAIL: a NaN score
            score = {k: attrs[k] for k in ("mean_score", "std_score", "scores")}
            score["pruned"] = False
        else:
            return None
        missing = [name for name in self._dists if name not in trial.params]
        if missing:
            raise ValueError(f"{self._where('fit')}: trial {trial.number} of study {self.study_name!r} has no "
                             f"value for {missing}: the study was made with other param_distributions "
                             f"({sorted(trial.params)}); use another study_name")
        params = {name: d.decode(trial.params[name]) for name, d in self._dists.items()}
        return {"number": trial.number, "params": params, **score, "fit_time": attrs.get("fit_time", 0.0)}
