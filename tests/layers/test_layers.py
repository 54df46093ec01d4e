"""Layers: forward values against NumPy formulas, numerical stability at +-1000,
Dropout's inverted scaling and seeded masks, Dense's lazy size and shape errors,
Flatten, float32 in -> float32 out everywhere, and the forward/backward contract
(inference keeps nothing; each training forward serves one backward). Gradients:
test_gradcheck.py."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.backends import get_backend
from xpnn.functional import log_softmax, sigmoid, softmax
from xpnn.layers import (
    ACTIVATIONS,
    ELU,
    GELU,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Layer,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    get_activation,
)

SHAPE_SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


# (factory, NumPy reference) for every activation, written from the textbook formulas
ACTIVATION_CASES = {
    "ReLU": (ReLU, lambda x: np.maximum(x, 0.0)),
    "LeakyReLU": (LeakyReLU, lambda x: np.where(x > 0, x, 0.01 * x)),
    "LeakyReLU(0.2)": (lambda: LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "ELU": (ELU, lambda x: np.where(x > 0, x, np.expm1(x))),
    "ELU(0.5)": (lambda: ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "GELU": (GELU, np_gelu_tanh),
    "Sigmoid": (Sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
    "Tanh": (Tanh, np.tanh),
    "Softmax": (Softmax, np_softmax),
    "Identity": (Identity, lambda x: x),
}


@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
@SHAPE_SETTINGS
@given(batch=st.integers(1, 5), features=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_activation_forward_matches_numpy(backend, case, batch, features, seed):
    make, ref = ACTIVATION_CASES[case]
    x = np.random.default_rng(seed).normal(scale=3.0, size=(batch, features))
    layer = make()
    Y = layer.forward(backend.asarray(x, dtype="float64"))
    assert backend.owns(Y)
    np.testing.assert_allclose(backend.to_numpy(Y), ref(x), rtol=1e-12, atol=1e-14)


def test_activations_are_elementwise_on_any_shape(backend):
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    for case in ("ReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax"):
        make, ref = ACTIVATION_CASES[case]
        Y = make().forward(backend.asarray(x, dtype="float64"))
        np.testing.assert_allclose(backend.to_numpy(Y), ref(x), rtol=1e-12, atol=1e-14)


def test_gelu_is_close_to_exact_gelu():
    x = np.linspace(-5, 5, 101)
    exact = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    Y = np.asarray(GELU().forward(x))
    np.testing.assert_allclose(Y, exact, atol=1e-3)  # the tanh approximation's known error


def test_softmax_rows_sum_to_one_and_log_softmax(backend):
    x = np.random.default_rng(1).normal(scale=5.0, size=(4, 7))
    X = backend.asarray(x, dtype="float64")
    Y = backend.to_numpy(softmax(backend.xp, X))
    np.testing.assert_allclose(Y.sum(axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(log_softmax(backend.xp, X)), np.log(np_softmax(x)), rtol=1e-12)
    # softmax over another axis
    np.testing.assert_allclose(backend.to_numpy(softmax(backend.xp, X, axis=0)), np_softmax(x.T).T, rtol=1e-12)


def test_activation_output_shape():
    for make, _ in ACTIVATION_CASES.values():
        assert make().output_shape((None, 7)) == (None, 7)


# ---- stability at +-1000 --------------------------------------------------------------------

EXTREME = [[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, -1000.0], [999.0, 1000.0, 0.5]]


def _no_fp_trouble():
    """NumPy overflow/invalid/divide raise (array_api_strict computes with NumPy too)."""
    return np.errstate(over="raise", invalid="raise", divide="raise")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_stable_at_extremes(backend, dtype):
    X = backend.asarray(EXTREME, dtype=dtype)
    layer = Sigmoid()
    with _no_fp_trouble(), warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = layer.forward(X, training=True)
        dX = layer.backward(backend.xp.ones_like(Y))
    y, dx = backend.to_numpy(Y), backend.to_numpy(dX)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    x = np.asarray(EXTREME)
    assert np.all(y[x == 1000.0] == 1.0)
    assert np.all(y[x == -1000.0] == 0.0)
    assert np.all(y[x == 0.0] == 0.5)
    assert np.all(dx[np.abs(x) == 1000.0] == 0.0)
    assert Y.dtype == dX.dtype == backend.dtype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_and_log_softmax_stable_at_extremes(backend, dtype):
    xp = backend.xp
    X = backend.asarray(EXTREME, dtype=dtype)
    layer = Softmax()
    with _no_fp_trouble(), warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = layer.forward(X, training=True)
        dX = layer.backward(backend.asarray(np.arange(12.0).reshape(4, 3), dtype=dtype))
        L = log_softmax(xp, X)
    y, dx, lsm = backend.to_numpy(Y), backend.to_numpy(dX), backend.to_numpy(L)
    for a in (y, dx, lsm):
        assert not np.any(np.isnan(a))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)) and np.all(np.isfinite(lsm))
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[1], [1 / 3, 1 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(y[2], [0.5, 0.5, 0.0])
    e = math.exp(-1.0)
    np.testing.assert_allclose(y[3], [e / (1 + e), 1 / (1 + e), 0.0], rtol=1e-6)
    # log-softmax keeps the huge negative logs exact instead of log(0) = -inf
    np.testing.assert_allclose(lsm[0], [0.0, -2000.0, -1000.0], rtol=1e-6)
    np.testing.assert_allclose(lsm[2], [-math.log(2), -math.log(2), -2000.0 - math.log(2)], rtol=1e-6)
    assert Y.dtype == dX.dtype == L.dtype == backend.dtype(dtype)


def test_other_activations_finite_at_extremes(backend):
    X = backend.asarray(EXTREME, dtype="float32")
    for make in (ReLU, LeakyReLU, ELU, GELU, Tanh, Identity):
        layer = make()
        with _no_fp_trouble(), warnings.catch_warnings():
            warnings.simplefilter("error")
            Y = layer.forward(X, training=True)
            dX = layer.backward(backend.xp.ones_like(Y))
        assert np.all(np.isfinite(backend.to_numpy(Y))), make
        assert np.all(np.isfinite(backend.to_numpy(dX))), make
    np.testing.assert_allclose(backend.to_numpy(ELU().forward(X))[0], [1000.0, -1.0, 0.0])
    np.testing.assert_allclose(backend.to_numpy(GELU().forward(X))[0], [1000.0, 0.0, 0.0])


def test_sigmoid_function_matches_layer(backend):
    X = backend.asarray([[-3.0, 0.0, 2.0]], dtype="float64")
    np.testing.assert_array_equal(backend.to_numpy(sigmoid(backend.xp, X)), backend.to_numpy(Sigmoid().forward(X)))


# ---- backward against formulas (spot checks; full gradient checks are in test_gradcheck) ----


def test_activation_backward_formulas(backend):
    x = np.array([[-2.0, -0.5, 0.5, 2.0]])
    dy = np.array([[1.0, 2.0, 3.0, 4.0]])
    s = 1 / (1 + np.exp(-x))
    cases = [
        (ReLU(), dy * (x > 0)),
        (LeakyReLU(0.1), dy * np.where(x > 0, 1.0, 0.1)),
        (ELU(), dy * np.where(x > 0, 1.0, np.exp(x))),
        (Sigmoid(), dy * s * (1 - s)),
        (Tanh(), dy * (1 - np.tanh(x) ** 2)),
        (Identity(), dy),
    ]
    for layer, expected in cases:
        layer.forward(backend.asarray(x, dtype="float64"), training=True)
        dX = layer.backward(backend.asarray(dy, dtype="float64"))
        np.testing.assert_allclose(backend.to_numpy(dX), expected, rtol=1e-12, err_msg=repr(layer))


def test_softmax_backward_is_the_jacobian_product(backend):
    x = np.random.default_rng(2).normal(size=(3, 5))
    dy = np.random.default_rng(3).normal(size=(3, 5))
    layer = Softmax()
    layer.forward(backend.asarray(x, dtype="float64"), training=True)
    dX = backend.to_numpy(layer.backward(backend.asarray(dy, dtype="float64")))
    for i in range(3):
        y = np_softmax(x[i])
        J = np.diag(y) - np.outer(y, y)
        np.testing.assert_allclose(dX[i], J.T @ dy[i], rtol=1e-10, atol=1e-14)


# ---- get_activation -------------------------------------------------------------------------


def test_get_activation():
    for name, cls in ACTIVATIONS.items():
        assert type(get_activation(name)) is cls
        assert type(get_activation(name.upper())) is cls
    assert get_activation("relu") is not get_activation("relu")  # a new layer each time
    layer = LeakyReLU(0.3)
    assert get_activation(layer) is layer


@pytest.mark.parametrize("bad", ["swish", None, 3])
def test_get_activation_bad_name(bad):
    with pytest.raises(ValueError) as err:
        get_activation(bad)
    msg = str(err.value)
    assert msg.startswith("activation must be one of")
    assert "'relu'" in msg and f"found {bad!r}" in msg


def test_activation_configs():
    assert LeakyReLU(0.2).config() == {"alpha": 0.2}
    assert ELU(0.5).config() == {"alpha": 0.5}
    assert repr(LeakyReLU(0.2)) == "LeakyReLU(alpha=0.2)"
    assert repr(ReLU()) == "ReLU()"


# ---- Dense ----------------------------------------------------------------------------------


@SHAPE_SETTINGS
@given(batch=st.integers(1, 6), fin=st.integers(1, 7), fout=st.integers(1, 5))
def test_dense_forward_backward_match_numpy(backend, batch, fin, fout):
    rng = np.random.default_rng(batch * 100 + fin * 10 + fout)
    x, dy = rng.normal(size=(batch, fin)), rng.normal(size=(batch, fout))
    layer = Dense(fin, fout, bias_init=xpnn.init.normal(1.0)).bind(backend, backend.rng(0), "float64")
    W, b = backend.to_numpy(layer.params["W"]), backend.to_numpy(layer.params["b"])
    assert W.shape == (fin, fout) and b.shape == (fout,)
    Y = layer.forward(backend.asarray(x, dtype="float64"), training=True)
    np.testing.assert_allclose(backend.to_numpy(Y), x @ W + b, rtol=1e-12)
    dX = layer.backward(backend.asarray(dy, dtype="float64"))
    np.testing.assert_allclose(backend.to_numpy(dX), dy @ W.T, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.grads["W"]), x.T @ dy, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.grads["b"]), dy.sum(axis=0), rtol=1e-12)
    assert set(layer.grads) == set(layer.params) == {"W", "b"}


def test_dense_infers_in_features_at_first_use(backend):
    layer = Dense(4)
    assert layer.in_features is None and layer.out_features == 4
    assert repr(layer) == "Dense(None, 4)"
    X = backend.asarray(np.ones((3, 9)), dtype="float32")
    Y = layer.forward(X)
    assert layer.in_features == 9
    assert tuple(layer.params["W"].shape) == (9, 4)
    assert tuple(Y.shape) == (3, 4)
    assert repr(layer) == "Dense(9, 4)"
    assert layer.backend is backend and backend.owns(layer.params["W"])
    # now that the size is known, another size is an error
    with pytest.raises(ValueError, match=r"expected \(batch, 9\)"):
        layer.forward(backend.asarray(np.ones((3, 8)), dtype="float32"))


def test_dense_lazy_build_in_a_bound_layer(backend):
    layer = Dense(5).bind(backend, backend.rng(1), "float32")
    assert not layer.built and layer.params == {}
    layer.forward(backend.asarray(np.ones((2, 3)), dtype="float32"))
    assert layer.built and tuple(layer.params["W"].shape) == (3, 5)
    # same seed, sizes known up front: the same weights
    eager = Dense(3, 5).bind(backend, backend.rng(1), "float32")
    np.testing.assert_array_equal(backend.to_numpy(eager.params["W"]), backend.to_numpy(layer.params["W"]))


def test_dense_shape_mismatch_message(backend):
    layer = Dense(784, 128)
    X = backend.asarray(np.zeros((32, 785)), dtype="float32")
    with pytest.raises(ValueError) as err:
        layer.forward(X)
    assert str(err.value) == "Dense(784, 128).forward: X has shape (32, 785), expected (batch, 784)"


def test_dense_rank_mismatch_messages(backend):
    with pytest.raises(ValueError, match=r"^Dense\(3, 2\)\.forward: X has shape \(4, 3, 1\), expected \(batch, 3\)$"):
        Dense(3, 2).forward(backend.asarray(np.zeros((4, 3, 1)), dtype="float32"))
    with pytest.raises(
        ValueError, match=r"^Dense\(None, 2\)\.forward: X has shape \(3,\), expected \(batch, in_features\)$"
    ):
        Dense(2).forward(backend.asarray(np.zeros(3), dtype="float32"))


@pytest.mark.parametrize(
    "args, message",
    [
        ((0,), "out_features must be a positive integer, found 0"),
        ((3, -1), "out_features must be a positive integer, found -1"),
        ((2.5,), "out_features must be a positive integer, found 2.5"),
        ((True, 3), "in_features must be a positive integer or None (taken from the first input), found True"),
        ((0, 3), "in_features must be a positive integer or None (taken from the first input), found 0"),
        ((3, np.int64(0)), f"out_features must be a positive integer, found {np.int64(0)!r}"),
        (("10",), "out_features must be a positive integer, found '10'"),
    ],
)
def test_dense_bad_sizes(args, message):
    with pytest.raises(ValueError) as err:
        Dense(*args)
    assert str(err.value) == f"Dense: {message}"


def test_dense_needs_out_features():
    with pytest.raises(ValueError, match="out_features is required"):
        Dense()


def test_dense_without_bias(backend):
    layer = Dense(3, 2, bias=False).bind(backend, backend.rng(0), "float64")
    assert set(layer.params) == {"W"}
    x = np.arange(6.0).reshape(2, 3)
    Y = layer.forward(backend.asarray(x, dtype="float64"), training=True)
    np.testing.assert_allclose(backend.to_numpy(Y), x @ backend.to_numpy(layer.params["W"]))
    layer.backward(backend.xp.ones_like(Y))
    assert set(layer.grads) == {"W"}


def test_dense_backward_without_dX(backend):
    """need_dX=False (the first layer while training): the grads as usual, no dX."""
    rng = np.random.default_rng(4)
    x, dy = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    layer = Dense(4, 2).bind(backend, backend.rng(0), "float64")
    layer.forward(backend.asarray(x, dtype="float64"), training=True)
    assert layer.backward(backend.asarray(dy, dtype="float64"), need_dX=False) is None
    np.testing.assert_allclose(backend.to_numpy(layer.grads["W"]), x.T @ dy, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.grads["b"]), dy.sum(axis=0), rtol=1e-12)
    assert layer.saved is None


def test_dense_accepts_numpy_integer_sizes(backend):
    """NumPy integer scalars count as sizes (shape arithmetic yields them); the config keeps
    plain Python ints, so it stays JSON-able."""
    layer = Dense(np.int64(4), np.int32(3))
    assert layer.config()["in_features"] == 4 and layer.config()["out_features"] == 3
    assert type(layer.config()["in_features"]) is int and type(layer.config()["out_features"]) is int
    assert repr(layer) == "Dense(4, 3)"
    lazy = Dense(np.int64(8))
    assert lazy.in_features is None and lazy.out_features == 8 and type(lazy.out_features) is int
    Y = lazy.forward(backend.asarray(np.ones((2, 5)), dtype="float32"))
    assert tuple(Y.shape) == (2, 8) and tuple(lazy.params["W"].shape) == (5, 8)
    assert json.loads(json.dumps(lazy.config()))["out_features"] == 8


def test_dense_config_and_output_shape():
    layer = Dense(3, 2, init="he_normal", bias=False)
    assert layer.config() == {"in_features": 3, "out_features": 2, "init": "he_normal", "bias": False}
    assert layer.output_shape((None, 3)) == (None, 2)


# ---- Dropout --------------------------------------------------------------------------------


def _dropout(backend, rate, seed=0, dtype="float64"):
    return Dropout(rate).bind(backend, backend.rng(seed), dtype)


def test_dropout_is_identity_when_not_training(backend):
    x = np.random.default_rng(0).normal(size=(5, 6))
    X = backend.asarray(x, dtype="float64")
    layer = _dropout(backend, 0.5)
    Y = layer.forward(X)  # training defaults to False
    np.testing.assert_array_equal(backend.to_numpy(Y), x)
    np.testing.assert_array_equal(backend.to_numpy(layer.forward(X, training=False)), x)
    assert layer.saved is None  # inference keeps nothing, so there is no backward for it
    dY = backend.asarray(np.ones((5, 6)), dtype="float64")
    with pytest.raises(RuntimeError, match=r"backward needs a forward\(X, training=True\) first"):
        layer.backward(dY)
    # an inference forward after a training one drops the training mask
    layer.forward(X, training=True)
    assert layer.saved is not None
    layer.forward(X)
    assert layer.saved is None


def test_dropout_inference_draws_no_mask(backend):
    """An inference forward leaves the generator alone: the next training mask is the one a
    twin layer (same seed) draws without it."""
    X = backend.asarray(np.ones((8, 10)), dtype="float32")
    a, b = _dropout(backend, 0.5, seed=5, dtype="float32"), _dropout(backend, 0.5, seed=5, dtype="float32")
    a.forward(X)
    np.testing.assert_array_equal(
        backend.to_numpy(a.forward(X, training=True)), backend.to_numpy(b.forward(X, training=True))
    )


def test_dropout_rate_zero_is_identity_in_training(backend):
    x = np.random.default_rng(0).normal(size=(5, 6))
    Y = _dropout(backend, 0.0).forward(backend.asarray(x, dtype="float64"), training=True)
    np.testing.assert_array_equal(backend.to_numpy(Y), x)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_dropout_inverted_scaling(backend, rate):
    x = np.random.default_rng(1).uniform(1.0, 2.0, size=(200, 250))  # no zeros: a zero in Y means dropped
    layer = _dropout(backend, rate)
    y = backend.to_numpy(layer.forward(backend.asarray(x, dtype="float64"), training=True))
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - rate, abs=0.01)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-12)
    assert y.mean() == pytest.approx(x.mean(), rel=0.03)  # expectation preserved


def test_dropout_float32_scaling(backend):
    x = np.ones((100, 100), dtype=np.float32)
    y = backend.to_numpy(_dropout(backend, 0.25, dtype="float32").forward(backend.asarray(x), training=True))
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {np.float32(0.0), np.float32(1 / 0.75)}


def test_dropout_masks_reproducible_from_seed(backend):
    X = backend.asarray(np.ones((8, 10)), dtype="float32")
    a, b, c = _dropout(backend, 0.5, seed=3), _dropout(backend, 0.5, seed=3), _dropout(backend, 0.5, seed=4)
    ya1, yb1, yc1 = (backend.to_numpy(l.forward(X, training=True)) for l in (a, b, c))
    np.testing.assert_array_equal(ya1, yb1)
    assert not np.array_equal(ya1, yc1)
    ya2, yb2 = (backend.to_numpy(l.forward(X, training=True)) for l in (a, b))
    np.testing.assert_array_equal(ya2, yb2)
    assert not np.array_equal(ya1, ya2)  # a fresh mask on every training call


def test_dropout_masks_same_on_every_backend(backend):
    X = np.ones((6, 7), dtype=np.float32)
    ref = _dropout(get_backend("numpy"), 0.4, seed=9, dtype="float32").forward(X, training=True)
    got = _dropout(backend, 0.4, seed=9, dtype="float32").forward(backend.asarray(X), training=True)
    np.testing.assert_array_equal(backend.to_numpy(got), np.asarray(ref))


def test_dropout_backward_uses_the_forward_mask(backend):
    x = np.random.default_rng(2).uniform(1.0, 2.0, size=(20, 30))
    dy = np.random.default_rng(3).uniform(1.0, 2.0, size=(20, 30))
    layer = _dropout(backend, 0.3)
    y = backend.to_numpy(layer.forward(backend.asarray(x, dtype="float64"), training=True))
    dx = backend.to_numpy(layer.backward(backend.asarray(dy, dtype="float64")))
    np.testing.assert_array_equal(dx == 0, y == 0)
    np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-12)
    assert layer.saved is None  # backward took the mask: the layer holds no activations
    with pytest.raises(RuntimeError, match=r"backward needs a forward\(X, training=True\) first"):
        layer.backward(backend.asarray(dy, dtype="float64"))  # one forward serves one backward


def test_dropout_backward_draws_nothing(backend):
    """backward reuses the forward's mask: the next training mask is the one a twin layer
    (same seed) draws without a backward in between."""
    X = backend.asarray(np.ones((8, 10)), dtype="float64")
    a, b = _dropout(backend, 0.3, seed=7), _dropout(backend, 0.3, seed=7)
    a.forward(X, training=True)
    a.backward(backend.xp.ones_like(X))
    b.forward(X, training=True)
    np.testing.assert_array_equal(
        backend.to_numpy(a.forward(X, training=True)), backend.to_numpy(b.forward(X, training=True))
    )


def test_dropout_rate_zero_backward_passes_dY(backend):
    dy = np.random.default_rng(5).normal(size=(3, 4))
    layer = _dropout(backend, 0.0)
    layer.forward(backend.asarray(np.ones((3, 4)), dtype="float64"), training=True)
    np.testing.assert_array_equal(backend.to_numpy(layer.backward(backend.asarray(dy, dtype="float64"))), dy)
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        layer.backward(backend.asarray(dy, dtype="float64"))


def test_dropout_standalone_binds_to_input(backend):
    layer = Dropout(0.5)
    Y = layer.forward(backend.asarray(np.ones((4, 4)), dtype="float32"), training=True)
    assert layer.backend is backend and backend.owns(Y)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5", True, None])
def test_dropout_bad_rate(rate):
    with pytest.raises(ValueError, match=rf"^Dropout: rate must be a number in \[0, 1\), found {rate!r}"):
        Dropout(rate)


def test_dropout_config():
    assert Dropout(0.2).config() == {"rate": 0.2}
    assert repr(Dropout(0.2)) == "Dropout(rate=0.2)"


# ---- Flatten --------------------------------------------------------------------------------


@SHAPE_SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_flatten_forward_backward(backend, shape):
    shape = (2, *shape)
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    layer = Flatten()
    Y = layer.forward(backend.asarray(x, dtype="float64"), training=True)
    np.testing.assert_array_equal(backend.to_numpy(Y), x.reshape(2, -1))
    assert layer.output_shape(shape) == tuple(Y.shape)
    dX = layer.backward(backend.asarray(x.reshape(2, -1) * 2, dtype="float64"))
    np.testing.assert_array_equal(backend.to_numpy(dX), x * 2)


def test_flatten_empty_batch(backend):
    layer = Flatten()
    Y = layer.forward(backend.zeros((0, 3, 4)), training=True)
    assert tuple(Y.shape) == (0, 12)
    assert tuple(layer.backward(Y).shape) == (0, 3, 4)


# ---- dtypes: float32 in -> float32 out -------------------------------------------------------

ALL_LAYERS = {
    "Dense": lambda: Dense(5, 3),
    "Dense(out)": lambda: Dense(3),
    "Dense(bias=False)": lambda: Dense(5, 3, bias=False),
    "Dropout": lambda: Dropout(0.5),
    "Flatten": Flatten,
    **{name: make for name, (make, _) in ACTIVATION_CASES.items()},
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(ALL_LAYERS))
def test_dtype_preserved_forward_and_backward(backend, name, dtype):
    layer = ALL_LAYERS[name]()
    X = backend.asarray(np.random.default_rng(0).normal(size=(4, 5)), dtype=dtype)
    want = backend.dtype(dtype)
    Y_inference = layer.forward(X)
    assert Y_inference.dtype == want, f"{name}.forward(training=False): {X.dtype} in, {Y_inference.dtype} out"
    Y = layer.forward(X, training=True)
    assert Y.dtype == want, f"{name}.forward: {X.dtype} in, {Y.dtype} out"
    dX = layer.backward(backend.xp.ones_like(Y))
    assert dX.dtype == want, f"{name}.backward: {dX.dtype}"
    for key, g in layer.grads.items():
        assert g.dtype == want and layer.params[key].dtype == want, key
    assert backend.owns(Y) and backend.owns(dX)


# (inference keeping nothing, backward handing activations back: test_layer_contract.py)


def test_identity_backward_needs_nothing(backend):
    dY = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float64")
    layer = Identity()
    layer.forward(dY)
    np.testing.assert_array_equal(backend.to_numpy(layer.backward(dY)), np.arange(6.0).reshape(2, 3))
    assert layer.saved is None


def test_relu_mask_property(backend):
    """ReLU.mask: the saved derivative as 0.0 / 1.0 in the layer's dtype while a training
    forward's activations are held, None otherwise."""
    layer = ReLU()
    X = backend.asarray([[-1.0, 0.0, 2.0], [3.0, -4.0, 0.5]], dtype="float32")
    layer.forward(X)
    assert layer.mask is None
    layer.forward(X, training=True)
    mask = layer.mask
    assert mask.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(mask), [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    layer.backward(backend.xp.ones_like(X))
    assert layer.mask is None


def test_layers_are_registered():
    """Every layer class here is in the registry that save/load and xpnn.layers read."""
    for name, make in ALL_LAYERS.items():
        layer = make()
        cls = type(layer)
        assert xpnn.layers.LAYERS[cls.__name__] is cls, name
        assert getattr(xpnn.layers, cls.__name__) is cls, name
        assert xpnn.layers.layer_name(layer) == cls.__name__, name


def test_bound_float32_layer_keeps_float32(backend):
    layer = Dense(5, 3).bind(backend, backend.rng(0), "float32")
    assert layer.params["W"].dtype == backend.xp.float32
    Y = layer.forward(backend.asarray(np.ones((2, 5)), dtype="float32"))
    assert Y.dtype == backend.xp.float32


def test_layer_base_contract():
    layer = Layer()
    assert layer.params == {} and layer.grads == {} and layer.config() == {}
    with pytest.raises(NotImplementedError):
        layer.forward(None)
    with pytest.raises(NotImplementedError):
        layer.backward(None)
    assert layer.saved is None
    with pytest.raises(RuntimeError, match=r"needs a forward\(X, training=True\) first"):
        layer.take_saved()


def test_standalone_layer_binds_float32_for_integer_input(backend):
    layer = Dense(3, 2)
    layer.prepare(backend.asarray([[1, 2, 3]]))  # integer X: params fall back to float32
    assert layer.dtype == backend.xp.float32
    assert layer.params["W"].dtype == backend.xp.float32
