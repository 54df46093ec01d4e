"""GradientMonitor: vanishing, exploding and dead-ReLU detection, exact update ratios,
the history layout and the plot. pytest turns warnings into errors, so a healthy network
that warned would fail its test by itself."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import xpnn
from xpnn import Dense, ReLU, Sequential, Sigmoid, init
from xpnn.gradient_monitor import GradientMonitor, GradientWarning


def test_gradient_monitor_is_one_class_under_every_name():
    import xpnn.callbacks

    assert xpnn.callbacks.GradientMonitor is GradientMonitor is xpnn.GradientMonitor
    assert xpnn.callbacks.GradientWarning is GradientWarning is xpnn.GradientWarning
    assert type(xpnn.get_callback("gradient_monitor")) is GradientMonitor


def test_relu_declares_the_mask_the_monitor_reads():
    relu = ReLU()
    assert isinstance(type(relu).__dict__["mask"], property) and type(relu).mask.__doc__
    X = np.array([[-1.0, 2.0], [3.0, -4.0]])
    relu.forward(X, training=True)
    np.testing.assert_array_equal(np.asarray(relu.mask), [[0.0, 1.0], [1.0, 0.0]])
    relu.forward(X)
    assert relu.mask is None  # inference keeps nothing


def data(n=96, d=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def stack(act, weight_init, depth=10, width=32, d=16, backend="numpy", lr=0.1):
    layers, fan_in = [], d
    for _ in range(depth - 1):
        layers += [Dense(fan_in, width, init=weight_init), act()]
        fan_in = width
    layers.append(Dense(fan_in, 2, init=weight_init))
    return Sequential(layers, backend=backend, seed=0).compile("softmax_cross_entropy", xpnn.SGD(lr=lr))


def test_deep_sigmoid_stack_with_small_init_warns_that_gradients_vanish(backend):
    X, y = data()
    model = stack(Sigmoid, init.normal(0.1), backend=backend)
    monitor = GradientMonitor()
    with pytest.warns(GradientWarning) as caught:  # (pytest re-raises warnings a match= leaves out)
        model.fit(X, y, epochs=1, batch_size=32, callbacks=[monitor], verbose=0)
    assert any("vanish in layer 0:Dense(16, 32)" in str(w.message) for w in caught)
    assert [str(w.message) for w in caught] == monitor.warnings
    g = monitor.history["grad_norm"]
    first, last = g["0:Dense(16, 32)"][0], g["18:Dense(32, 2)"][0]
    assert first < 1e-3 * last  # what the warning claims
    # each sigmoid layer multiplies the gradient by at most 0.25 times a small weight matrix
    norms = [v[0] for v in g.values()]
    assert norms == sorted(norms)
    warned = [re.search(r"vanish in layer (\d+:Dense\([^)]*\))", w).group(1) for w in monitor.warnings]
    assert "0:Dense(16, 32)" in warned and "18:Dense(32, 2)" not in warned
    assert len(warned) == len(set(warned))  # once per layer, not once per batch


def test_deep_relu_stack_with_he_init_is_healthy(backend):
    X, y = data()
    model = stack(ReLU, "he_normal", backend=backend)
    monitor = GradientMonitor()
    model.fit(X, y, epochs=2, batch_size=32, callbacks=[monitor], verbose=0)  # a warning would be an error
    assert monitor.warnings == []
    h = monitor.history
    assert h["step"] == [1, 2, 3, 4, 5, 6]
    assert h["epoch"] == [0, 0, 0, 1, 1, 1]
    assert list(h["grad_norm"]) == [f"{i}:{model.layers[i]!r}" for i in range(0, 19, 2)]
    assert list(h["dead_relu"]) == [f"{i}:ReLU()" for i in range(1, 19, 2)]
    for key in ("grad_norm", "weight_norm", "update_ratio"):
        for values in h[key].values():
            assert len(values) == 6 and all(math.isfinite(v) and v > 0 for v in values)
    g = [v[-1] for v in h["grad_norm"].values()]
    assert max(g) / min(g) < 100  # He init keeps the gradient scale across depth


def test_update_ratio_is_the_step_actually_taken():
    # plain SGD: W_t - W_{t-1} = -lr * grad_t, so ratio_t * ||W_{t-1}|| == lr * ||grad_t||
    X, y = data()
    lr = 0.05
    model = Sequential([Dense(16, 8), ReLU(), Dense(8, 2)], seed=1).compile("softmax_cross_entropy", xpnn.SGD(lr=lr))
    monitor = GradientMonitor(every=1)
    model.fit(X, y, epochs=2, batch_size=16, callbacks=[monitor], verbose=0)
    for name in monitor.history["grad_norm"]:
        g = np.array(monitor.history["grad_norm"][name])
        w = np.array(monitor.history["weight_norm"][name])
        u = np.array(monitor.history["update_ratio"][name])
        np.testing.assert_allclose(u[1:] * w[:-1], lr * g[1:], rtol=1e-4)
    # the weight norm is that of all the layer's params after the step
    W, b = (np.array(model.backend.to_numpy(model.layers[2].params[k])) for k in ("W", "b"))
    assert monitor.history["weight_norm"]["2:Dense(8, 2)"][-1] == pytest.approx(
        math.sqrt((W**2).sum() + (b**2).sum()), rel=1e-5
    )


def test_every_records_every_nth_batch_and_still_measures_one_step():
    X, y = data()
    lr = 0.05
    model = Sequential([Dense(16, 8), ReLU(), Dense(8, 2)], seed=1).compile("softmax_cross_entropy", xpnn.SGD(lr=lr))
    monitor = GradientMonitor(every=3)
    model.fit(X, y, epochs=2, batch_size=8, callbacks=[monitor], verbose=0)  # 12 batches an epoch
    assert monitor.history["step"] == list(range(3, 25, 3))
    for name in monitor.history["grad_norm"]:
        g = np.array(monitor.history["grad_norm"][name])
        w = np.array(monitor.history["weight_norm"][name])
        u = np.array(monitor.history["update_ratio"][name])
        # one step's update (lr * grad), not the three steps since the last record
        np.testing.assert_allclose(u * w, lr * g, rtol=0.05)


def test_dead_relus_are_detected(backend):
    X, y = data()
    # a bias of -20 puts every pre-activation far below 0: the ReLU never fires
    model = Sequential(
        [Dense(16, 32, bias_init=init.normal(1e-3, mean=-20.0)), ReLU(), Dense(32, 2)], backend=backend
    ).compile("softmax_cross_entropy", xpnn.SGD(lr=0.1))
    monitor = GradientMonitor()
    with pytest.warns(GradientWarning) as caught:
        model.fit(X, y, epochs=1, batch_size=32, callbacks=[monitor], verbose=0)
    dead = [w for w in monitor.warnings if "units of" in w]
    assert len(dead) == 1 and "100% of the units of 1:ReLU() are dead" in dead[0]
    assert any("no gradient reaches layer 0:Dense(16, 32)" in w for w in monitor.warnings)
    assert any("dead" in str(w.message) for w in caught)
    assert monitor.history["dead_relu"]["1:ReLU()"] == [1.0, 1.0, 1.0]
    # no gradient passes a dead ReLU: the first layer's gradient is exactly 0
    assert monitor.history["grad_norm"]["0:Dense(16, 32)"] == [0.0, 0.0, 0.0]


def test_dead_fraction_matches_the_relu_mask():
    X, y = data()
    model = Sequential([Dense(16, 64, bias_init=init.normal(1.0, mean=-1.5)), ReLU(), Dense(64, 2)], seed=3).compile(
        "softmax_cross_entropy", xpnn.SGD(lr=0.01)
    )
    before = model.get_weights()
    monitor = GradientMonitor()
    model.fit(X, y, epochs=1, batch_size=None, callbacks=[monitor], verbose=0, shuffle=False)  # one step
    model.set_weights(before)  # the weights that step's forward saw
    model.forward(model.backend.asarray(X), training=True)
    mask = np.array(model.backend.to_numpy(model.layers[1].mask))
    expected = float(np.mean(mask.max(axis=0) == 0))
    assert 0.0 < expected < 0.9  # some, not most: no warning
    assert monitor.history["dead_relu"]["1:ReLU()"][-1] == pytest.approx(expected)


def test_exploding_gradients_are_detected():
    # linear regression with a learning rate far above 2 / the curvature diverges geometrically
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(64, 4)) * 3).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    model = Sequential([Dense(4, 1)]).compile("mse", xpnn.SGD(lr=0.5))
    monitor = GradientMonitor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow once it reaches inf
        with pytest.warns(GradientWarning, match="explode in layer 0:Dense"):
            model.fit(X, y, epochs=3, batch_size=None, callbacks=[monitor], verbose=0)
    assert len(monitor.warnings) == 1  # once per layer and kind, not once per step


def test_a_steady_run_does_not_trip_the_growth_check():
    X, y = data()
    model = Sequential([Dense(16, 16, init="he_normal"), ReLU(), Dense(16, 2)]).compile(
        "softmax_cross_entropy", xpnn.Adam(lr=0.01)
    )
    monitor = GradientMonitor(window=2)
    model.fit(X, y, epochs=5, batch_size=16, callbacks=[monitor], verbose=0)
    assert monitor.warnings == []


def test_growth_check_compares_recent_records_with_the_first():
    monitor = GradientMonitor(window=2, explode_growth=10.0)
    monitor.history["grad_norm"]["0:Dense(2, 2)"] = [1.0, 1.0, 5.0, 16.0]
    with pytest.warns(GradientWarning, match=r"grew 10.5x, from 1 .* to 10.5"):
        monitor.check()
    monitor = GradientMonitor(window=2, explode_growth=10.0)
    monitor.history["grad_norm"]["0:Dense(2, 2)"] = [1.0, 1.0, 5.0, 14.0]
    monitor.check()  # 9.5x: no warning
    assert monitor.warnings == []


def test_summary_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = data()
    model = stack(ReLU, "he_normal", depth=4)
    monitor = GradientMonitor()
    model.fit(X, y, epochs=2, batch_size=16, callbacks=[monitor], verbose=0)
    text = monitor.summary()
    assert "0:Dense(16, 32)" in text and "5:ReLU()" in text
    path = tmp_path / "grads.png"
    fig = monitor.plot(path)
    assert path.stat().st_size > 20_000
    assert fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].get_lines()) == 4  # one per layer with params
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_before_training_is_a_clear_error():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="nothing recorded"):
        GradientMonitor().plot()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"every": 0}, "every must be a positive integer, found 0"),
        ({"every": 1.5}, "every must be a positive integer"),
        ({"vanish_ratio": -1}, "vanish_ratio must be a number > 0"),
        ({"dead_fraction": 1.5}, r"dead_fraction must be a number in \(0, 1\]"),
        ({"window": 0}, "window must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientMonitor(**kwargs)
