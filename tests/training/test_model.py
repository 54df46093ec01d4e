"""Sequential and NeuralNetwork: fit/evaluate/predict, the three gradient-descent modes as
one loop, validation, backend mixing errors, seeding, float32, to(backend), summary and
constructor errors. Everything is a few epochs on a few dozen samples."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import xpnn
from xpnn import Dense, Dropout, NeuralNetwork, ReLU, Sequential, Tanh
from xpnn.backends import get_backend


def blobs(n=40, d=4, k=3, seed=0):
    """k well separated Gaussian blobs: X float32 (n, d), y int64 (n,) cycling 0..k-1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = rng.normal(size=(k, d)) * 3.0
    X = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def mlp(backend="numpy", seed=0, dropout=0.0, optimizer=None, metrics=("accuracy",)):
    layers = [Dense(4, 8), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(8, 3))
    model = Sequential(layers, backend=backend, seed=seed)
    return model.compile("softmax_cross_entropy", optimizer or xpnn.Adam(lr=0.05), metrics=list(metrics))


def weights(model):
    """Host copies of every param and buffer."""
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return len(wa) == len(wb) and all(np.array_equal(p, q) for p, q in zip(wa, wb))


def no_seconds(history):
    """History lists without the wall-clock column (the one thing a seed cannot fix)."""
    return {k: v for k, v in history.history.items() if k != "seconds"}


def np_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---- fit, History, evaluate -------------------------------------------------------------


def test_fit_returns_history_of_lists(backend):
    X, y = blobs()
    model = mlp(backend)
    history = model.fit(X, y, epochs=4, batch_size=8, validation_split=0.25, verbose=0)
    assert isinstance(history, xpnn.History)
    assert model.history is history
    assert history.epoch == [0, 1, 2, 3]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    for key, values in history.history.items():
        assert isinstance(values, list) and len(values) == 4, key
        assert all(isinstance(v, float) and math.isfinite(v) for v in values), key
    assert history.history["loss"][-1] < history.history["loss"][0]  # it learns
    assert model.epochs_trained == 4


