"""SequencePool: forward against NumPy, float64 gradient checks on every backend, the
gradient routing of max (ties) / first / last, float32 kept, errors, use in a model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.layers import Dense, Embedding
from xpnn.layers.sequence import MODES, SequencePool

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

shapes = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4))


def reference(x, mode):
    return {
        "mean": lambda: x.mean(axis=1),
        "max": lambda: x.max(axis=1),
        "first": lambda: x[:, 0],
        "last": lambda: x[:, -1],
    }[mode]()


def distinct(shape, seed):
    """Values 0.1 apart, shuffled: no max ties, even after the gradient check's nudges."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.1 - 0.05 * n


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_forward_matches_numpy(backend, mode, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    layer = SequencePool(mode)
    Y = layer.forward(backend.asarray(x, "float64"))
    assert backend.owns(Y)
    assert tuple(Y.shape) == layer.output_shape(shape) == (shape[0], shape[2])
    np.testing.assert_allclose(backend.to_numpy(Y), reference(x, mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_gradcheck(backend, mode, shape, seed):
    X = backend.asarray(distinct(shape, seed), "float64")
    assert xpnn.gradcheck(SequencePool(mode), X, seed=seed) < 1e-6


def test_backward_routes_the_gradient(backend):
    """The exact dX of each mode on a small case, ties included (max: the first maximum)."""
    x = np.array([[[1.0, 5.0], [3.0, 5.0], [3.0, 0.0]]])  # (1, 3, 2): ties in both columns
    dY = np.array([[10.0, 20.0]])
    expected = {
        "mean": np.full((1, 3, 2), [10.0 / 3, 20.0 / 3]),
        "max": np.array([[[0.0, 20.0], [10.0, 0.0], [0.0, 0.0]]]),
        "first": np.array([[[10.0, 20.0], [0.0, 0.0], [0.0, 0.0]]]),
        "last": np.array([[[0.0, 0.0], [0.0, 0.0], [10.0, 20.0]]]),
    }
    for mode, want in expected.items():
        layer = SequencePool(mode)
        layer.forward(backend.asarray(x, "float64"), training=True)
        dX = layer.backward(backend.asarray(dY, "float64"))
        assert tuple(dX.shape) == x.shape
        np.testing.assert_allclose(backend.to_numpy(dX), want, rtol=1e-12, err_msg=mode)


@pytest.mark.parametrize("mode", MODES)
def test_float32_stays_float32(backend, mode):
    layer = SequencePool(mode)
    Y = layer.forward(backend.asarray(np.random.default_rng(0).standard_normal((2, 4, 3)), "float32"), training=True)
    dX = layer.backward(backend.xp.ones_like(Y))
    assert Y.dtype == dX.dtype == backend.xp.float32


def test_in_a_model_learns_a_bag_of_tokens_task(backend):
    """Embedding -> mean pool -> Dense: "is token 0 in the sequence?" through the pool's
    backward into the embedding table (an order-free task the mean pool can express)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 6, (256, 5))
    y = (X == 0).any(axis=1).astype(np.int64)
    model = xpnn.Sequential(
        [Embedding(6, 8, init="normal(std=1.0)"), SequencePool("mean"), Dense(8, 2)], backend=backend, seed=0
    )
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.05), metrics=["accuracy"])
    before = model.evaluate(X, y)["loss"]
    model.fit(X, y, epochs=20, batch_size=64, verbose=0)
    after = model.evaluate(X, y)
    assert after["loss"] < 0.5 * before and after["accuracy"] > 0.95


def test_config_and_repr():
    layer = SequencePool("max")
    assert layer.config() == {"mode": "max"}
    assert SequencePool(**layer.config()).mode == "max"
    assert repr(layer) == "SequencePool(mode='max')"
    assert SequencePool().mode == "mean"


def test_errors(backend):
    with pytest.raises(ValueError, match=r"SequencePool: mode must be one of .*'mean'.*found 'sum'"):
        SequencePool("sum")
    with pytest.raises(ValueError, match=r"X has shape \(2, 3\), expected \(batch, seq, features\)"):
        SequencePool().forward(backend.asarray(np.zeros((2, 3)), "float32"))
    with pytest.raises(ValueError, match=r"X has shape \(2, 0, 3\).*seq >= 1"):
        SequencePool().forward(backend.asarray(np.zeros((2, 0, 3)), "float32"))
    ids = backend.asarray(np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(TypeError, match=r"X has dtype int64, expected a floating-point array"):
        SequencePool().forward(ids)
