"""Convolutions: Conv2D on (N, C, H, W) images and Conv1D on (N, C, L) sequences.

Same layout and arithmetic as PyTorch's conv2d/conv1d (a cross-correlation):

    Y[n, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] * Xpad[n, c, y*sh + i*dh, x*sw + j*dw]

Computed as im2col + one matrix product. ``backend.im2col`` copies every window into a
column, cols: (C*kh*kw, OH*OW*N), so the whole layer is ``W2 @ cols`` with
W2 = W.reshape(out, C*kh*kw). Backward is the chain rule through that product:

    dW2 = dY2 @ cols.T        (every weight meets every window it touched)
    dcols = W2.T @ dY2        (each window's share of the input gradient)
    dX = col2im(dcols)        (windows overlap: add the shares back pixel by pixel)

where dY2 is dY laid out as (out, OH*OW*N). The bias rides along in the same products
(the "bias trick"): cols gets a last row of ones and W2 a last column b, so ``W2 @ cols``
adds b, and the dW product yields db = (sum of dY2 over positions) as its last column.
A backend whose compiler copies that extra row slowly (``bias_in_columns`` False: JAX)
adds b and sums db on their own instead.

The columns put the batch index last (see the backend's note on memory layout; a
backend may put it first, ``batch_first_columns``, and Y2 is then (out, N, OH, OW)): Y2 is
then (out, OH, OW, N) in memory and Y is returned as its NCHW-shaped transposed view, so
a following ReLU, pooling or Conv2D reads it without a copy, and dY2 is a free view of the
dY that comes back through them.
"""

from __future__ import annotations

from .. import _checks
from .. import init as initializers
from ..backends import window_output_size
from .base import Layer, register_layer


def as_pair(value, argname: str, where: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair of Python ints."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(not _checks.is_integer(v) or v < minimum for v in pair):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{where}: {argname} must be a {kind} integer or a pair of them, found {value!r}")
    return (int(pair[0]), int(pair[1]))


