"""Conv2D and Conv1D: forward against direct nested loops and against PyTorch, float64
gradient checks on every backend (hypothesis picks kernel, stride, padding, dilation and odd
sizes), im2col/col2im as an adjoint pair, float32 kept, config round trip, error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.backends import window_output_size
from xpnn.layers.conv import Conv1D, Conv2D

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def loops_conv2d(x, w, b, stride, padding, dilation):
    """The definition, one output number at a time: x (N, C, H, W), w (O, C, kh, kw)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph : ph + H, pw : pw + W] = x
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for r in range(OH):
                for c in range(OW):
                    total = b[o]
                    for ch in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                total += w[o, ch, i, j] * xp[n, ch, r * sh + i * dh, c * sw + j * dw]
                    y[n, o, r, c] = total
    return y


@st.composite
def geometries(draw, max_channels=2):
    """Small conv problems whose (dilated) kernel fits the padded input."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = (draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    assume(all(s + 2 * p >= d * (k - 1) + 1 for s, p, d, k in zip(size, padding, dilation, kernel)))
    return dict(
        N=draw(st.integers(1, 2)),
        C=draw(st.integers(1, max_channels)),
        O=draw(st.integers(1, max_channels)),
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        seed=draw(st.integers(0, 2**16)),
    )


def make_conv(g, bias=True):
    return Conv2D(
        g["C"], g["O"], g["kernel"], stride=g["stride"], padding=g["padding"], dilation=g["dilation"], bias=bias
    )


def random_input(g):
    return np.random.default_rng(g["seed"]).standard_normal((g["N"], g["C"], *g["size"]))


@SETTINGS
@given(g=geometries(max_channels=3))
def test_conv2d_forward_matches_nested_loops(backend, g):
    x = random_input(g)
    layer = make_conv(g)
    layer.bind(backend, backend.rng(g["seed"]), "float64")
    layer.params["b"] = backend.asarray(np.random.default_rng(1).standard_normal(g["O"]), "float64")
    Y = layer.forward(backend.asarray(x, "float64"))
    w, b = backend.to_numpy(layer.params["W"]), backend.to_numpy(layer.params["b"])
    expected = loops_conv2d(x, w, b, g["stride"], g["padding"], g["dilation"])
    assert backend.owns(Y)
    assert tuple(Y.shape) == expected.shape == layer.output_shape(x.shape)
    np.testing.assert_allclose(backend.to_numpy(Y), expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(g=geometries(), bias=st.booleans())
def test_conv2d_gradcheck(backend, g, bias):
    X = backend.asarray(random_input(g), "float64")
    errors = xpnn.gradcheck(make_conv(g, bias=bias), X, seed=g["seed"], details=True)
    assert set(errors) == ({"input", "W", "b"} if bias else {"input", "W"})
    assert max(errors.values()) < 1e-6, errors


@SETTINGS
@given(
    N=st.integers(1, 2),
    C=st.integers(1, 2),
    O=st.integers(1, 2),
    L=st.integers(3, 9),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    d=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_conv1d_forward_and_gradcheck(backend, N, C, O, L, k, s, p, d, seed):
    assume(L + 2 * p >= d * (k - 1) + 1)
    x = np.random.default_rng(seed).standard_normal((N, C, L))
    layer = Conv1D(C, O, k, stride=s, padding=p, dilation=d)
    layer.bind(backend, backend.rng(seed), "float64")
    layer.params["b"] = backend.asarray(np.random.default_rng(1).standard_normal(O), "float64")
    Y = layer.forward(backend.asarray(x, "float64"))
    w, b = backend.to_numpy(layer.params["W"]), backend.to_numpy(layer.params["b"])
    assert w.shape == (O, C, k)
    # a 1-D convolution is a 2-D one on a height-1 image
    expected = loops_conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, s), (0, p), (1, d))[:, :, 0, :]
    assert tuple(Y.shape) == expected.shape == layer.output_shape(x.shape)
    np.testing.assert_allclose(backend.to_numpy(Y), expected, rtol=1e-12, atol=1e-12)
    assert (
        xpnn.gradcheck(Conv1D(C, O, k, stride=s, padding=p, dilation=d), backend.asarray(x, "float64"), seed=seed)
        < 1e-6
    )


@settings(max_examples=15, deadline=None)
@given(g=geometries(max_channels=4), dtype=st.sampled_from(["float32", "float64"]))
def test_conv2d_matches_torch(g, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    be = xpnn.get_backend("numpy")
    x = random_input(g).astype(dtype)
    layer = make_conv(g)
    layer.bind(be, be.rng(g["seed"]), dtype)
    layer.params["b"] = be.asarray(np.random.default_rng(2).standard_normal(g["O"]), dtype)
    Y = layer.forward(x, training=True)
    dY = np.random.default_rng(3).standard_normal(Y.shape).astype(dtype)
    dX = layer.backward(dY)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(np.array(layer.params["W"]), requires_grad=True)
    tb = torch.tensor(np.array(layer.params["b"]), requires_grad=True)
    ty = F.conv2d(tx, tw, tb, stride=g["stride"], padding=g["padding"], dilation=g["dilation"])
    ty.backward(torch.tensor(dY))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dX, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.grads["W"], tw.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.grads["b"], tb.grad.numpy(), **tol)


def test_conv1d_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 11))
    layer = Conv1D(3, 4, 3, stride=2, padding=2, dilation=2)
    Y = layer.forward(x)
    ref = torch.nn.functional.conv1d(
        torch.tensor(x),
        torch.tensor(np.array(layer.params["W"])),
        torch.tensor(np.array(layer.params["b"])),
        stride=2,
        padding=2,
        dilation=2,
    )
    np.testing.assert_allclose(Y, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_float32_stays_float32(backend):
    X = backend.asarray(np.random.default_rng(0).standard_normal((2, 3, 6, 5)), "float32")
    layer = Conv2D(3, 4, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2))
    Y = layer.forward(X, training=True)
    dX = layer.backward(backend.xp.ones_like(Y))
    assert (
        Y.dtype
        == dX.dtype
        == layer.params["W"].dtype
        == layer.grads["W"].dtype
        == layer.grads["b"].dtype
        == backend.xp.float32
    )
    assert tuple(dX.shape) == (2, 3, 6, 5)
    assert backend.owns(Y) and backend.owns(dX) and backend.owns(layer.grads["W"])
    X1 = backend.asarray(np.random.default_rng(0).standard_normal((2, 3, 7)), "float32")
    layer1 = Conv1D(3, 2, 3)
    Y1 = layer1.forward(X1, training=True)
    assert Y1.dtype == layer1.backward(backend.xp.ones_like(Y1)).dtype == backend.xp.float32


def test_numpy_integer_sizes(backend):
    layer = Conv2D(np.int64(2), np.int32(3), (np.int64(3), 2), stride=np.int64(2))
    assert json.loads(json.dumps(layer.config()))["kernel_size"] == [3, 2]
    assert layer.config()["in_channels"] == 2 and type(layer.config()["out_channels"]) is int
    Y = layer.forward(backend.asarray(np.ones((1, 2, 5, 5)), "float32"))
    assert tuple(Y.shape) == (1, 3, 2, 2)
    assert Conv1D(np.int64(2), 3, np.int64(3)).config()["kernel_size"] == 3


def test_default_init_is_he_uniform_with_conv_fan_in():
    layer = Conv2D(8, 16, 3)
    layer.bind(xpnn.get_backend("numpy"), xpnn.get_backend("numpy").rng(0), "float32")
    W, b = np.asarray(layer.params["W"]), np.asarray(layer.params["b"])
    limit = math.sqrt(6.0 / (8 * 3 * 3))  # fan_in = in_channels * kh * kw
    assert W.shape == (16, 8, 3, 3) and b.shape == (16,)
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.9 * limit
    assert not b.any()
    assert Conv1D(4, 2, 5, bias=False).config()["bias"] is False


# ---- the window primitives on the backend -------------------------------------------------


@SETTINGS
@given(g=geometries())
def test_im2col_and_col2im_are_adjoint(backend, g):
    """<im2col(X), C> == <X, col2im(C)>: col2im is exactly the transpose of im2col, which is
    what backward needs; also cols' layout is the documented one."""
    rng = np.random.default_rng(g["seed"])
    x = random_input(g)
    geom = (g["kernel"], g["stride"], g["padding"], g["dilation"])
    cols = backend.to_numpy(backend.im2col(backend.asarray(x, "float64"), *geom))
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geom
    OH, OW = (window_output_size(s, k, st_, p, d) for s, k, st_, p, d in zip(g["size"], *geom))
    assert cols.shape == (g["C"] * kh * kw, g["N"] * OH * OW)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, i, j, y, xx = (rng.integers(0, m) for m in (g["N"], g["C"], kh, kw, OH, OW))
    column = (n * OH + y) * OW + xx if backend.batch_first_columns else (y * OW + xx) * g["N"] + n
    assert cols[(c * kh + i) * kw + j, column] == xpad[n, c, y * sh + i * dh, xx * sw + j * dw]
    C = rng.standard_normal(cols.shape)
    back = backend.to_numpy(backend.col2im(backend.asarray(C, "float64"), x.shape, *geom))
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * C), np.sum(x * back), rtol=1e-10)


