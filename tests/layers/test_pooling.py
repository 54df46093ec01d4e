"""MaxPool2D, AvgPool2D, GlobalAvgPool2D: forward against direct loops and PyTorch, float64
gradient checks on every backend (distinct input values, so no max ties), arg-max routing
on ties, inference keeping nothing, float32 kept, config round trip, error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def loops_pool2d(x, kernel, stride, padding, kind):
    """The definition, one window at a time. Max pads with -inf, avg with zeros and always
    divides by kh*kw (count_include_pad=True)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.full((N, C, H + 2 * ph, W + 2 * pw), fill)
    xp[:, :, ph : ph + H, pw : pw + W] = x
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for r in range(OH):
                for q in range(OW):
                    window = xp[n, c, r * sh : r * sh + kh, q * sw : q * sw + kw]
                    y[n, c, r, q] = window.max() if kind == "max" else window.sum() / (kh * kw)
    return y


@st.composite
def geometries(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = (draw(st.integers(3, 7)), draw(st.integers(3, 7)))
    assume(all(s + 2 * p >= k for s, p, k in zip(size, padding, kernel)))
    return dict(
        N=draw(st.integers(1, 2)),
        C=draw(st.integers(1, 3)),
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        seed=draw(st.integers(0, 2**16)),
    )


def distinct_input(g):
    """Distinct values 0.1 apart (shuffled): no two entries of a window tie, even after the
    gradient check's 1e-6 nudges, so the max is differentiable everywhere it is probed."""
    shape = (g["N"], g["C"], *g["size"])
    n = int(np.prod(shape))
    return np.random.default_rng(g["seed"]).permutation(n).reshape(shape) * 0.1 - 0.05 * n


LAYERS = {"max": MaxPool2D, "avg": AvgPool2D}


@pytest.mark.parametrize("kind", ["max", "avg"])
@SETTINGS
@given(g=geometries())
def test_forward_matches_nested_loops(backend, kind, g):
    x = np.random.default_rng(g["seed"]).standard_normal((g["N"], g["C"], *g["size"]))
    layer = LAYERS[kind](g["kernel"], g["stride"], g["padding"])
    Y = layer.forward(backend.asarray(x, "float64"))
    stride = g["kernel"] if g["stride"] is None else g["stride"]
    expected = loops_pool2d(x, g["kernel"], stride, g["padding"], kind)
    assert backend.owns(Y)
    assert tuple(Y.shape) == expected.shape == layer.output_shape(x.shape)
    np.testing.assert_allclose(backend.to_numpy(Y), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@SETTINGS
@given(g=geometries())
def test_gradcheck(backend, kind, g):
    # MaxPool2D marks the maxima in the training forward; backward routes dY by the marks
    X = backend.asarray(distinct_input(g), "float64")
    layer = LAYERS[kind](g["kernel"], g["stride"], g["padding"])
    assert xpnn.gradcheck(layer, X, seed=g["seed"]) < 1e-6


def test_global_avg_pool(backend):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    layer = GlobalAvgPool2D()
    Y = layer.forward(backend.asarray(x, "float64"), training=True)
    np.testing.assert_allclose(backend.to_numpy(Y), x.mean(axis=(2, 3)), rtol=1e-12)
    assert tuple(Y.shape) == layer.output_shape(x.shape) == (2, 3)
    dX = backend.to_numpy(layer.backward(backend.asarray(np.arange(6.0).reshape(2, 3), "float64")))
    np.testing.assert_allclose(dX, np.broadcast_to(np.arange(6.0).reshape(2, 3, 1, 1) / 20, x.shape))
    assert xpnn.gradcheck(GlobalAvgPool2D(), backend.asarray(x, "float64")) < 1e-6


def test_max_pool_ties_send_the_gradient_to_the_first_maximum(backend):
    # all-equal windows (as after a ReLU): each window's dY goes to one cell only, its first
    X = backend.asarray(np.zeros((1, 1, 4, 4)), "float64")
    layer = MaxPool2D(2)
    layer.forward(X, training=True)
    dX = backend.to_numpy(layer.backward(backend.asarray(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), "float64")))
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, ::2, ::2] = [[1.0, 2.0], [3.0, 4.0]]
    np.testing.assert_array_equal(dX, expected)
    # overlapping windows: a cell that is the max of two windows collects both gradients
    x = np.array([[[[0.0, 1.0, 0.0], [0.0, 5.0, 0.0], [2.0, 0.0, 3.0]]]])
    layer = MaxPool2D(2, stride=1)
    Y = layer.forward(backend.asarray(x, "float64"), training=True)
    np.testing.assert_array_equal(backend.to_numpy(Y), [[[[5.0, 5.0], [5.0, 5.0]]]])
    dX = backend.to_numpy(layer.backward(backend.asarray(np.ones((1, 1, 2, 2)), "float64")))
    np.testing.assert_array_equal(dX[0, 0], [[0, 0, 0], [0, 4.0, 0], [0, 0, 0]])


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=15, deadline=None)
@given(g=geometries(), dtype=st.sampled_from(["float32", "float64"]), ties=st.booleans())
def test_matches_torch(kind, g, dtype, ties):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(g["seed"])
    shape = (g["N"], g["C"], *g["size"])
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    layer = LAYERS[kind](g["kernel"], g["stride"], g["padding"])
    Y = layer.forward(x, training=True)
    dY = rng.standard_normal(Y.shape).astype(dtype)
    dX = layer.backward(dY)
    tx = torch.tensor(x, requires_grad=True)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    ty = pool(tx, g["kernel"], g["stride"], g["padding"])
    ty.backward(torch.tensor(dY))
    assert Y.dtype == dX.dtype == np.dtype(dtype)
    np.testing.assert_allclose(Y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dX, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [lambda: MaxPool2D(2), lambda: AvgPool2D(3, stride=2, padding=1), GlobalAvgPool2D],
    ids=["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"],
)
def test_float32_stays_float32(backend, make):
    layer = make()
    X = backend.asarray(np.random.default_rng(0).standard_normal((2, 3, 6, 5)), "float32")
    Y = layer.forward(X, training=True)
    dX = layer.backward(backend.xp.ones_like(Y))
    assert Y.dtype == dX.dtype == backend.xp.float32
    assert tuple(dX.shape) == (2, 3, 6, 5)
    assert backend.owns(Y) and backend.owns(dX)


