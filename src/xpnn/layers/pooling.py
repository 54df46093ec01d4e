"""Pooling on NCHW images: MaxPool2D, AvgPool2D and GlobalAvgPool2D (PyTorch's arithmetic).

A pooling window at output (y, x) covers Xpad[:, :, y*sh + i, x*sw + j] for the kernel
offsets (i, j). ``backend.window_slices`` returns those inputs as kh*kw strided slices of
shape (N, C, OH, OW), one per offset, so pooling is an elementwise reduction over a short
list of arrays (views on NumPy: no window copy), and its backward sends each slice its
share of dY through ``backend.add_window_slices``, which adds it back where the slice
came from (overlapping windows add up).
"""

from __future__ import annotations

from ..backends import window_output_size
from .base import Layer, register_layer
from .conv import as_pair, check_window_fits, plain_pair


class _Pool2D(Layer):
    """Shared geometry, checks and description of MaxPool2D and AvgPool2D."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        where = type(self).__name__
        self.kernel_size = as_pair(kernel_size, "kernel_size", where, 1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", where, 1)
        self.padding = as_pair(padding, "padding", where, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            # Else a window could lie entirely in the padding (PyTorch refuses this too).
            raise ValueError(
                f"{where}: padding must be at most half of kernel_size, found padding "
                f"{padding!r} with kernel_size {kernel_size!r}"
            )

    def _geometry(self):
        return self.kernel_size, self.stride, self.padding, (1, 1)

    def _check(self, X):
        where = self._where()
        if X.ndim != 4:
            raise ValueError(f"{where}: X has shape {tuple(X.shape)}, expected (batch, channels, height, width)")
        if not self.xp.isdtype(X.dtype, "real floating"):
            raise TypeError(f"{where}: X has dtype {X.dtype}, expected a floating-point array")
        check_window_fits(where, tuple(X.shape[2:]), self.kernel_size, self.padding, (1, 1), what="pooling window")

    def config(self) -> dict:
        return {
            "kernel_size": plain_pair(self.kernel_size),
            "stride": plain_pair(self.stride),
            "padding": plain_pair(self.padding),
        }

    def output_shape(self, input_shape):
        sizes = (
            window_output_size(s, k, st, p)
            for s, k, st, p in zip(input_shape[2:], self.kernel_size, self.stride, self.padding)
        )
        return (*input_shape[:2], *sizes)

    def __repr__(self) -> str:
        config = self.config()
        args = [str(config.pop("kernel_size"))]
        if self.stride != self.kernel_size:
            args.append(f"stride={config['stride']!r}")
        if self.padding != (0, 0):
            args.append(f"padding={config['padding']!r}")
        return f"{type(self).__name__}({', '.join(args)})"


@register_layer
class MaxPool2D(_Pool2D):
    """The maximum of each window; the gradient goes to the window's arg-max.

    ``MaxPool2D(kernel_size, stride=None, padding=0)``: stride defaults to kernel_size
    (non-overlapping windows); padding is filled with -inf, so it never wins. On ties the
    first maximum in row-major window order gets the gradient, as in PyTorch.

    Shapes: X (N, C, H, W) -> Y (N, C, OH, OW), OH = (H + 2 ph - kh) // sh + 1 (likewise OW).
    """

    def forward(self, X, training=False):
        """X: (N, C, H, W) -> Y: (N, C, OH, OW)."""
        self.prepare(X)
        self._check(X)
        # mark the maxima now, while X is fresh in cache: backward needs only the marks (and
        # Y, for its memory layout); inference pays nothing and keeps nothing
        Y, firsts = self.backend.window_max(X, *self._geometry(), firsts=training)
        self.saved = (firsts, Y, tuple(X.shape)) if training else None
        return Y

    def backward(self, dY, need_dX=True):
        """dY: (N, C, OH, OW) -> dX: (N, C, H, W), dY routed to each window's arg-max."""
        firsts, Y, X_shape = self.take_saved()
        backend = self.backend
        dY = backend.match_layout(dY, Y)  # walk dY in Y's memory order (NumPy speed only)
        # each offset gets dY where it is its window's first maximum, 0 elsewhere
        return backend.add_window_slices([dY] * len(firsts), X_shape, *self._geometry(), masks=firsts)


@register_layer
class AvgPool2D(_Pool2D):
    """The mean of each window; backward spreads dY / (kh * kw) over the window.

    ``AvgPool2D(kernel_size, stride=None, padding=0)``: padding counts as zeros in the
    mean (PyTorch's default count_include_pad=True), so every window divides by kh * kw.

    Shapes: X (N, C, H, W) -> Y (N, C, OH, OW), OH = (H + 2 ph - kh) // sh + 1 (likewise OW).
    """

    def forward(self, X, training=False):
        """X: (N, C, H, W) -> Y: (N, C, OH, OW)."""
        self.prepare(X)
        self._check(X)
        pieces = self.backend.window_slices(X, *self._geometry())
        Y = pieces[0] + pieces[1] if len(pieces) > 1 else pieces[0] * 1.0  # a fresh array
        for piece in pieces[2:]:
            Y += piece
        Y *= 1.0 / len(pieces)
        self.saved = tuple(X.shape) if training else None  # a shape, no arrays
        return Y

    def backward(self, dY, need_dX=True):
        """dY: (N, C, OH, OW) -> dX: (N, C, H, W): every window cell gets dY / (kh * kw)."""
        X_shape = self.take_saved()
        kh, kw = self.kernel_size
        share = dY * (1.0 / (kh * kw))
        return self.backend.add_window_slices([share] * (kh * kw), X_shape, *self._geometry())


@register_layer
class GlobalAvgPool2D(Layer):
    """The mean over all spatial positions of each channel.

    Shapes: X (N, C, H, W) -> Y (N, C); backward spreads dY / (H * W) over each channel.
    """

    def forward(self, X, training=False):
        """X: (N, C, H, W) -> Y: (N, C)."""
        self.prepare(X)
        if X.ndim != 4:
            raise ValueError(
                f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, channels, height, width)"
            )
        if not self.xp.isdtype(X.dtype, "real floating"):
            raise TypeError(f"{self._where()}: X has dtype {X.dtype}, expected a floating-point array")
        self.saved = tuple(X.shape) if training else None  # a shape, no arrays
        return self.xp.mean(X, axis=(2, 3))

    def backward(self, dY, need_dX=True):
        """dY: (N, C) -> dX: (N, C, H, W)."""
        X_shape = self.take_saved()
        N, C, H, W = X_shape
        share = dY[:, :, None, None] * (1.0 / (H * W))  # (N, C, 1, 1)
        return share * self.xp.ones(X_shape, dtype=dY.dtype, device=self.backend.device)  # broadcast to a real array

    def output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def __repr__(self) -> str:
        return "GlobalAvgPool2D()"
