"""xpnn.sklearn: NNClassifier and NNRegressor as scikit-learn estimators.

scikit-learn's own estimator checks run on both (small networks, a few epochs), then the
tools a user reaches for: Pipeline, GridSearchCV, cross_val_score, CalibratedClassifierCV,
clone and pickle; labels of any kind; the regressor's target shapes; clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import xpnn
from xpnn.sklearn import NNClassifier, NNRegressor

# The estimators at their defaults, and small and quick ones that still pass the checks
# that need a good fit (accuracy > 0.83 on blobs, R^2 > 0.5 on a noisy linear
# regression). Every check passes: none is listed in expected_failed_checks. CI installs
# pandas (the DataFrame checks) and sets SCIPY_ARRAY_API=1 (check_array_api_input);
# without them scikit-learn skips those checks.
CHECKED = [
    NNClassifier(),
    NNRegressor(),
    NNClassifier(hidden_sizes=(8,), epochs=10, lr=0.02),
    NNRegressor(hidden_sizes=(8,), epochs=10, lr=0.02),
]


# before 1.6 the checks read other tags (_more_tags) and had other names: run on 1.6 and later
@pytest.mark.skipif(
    tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 6),
    reason="the estimator checks are run with scikit-learn >= 1.6",
)
@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_predict_of_a_row_does_not_depend_on_the_rows_beside_it():
    """A float32 product's rounding depends on the batch's shape; predict works in float64."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 7))
    y = X @ rng.normal(size=7)
    reg = NNRegressor(hidden_sizes=(100,), epochs=3).fit(X, y)
    whole = reg.predict(X)
    for rows in (slice(0, 1), slice(3, 40), slice(57, 200, 3)):
        np.testing.assert_allclose(reg.predict(X[rows]), whole[rows], rtol=1e-12, atol=1e-12)


# ---- data ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return xpnn.load_digits(flatten=True)


def blobs(n=150, labels=None, seed=0):
    """Three well separated blobs, with ``labels`` in place of 0, 1, 2."""
    X, y = make_blobs(n_samples=n, centers=3, n_features=4, cluster_std=1.0, random_state=seed)
    if labels is not None:
        y = np.asarray(labels, dtype=object if isinstance(labels[0], str) else None)[y]
    return X, y


def small(**params):
    return NNClassifier(**{"hidden_sizes": (16,), "epochs": 15, "lr": 0.01, **params})


# ---- the scikit-learn tools --------------------------------------------------------------


def test_pipeline_on_digits(digits):
    (X_train, y_train), (X_test, y_test) = digits
    pipe = make_pipeline(StandardScaler(), NNClassifier(hidden_sizes=(64,), epochs=20))
    pipe.fit(X_train, y_train)
    accuracy = pipe.score(X_test, y_test)
    assert accuracy > 0.95, accuracy
    clf = pipe[-1]
    assert clf.n_features_in_ == 64 and list(clf.classes_) == list(range(10))
    assert len(clf.history_["loss"]) == clf.n_iter_ == 20
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]