def test_window_output_size_is_pytorch_formula():
    assert window_output_size(28, 3) == 26
    assert window_output_size(28, 3, padding=1) == 28
    assert window_output_size(7, 3, stride=2) == 3
    assert window_output_size(7, 3, dilation=2) == 3
    assert window_output_size(5, 2, stride=2) == 2  # floor: the last row is dropped


# ---- description and errors ---------------------------------------------------------------


def test_config_round_trip_and_repr():
    layer = Conv2D(3, 16, (3, 5), stride=2, padding=(1, 2), dilation=1, bias=False, init="he_normal")
    config = json.loads(json.dumps(layer.config()))
    assert config == {
        "in_channels": 3,
        "out_channels": 16,
        "kernel_size": [3, 5],
        "stride": 2,
        "padding": [1, 2],
        "dilation": 1,
        "bias": False,
        "init": "he_normal",
    }
    assert Conv2D(**config).config() == config
    assert repr(Conv2D(3, 16, 3)) == "Conv2D(3, 16, 3)"
    assert repr(layer) == "Conv2D(3, 16, [3, 5], stride=2, padding=[1, 2], bias=False, init='he_normal')"
    c1 = Conv1D(2, 4, 5, stride=2, padding=1, dilation=3)
    assert Conv1D(**json.loads(json.dumps(c1.config()))).config() == c1.config()
    assert c1.config()["kernel_size"] == 5
    assert c1.output_shape((8, 2, 20)) == (8, 4, 5)  # (20 + 2 - 3*4 - 1) // 2 + 1
    assert Conv2D(1, 32, 3, padding=1).output_shape((None, 1, 28, 28)) == (None, 32, 28, 28)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_channels=0, out_channels=4, kernel_size=3), "in_channels must be a positive integer, found 0"),
        (dict(in_channels=3, out_channels=2.0, kernel_size=3), "out_channels must be a positive integer, found 2.0"),
        (dict(in_channels=3, out_channels=4, kernel_size=0), "kernel_size must be a positive integer or a pair"),
        (
            dict(in_channels=3, out_channels=4, kernel_size=(3, 3, 3)),
            "kernel_size must be a positive integer or a pair",
        ),
        (dict(in_channels=3, out_channels=4, kernel_size=3, stride=0), "stride must be a positive integer"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, padding=-1), "padding must be a non-negative integer"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, dilation=(1, 0)), "dilation must be a positive integer"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, bias="yes"), "bias must be True or False"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, init="nope"), "init must be a callable or one of"),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Conv2D(**kwargs)


