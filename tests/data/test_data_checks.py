"""What fit, evaluate and predict check in the data, once per call and on every backend:
NaN or inf (named, with the first bad index; ``allow_nonfinite`` lets it through),
targets that the loss cannot mean (labels out of range, binary targets outside [0, 1],
1-D float labels), non-numeric dtypes; and the training-loop cases that lost work:
``drop_last`` for BatchNorm, ``epochs_trained`` counting whole epochs only."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import BatchNorm1D, Dense, ReLU, Sequential
from xpnn.callbacks import Callback
from xpnn.training import data as data_module


def blobs(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(size=(k, d))[y] * 3.0 + rng.normal(size=(n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def classifier(backend="numpy", loss="softmax_cross_entropy", outputs=3, layers=None):
    model = Sequential(layers or [Dense(4, 8), ReLU(), Dense(8, outputs)], backend=backend, seed=0)
    return model.compile(loss, xpnn.Adam(lr=0.05), metrics=["accuracy"] if outputs > 1 else [])


def host(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


# ---- NaN and inf -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_refuses_nonfinite_features_naming_the_first(backend, bad):
    X, y = blobs()
    X[7, 2] = bad
    X[9, 0] = np.nan  # a later one: the message names the first
    model = classifier(backend)
    before = host(model)
    with pytest.raises(ValueError, match=r"fit: X contains NaN or inf \((nan|inf|-inf) at sample 7, index \(7, 2\)\)"):
        model.fit(X, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(host(model), before))  # nothing trained
    assert model.epochs_trained == 0


def test_predict_and_evaluate_refuse_nonfinite(backend):
    X, y = blobs()
    model = classifier(backend)
    model.fit(X, y, epochs=1, verbose=0)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"predict: X contains NaN or inf \(nan at sample 3"):
        model.predict(X)
    with pytest.raises(ValueError, match=r"evaluate: X contains NaN or inf"):
        model.evaluate(X, y)
    with pytest.raises(ValueError, match=r"infer: X contains NaN or inf"):
        model.infer(X)


def test_nonfinite_regression_targets_and_validation_data_are_named(backend):
    X, _ = blobs()
    t = X[:, :1].copy()
    t[5, 0] = np.inf
    model = Sequential([Dense(4, 1)], backend=backend).compile("mse", "sgd")
    with pytest.raises(ValueError, match=r"fit: y contains NaN or inf \(inf at sample 5"):
        model.fit(X, t, verbose=0)
    X_val = X.copy()
    X_val[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"fit: validation_data\[0\] contains NaN or inf \(nan at sample 2"):
        model.fit(X, X[:, :1], validation_data=(X_val, X[:, :1]), verbose=0)


def test_allow_nonfinite_lets_nan_through(backend):
    """The escape hatch: the user means it (the model then holds NaN, as they asked)."""
    X, y = blobs()
    X[0, 0] = np.nan
    model = classifier(backend)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, allow_nonfinite=True)
    assert np.isnan(model.predict(X[:2], allow_nonfinite=True)).all()
    with pytest.raises(ValueError, match="allow_nonfinite must be True or False"):
        model.predict(X, allow_nonfinite="yes")


def test_the_data_is_checked_once_per_call_not_per_batch_or_epoch(monkeypatch):
    """Each check is a host sync: X, y and the validation pair are checked once per fit,
    however many batches and epochs."""
    calls = []
    real = data_module.check_finite
    monkeypatch.setattr(
        data_module, "check_finite", lambda model, a, name, where: calls.append(name) or real(model, a, name, where)
    )
    X, y = blobs()
    model = classifier()
    model.fit(X, y, epochs=3, batch_size=4, validation_data=(X[:8], y[:8]), verbose=0)
    assert sorted(calls) == ["X", "validation_data[0]", "validation_data[1]", "y"]


def test_strings_are_refused_by_dtype():
    model = classifier()
    with pytest.raises(TypeError, match=r"fit: X must hold real numbers .* found dtype <U1"):
        model.fit(np.array([["a"] * 4] * 3), np.array([0, 1, 2]), verbose=0)


# ---- targets the loss cannot mean -------------------------------------------------------------


@pytest.mark.parametrize("loss", ["bce", "bce_with_logits"])
@pytest.mark.parametrize("bad", [3, -1, 9])
def test_binary_losses_refuse_targets_outside_0_1(backend, loss, bad):
    """Labels 0..9 given to a binary loss trained to a negative loss before."""
    X, _ = blobs()
    y = (np.arange(40) % 2).astype(np.int64)
    y[11] = bad
    layers = [Dense(4, 1)] + ([xpnn.Sigmoid()] if loss == "bce" else [])
    model = classifier(backend, loss, outputs=1, layers=layers)
    with pytest.raises(
        ValueError,
        match=rf"targets \(0/1 labels or probabilities\) must be in \[0, 1\], "
        rf"found {bad} in sample 11; for class labels 0..C-1 use softmax_cross",
    ):
        model.fit(X, y, epochs=1, verbose=0)
    y[11] = 1
    model.fit(X, y, epochs=1, verbose=0)  # 0/1 labels train
    y_bad = y.astype(np.float32)
    y_bad[0] = 1.5
    with pytest.raises(ValueError, match="found 1.5 in sample 0"):
        model.evaluate(X, y_bad)


def test_cross_entropy_rows_outside_0_1_are_refused(backend):
    X, y = blobs()
    T = np.eye(3, dtype=np.float32)[y]
    T[4] = [2.0, -1.0, 0.0]
    with pytest.raises(
        ValueError,
        match=r"target rows \(one-hot or class probabilities\) must be in \[0, 1\], "
        r"found 2 in sample 4",
    ):
        classifier(backend).fit(X, T, verbose=0)


def test_labels_out_of_range_in_validation_data_are_found_before_training(backend):
    X, y = blobs()
    model = classifier(backend)
    before = host(model)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\), found 7 at index 1"):
        model.fit(X, y, validation_data=(X[:4], np.array([0, 7, 1, 2])), verbose=0)
    assert model.optimizer.iterations == 0 and all(np.array_equal(a, b) for a, b in zip(host(model), before))


def test_one_dimensional_float_labels(backend):
    """1-D float y with a cross-entropy: whole numbers are labels (as Keras takes them);
    2.5 is named, not reported as a (batch, 1) shape mismatch."""
    X, y = blobs()
    a = classifier(backend).fit(X, y, epochs=2, verbose=0).history["loss"]
    b = classifier(backend).fit(X, y.astype(np.float32), epochs=2, verbose=0).history["loss"]
    assert a == b
    y_bad = y.astype(np.float32)
    y_bad[6] = 2.5
    with pytest.raises(
        ValueError,
        match=r"fit: y is 1-D, so it holds class labels for softmax_cross_entropy, "
        r"which must be whole numbers; found 2.5 at index 6",
    ):
        classifier(backend).fit(X, y_bad, verbose=0)


# ---- the training loop ------------------------------------------------------------------------


def batchnorm_model(backend="numpy"):
    model = Sequential([Dense(4, 8), BatchNorm1D(8), ReLU(), Dense(8, 3)], backend=backend, seed=0)
    return model.compile("softmax_cross_entropy", "adam")


def test_drop_last_lets_batchnorm_train_when_one_sample_is_left(backend):
    X, y = blobs(n=41)  # 41 = 2 * 20 + 1: a last batch of one sample
    with pytest.raises(ValueError, match=r"in fit, drop_last=True skips a last batch of one sample"):
        batchnorm_model(backend).fit(X, y, batch_size=20, verbose=0)
    model = batchnorm_model(backend)
    model.fit(X, y, epochs=3, batch_size=20, drop_last=True, verbose=0)
    assert model.optimizer.iterations == 6 and model.epochs_trained == 3
    model = batchnorm_model(backend)  # a batch_size above n is n: one whole batch, nothing dropped
    model.fit(X, y, epochs=2, batch_size=64, drop_last=True, verbose=0)
    assert model.optimizer.iterations == 2


class StopAt(Callback):
    def __init__(self, epoch, step):
        self.at = (epoch, step)
        self.epoch = None

    def on_epoch_begin(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, step, logs):
        if (self.epoch, step) == self.at:
            self.model.stop_training = True


def test_epochs_trained_counts_whole_epochs_only():
    X, y = blobs()  # 40 samples, batch 8: steps 0-4
    model = classifier()
    model.fit(X, y, epochs=5, batch_size=8, verbose=0, callbacks=[StopAt(2, 1)])
    assert model.epochs_trained == 2  # epoch 2 was cut after its second batch
    model = classifier()
    model.fit(X, y, epochs=5, batch_size=8, verbose=0, callbacks=[StopAt(2, 4)])
    assert model.epochs_trained == 3  # stopped after the last batch: epoch 2 is whole


def test_finite_values_whose_sum_overflows_are_accepted(backend):
    """The check sums first; a sum past float32's range is not a NaN in the data."""
    X = np.full((8, 2), 3e38, dtype=np.float32)
    model = Sequential([Dense(2, 1)], backend=backend).compile("mse", "sgd")
    assert model.backend.all_finite(model.backend.asarray(X))
    assert not model.backend.all_finite(model.backend.asarray(np.where(np.eye(8, 2) > 0, np.nan, X)))
    with np.errstate(all="ignore"):
        model.predict(X)  # no error, no warning turned error: the values are finite


def test_validation_data_is_prepared_once_per_fit_not_per_epoch(monkeypatch):
    """fit prepares (checks, moves to the device) the training and validation data once;
    each epoch's validation reuses the prepared arrays."""
    calls = []
    real = data_module.prepare
    monkeypatch.setattr(data_module, "prepare", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    X, y = blobs()
    classifier().fit(X, y, epochs=3, batch_size=8, validation_data=(X[:8], y[:8]), verbose=0)
    assert calls == ["fit", "fit"]