def test_grid_search_over_hidden_sizes_and_lr():
    X, y = blobs()
    grid = GridSearchCV(small(epochs=10), {"hidden_sizes": [(4,), (16,)], "lr": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["lr"] == 1e-2  # 1e-4 barely moves in 10 epochs
    assert grid.best_score_ > 0.9
    assert isinstance(grid.best_estimator_, NNClassifier)
    assert grid.best_estimator_.get_params()["hidden_sizes"] == grid.best_params_["hidden_sizes"]
    assert len(grid.cv_results_["params"]) == 4


def test_cross_val_score():
    X, y = blobs()
    scores = cross_val_score(small(), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9, scores


def test_calibrated_classifier():
    X, y = blobs(labels=["a", "b", "c"])
    calibrated = CalibratedClassifierCV(small(), cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (calibrated.predict(X) == y).mean() > 0.9


def test_clone_keeps_params_and_drops_the_fit():
    clf = NNClassifier(
        hidden_sizes=(7, 3),
        activation="tanh",
        optimizer={"name": "sgd", "momentum": 0.9},
        lr=0.05,
        epochs=3,
        batch_size=None,
        seed=4,
    )
    clf.fit(*blobs(n=30))
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    copy.set_params(lr=0.1, hidden_sizes=(5,))
    assert clf.lr == 0.05 and clf.hidden_sizes == (7, 3)


# ---- labels and probabilities -------------------------------------------------------------


@pytest.mark.parametrize("labels", [["cat", "dog", "eel"], [-3, 10, 42]])
def test_labels_round_trip(labels):
    X, y = blobs(labels=labels)
    clf = small().fit(X, y)
    assert list(clf.classes_) == sorted(labels)
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype and set(pred) <= set(labels)
    assert (pred == y).mean() > 0.9


def test_binary_string_labels_use_two_outputs():
    X, y = blobs(labels=["no", "yes", "yes"])
    clf = small().fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert clf.model_.predict(X.astype(np.float32)).shape == (len(X), 2)  # a 2-output softmax
    assert (clf.predict(X) == y).mean() > 0.9


def test_predict_proba_rows_sum_to_one_and_match_predict():
    X, y = blobs()
    clf = small().fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64 and proba.shape == (len(X), 3)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


def test_predict_makes_its_float64_copy_once_while_the_weights_stay(monkeypatch):
    X, y = blobs()
    clf = small().fit(X, y)
    made = []
    real = xpnn.sklearn.NeuralNetwork
    monkeypatch.setattr(xpnn.sklearn, "NeuralNetwork", lambda *a, **k: made.append(1) or real(*a, **k))
    before = clf.predict_proba(X)
    clf.predict(X[:1])
    assert len(made) == 1  # one copy for every predict of the same network
    weights = clf.model_.get_weights()
    clf.model_.set_weights([w * 0.5 for w in weights])  # the network changed: the copy must too
    assert not np.allclose(clf.predict_proba(X), before) and len(made) == 2
    clf.model_.set_weights(weights)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    monkeypatch.undo()
    again = pickle.loads(pickle.dumps(clf))  # the copy is remade after unpickling, not stored
    np.testing.assert_array_equal(again.predict_proba(X), before)


def test_pickle_round_trip():
    X, y = blobs(labels=["a", "b", "c"])
    clf = small().fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.history_ == clf.history_ and again.get_params() == clf.get_params()


def test_every_backend_fits_predicts_and_pickles(backend):
    X, y = blobs(labels=["a", "b", "c"])
    # the backend by name and the device as text: the estimator's params must pickle (a JAX Device does not)
    device = None if backend.name == "array_api_strict" else str(backend.device)
    # one batch of the whole set: one shape for JAX to compile, not one per batch size
    clf = small(epochs=5, batch_size=None, lr=0.05, backend=backend.name, device=device).fit(X, y)
    assert str(clf.model_.backend.device) == str(backend.device)
    assert clf.model_.backend.name == backend.name
    proba = clf.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (len(X), 3)  # NumPy out, whatever the backend
    again = pickle.loads(pickle.dumps(clf))
    assert again.model_.backend.name == backend.name
    np.testing.assert_array_equal(again.predict_proba(X), proba)


def test_early_stopping_on_a_validation_split():
    X, y = blobs(n=200)
    clf = small(epochs=200, lr=0.05, validation_split=0.2, early_stopping=True, patience=3).fit(X, y)
    assert "val_loss" in clf.history_
    assert clf.n_iter_ < 200  # blobs are learnt long before 200 epochs: it stopped
    assert len(clf.history_["val_loss"]) == clf.n_iter_


# ---- the regressor ----------------------------------------------------------------------


def regression(n=400, outputs=1, seed=0):
    """A smooth nonlinear target of 3 features, with a little noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] + 0.05 * rng.normal(size=n)
    if outputs == 2:
        y = np.stack([y, X[:, 0] - X[:, 1]], axis=1)
    return X, y


def test_regressor_fits_a_nonlinear_target():
    X, y = regression()
    reg = NNRegressor(hidden_sizes=(32,), epochs=60, lr=0.01).fit(X[:300], y[:300])
    r2 = reg.score(X[300:], y[300:])
    assert r2 > 0.9, r2


@pytest.mark.parametrize("shape", ["1-D", "column", "2 outputs"])
def test_regressor_predicts_in_the_shape_of_y(shape):
    X, y = regression(n=60, outputs=2 if shape == "2 outputs" else 1)
    if shape == "column":
        y = y.reshape(-1, 1)
    reg = NNRegressor(hidden_sizes=(8,), epochs=2).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == y.shape and pred.dtype == np.float64
    assert reg.n_outputs_ == (1 if y.ndim == 1 else y.shape[1])


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"lr": 0}, r"NNClassifier\.fit: lr must be a number > 0, found 0"),
        ({"epochs": -1}, r"NNClassifier\.fit: epochs must be a non-negative integer, found -1"),
        ({"validation_split": 1.0}, r"validation_split must be a number in \[0, 1\), found 1\.0"),
        ({"optimizer": {"name": "sgd", "lr": 0.1}}, r"sets 'lr'; give the learning rate as lr="),
        ({"seed": -2}, r"seed must be a non-negative integer, found -2"),
        ({"hidden_sizes": (8, 0)}, r"hidden_sizes\[1\] must be a positive integer, found 0"),
    ],
)
def test_bad_params_are_named_at_fit(params, message):
    clf = NNClassifier(**params)  # stored as given: scikit-learn checks nothing in __init__
    assert clf.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(ValueError, match=message):
        clf.fit(*blobs(n=30))


def test_optimizer_instance_is_refused():
    with pytest.raises(TypeError, match=r"optimizer must be a name .* found Adam"):
        NNClassifier(optimizer=xpnn.Adam()).fit(*blobs(n=30))


def test_regressor_loss_must_be_a_regression_loss():
    with pytest.raises(
        ValueError,
        match=r"NNRegressor\.fit: loss must be one of \['mse', 'mae', 'huber'\], "
        r"found 'softmax_cross_entropy'",
    ):
        NNRegressor(loss="softmax_cross_entropy").fit(*regression(n=20))


def test_one_class_is_refused():
    X, _ = blobs(n=20)
    with pytest.raises(ValueError, match=r"y has one class only \('a'\)"):
        NNClassifier().fit(X, ["a"] * 20)
