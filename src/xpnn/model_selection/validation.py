"""``cross_validate`` and what it shares with the searches: scoring a fitted model,
building a fresh model per fold, training and scoring one fold after another.

Scores: ``scoring`` is a metric name (see ``xpnn.metrics.METRICS``), ``"loss"`` (the model's
own loss), or a callable ``metric(y_true, y_pred)``; see the package docstring.
"""

from __future__ import annotations

import time

from ..metrics import METRIC_MODE, get_metric
from .splits import check_cv, check_data, cv_splits, take_rows

__all__ = ["cross_validate"]

# Scorer, model_scores, build_model, check_fit_kwargs and run_folds are not in __all__:
# the searches (search.py) use them too.


# ---- scoring and training, fold by fold -------------------------------------------------


class Scorer:
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


def model_scores(model, X, y, scorers, where) -> list:
    """Each scorer's value (Python floats) for a fitted model on (X, y).

    The outputs and the targets stay on the model's device, prepared as fit prepares them
    (``training.data.targets``), and ``loss.predict`` turns the outputs into what metrics
    read, exactly as the metrics in fit's logs: one forward pass serves every scorer.
    """
    from ..training import data
    from ..training.compiled import all_finite

    yd = data.targets(model, y, "y", where)
    out = model.infer(X)
    if not all_finite(model, out):  # a diverged model: every score NaN, so no search ranks it
        return [float("nan")] * len(scorers)
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


def build_model(build_fn, params, where):
    """A fresh compiled model from ``build_fn(**params)``, or an error saying what is wrong."""
    try:
        model = build_fn(**params)
    except TypeError as exc:
        raise TypeError(
            f"{where}: build_fn(**{params!r}) failed: {exc}; build_fn must accept every parameter name searched over"
        ) from exc
    if not callable(getattr(model, "fit", None)) or not hasattr(model, "loss"):
        raise TypeError(f"{where}: build_fn must return a model (e.g. a Sequential), found {type(model).__name__}")
    if model.loss is None:
        raise TypeError(
            f"{where}: build_fn returned a model that is not compiled; call "
            f"model.compile(loss=..., optimizer=...) inside build_fn and return the model"
        )
    return model


def check_fit_kwargs(fit_kwargs, where) -> dict:
    """The keyword arguments for every ``model.fit`` (verbose=0 unless given)."""
    if fit_kwargs is None:
        fit_kwargs = {}
    if not isinstance(fit_kwargs, dict):
        raise TypeError(
            f"{where}: fit_kwargs must be a dict of model.fit arguments (e.g. "
            f"{{'epochs': 5}}), found {type(fit_kwargs).__name__}"
        )
    for key in ("X", "y", "x"):
        if key in fit_kwargs:
            raise ValueError(f"{where}: fit_kwargs must not hold {key!r}: the data come from the folds")
    return {"verbose": 0, **fit_kwargs}  # silent unless asked: many models are trained


def run_folds(build_fn, params, X, y, folds, fit_kwargs, scorers, where, watch_first_fold=None) -> dict:
    """Train a fresh model per fold and score it on the fold's test part.

    Returns {"test_<name>": [one per fold], "fit_time": [...], "score_time": [...]}.
    ``watch_first_fold(X_test, y_test)``, if given, makes a callback for the first fold's fit;
    its ``after_fit(fit_seconds)`` runs after that fit (BayesSearch's pruning raises there).
    """
    out: dict[str, list[float]] = {f"test_{s.name}": [] for s in scorers}
    out["fit_time"], out["score_time"] = [], []
    for i, (train, test) in enumerate(folds):
        model = build_model(build_fn, params, where)
        X_test, y_test = take_rows(X, test), take_rows(y, test)
        kwargs = dict(fit_kwargs)
        watcher = None
        if i == 0 and watch_first_fold is not None:
            watcher = watch_first_fold(X_test, y_test)
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), watcher]
        start = time.perf_counter()
        model.fit(take_rows(X, train), take_rows(y, train), **kwargs)
        out["fit_time"].append(time.perf_counter() - start)
        if watcher is not None:
            watcher.after_fit(out["fit_time"][-1])
        start = time.perf_counter()
        for s, v in zip(scorers, model_scores(model, X_test, y_test, scorers, where)):
            out[f"test_{s.name}"].append(v)
        out["score_time"].append(time.perf_counter() - start)
    return out


# ---- cross_validate -----------------------------------------------------------------------


def cross_validate(build_fn, X, y, cv=5, fit_kwargs=None, metrics=("accuracy",), *, params=None) -> dict:
    """Train and score a fresh model on each of ``cv`` folds.

    Args:
        build_fn: ``build_fn(**params)`` returns a compiled model (a new one per call).
        X: (n, ...) features, NumPy or a backend array.
        y: (n,) labels or (n, k) targets.
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
    scorers = [Scorer(m, where) for m in metrics]
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"{where}: params must be a dict of build_fn arguments, found {type(params).__name__}")
    fit_kwargs = check_fit_kwargs(fit_kwargs, where)
    cv = check_cv(cv, where)
    check_data(X, y, where)
    return run_folds(build_fn, dict(params or {}), X, y, cv_splits(cv, X, y, where), fit_kwargs, scorers, where)