def plain_pair(pair: tuple[int, int]):
    """A pair for config(): one int where both sides agree (as the user usually wrote it)."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def check_window_fits(where: str, spatial: tuple, kernel, padding, dilation, what: str = "kernel") -> None:
    """Raise a clear error if the (dilated) window is larger than the padded input.

    spatial: the input's spatial sizes, e.g. (H, W); kernel, padding, dilation: pairs.
    """
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(s + 2 * p for s, p in zip(spatial, padding))
    if any(e > s for e, s in zip(extent, padded)):
        x = "x".join
        dilated = f" (dilated to {x(map(str, extent))})" if extent != tuple(kernel) else ""
        raise ValueError(
            f"{where}: the {x(map(str, kernel))} {what}{dilated} is larger than the padded input "
            f"{x(map(str, padded))} (input {x(map(str, spatial))}, padding {x(map(str, padding))}); "
            f"use a larger input, more padding or a smaller {what}"
        )


@register_layer
class Conv2D(Layer):
    """2-D convolution on NCHW images, PyTorch's conv2d layout and arithmetic.

    ``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1)``;
    kernel_size, stride, padding and dilation are an int or an (height, width) pair.

    Shapes: X (N, in_channels, H, W) -> Y (N, out_channels, OH, OW) with
    OH = (H + 2 ph - dh (kh - 1) - 1) // sh + 1 (likewise OW);
    W (out_channels, in_channels, kh, kw); b (out_channels,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias: bool = True,
        init="he_uniform",
    ):
        super().__init__()
        where = type(self).__name__
        self.in_channels = _checks.positive_int(in_channels, "in_channels", where)
        self.out_channels = _checks.positive_int(out_channels, "out_channels", where)
        self._set_geometry(kernel_size, stride, padding, dilation, where)
        self.use_bias = _checks.boolean(bias, "bias", where)
        self.init = initializers.get(init)

    def _set_geometry(self, kernel_size, stride, padding, dilation, where):
        self.kernel_size = as_pair(kernel_size, "kernel_size", where, 1)
        self.stride = as_pair(stride, "stride", where, 1)
        self.padding = as_pair(padding, "padding", where, 0)
        self.dilation = as_pair(dilation, "dilation", where, 1)

    def _weight_shape(self) -> tuple:
        return (self.out_channels, self.in_channels, *self.kernel_size)

    def build(self, X=None) -> None:
        self.params["W"] = self.init(self.generator, self._weight_shape(), self.dtype)
        if self.use_bias:
            self.params["b"] = initializers.zeros(self.generator, (self.out_channels,), self.dtype)

    def _geometry(self):
        return self.kernel_size, self.stride, self.padding, self.dilation

    def _check_input(self, X, expected: str, ndim: int) -> None:
        where = self._where()
        if X.ndim != ndim:
            raise ValueError(f"{where}: X has shape {tuple(X.shape)}, expected {expected}")
        if not self.xp.isdtype(X.dtype, "real floating"):
            raise TypeError(f"{where}: X has dtype {X.dtype}, expected a floating-point array")
        if X.shape[1] != self.in_channels:
            raise ValueError(
                f"{where}: X has {X.shape[1]} channels, expected {self.in_channels} "
                f"(X shape {tuple(X.shape)}, expected {expected})"
            )

    def forward(self, X, training=False):
        """X: (N, in_channels, H, W) -> Y: (N, out_channels, OH, OW)."""
        self.prepare(X)
        self._check_input(X, f"(batch, {self.in_channels}, height, width)", 4)
        kernel, _, padding, dilation = self._geometry()
        check_window_fits(self._where(), tuple(X.shape[2:]), kernel, padding, dilation)
        return self._forward2d(X, training)

    def backward(self, dY, need_dX=True):
        """dY: (N, out_channels, OH, OW) -> dX: (N, in_channels, H, W); sets grads W and b."""
        return self._backward2d(dY, need_dX)

    # ---- the computation, shared with Conv1D (which runs it with H = 1) -----------------

    def _forward2d(self, X, training):
        xp, backend = self.xp, self.backend
        kernel, stride, padding, dilation = self._geometry()
        N, _, height, width = X.shape
        OH = window_output_size(height, kernel[0], stride[0], padding[0], dilation[0])
        OW = window_output_size(width, kernel[1], stride[1], padding[1], dilation[1])

        ones_row = self.use_bias and backend.bias_in_columns
        W2 = xp.reshape(self.params["W"], (self.out_channels, -1))  # (out, C*kh*kw)
        if ones_row:
            W2 = xp.concat([W2, self.params["b"][:, None]], axis=1)  # (out, C*kh*kw + 1)
        # Y2 = W2 @ im2col(X): (out, OH*OW*N); kept: what backward needs (the columns, or
        # what the backend makes them from again)
        Y2, kept = backend.conv_forward(W2, X, kernel, stride, padding, dilation, ones_row)
        if self.use_bias and not ones_row:
            Y2 = Y2 + self.params["b"][:, None]
        self.saved = (kept, tuple(X.shape), (OH, OW), ones_row) if training else None
        if backend.batch_first_columns:  # (out, N, OH, OW) -> (N, out, OH, OW)
            return xp.permute_dims(xp.reshape(Y2, (self.out_channels, N, OH, OW)), (1, 0, 2, 3))
        # (out, OH, OW, N) -> (N, out, OH, OW): a transposed view on NumPy, no copy
        return xp.permute_dims(xp.reshape(Y2, (self.out_channels, OH, OW, N)), (3, 0, 1, 2))

    def _backward2d(self, dY, need_dX):
        xp = self.xp
        kept, X_shape, (OH, OW), ones_row = self.take_saved()
        N = X_shape[0]
        # (N, out, OH, OW) -> (out, OH*OW*N) in the columns' order: a free view on NumPy
        # when dY has Y's memory layout
        order = (1, 0, 2, 3) if self.backend.batch_first_columns else (1, 2, 3, 0)
        dY2 = xp.reshape(xp.permute_dims(dY, order), (self.out_channels, OH * OW * N))
        W = self.params["W"]
        W2 = xp.reshape(W, (self.out_channels, -1))  # (out, C*kh*kw)
        # dW2 = dY2 @ cols.T: (out, C*kh*kw [+ 1]); dX = col2im(W2.T @ dY2), None unless need_dX
        dW2, dX = self.backend.conv_backward(W2, dY2, kept, X_shape, *self._geometry(), ones_row, need_dX)
        K = W2.shape[1]
        self.grads["W"] = xp.reshape(dW2[:, :K], W.shape)
        if self.use_bias:  # the ones row's weight, or the sum over positions where cols has no ones row
            self.grads["b"] = dW2[:, K] if ones_row else xp.sum(dY2, axis=1)
        return dX

    # ---- description --------------------------------------------------------------------

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": plain_pair(self.kernel_size),
            "stride": plain_pair(self.stride),
            "padding": plain_pair(self.padding),
            "dilation": plain_pair(self.dilation),
            "bias": self.use_bias,
            "init": initializers.name_of(self.init),
        }

    def output_shape(self, input_shape):
        kernel, stride, padding, dilation = self._geometry()
        sizes = (window_output_size(s, *g) for s, g in zip(input_shape[2:], zip(kernel, stride, padding, dilation)))
        return (input_shape[0], self.out_channels, *sizes)

    def __repr__(self) -> str:
        return self.short_repr(3)  # in_channels, out_channels, kernel_size