def test_history_loss_is_the_mean_batch_loss(backend):
    """With shuffle=False and SGD the epoch loss is the sample-weighted mean of the batch
    losses, each taken before its own update: replay it by hand."""
    X, y = blobs(n=10)
    model = mlp(backend, optimizer=xpnn.SGD(lr=0.1))
    replay = mlp(backend, optimizer=xpnn.SGD(lr=0.1))
    history = model.fit(X, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    total = 0.0
    for lo in range(0, 10, 4):
        Xb, yb = backend.asarray(X[lo : lo + 4]), backend.asarray(y[lo : lo + 4])
        loss = replay.loss.forward(replay.forward(Xb, training=True), yb)
        total += backend.to_float(loss) * Xb.shape[0]
        replay.backward(replay.loss.backward())
        replay.optimizer.step(replay.parameters())
    assert history.history["loss"][0] == pytest.approx(total / 10, rel=1e-5)
    assert same_weights(model, replay)


@pytest.mark.parametrize("batch_size, steps", [(None, 1), (1, 10), (3, 4), (10, 1), (64, 1)])
def test_gd_sgd_and_minibatch_are_one_loop(backend, batch_size, steps):
    """batch_size None is full-batch gradient descent, 1 is SGD, k is mini-batch: the same
    loop as a hand-written forward/backward/step over consecutive slices."""
    X, y = blobs(n=10)
    model = mlp(backend, optimizer=xpnn.SGD(lr=0.1))
    manual = mlp(backend, optimizer=xpnn.SGD(lr=0.1))
    model.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 2 * steps
    bs = 10 if batch_size is None else min(batch_size, 10)
    for _ in range(2):
        for lo in range(0, 10, bs):
            Xb, yb = backend.asarray(X[lo : lo + bs]), backend.asarray(y[lo : lo + bs])
            manual.loss.forward(manual.forward(Xb, training=True), yb)
            manual.backward(manual.loss.backward())
            manual.optimizer.step(manual.parameters())
    assert same_weights(model, manual)


def test_validation_split_holds_out_the_last_samples(backend):
    """validation_split=0.25 is validation_data=(the last quarter), trained on the rest."""
    X, y = blobs(n=40)
    a = mlp(backend).fit(X, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    b = mlp(backend).fit(X[:30], y[:30], epochs=3, batch_size=8, validation_data=(X[30:], y[30:]), verbose=0)
    assert no_seconds(a) == no_seconds(b)


def test_validation_metrics_are_evaluate_at_epoch_end(backend):
    X, y = blobs(n=40)
    Xv, yv = blobs(n=12, seed=1)
    model = mlp(backend)
    history = model.fit(X, y, epochs=2, batch_size=8, validation_data=(Xv, yv), verbose=0)
    result = model.evaluate(Xv, yv)
    assert history.history["val_loss"][-1] == pytest.approx(result["loss"], rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(result["accuracy"])


def test_evaluate_returns_loss_and_metrics(backend):
    X, y = blobs(n=30)
    model = mlp(backend)
    model.fit(X, y, epochs=3, batch_size=8, verbose=0)
    result = model.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"}
    assert all(isinstance(v, float) for v in result.values())
    assert result["accuracy"] == pytest.approx(float(np.mean(model.predict_classes(X) == y)))
    logits = backend.to_numpy(model.forward(backend.asarray(X)))
    logp = np.log(np_softmax(logits.astype(np.float64)))
    assert result["loss"] == pytest.approx(-np.mean(logp[np.arange(30), y]), rel=1e-5)
    # batch_size only changes how the forward pass is cut, never the result
    chunked = model.evaluate(X, y, batch_size=7)
    assert chunked["accuracy"] == result["accuracy"]
    assert chunked["loss"] == pytest.approx(result["loss"], rel=1e-6)


def test_validation_split_errors():
    X, y = blobs(n=10)
    model = mlp()
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"validation_split must be a number in \[0, 1\)"):
            model.fit(X, y, validation_split=bad, verbose=0)
    with pytest.raises(ValueError, match="leaves no data"):
        model.fit(X, y, validation_split=0.01, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data must be \(X_val, y_val\) or \(X_val, y_val, inputs_val\)"):
        model.fit(X, y, validation_data=(X, y, {}, y), verbose=0)
    with pytest.raises(TypeError, match=r"validation_data\[2\] must be a dict of forward inputs"):
        model.fit(X, y, validation_data=(X, y, y), verbose=0)


def test_fit_argument_errors():
    X, y = blobs(n=10)
    with pytest.raises(RuntimeError, match="compile"):
        Sequential([Dense(4, 3)]).fit(X, y)
    model = mlp()
    with pytest.raises(ValueError, match="X has 10 samples but y has 9"):
        model.fit(X, y[:9], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        model.fit(X, y, epochs=-1, verbose=0)
    with pytest.raises(TypeError, match="X must be an array, found list"):
        model.fit(X.tolist(), y, verbose=0)
    with pytest.raises(ValueError, match="X is empty"):
        model.fit(X[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\)"):
        model.fit(X, y + 1, verbose=0)


# ---- predict --------------------------------------------------------------------------


def test_predict_applies_softmax_for_softmax_cross_entropy(backend):
    X, y = blobs(n=20)
    model = mlp(backend)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    probs = model.predict(X)
    assert isinstance(probs, np.ndarray) and probs.dtype == np.float32 and probs.shape == (20, 3)
    logits = backend.to_numpy(model.forward(backend.asarray(X)))
    np.testing.assert_allclose(probs, np_softmax(logits), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    classes = model.predict_classes(X)
    assert classes.dtype == np.int64 and np.array_equal(classes, probs.argmax(axis=1))
    # batching (a last batch shorter than the rest) does not change predictions
    np.testing.assert_allclose(model.predict(X, batch_size=6), probs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict(X, batch_size=None), probs, rtol=1e-6, atol=1e-7)


def test_predict_applies_sigmoid_for_bce_with_logits(backend):
    X, y = blobs(n=20, k=2)
    model = NeuralNetwork(4, 6, 1, backend=backend, seed=1).compile("bce_with_logits", "adam")
    model.fit(X, y.astype(np.float32), epochs=3, batch_size=5, verbose=0)
    probs = model.predict(X)
    logits = backend.to_numpy(model.forward(backend.asarray(X)))
    assert probs.shape == (20, 1) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-5, atol=1e-7)
    assert np.array_equal(model.predict_classes(X), (probs.reshape(-1) > 0.5).astype(np.int64))


def test_predict_is_raw_output_for_regression_and_before_compile(backend):
    X, _ = blobs(n=6)
    model = NeuralNetwork(4, 5, 2, backend=backend)
    raw = backend.to_numpy(model.forward(backend.asarray(X)))
    np.testing.assert_array_equal(model.predict(X), raw)  # no loss: no link function
    model.compile("mse", "sgd")
    np.testing.assert_array_equal(model.predict(X), raw)


def test_predict_errors():
    model = mlp()
    X, _ = blobs(n=4)
    with pytest.raises(ValueError, match="predict: X is empty"):
        model.predict(X[:0])
    with pytest.raises(ValueError, match="predict: batch_size must be a positive integer"):
        model.predict(X, batch_size=0)
    with pytest.raises(ValueError, match=r"X has shape \(4, 3\), expected \(batch, 4\)"):
        model.predict(X[:, :3])


# ---- inputs: NumPy or the model's backend, never another backend ----------------------


def test_numpy_and_backend_inputs_give_the_same_run(backend):
    X, y = blobs(n=20)
    a = mlp(backend, seed=3)
    b = mlp(backend, seed=3)
    ha = a.fit(X, y, epochs=2, batch_size=8, validation_data=(X, y), verbose=0)
    hb = b.fit(
        backend.asarray(X),
        backend.asarray(y),
        epochs=2,
        batch_size=8,
        validation_data=(backend.asarray(X), backend.asarray(y)),
        verbose=0,
    )
    assert no_seconds(ha) == no_seconds(hb)
    assert same_weights(a, b)
    assert a.evaluate(X, y) == b.evaluate(backend.asarray(X), backend.asarray(y))
    np.testing.assert_array_equal(a.predict(X), b.predict(backend.asarray(X)))


def test_an_array_of_another_backend_is_a_clear_error():
    X, y = blobs(n=8)
    strict = get_backend("array_api_strict")
    Xs, ys = strict.asarray(X), strict.asarray(y)
    model = mlp("numpy")
    pattern = r"X is an array_api_strict\.Array \(backend 'array_api_strict'.*this model runs on backend 'numpy'"
    for call in (
        lambda: model.fit(Xs, y, verbose=0),
        lambda: model.predict(Xs),
        lambda: model.evaluate(Xs, y),
        lambda: model.forward(Xs),
        lambda: model.predict_classes(Xs),
    ):
        with pytest.raises(TypeError, match=pattern):
            call()
    with pytest.raises(TypeError, match=r"fit: y is .*backend 'array_api_strict'"):
        model.fit(X, ys, verbose=0)
    with pytest.raises(TypeError, match=r"validation_data\[0\] is .*backend 'array_api_strict'"):
        model.fit(X, y, validation_data=(Xs, y), verbose=0)

    smodel = mlp("array_api_strict")
    with pytest.raises(
        TypeError,
        match=r"forward: X is a numpy\.ndarray \(backend 'numpy', device 'cpu'\).*"
        r"this model runs on backend 'array_api_strict'",
    ):
        smodel.forward(X)
    # ... while fit/evaluate/predict take host NumPy data and copy it to the device
    smodel.fit(X, y, epochs=1, verbose=0)
    smodel.predict(X)


# ---- seeding ---------------------------------------------------------------------------


def test_same_seed_same_run_different_seed_different_run(backend):
    X, y = blobs(n=30)

    def run(seed):
        model = mlp(backend, seed=seed, dropout=0.3)
        initial = weights(model)
        history = model.fit(X, y, epochs=3, batch_size=7, shuffle=True, validation_split=0.2, verbose=0)
        return initial, model, history

    init_a, a, ha = run(7)
    init_b, b, hb = run(7)
    init_c, c, hc = run(8)
    assert all(np.array_equal(p, q) for p, q in zip(init_a, init_b))
    assert same_weights(a, b)
    assert no_seconds(ha) == no_seconds(hb)
    assert not np.array_equal(init_a[0], init_c[0])
    assert not same_weights(a, c)
    assert no_seconds(ha)["loss"] != no_seconds(hc)["loss"]


def test_shuffle_and_dropout_draw_from_the_model_seed(backend):
    """Same init (weights copied), different seeds: shuffling/dropout differ, so the runs differ."""
    X, y = blobs(n=30)
    a, b = mlp(backend, seed=1, dropout=0.3), mlp(backend, seed=2, dropout=0.3)
    b.set_weights(a.get_weights())
    assert same_weights(a, b)
    a.fit(X, y, epochs=1, batch_size=7, verbose=0)
    b.fit(X, y, epochs=1, batch_size=7, verbose=0)
    assert not same_weights(a, b)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        NeuralNetwork(2, 3, 1, seed=-1)


# ---- dtype ------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_float32_stays_float32(backend, optimizer):
    xp = backend.xp
    X, y = blobs(n=12)
    model = mlp(backend, dropout=0.2, optimizer=xpnn.get_optimizer(optimizer))
    Y = model.forward(backend.asarray(X), training=True)
    assert Y.dtype == xp.float32
    model.loss.forward(Y, backend.asarray(y))
    dX = model.backward(model.loss.backward())
    assert dX.dtype == xp.float32
    pairs = model.parameters()
    assert all(p.dtype == xp.float32 and g.dtype == xp.float32 for p, g in pairs)
    model.optimizer.step(pairs)
    assert all(p.dtype == xp.float32 for p, _ in model.parameters())
    assert all(a.dtype == xp.float32 for a in model.optimizer.state_arrays().values())
    # float64 host data is cast to the model dtype, not the other way round
    model.fit(X.astype(np.float64), y, epochs=1, batch_size=6, verbose=0)  # equal batches: one new shape for JAX
    assert all(p.dtype == xp.float32 and backend.owns(p) for p, _ in model.parameters())
    assert model.predict(X.astype(np.float64)).dtype == np.float32


def test_float64_model(backend):
    X, y = blobs(n=8)
    model = Sequential([Dense(4, 3)], backend=backend, dtype="float64").compile()
    model.fit(X, y, epochs=1, verbose=0)
    assert all(p.dtype == backend.xp.float64 for p, _ in model.parameters())
    assert model.predict(X).dtype == np.float64


# ---- to(backend) ------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_to_moves_params_optimizer_state_and_generator(optimizer):
    """numpy -> array_api_strict mid-training: the continued run is the one that never moved.

    Bit for bit with SGD + momentum; Adam's update is fused differently on NumPy (a backend
    fast path), so there the two runs agree to float32 rounding."""
    X, y = blobs(n=30)

    def make():
        opt = xpnn.SGD(lr=0.1, momentum=0.9) if optimizer == "sgd_momentum" else xpnn.Adam(lr=0.05)
        return mlp("numpy", seed=4, dropout=0.3, optimizer=opt)

    stay, move = make(), make()
    stay.fit(X, y, epochs=2, batch_size=7, verbose=0)
    move.fit(X, y, epochs=2, batch_size=7, verbose=0)
    assert move.to("array_api_strict") is move
    strict = get_backend("array_api_strict")
    assert move.backend == strict
    assert all(strict.owns(a) for a in move.named_arrays().values())
    state = move.optimizer.state_arrays()
    assert state and all(strict.owns(a) for a in state.values())
    hs = stay.fit(X, y, epochs=4, initial_epoch=2, batch_size=7, verbose=0)
    hm = move.fit(X, y, epochs=4, initial_epoch=2, batch_size=7, verbose=0)
    if optimizer == "sgd_momentum":
        assert no_seconds(hs) == no_seconds(hm)
        assert same_weights(stay, move)
    else:
        assert hs.history["loss"] == pytest.approx(hm.history["loss"], rel=1e-5)
        for p, q in zip(weights(stay), weights(move)):
            np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="runs on backend 'array_api_strict'"):
        move.forward(X)
    # and back
    move.to("numpy")
    np.testing.assert_allclose(move.predict(X), stay.predict(X), rtol=1e-5, atol=1e-6)


def test_to_before_a_lazy_layer_is_built():
    X, y = blobs(n=8)
    model = Sequential([Dense(5), ReLU(), Dense(3)], seed=2).compile()
    model.to("array_api_strict")
    model.fit(X, y, epochs=1, verbose=0)
    strict = get_backend("array_api_strict")
    assert all(strict.owns(p) and p.dtype == strict.xp.float32 for p, _ in model.parameters())


# ---- weights ----------------------------------------------------------------------------


def test_get_and_set_weights(backend):
    a, b = mlp(backend, seed=1), mlp(backend, seed=2)
    assert not same_weights(a, b)
    saved = a.get_weights()
    b.set_weights(saved)
    assert same_weights(a, b)
    a.fit(*blobs(n=8), epochs=1, verbose=0)  # get_weights returned copies
    assert not same_weights(a, b)
    b.set_weights([np.zeros_like(w) for w in weights(b)])  # host arrays are accepted
    assert all(not w.any() for w in weights(b))
    with pytest.raises(ValueError, match="expected 4 arrays, found 3"):
        b.set_weights(saved[:3])
    wrong = [np.zeros((1, 8), np.float32), *weights(b)[1:]]
    with pytest.raises(ValueError, match=r"'0.W' have shape \(1, 8\), expected \(4, 8\)"):
        b.set_weights(wrong)


def test_parameters_in_layer_order(backend):
    model = NeuralNetwork(4, [5, 6], 2, backend=backend)
    assert [tuple(p.shape) for p, _ in model.parameters()] == [(4, 5), (5,), (5, 6), (6,), (6, 2), (2,)]
    assert all(g is None for _, g in model.parameters())
    assert model.count_params() == 4 * 5 + 5 + 5 * 6 + 6 + 6 * 2 + 2


# ---- summary -----------------------------------------------------------------------------


def test_summary(capsys):
    model = NeuralNetwork(64, [32, 16], 10, output_activation="softmax")
    text = model.summary()
    printed = capsys.readouterr().out
    assert printed == text + "\n"
    lines = text.splitlines()
    for needle in ("Dense(64, 32)", "Dense(32, 16)", "Dense(16, 10)", "Softmax()", "ReLU()"):
        assert any(needle in line for line in lines), needle
    dense = [line for line in lines if line.startswith("Dense(")]
    assert [line.split()[-1] for line in dense] == ["2,080", "528", "170"]
    assert "('batch', 32)" in dense[0] and "('batch', 10)" in dense[2]
    assert lines[-1] == "Total params: 2,778  (backend numpy (cpu), float32)"


def test_summary_with_input_shape_for_lazy_layers(capsys):
    model = Sequential([Dense(7), ReLU(), Dense(2)])
    text = model.summary(input_shape=(None, 3))
    assert "('batch', 7)" in text and "('batch', 2)" in text
    unknown = Sequential([Dense(7)]).summary()
    assert "?" in unknown


# ---- NeuralNetwork -------------------------------------------------------------------------


def test_neural_network_hidden_sizes_int_or_list():
    one = NeuralNetwork(4, 8, 3)
    assert [repr(layer) for layer in one.layers] == ["Dense(4, 8)", "ReLU()", "Dense(8, 3)"]
    two = NeuralNetwork(4, [8, 6], 3, activation="tanh", output_activation="softmax")
    assert [repr(layer) for layer in two.layers] == [
        "Dense(4, 8)",
        "Tanh()",
        "Dense(8, 6)",
        "Tanh()",
        "Dense(6, 3)",
        "Softmax()",
    ]
    assert repr(NeuralNetwork(4, (8, 6), 3).layers) == repr(NeuralNetwork(4, [8, 6], 3).layers)
    assert [repr(layer) for layer in NeuralNetwork(4, [], 3).layers] == ["Dense(4, 3)"]


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((4, None, 3), TypeError, "hidden_sizes must be an int or a list of ints, found None"),
        ((4, 4.0, 3), TypeError, "hidden_sizes must be an int or a list of ints, found 4.0"),
        ((4, [8, 0], 3), ValueError, "hidden_sizes[1] must be a positive integer, found 0"),
        ((4, ["8"], 3), ValueError, "hidden_sizes[0] must be a positive integer, found '8'"),
        ((4, True, 3), TypeError, "hidden_sizes must be an int or a list of ints, found True"),
        ((4, [np.int64(8), np.int32(4)], np.int64(3)), None, None),  # NumPy integers are integers
        ((0, 8, 3), ValueError, "input_size must be a positive integer, found 0"),
        ((4, 8, None), ValueError, "output_size must be a positive integer, found None"),
        ((4.5, 8, 3), ValueError, "input_size must be a positive integer, found 4.5"),
    ],
)
def test_neural_network_bad_sizes(args, error, message):
    if error is None:
        assert NeuralNetwork(*args).arch["hidden_sizes"] == [8, 4]
        return
    with pytest.raises(error, match=re.escape(message)):
        NeuralNetwork(*args)


def test_neural_network_bad_activation():
    with pytest.raises(ValueError, match="activation must be one of .* found 'relu6'"):
        NeuralNetwork(4, 8, 3, activation="relu6")
    with pytest.raises(ValueError, match="output_activation must be one of .* found 'sofmax'"):
        NeuralNetwork(4, 8, 3, output_activation="sofmax")


def test_activation_instance_is_copied_per_hidden_layer(backend):
    """An activation keeps its forward input for backward: sharing one instance between two
    hidden layers would backpropagate through the wrong input."""
    X, y = blobs(n=6)
    by_name = NeuralNetwork(4, [5, 5], 3, activation="tanh", backend=backend, seed=3).compile()
    by_obj = NeuralNetwork(4, [5, 5], 3, activation=Tanh(), backend=backend, seed=3).compile()
    assert by_obj.layers[1] is not by_obj.layers[3]
    for model in (by_name, by_obj):
        model.loss.forward(model.forward(backend.asarray(X), training=True), backend.asarray(y))
        model.backward(model.loss.backward())
    for (_, ga), (_, gb) in zip(by_name.parameters(), by_obj.parameters()):
        np.testing.assert_array_equal(backend.to_numpy(ga), backend.to_numpy(gb))


def test_sequential_rejects_non_layers_and_repeated_layers():
    with pytest.raises(TypeError, match=r"Sequential: layers\[1\]: expected a Layer or a .* spec, found str"):
        Sequential([Dense(2, 2), "relu"])
    act = ReLU()
    with pytest.raises(ValueError, match=r"layers\[3\] is the same object as layers\[1\]"):
        Sequential([Dense(2, 2), act, Dense(2, 2), act])


def test_fit_checks_all_labels_once_and_the_loss_checks_on_its_own(backend):
    X = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    y = np.arange(40) % 3
    y_bad = y.copy()
    y_bad[37] = 3  # in the last batch: found by the one whole-set check at the first batch
    model = xpnn.Sequential([xpnn.Dense(4, 3)], backend=backend.name)
    model.compile("softmax_cross_entropy", "sgd")
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\), found 3 at index 37"):
        model.fit(X, y_bad, batch_size=8, shuffle=False, verbose=0)
    model.fit(X, y, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="labels must be integers"):  # evaluate checks too
        model.evaluate(X, y_bad)
    out = model.forward(backend.asarray(X))
    with pytest.raises(ValueError, match="labels must be integers"):  # and the loss, called directly
        model.loss.forward(out, backend.asarray(y_bad))
    # check_labels=False: the caller vouches for the labels (what fit does after its one check)
    model.loss.forward(out, backend.asarray(y), check_labels=False)
    # fit(check_labels=False) skips the check: a bad label then simply matches no class
    model.fit(X, y_bad, batch_size=8, verbose=0, check_labels=False)


def test_fit_checks_validation_labels_too(backend):
    X = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    y = np.arange(20) % 3
    y_val = y.copy()
    y_val[5] = 7
    model = xpnn.Sequential([xpnn.Dense(4, 3)], backend=backend.name)
    model.compile("softmax_cross_entropy", "sgd")
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\), found 7 at index 5"):
        model.fit(X, y, validation_data=(X, y_val), verbose=0)


def test_the_same_layer_object_twice_anywhere_in_the_tree_is_refused():
    d = Dense(4, 4)
    with pytest.raises(
        ValueError,
        match=r"Sequential: the layer at 1\.0 \(Dense\(4, 4\)\) is the same object as "
        r"the one at 0; use a new instance for each position",
    ):
        Sequential([d, xpnn.Residual(d)])


def test_a_nested_sequential_follows_its_parents_dtype():
    inner = Sequential([Dense(3, 3)])
    Sequential([inner, Dense(3, 2)], dtype="float64")  # binding nests inner in float64
    assert inner.dtype_name == "float64" and inner.layers[0].params["W"].dtype == np.float64
    assert "float64" in inner.summary()
