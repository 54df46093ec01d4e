"""NumPy's convolution in bands of output rows (on one BLAS thread) and its reused buffers
give the generic path's numbers: Backend.conv_forward / conv_backward, im2col + one
product + col2im."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import xpnn
from xpnn.backends import numpy as numpy_backend
from xpnn.backends.base import Backend

GEOMETRIES = [  # N, C, H, W, out, kernel, stride, padding, dilation, bias
    (3, 2, 9, 7, 4, (3, 3), (1, 1), (1, 1), (1, 1), True),
    (2, 3, 11, 8, 5, (3, 2), (2, 1), (1, 0), (1, 2), False),
    (4, 1, 10, 10, 3, (2, 2), (2, 2), (0, 1), (1, 1), True),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("band_bytes", [1, 2000])  # one output row a band; a few rows a band
def test_bands_match_the_generic_path(monkeypatch, geometry, band_bytes):
    N, C, H, W, out, kernel, stride, padding, dilation, bias = geometry
    monkeypatch.setattr(numpy_backend, "CONV_BAND_BYTES", band_bytes)
    be = xpnn.get_backend("numpy")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, C, H, W))
    K = C * kernel[0] * kernel[1]
    W2 = rng.standard_normal((out, K + bias))
    geom = (kernel, stride, padding, dilation)
    bands = numpy_backend._conv_bands(X.shape, *geom, bias, X.itemsize)
    assert len(bands) > 1
    scratch: dict = {}
    for _ in range(2):  # the second time through reused buffers
        with threadpool_limits(1, user_api="blas"):  # bands run on one BLAS thread only
            Y2, kept = be.conv_forward(W2, X, *geom, bias, scratch)
        assert kept.ndim == 4  # X kept: the bands ran
        want_Y2, cols = Backend.conv_forward(be, W2, X, *geom, bias)
        np.testing.assert_allclose(Y2, want_Y2, rtol=1e-12, atol=1e-12)
        dY2 = rng.standard_normal(Y2.shape)
        dW2, dX = be.conv_backward(W2[:, :K], dY2, kept, X.shape, *geom, bias, True, scratch)
        want_dW2, want_dX = Backend.conv_backward(be, W2[:, :K], dY2, cols, X.shape, *geom, bias, True)
        np.testing.assert_allclose(dW2, want_dW2, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dX, want_dX, rtol=1e-12, atol=1e-12)
        assert dX.shape == X.shape
        dW2, none = be.conv_backward(W2[:, :K], dY2, kept, X.shape, *geom, bias, False, scratch)
        assert none is None
        np.testing.assert_allclose(dW2, want_dW2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("band_bytes", [1, 1 << 30])  # in bands; all at once (reused columns)
def test_a_step_on_reused_buffers_matches_a_fresh_layer(monkeypatch, band_bytes):
    monkeypatch.setattr(numpy_backend, "CONV_BAND_BYTES", band_bytes)
    rng = np.random.default_rng(1)
    X1, X2 = rng.standard_normal((2, 4, 2, 6, 6))
    dY1, dY2 = rng.standard_normal((2, 4, 3, 6, 6))
    used, fresh = xpnn.layers.Conv2D(2, 3, 3, padding=1), xpnn.layers.Conv2D(2, 3, 3, padding=1)
    for conv in (used, fresh):
        conv.prepare(X1)
    fresh.params = {k: v.copy() for k, v in used.params.items()}
    with threadpool_limits(1, user_api="blas"):  # bands run on one BLAS thread only
        used.forward(X1, training=True)
        used.backward(dY1)
        X1[...] = X2  # the same array with new values: nothing of the last step may be read
        got = (used.forward(X1, training=True), used.backward(dY2), used.grads["W"], used.grads["b"])
        want = (fresh.forward(X2, training=True), fresh.backward(dY2), fresh.grads["W"], fresh.grads["b"])
    assert used.scratch  # buffers kept between the steps
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