@register_layer
class Conv1D(Conv2D):
    """1-D convolution on (N, C, L) sequences, PyTorch's conv1d layout and arithmetic.

    ``Conv1D(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1)``
    with int geometry. It runs Conv2D's computation on X viewed as (N, C, 1, L).

    Shapes: X (N, in_channels, L) -> Y (N, out_channels, OL) with
    OL = (L + 2 padding - dilation (kernel_size - 1) - 1) // stride + 1;
    W (out_channels, in_channels, kernel_size); b (out_channels,).
    """

    def _set_geometry(self, kernel_size, stride, padding, dilation, where):
        k = _checks.positive_int(kernel_size, "kernel_size", where)
        s = _checks.positive_int(stride, "stride", where)
        d = _checks.positive_int(dilation, "dilation", where)
        padding = _checks.non_negative_int(padding, "padding", where)
        # Stored as the 2-D geometry of a height-1 image.
        self.kernel_size, self.stride, self.padding, self.dilation = (1, k), (1, s), (0, padding), (1, d)

    def _weight_shape(self) -> tuple:
        return (self.out_channels, self.in_channels, self.kernel_size[1])

    def forward(self, X, training=False):
        """X: (N, in_channels, L) -> Y: (N, out_channels, OL)."""
        self.prepare(X)
        self._check_input(X, f"(batch, {self.in_channels}, length)", 3)
        N, C, L = X.shape
        check_window_fits(self._where(), (L,), self.kernel_size[1:], self.padding[1:], self.dilation[1:])
        Y = self._forward2d(self.xp.reshape(X, (N, C, 1, L)), training)
        return self.xp.reshape(Y, (N, self.out_channels, Y.shape[3]))

    def backward(self, dY, need_dX=True):
        """dY: (N, out_channels, OL) -> dX: (N, in_channels, L); sets grads W and b."""
        N, O, OL = dY.shape
        dX = self._backward2d(self.xp.reshape(dY, (N, O, 1, OL)), need_dX)
        if dX is None:
            return None
        return self.xp.reshape(dX, (N, self.in_channels, dX.shape[3]))

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size[1],
            "stride": self.stride[1],
            "padding": self.padding[1],
            "dilation": self.dilation[1],
            "bias": self.use_bias,
            "init": initializers.name_of(self.init),
        }

    def output_shape(self, input_shape):
        _, k = self.kernel_size
        size = window_output_size(input_shape[2], k, self.stride[1], self.padding[1], self.dilation[1])
        return (input_shape[0], self.out_channels, size)