def test_config_round_trip_and_repr():
    layer = MaxPool2D((3, 2), stride=(2, 1), padding=(1, 0))
    config = json.loads(json.dumps(layer.config()))
    assert config == {"kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0]}
    assert MaxPool2D(**config).config() == config
    assert AvgPool2D(**AvgPool2D(2).config()).config() == {"kernel_size": 2, "stride": 2, "padding": 0}
    assert repr(MaxPool2D(2)) == "MaxPool2D(2)"
    assert repr(AvgPool2D(3, stride=1, padding=1)) == "AvgPool2D(3, stride=1, padding=1)"
    assert GlobalAvgPool2D().config() == {}
    assert MaxPool2D(2).output_shape((None, 32, 27, 27)) == (None, 32, 13, 13)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: MaxPool2D(0), "MaxPool2D: kernel_size must be a positive integer or a pair of them, found 0"),
        (lambda: AvgPool2D(2, stride=0), "AvgPool2D: stride must be a positive integer or a pair of them, found 0"),
        (lambda: MaxPool2D(2, padding=-1), "padding must be a non-negative integer or a pair of them, found -1"),
        (
            lambda: MaxPool2D(3, padding=2),
            "padding must be at most half of kernel_size, found padding 2 with kernel_size 3",
        ),
        (lambda: AvgPool2D((2, 4), padding=(1, 3)), "padding must be at most half of kernel_size"),
    ],
)
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make()


def test_forward_errors(backend):
    with pytest.raises(
        ValueError,
        match=r"MaxPool2D\(2\)\.forward: X has shape \(2, 3, 4\), expected \(batch, channels, height, width\)",
    ):
        MaxPool2D(2).forward(backend.asarray(np.zeros((2, 3, 4)), "float32"))
    with pytest.raises(ValueError, match=r"the 5x5 pooling window is larger than the padded input 4x4"):
        AvgPool2D(5).forward(backend.asarray(np.zeros((1, 1, 4, 4)), "float32"))
    with pytest.raises(TypeError, match="X has dtype .*int.*, expected a floating-point array"):
        MaxPool2D(2).forward(backend.asarray(np.zeros((1, 1, 4, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D\(\)\.forward: X has shape \(2, 3\)"):
        GlobalAvgPool2D().forward(backend.asarray(np.zeros((2, 3)), "float32"))
