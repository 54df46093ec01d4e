"""NumPy's convolution in bands of columns (conv_forward / conv_backward on large inputs,
split over threads) gives the generic path's numbers: Backend.conv_forward /
conv_backward, that is im2col, one product and col2im. The sums of dW2 and dX run in
another order, so float64 results agree to rounding (1e-12), not bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backends import numpy as numpy_backend
from xpnn.backends.base import Backend

GEOMETRIES = [  # N, C, H, W, out, kernel, stride, padding, dilation
    (3, 2, 9, 7, 4, (3, 3), (1, 1), (1, 1), (1, 1)),  # rows of 3 windows overlap
    (2, 3, 11, 8, 5, (3, 2), (2, 1), (1, 0), (1, 2)),  # stride 2 down, dilation 2 across, padding 0
    (1, 1, 10, 10, 3, (2, 2), (1, 1), (2, 2), (1, 1)),  # batch 1, one channel, padding 2
    (2, 2, 6, 5, 2, (3, 3), (1, 1), (0, 1), (2, 1)),  # dilation 2 down: rows 4 apart
    (2, 2, 5, 6, 3, (1, 1), (1, 1), (0, 0), (1, 1)),  # 1x1 kernel: windows never overlap
    (2, 5, 6, 7, 3, (3, 3), (1, 1), (1, 1), (1, 1)),  # 5 channels: uneven blocks over 2 or 3 threads
]


def pair(geometry, bias, seed=0):
    N, C, H, W, out, kernel, stride, padding, dilation = geometry
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, C, H, W))
    W2 = rng.standard_normal((out, C * kernel[0] * kernel[1] + bias))
    return X, W2, (kernel, stride, padding, dilation)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("band_bytes", [1 << 20, 1000, 1])  # all rows in one band, a few rows or pixels a band
@pytest.mark.parametrize("workers", [1, 2, 3])  # threads: blocks of channels (3: fewer channels than threads too)
def test_bands_match_the_generic_path(monkeypatch, geometry, bias, band_bytes, workers):
    monkeypatch.setattr(numpy_backend, "CONV_BANDS_FROM", 0)  # every input in bands
    monkeypatch.setattr(numpy_backend, "BAND_BYTES", band_bytes)
    monkeypatch.setattr(numpy_backend.NumpyBackend, "_workers", lambda self, size: workers)
    be = xpnn.get_backend("numpy")
    X, W2, geom = pair(geometry, bias)
    Y2, kept = be.conv_forward(W2, X, *geom, bias)
    if X.shape[1] < workers:  # fewer channels than threads: the columns all at once
        assert kept.ndim == 2
        return
    assert kept.ndim == 4  # the padded input, not the columns: the bands path ran
    want_Y2, cols = Backend.conv_forward(be, W2, X, *geom, bias)
    np.testing.assert_allclose(Y2, want_Y2, rtol=1e-12, atol=1e-12)
    dY2 = np.random.default_rng(1).standard_normal(Y2.shape)
    K = W2.shape[1] - bias
    dW2, dX = be.conv_backward(W2[:, :K], dY2, kept, X.shape, *geom, bias, True)
    want_dW2, want_dX = Backend.conv_backward(be, W2[:, :K], dY2, cols, X.shape, *geom, bias, True)
    assert dW2.shape == want_dW2.shape and dX.shape == X.shape
    np.testing.assert_allclose(dW2, want_dW2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dX, want_dX, rtol=1e-12, atol=1e-12)
    dW2_only, none = be.conv_backward(W2[:, :K], dY2, kept, X.shape, *geom, bias, False)
    assert none is None
    np.testing.assert_allclose(dW2_only, want_dW2, rtol=1e-12, atol=1e-12)


def test_small_inputs_and_stride_across_keep_all_columns_at_once(monkeypatch):
    be = xpnn.get_backend("numpy")
    X, W2, geom = pair(GEOMETRIES[0], True)
    assert be.conv_forward(W2, X, *geom, True)[1].ndim == 2  # below CONV_BANDS_FROM: the columns
    monkeypatch.setattr(numpy_backend, "CONV_BANDS_FROM", 0)
    X, W2, geom = pair((2, 2, 7, 9, 3, (3, 3), (2, 2), (0, 0), (1, 1)), True)
    Y2, cols = be.conv_forward(W2, X, *geom, True)
    assert cols.ndim == 2  # stride 2 across: not in bands
    dW2, dX = be.conv_backward(W2[:, :-1], np.ones_like(Y2), cols, X.shape, *geom, True, True)
    assert dX.shape == X.shape


def test_float32_bands_agree_to_float32_rounding(monkeypatch):
    # the CNN's second convolution at a smaller batch: 32 -> 64 channels, 14x14, 3x3, padding 1
    monkeypatch.setattr(numpy_backend, "CONV_BANDS_FROM", 0)
    be = xpnn.get_backend("numpy")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 32, 14, 14)).astype(np.float32)
    W2 = (rng.standard_normal((64, 289)) / 17).astype(np.float32)
    geom = ((3, 3), (1, 1), (1, 1), (1, 1))
    Y2, kept = be.conv_forward(W2, X, *geom, True)
    want_Y2, cols = Backend.conv_forward(be, W2, X, *geom, True)
    assert Y2.dtype == np.float32 and kept.ndim == 4
    np.testing.assert_allclose(Y2, want_Y2, rtol=1e-5, atol=1e-5)
    dY2 = rng.standard_normal(Y2.shape).astype(np.float32)
    dW2, dX = be.conv_backward(W2[:, :288], dY2, kept, X.shape, *geom, True, True)
    want_dW2, want_dX = Backend.conv_backward(be, W2[:, :288], dY2, cols, X.shape, *geom, True, True)
    assert dW2.dtype == dX.dtype == np.float32
    np.testing.assert_allclose(dW2, want_dW2, rtol=1e-4, atol=1e-3)  # sums of 784 products, in bands
    np.testing.assert_allclose(dX, want_dX, rtol=1e-5, atol=1e-5)


def test_conv2d_layer_in_bands_gradcheck_and_matches_all_at_once(monkeypatch):
    # the layer end to end, its float64 gradients checked by finite differences in bands
    be = xpnn.get_backend("numpy")
    X = be.asarray(np.random.default_rng(3).standard_normal((2, 3, 7, 6)), "float64")
    layer = xpnn.layers.Conv2D(3, 4, 3, stride=(2, 1), padding=1)
    layer.bind(be, be.rng(0), "float64")
    Y_all = layer.forward(X, training=True)
    dX_all = layer.backward(np.ones_like(Y_all))
    dW_all = layer.grads["W"]
    monkeypatch.setattr(numpy_backend, "CONV_BANDS_FROM", 0)
    Y_bands = layer.forward(X, training=True)
    assert layer.saved[0].ndim == 4  # the bands path ran
    dX_bands = layer.backward(np.ones_like(Y_bands))
    np.testing.assert_allclose(Y_bands, Y_all, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dX_bands, dX_all, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dW_all, rtol=1e-12, atol=1e-12)
    errors = xpnn.gradcheck(xpnn.layers.Conv2D(3, 4, 3, stride=(2, 1), padding=1), X, seed=0, details=True)
    assert max(errors.values()) < 1e-6, errors
