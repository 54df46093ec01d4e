"""BatchNorm1D, BatchNorm2D, LayerNorm: gradients (finite differences, in training mode:
the only one with a backward), values (NumPy formulas, and PyTorch when installed, running
statistics included), the train/eval switch, inference keeping nothing, dtype preservation
and error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.backends import InPlaceBackend
from xpnn.layers.normalization import BatchNorm1D, BatchNorm2D, LayerNorm

# the backend fixture is stateless, so sharing it across hypothesis examples is safe
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6


def data(backend, seed, shape, dtype=np.float64, scale=1.0, shift=0.0):
    """Test input on the backend. Seeds start at 1000: gradcheck draws its contraction
    array R from seed 0, and X == R would make the BatchNorm input gradient vanish."""
    host = np.random.default_rng(1000 + seed).standard_normal(shape) * scale + shift
    return host.astype(dtype), backend.asarray(host.astype(dtype))


def np_batchnorm(X, gamma, beta, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (X.ndim - 2)
    return gamma.reshape(shape) * (X - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) + beta.reshape(shape)


def batch_stats(X):
    """Per-channel mean, biased var and unbiased var over every axis but 1."""
    axes = (0,) + tuple(range(2, X.ndim))
    m = X.size // X.shape[1]
    mean, var = X.mean(axis=axes), X.var(axis=axes)
    return mean, var, var * m / (m - 1)


def set_affine(layer, backend, seed):
    """Non-trivial gamma and beta (ones and zeros would hide a wrong gradient formula)."""
    rng = np.random.default_rng(seed)
    C = layer.params["gamma"].shape[0]
    gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    layer.params["gamma"] = backend.asarray(gamma, layer.dtype)
    layer.params["beta"] = backend.asarray(beta, layer.dtype)
    return gamma, beta


# ---- gradients ------------------------------------------------------------------------------
# Every normalized slice holds at least 3 numbers: with 2, xhat is +-1 whatever x is, the
# true input gradient is ~0 and a relative error would only compare rounding noise.


@SETTINGS
@given(n=st.integers(3, 5), c=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_batchnorm1d_gradcheck(backend, n, c, seed):
    layer = BatchNorm1D(c)
    _, X = data(backend, seed, (n, c))
    layer.bind(backend, backend.rng(0), "float64")
    set_affine(layer, backend, seed)
    # non-trivial running stats: the check uses batch statistics, so they must not matter,
    # and it must leave them as they were (its many training forwards would move them)
    running_mean, running_var = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    layer.buffers["running_mean"] = backend.asarray(running_mean.copy())  # copies: updated in place
    layer.buffers["running_var"] = backend.asarray(running_var.copy())
    errors = xpnn.gradcheck(layer, X, details=True)
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) < TOL, errors
    np.testing.assert_array_equal(backend.to_numpy(layer.buffers["running_mean"]), running_mean)
    np.testing.assert_array_equal(backend.to_numpy(layer.buffers["running_var"]), running_var)
    assert layer.saved is None


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(3, 4), seed=st.integers(0, 10**6))
def test_batchnorm2d_gradcheck(backend, n, c, h, w, seed):
    layer = BatchNorm2D(c).bind(backend, backend.rng(0), "float64")
    set_affine(layer, backend, seed)
    _, X = data(backend, seed, (n, c, h, w))
    errors = xpnn.gradcheck(layer, X, details=True)
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) < TOL, errors


@SETTINGS
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=2), d=st.integers(3, 6), seed=st.integers(0, 10**6))
def test_layernorm_gradcheck(backend, lead, d, seed):
    layer = LayerNorm(d).bind(backend, backend.rng(0), "float64")
    set_affine(layer, backend, seed)
    _, X = data(backend, seed, (*lead, d))
    errors = xpnn.gradcheck(layer, X, details=True)
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) < TOL, errors


# ---- values against NumPy formulas ----------------------------------------------------------


@pytest.mark.parametrize("cls,shape", [(BatchNorm1D, (6, 3)), (BatchNorm2D, (3, 2, 4, 5))])
def test_batchnorm_training_and_running_stats_match_numpy(backend, cls, shape):
    C = shape[1]
    layer = cls(C, momentum=0.3).bind(backend, backend.rng(0), "float64")
    gamma, beta = set_affine(layer, backend, 7)
    run_mean, run_var = np.zeros(C), np.ones(C)
    for step in range(3):
        Xh, X = data(backend, step, shape, scale=2.0, shift=1.5)
        Y = backend.to_numpy(layer.forward(X, training=True))
        mean, var, unbiased = batch_stats(Xh)
        np.testing.assert_allclose(Y, np_batchnorm(Xh, gamma, beta, mean, var), rtol=1e-10, atol=1e-12)
        run_mean = 0.7 * run_mean + 0.3 * mean
        run_var = 0.7 * run_var + 0.3 * unbiased  # the UNBIASED variance, as PyTorch
        np.testing.assert_allclose(backend.to_numpy(layer.buffers["running_mean"]), run_mean, rtol=1e-12)
        np.testing.assert_allclose(backend.to_numpy(layer.buffers["running_var"]), run_var, rtol=1e-12)
    Xh, X = data(backend, 99, shape)
    Y = backend.to_numpy(layer.forward(X, training=False))
    np.testing.assert_allclose(Y, np_batchnorm(Xh, gamma, beta, run_mean, run_var), rtol=1e-10, atol=1e-12)


def test_layernorm_matches_numpy(backend):
    layer = LayerNorm(5, eps=1e-3).bind(backend, backend.rng(0), "float64")
    gamma, beta = set_affine(layer, backend, 3)
    Xh, X = data(backend, 1, (2, 3, 5), scale=3.0, shift=-2.0)
    mean, var = Xh.mean(-1, keepdims=True), Xh.var(-1, keepdims=True)
    expected = gamma * (Xh - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(backend.to_numpy(layer.forward(X)), expected, rtol=1e-10, atol=1e-12)
    # the same in training and inference: no batch statistics
    np.testing.assert_allclose(backend.to_numpy(layer.forward(X, training=True)), expected, rtol=1e-10, atol=1e-12)


# ---- the train/eval switch (the classic BatchNorm bug) ----------------------------------------


def test_batchnorm_train_and_eval_modes_differ_as_they_should(backend):
    layer = BatchNorm1D(3).bind(backend, backend.rng(0), "float64")
    Xh, X = data(backend, 0, (8, 3), scale=3.0, shift=5.0)

    # training: normalized by the batch itself, so each channel has mean 0, var 1
    Y = backend.to_numpy(layer.forward(X, training=True))
    np.testing.assert_allclose(Y.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Y.var(0), 1.0, rtol=1e-4)
    stats = [backend.to_numpy(layer.buffers[k]).copy() for k in ("running_mean", "running_var")]
    assert not np.allclose(stats[0], 0.0)  # the running stats moved

    # eval: the running stats, which are still far from the batch stats after one step
    Y_eval = backend.to_numpy(layer.forward(X, training=False))
    assert not np.allclose(Y_eval, Y, atol=0.1)
    np.testing.assert_allclose(Y_eval, np_batchnorm(Xh, np.ones(3), np.zeros(3), *stats), rtol=1e-10)
    # ... and eval leaves the running stats alone
    for k, before in zip(("running_mean", "running_var"), stats):
        np.testing.assert_array_equal(backend.to_numpy(layer.buffers[k]), before)

    # in eval, a sample's output does not depend on the rest of its batch; in training it does
    one = backend.to_numpy(layer.forward(X[:1, :], training=False))
    np.testing.assert_allclose(one, Y_eval[:1], rtol=1e-12)
    two = backend.to_numpy(layer.forward(X[:2, :], training=True))
    assert not np.allclose(two[0], Y[0], atol=1e-3)


def test_batchnorm_running_stats_converge_to_the_data_statistics(backend):
    layer = BatchNorm2D(2, momentum=0.5).bind(backend, backend.rng(0), "float64")
    for step in range(40):
        _, X = data(backend, step, (16, 2, 3, 3), scale=2.0, shift=3.0)
        layer.forward(X, training=True)
    np.testing.assert_allclose(backend.to_numpy(layer.buffers["running_mean"]), 3.0, atol=0.3)
    np.testing.assert_allclose(backend.to_numpy(layer.buffers["running_var"]), 4.0, rtol=0.3)


def test_batchnorm_stores_running_stats_back(backend):
    """The update reaches ``buffers`` on every library: in place where the library writes
    in place (no new array per step), as a new array on JAX (immutable arrays)."""
    layer = BatchNorm1D(2).bind(backend, backend.rng(0), "float32")
    mean, var = layer.buffers["running_mean"], layer.buffers["running_var"]
    _, X = data(backend, 0, (4, 2), np.float32, shift=2.0)
    layer.forward(X, training=True)
    assert not np.allclose(backend.to_numpy(layer.buffers["running_mean"]), 0.0)
    assert not np.allclose(backend.to_numpy(layer.buffers["running_var"]), 1.0)
    assert layer.buffers["running_mean"].dtype == backend.xp.float32
    if isinstance(backend, InPlaceBackend):
        assert layer.buffers["running_mean"] is mean and layer.buffers["running_var"] is var


# ---- PyTorch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [1, 2])
def test_batchnorm_matches_torch_over_several_steps(backend, dims):
    torch = pytest.importorskip("torch")
    shape = (5, 3) if dims == 1 else (4, 3, 2, 3)
    ours = (BatchNorm1D if dims == 1 else BatchNorm2D)(3, momentum=0.2, eps=1e-4).bind(
        backend, backend.rng(0), "float64"
    )
    gamma, beta = set_affine(ours, backend, 11)
    ref = (torch.nn.BatchNorm1d if dims == 1 else torch.nn.BatchNorm2d)(3, momentum=0.2, eps=1e-4).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    ref.train()
    for step in range(4):
        Xh, X = data(backend, step, shape, scale=1.5, shift=0.5 * step)
        Xt = torch.tensor(Xh, requires_grad=True)
        Yt = ref(Xt)
        Y = ours.forward(X, training=True)
        np.testing.assert_allclose(backend.to_numpy(Y), Yt.detach().numpy(), rtol=1e-9, atol=1e-12)
        # gradients too
        R = np.random.default_rng(step).standard_normal(shape)
        (Yt * torch.from_numpy(R)).sum().backward()
        dX = ours.backward(backend.asarray(R))
        np.testing.assert_allclose(backend.to_numpy(dX), Xt.grad.numpy(), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(backend.to_numpy(ours.grads["gamma"]), ref.weight.grad.numpy(), rtol=1e-8)
        np.testing.assert_allclose(backend.to_numpy(ours.grads["beta"]), ref.bias.grad.numpy(), rtol=1e-8)
        ref.zero_grad()
    np.testing.assert_allclose(backend.to_numpy(ours.buffers["running_mean"]), ref.running_mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(ours.buffers["running_var"]), ref.running_var.numpy(), rtol=1e-10)
    ref.eval()
    Xh, X = data(backend, 50, shape)
    np.testing.assert_allclose(
        backend.to_numpy(ours.forward(X, training=False)),
        ref(torch.from_numpy(Xh)).detach().numpy(),
        rtol=1e-9,
        atol=1e-12,
    )


def test_layernorm_matches_torch(backend):
    torch = pytest.importorskip("torch")
    ours = LayerNorm(4).bind(backend, backend.rng(0), "float64")
    gamma, beta = set_affine(ours, backend, 5)
    ref = torch.nn.LayerNorm(4).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    Xh, X = data(backend, 2, (2, 3, 4))
    Xt = torch.tensor(Xh, requires_grad=True)
    Yt = ref(Xt)
    np.testing.assert_allclose(
        backend.to_numpy(ours.forward(X, training=True)), Yt.detach().numpy(), rtol=1e-9, atol=1e-12
    )
    R = np.random.default_rng(3).standard_normal((2, 3, 4))
    (Yt * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(
        backend.to_numpy(ours.backward(backend.asarray(R))), Xt.grad.numpy(), rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(backend.to_numpy(ours.grads["gamma"]), ref.weight.grad.numpy(), rtol=1e-8)


# ---- dtype, config, shapes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,shape",
    [(lambda: BatchNorm1D(3), (4, 3)), (lambda: BatchNorm2D(3), (2, 3, 2, 2)), (lambda: LayerNorm(3), (2, 5, 3))],
)
def test_float32_stays_float32(backend, make, shape):
    layer = make()
    _, X = data(backend, 0, shape, np.float32)
    Y = layer.forward(X, training=True)
    assert Y.dtype == backend.xp.float32
    assert layer.backward(Y).dtype == backend.xp.float32
    assert all(g.dtype == backend.xp.float32 for g in layer.grads.values())
    assert all(b.dtype == backend.xp.float32 for b in layer.buffers.values())
    assert layer.forward(X, training=False).dtype == backend.xp.float32  # running stats for BatchNorm
    assert all(b.dtype == backend.xp.float32 for b in layer.buffers.values())
    assert layer.output_shape(shape) == shape


@pytest.mark.parametrize("layer", [BatchNorm1D(4, momentum=0.01, eps=1e-3), BatchNorm2D(2), LayerNorm(7, eps=1e-6)])
def test_config_round_trips(layer):
    config = json.loads(json.dumps(layer.config()))
    again = type(layer)(**config)
    assert again.config() == layer.config()
    assert repr(again) == repr(layer)


def test_params_and_buffers_are_made_on_bind(backend):
    layer = BatchNorm2D(3).bind(backend, backend.rng(0), "float32")
    assert sorted(layer.params) == ["beta", "gamma"]
    assert sorted(layer.buffers) == ["running_mean", "running_var"]
    np.testing.assert_array_equal(backend.to_numpy(layer.params["gamma"]), np.ones(3))
    np.testing.assert_array_equal(backend.to_numpy(layer.buffers["running_var"]), np.ones(3))
    assert LayerNorm((6,)).normalized_shape == 6  # PyTorch's tuple form
    # NumPy scalars (what shape arithmetic yields) are accepted and stored as Python numbers
    layer = BatchNorm1D(np.int64(4), momentum=np.float32(0.25), eps=np.float64(1e-3))
    assert layer.config() == {"num_features": 4, "momentum": 0.25, "eps": 1e-3}
    assert json.loads(json.dumps(layer.config())) == layer.config()
    assert LayerNorm(np.int32(5)).config() == {"normalized_shape": 5, "eps": 1e-5}


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: BatchNorm1D(0), "BatchNorm1D: num_features must be a positive integer, found 0"),
        (lambda: BatchNorm2D(2.5), "BatchNorm2D: num_features must be a positive integer, found 2.5"),
        (lambda: BatchNorm1D(3, momentum=1.5), "momentum must be a number in [0, 1], found 1.5"),
        (lambda: BatchNorm1D(3, eps=0), "BatchNorm1D: eps must be a number > 0, found 0"),
        (lambda: BatchNorm2D(3, momentum=True), "BatchNorm2D: momentum must be a number in [0, 1], found True"),
        (
            lambda: LayerNorm(-2),
            "LayerNorm: normalized_shape (the size of the last axis) must be a positive integer, found -2",
        ),
        (lambda: LayerNorm(4, eps=-1.0), "LayerNorm: eps must be a number > 0, found -1.0"),
        (lambda: LayerNorm(4, eps=0), "LayerNorm: eps must be a number > 0, found 0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize(
    "layer,shape,expected",
    [
        (BatchNorm1D(3), (4, 5), "X has shape (4, 5), expected (batch, 3)"),
        (BatchNorm1D(3), (4, 3, 1, 1), "X has shape (4, 3, 1, 1), expected (batch, 3)"),
        (BatchNorm2D(3), (4, 3), "X has shape (4, 3), expected (batch, 3, height, width)"),
        (BatchNorm2D(3), (4, 2, 5, 5), "expected (batch, 3, height, width)"),
        (LayerNorm(3), (2, 4), "X has shape (2, 4), expected (..., 3)"),
    ],
)
def test_bad_input_shapes(backend, layer, shape, expected):
    _, X = data(backend, 0, shape)
    with pytest.raises(ValueError) as info:
        layer.forward(X, training=True)
    assert expected in str(info.value)


def test_batchnorm_training_needs_more_than_one_value_per_channel(backend):
    layer = BatchNorm2D(2)
    _, X = data(backend, 0, (1, 2, 1, 1))
    with pytest.raises(ValueError, match="more than one value per channel"):
        layer.forward(X, training=True)
    layer.forward(X, training=False)  # inference is fine with a single sample
