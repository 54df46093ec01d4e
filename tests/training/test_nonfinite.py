"""Non-finite never wins: metrics refuse NaN and inf scores, fit logs them as NaN and warns
once, searches count a diverged trial as failed, and the estimators refuse to return a
diverged network."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn import metrics
from xpnn.model_selection import GridSearch, cross_validate

# a diverged model's fit warns (once); these tests diverge on purpose
DIVERGES = pytest.mark.filterwarnings("ignore:fit. the training loss is:RuntimeWarning")

CLASS_METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "top_k_accuracy"]


def _scores(draw_seed, n, C, bad_row, bad_col, value):
    s = np.random.default_rng(draw_seed).normal(size=(n, C))
    s[bad_row % n, bad_col % C] = value
    return s


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    n=st.integers(2, 12),
    C=st.integers(3, 5),
    row=st.integers(0, 100),
    col=st.integers(0, 100),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    name=st.sampled_from(CLASS_METRICS),
)
def test_a_classification_metric_never_ranks_nonfinite_scores(seed, n, C, row, col, value, name):
    y = np.arange(n) % C  # every class present, so roc_auc is defined
    scores = _scores(seed, n, C, row, col, value)
    with pytest.raises(ValueError, match=r"finite .*did training diverge"):
        metrics.get_metric(name)(y, scores)


def test_accuracy_of_all_nan_rows_is_an_error_not_the_share_of_class_0():
    y = np.array([0, 0, 0, 1])
    with pytest.raises(ValueError, match=r"accuracy: y_pred holds class scores, which must be finite .* at row 0"):
        metrics.accuracy(y, np.full((4, 2), np.nan))


def test_nonfinite_one_hot_targets_and_infinite_float_labels_are_refused():
    with pytest.raises(ValueError, match="y_true holds class scores, which must be finite"):
        metrics.accuracy(np.array([[1.0, 0.0], [np.nan, 1.0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="y_true holds class labels.*found inf at index 1"):
        metrics.accuracy(np.array([0.0, np.inf]), np.array([0, 1]))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 10),
    where=st.integers(0, 100),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    name=st.sampled_from(["mse", "mae", "r2"]),
    in_true=st.booleans(),
)
def test_a_regression_metric_never_ranks_nonfinite_values(n, where, value, name, in_true):
    t, p = np.linspace(0, 1, n), np.linspace(0, 2, n)
    (t if in_true else p)[where % n] = value
    argname = "y_true" if in_true else "y_pred"
    with pytest.raises(ValueError, match=rf"{name}: {argname} must be finite .*at flat index {where % n}"):
        metrics.get_metric(name)(t, p)


def test_metrics_refuse_nonfinite_scores_on_every_backend(backend):
    y = backend.asarray(np.array([0, 1, 1]))
    s = backend.asarray(np.array([[0.1, 0.9], [np.nan, np.nan], [0.3, 0.7]], dtype=np.float32))
    with pytest.raises(ValueError, match="found nan at row 1, column 0"):
        metrics.accuracy(y, s)
    with pytest.raises(ValueError, match="y_pred must be finite"):
        metrics.mse(backend.asarray(np.zeros(3, np.float32)), backend.asarray(np.array([0, np.inf, 0], np.float32)))


# ---- fit and the searches -------------------------------------------------------------------


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return X, y


def _build(diverge=False, seed=0):
    """A small classifier; diverge=True starts from NaN weights, as a run whose learning
    rate blew up ends."""
    model = xpnn.NeuralNetwork(4, [8], 2, seed=seed)
    model.compile("softmax_cross_entropy", xpnn.SGD(lr=0.1), metrics=["accuracy"])
    if diverge:
        model.set_weights([np.full(np.shape(w), np.nan, np.float32) for w in model.get_weights()])
    return model


def test_fit_warns_once_when_the_loss_turns_nonfinite_and_logs_nan_metrics():
    X, y = _data()
    model = _build(diverge=True)
    with pytest.warns(RuntimeWarning, match=r"fit: the training loss is nan in epoch 1: training diverged; lower the"):
        history = model.fit(X, y, epochs=3, verbose=0, validation_data=(X, y))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, epochs=3, verbose=0)
    assert len([w for w in caught if "training loss is" in str(w.message)]) == 1  # once per fit, not per epoch
    assert all(math.isnan(v) for v in history.history["accuracy"] + history.history["val_accuracy"])


def test_fit_without_divergence_does_not_warn():
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _build().fit(X, y, epochs=2, verbose=0)


@DIVERGES
def test_terminate_on_nan_still_stops_before_the_bad_step(capsys):
    X, y = _data()
    model = _build(diverge=True)
    stop = xpnn.TerminateOnNaN()
    model.fit(X, y, epochs=3, verbose=0, callbacks=[stop])
    assert stop.stopped_at == (1, 1)
    assert "TerminateOnNaN" in capsys.readouterr().err


@DIVERGES
def test_cross_validate_scores_a_diverged_model_nan():
    X, y = _data()
    found = cross_validate(lambda: _build(diverge=True), X, y, cv=2, fit_kwargs={"epochs": 1})
    assert all(math.isnan(s) for s in found["test_accuracy"])


@DIVERGES
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(diverged=st.lists(st.booleans(), min_size=1, max_size=4))
def test_a_search_never_picks_a_diverged_trial(diverged):
    """Whatever trials diverge, the best is a finite one; none finite is an error."""
    X, y = _data()
    # class 0 dominates the held-out data: a diverged trial read as "all class 0" would score high
    y = np.where(np.arange(len(y)) % 5 == 0, y, 0)
    grid = [{"diverge": [d], "seed": [i]} for i, d in enumerate(diverged)]  # one grid per candidate, in order
    search = GridSearch(_build, grid, cv=2, fit_kwargs={"epochs": 1})
    if all(diverged):
        with pytest.raises(RuntimeError, match="no trial finished with a finite score"):
            search.fit(X, y)
        return
    search.fit(X, y)
    assert search.best_params_["diverge"] is False
    assert math.isfinite(search.best_score_)
    for r in search.results_:
        assert math.isnan(r["mean_score"]) == r["params"]["diverge"]


@DIVERGES
def test_bayes_search_counts_a_diverged_trial_as_failed():
    pytest.importorskip("optuna")
    from xpnn.model_selection import BayesSearch, Choice

    X, y = _data()
    y = np.where(np.arange(len(y)) % 5 == 0, y, 0)
    search = BayesSearch(
        _build, {"diverge": Choice([True]), "seed": Choice([0, 1])}, n_iter=2, cv=2, fit_kwargs={"epochs": 1}
    )
    with pytest.raises(RuntimeError, match="no trial finished with a finite score"):
        search.fit(X, y)


# ---- the scikit-learn estimators -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_an_estimator_whose_weights_diverge_raises_naming_the_cause(kind):
    pytest.importorskip("sklearn")
    from xpnn.sklearn import NNClassifier, NNRegressor

    X = np.random.default_rng(0).normal(size=(60, 3)) * 1e4
    y = X.sum(axis=1) * 1e3
    est = (
        NNRegressor(lr=1e3, epochs=3, optimizer="sgd")
        if kind == "regressor"
        else NNClassifier(lr=1e6, epochs=3, optimizer="sgd")
    )
    target = y if kind == "regressor" else (y > 0).astype(int)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")  # the error says it: no warning on top
        with pytest.raises(ValueError, match=r"fit: training diverged.*learning rate.*unscaled"):
            est.fit(X, target)