def test_conv1d_constructor_rejects_pairs():
    with pytest.raises(ValueError, match="Conv1D: kernel_size must be a positive integer, found"):
        Conv1D(3, 4, (3, 3))
    with pytest.raises(ValueError, match="Conv1D: padding must be a non-negative integer, found -1"):
        Conv1D(3, 4, 3, padding=-1)


def test_forward_errors(backend):
    X = backend.asarray(np.zeros((2, 4, 8, 8)), "float32")
    with pytest.raises(ValueError, match=r"^Conv2D\(3, 16, 3\)\.forward: X has 4 channels, expected 3"):
        Conv2D(3, 16, 3).forward(X)
    with pytest.raises(ValueError, match=r"X has shape \(2, 4, 8\), expected \(batch, 4, height, width\)"):
        Conv2D(4, 16, 3).forward(backend.asarray(np.zeros((2, 4, 8)), "float32"))
    with pytest.raises(
        ValueError, match=r"the 5x5 kernel is larger than the padded input 4x4 \(input 4x4, padding 0x0\)"
    ):
        Conv2D(4, 2, 5).forward(backend.asarray(np.zeros((1, 4, 4, 4)), "float32"))
    with pytest.raises(ValueError, match=r"the 3x3 kernel \(dilated to 5x5\) is larger than the padded input 6x4"):
        Conv2D(4, 2, 3, padding=(1, 0), dilation=2).forward(backend.asarray(np.zeros((1, 4, 4, 4)), "float32"))
    with pytest.raises(TypeError, match="X has dtype .*int.*, expected a floating-point array"):
        Conv2D(4, 2, 3).forward(backend.asarray(np.zeros((1, 4, 4, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"Conv1D\(2, 3, 3\)\.forward: X has 4 channels, expected 2"):
        Conv1D(2, 3, 3).forward(backend.asarray(np.zeros((1, 4, 9)), "float32"))
    with pytest.raises(ValueError, match=r"the 7 kernel is larger than the padded input 6 \(input 4, padding 1\)"):
        Conv1D(2, 3, 7, padding=1).forward(backend.asarray(np.zeros((1, 2, 4)), "float32"))
