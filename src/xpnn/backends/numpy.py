"""NumPy on the CPU: the default backend, and the fast paths that pay on it.

Memory layout. im2col orders its columns (y, x, n), batch last, from an input padded into
(C, H, W, N) memory, so that each window slice is one contiguous run of OW*N numbers
rather than many OW-long rows; the copy of im2col and the adds of col2im then run at
memory speed. Conv2D hands on its output as an NCHW-shaped view of that (C, H, W, N)
memory, and NumPy's elementwise results (ReLU, pooling) follow their input's memory
order, so a conv-ReLU-pool-conv stack never copies a transpose. The helpers below keep
new arrays in the memory order of the arrays they are made from.
"""

from __future__ import annotations

import contextlib

import array_api_compat
import numpy as np

from .base import InPlaceBackend, output_hw

# Below this many multiply-adds per matrix product, a second OpenBLAS thread costs more
# than it saves (measured on 2 cores: 0.5M: 15 us on one thread, 57 us on two), and far
# more when another process keeps the cores busy (xpnn train on the digits: 0.7 s on one
# thread, 4.7-12.9 s on two). Set it to 0 to keep OpenBLAS's own choice.
SMALL_MATMUL = 4_000_000


class NumpyBackend(InPlaceBackend):
    name = "numpy"
    _threads = None  # threadpoolctl's controller, found once (its lookup of the BLAS costs ~0.4 ms)

    def threads_for(self, macs):
        """One BLAS thread for loops of small matrix products (see SMALL_MATMUL); needs
        threadpoolctl, else OpenBLAS's own choice."""
        if macs is None or macs >= SMALL_MATMUL:
            return contextlib.nullcontext()
        if NumpyBackend._threads is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                NumpyBackend._threads = False
            else:
                NumpyBackend._threads = ThreadpoolController()
        if not NumpyBackend._threads:
            return contextlib.nullcontext()
        return NumpyBackend._threads.limit(limits=1, user_api="blas")

    @classmethod
    def create(cls, device=None) -> "NumpyBackend":
        if device is not None and str(device) != "cpu":
            raise ValueError(f'backend "numpy" runs on the CPU only: device must be "cpu" or None, found {device!r}')
        import array_api_compat.numpy as xp

        return cls(xp, "cpu", np)

    @classmethod
    def is_array(cls, a) -> bool:
        return array_api_compat.is_numpy_array(a)

    @classmethod
    def devices(cls) -> list:
        return ["cpu"]

    def device_of(self, a):
        return "cpu"

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def scatter_add(self, target, indices, values):
        np.add.at(target, indices, values)
        return target

    def sum(self, a, axis=None, keepdims=False):
        # the ufunc's reduce is what np.sum runs (same dtypes, same result), without
        # np.sum's Python wrapper: about 1 us of a tiny step's 2 (a small net sums 3 times a step)
        return np.add.reduce(a, axis=axis, keepdims=keepdims)

    def mask_multiply(self, a, mask):
        return a * mask  # NumPy multiplies by booleans directly: no cast pass, a 1-byte mask kept

    def match_layout(self, a, like):
        """``a`` (the shape of ``like``) copied into ``like``'s memory order when they differ.

        NumPy walks an elementwise operation in one memory order for all its operands, so
        when two disagree (an NCHW gradient from Flatten meeting a Conv2D output, which
        lives in (C, H, W, N) memory) one is read across its rows, several times slower
        than copying it into the other's order first.
        """
        if a.strides == like.strides or _axis_order(a) == _axis_order(like):
            return a
        out = np.empty_like(like, dtype=a.dtype)  # like's memory order
        out[...] = a
        return out

    def _canvas(self, like, shape, fill):
        return _in_layout_of(like, shape, fill)  # like's memory order: window slices stay long runs

    def _place(self, out, index, piece, mask, add):
        if mask is not None and not add:
            np.multiply(piece, mask, out=out[index])  # masked and placed in one pass
            return out
        return super()._place(out, index, piece, mask, add)

    def im2col(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), ones_row=False):
        # Pad into (C, H, W, N) memory, take every window as one strided view with the
        # columns' axis order, then copy it once into cols; see the module docstring.
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
        N, C, H, W = X.shape
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        K, M = C * kh * kw, OH * OW * N
        Xp = np.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=X.dtype)
        Xp[:, ph : ph + H, pw : pw + W, :] = X.transpose(1, 2, 3, 0)
        sC, sH, sW, sN = Xp.strides
        view = np.lib.stride_tricks.as_strided(
            Xp, (C, kh, kw, OH, OW, N), (sC, sH * dh, sW * dw, sH * sh, sW * sw, sN), writeable=False
        )
        cols = np.empty((K + ones_row, M), dtype=X.dtype)
        cols[:K].reshape(C, kh, kw, OH, OW, N)[...] = view
        if ones_row:
            cols[K] = 1.0
        return cols

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        # the generic formula in place, through one reusable buffer per shape instead of a
        # temporary per operation (the buffer belongs to the optimizer: ``scratch``)
        key = (tuple(param.shape), param.dtype)
        tmp = scratch.get(key) if scratch is not None else None
        if tmp is None:
            tmp = np.empty_like(param)
            if scratch is not None:
                scratch[key] = tmp
        np.subtract(grad, m, out=tmp)
        tmp *= 1.0 - beta1
        m += tmp
        np.multiply(grad, grad, out=tmp)
        tmp -= v
        tmp *= 1.0 - beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / bias2_sqrt
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        param -= tmp
        return param, m, v

    def allreducer(self, comm, MPI):
        def reduce(flat):  # MPI sums straight into the array's memory
            comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            return flat

        return reduce, "mpi"


def _axis_order(a: np.ndarray) -> list[int]:
    """The axes of ``a`` from outermost to innermost in memory (length-1 axes left out)."""
    order = sorted(range(a.ndim), key=lambda axis: abs(a.strides[axis]), reverse=True)
    return [axis for axis in order if a.shape[axis] > 1]


def _in_layout_of(like: np.ndarray, shape, fill=None) -> np.ndarray:
    """A NumPy array of ``shape`` (filled with ``fill`` unless None), its axes in memory in
    the same order as ``like``'s: np.full_like for another shape (padded, or unpadded)."""
    order = sorted(range(like.ndim), key=lambda axis: abs(like.strides[axis]), reverse=True)  # outermost first
    out = np.empty([shape[axis] for axis in order], dtype=like.dtype).transpose(np.argsort(order))
    if fill is not None:
        out.fill(fill)
    return out
