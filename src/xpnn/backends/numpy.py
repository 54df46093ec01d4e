"""NumPy on the CPU: the default backend, and the fast paths that pay on it.

Memory layout. im2col orders its columns (y, x, n), batch last, from an input padded into
(C, H, W, N) memory, so that each window slice is one contiguous run of OW*N numbers
rather than many OW-long rows; the copy of im2col and the adds of col2im then run at
memory speed. Conv2D hands on its output as an NCHW-shaped view of that (C, H, W, N)
memory, and NumPy's elementwise results (ReLU, pooling) follow their input's memory
order, so a conv-ReLU-pool-conv stack never copies a transpose. The helpers below keep
new arrays in the memory order of the arrays they are made from.

Threads. NumPy runs an elementwise operation on one core, while its BLAS runs matrix
products on several: in a convolutional net the copies of im2col, the adds of col2im and
the masked multiplies of ReLU and pooling would then be a serial half of the step. The
kernels below split large arrays into as many parts as NumPy's BLAS may use threads
(threadpoolctl's setting, so ``threadpool_limits`` and ``--threads`` hold here too) and
run the parts at once; NumPy releases the GIL inside each part. Every part writes its own
slice of the output, so the result is the same as one serial pass, bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import array_api_compat
import numpy as np

from . import malloc, openblas
from .base import InPlaceBackend, output_hw, register_backend, scatter_plan, window_index

# Below this many multiply-adds per matrix product, a second OpenBLAS thread costs more
# than it saves (measured on 2 cores: 0.5M: 15 us on one thread, 57 us on two), and far
# more when another process keeps the cores busy (xpnn train on the digits: 0.7 s on one
# thread, 4.7-12.9 s on two). Set it to 0 to keep OpenBLAS's own choice.
SMALL_MATMUL = 4_000_000

# Below this many elements a kernel runs on one thread: handing a part to another thread
# costs some tens of microseconds, what a pass over ~256K floats takes.
PARALLEL_MIN = 1 << 18
# A kernel that makes several passes over an array (max pooling's maxima and first-max
# marks, its backward's kh*kw slices) walks it in blocks of about this many bytes, each
# block through all its passes before the next: every pass after the first then reads the
# block from the core's L2 cache instead of memory (in a CNN step: a third off both).
# Smaller blocks pay more in per-call overhead than they gain.
BLOCK_BYTES = 1 << 20
# The same when the blocks are split over threads, where fewer, longer NumPy calls win more
# than the cache loses (each call takes the GIL, which the other threads also take between
# their calls): in the CNN step on 2 threads, 4 MiB blocks take the two pooling layers from
# about 8.2 ms to 6.1 ms, forward and backward; on one thread 4 MiB was 10% slower than 1 MiB.
THREADED_BLOCK_BYTES = 4 << 20
# Adam zeroes the subnormals of its moments every this many steps, not every step: the
# check and the masked writes cost a third of an update even when there are none (the
# usual case). A moment decaying under a gradient that stays 0 would spend ~140 steps in
# the subnormal range and then stick there; flushed, it is slow for at most
# FLUSH_EVERY - 1 steps, and none outlive a flush.
FLUSH_EVERY = 16

# Before the first kernel runs in parts, OpenBLAS's idle threads are told to sleep at once
# rather than spin for ~0.1 s after each product on the cores the parts run on (see
# backends/openblas.py: a CNN step ~20% faster on 2 cores); False keeps OpenBLAS's default.
SHORT_BLAS_SPIN = True
# When the first kernel runs on a large array, glibc's malloc is told to keep freed large
# blocks for reuse instead of returning them to the system each step (see
# backends/malloc.py: a CNN step's ~1200 page faults -> 6); False leaves malloc as it is.
KEEP_FREED_MEMORY = True


@functools.lru_cache(maxsize=256)  # bounded: a learning-rate schedule brings a new value every step
def _constants(dtype, *values) -> tuple:
    """NumpyBackend.constants: NumPy converts a Python float again in every operation
    (~0.25 us, more than the arithmetic of a small net's arrays); a 0-d array of the
    array's own float dtype gives the same numbers (NEP 50 casts the float to that dtype
    either way) at the cost of an array operand. Read-only, so that no in-place operation
    changes one; other dtypes, and values other than floats, pass as given."""
    native_float = isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.isnative
    if not native_float or not all(type(v) is float for v in values):
        return values
    made = tuple(np.asarray(v, dtype=dtype) for v in values)
    for a in made:
        a.flags.writeable = False
    return made


_pool: ThreadPoolExecutor | None = None  # the kernels' worker threads, made at first use
_inside = threading.local()  # .part is True while this thread runs a part
_large_seen = False  # a kernel ran on a large array in this process (malloc is tuned then)


def _forget_pool() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's threads: it makes its own


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@register_backend
class NumpyBackend(InPlaceBackend):
    name = "numpy"
    _threads = None  # threadpoolctl's controller, found once (its lookup of the BLAS costs ~0.4 ms)
    _blas = None  # threadpoolctl's controller of NumPy's own BLAS (False: not found)

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

    def _workers(self, size: int) -> int:
        """How many threads a kernel over ``size`` elements uses: NumPy's BLAS thread count
        (threadpoolctl), 1 for small arrays or where threadpoolctl is missing."""
        if size < PARALLEL_MIN or getattr(_inside, "part", False):
            return 1  # small, or inside a part already: parts never wait on parts (no deadlock)
        global _large_seen
        if not _large_seen:
            _large_seen = True
            if KEEP_FREED_MEMORY:
                malloc.keep_freed_memory()
        blas = self._own_blas()
        return max(1, min(blas.num_threads, os.cpu_count() or 1)) if blas else 1

    @staticmethod
    def _own_blas():
        """threadpoolctl's controller of NumPy's BLAS, looked up once (False: not found)."""
        if NumpyBackend._blas is None:
            NumpyBackend._blas = _numpy_blas()
        return NumpyBackend._blas

    def _in_parts(self, n: int, size: int, part, workers: int | None = None) -> None:
        """``part(lo, hi)`` over [0, n) in as many pieces as ``_workers(size)`` (or
        ``workers``) allows, at once; each call must write only its own slice (lo:hi) of
        the output."""
        k = min(self._workers(size) if workers is None else workers, n)
        if k <= 1:
            part(0, n)
            return
        global _pool
        if _pool is None:  # the first kernel in parts: OpenBLAS's idle threads would spin on its cores
            if SHORT_BLAS_SPIN and (blas := _numpy_blas()):  # found afresh: once a process
                openblas.shorten_spin(blas.filepath)
            _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="xpnn-numpy")
        bounds = [n * i // k for i in range(k + 1)]
        futures = [_pool.submit(_run_part, part, bounds[i], bounds[i + 1]) for i in range(1, k)]
        try:
            _run_part(part, bounds[0], bounds[1])  # this thread takes the first part
        finally:
            for f in futures:
                f.result()  # waits; raises what a part raised

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

    def to_float(self, a) -> float:
        return float(a)  # a NumPy scalar or 0-d array: no host copy to make

    def scatter_add(self, target, indices, values):
        np.add.at(target, indices, values)
        return target

    def sum(self, a, axis=None, keepdims=False):
        # the ufunc's reduce is what np.sum runs (same dtypes, same result), without
        # np.sum's Python wrapper: about 1 us of a tiny step's 2 (a small net sums 3 times a step)
        return np.add.reduce(a, axis=axis, keepdims=keepdims)

    # a cached function, not a method: its lookup is on a tiny net's every step
    constants = staticmethod(_constants)

    def mask_multiply(self, a, mask):
        # NumPy multiplies by booleans directly: no cast pass, a 1-byte mask kept
        if a.shape != mask.shape or a.ndim == 0 or self._workers(a.size) == 1:
            return a * mask
        out = np.empty_like(a)  # a's memory order
        self._in_slices(out, lambda index: np.multiply(a[index], mask[index], out=out[index]))
        return out

    def relu(self, X, mask=False):
        # Backend.relu's two passes (the mask, then the maxima), each thread both over its own
        # slice, into arrays in X's memory order (a Conv2D output's (C, H, W, N)). One pass per
        # cache-sized block measured slower: two ufunc calls a block cost more than they save.
        if X.ndim == 0 or self._workers(X.size) == 1:
            return super().relu(X, mask)
        Y = np.empty_like(X)  # X's memory order
        M = np.empty_like(X, dtype=np.bool_) if mask else None

        def part(index):
            if M is not None:
                np.greater(X[index], 0, out=M[index])
            np.maximum(X[index], 0, out=Y[index])

        self._in_slices(Y, part)
        return Y, M

    def _in_slices(self, out, part) -> None:
        """``part(index)`` over slices of ``out``'s outermost axis (in memory) on threads, as
        ``_in_parts`` splits them; ``part`` writes ``out[index]`` (and the like) only."""
        axis = _outermost(out)
        lead = (slice(None),) * axis
        self._in_parts(out.shape[axis], out.size, lambda lo, hi: part(lead + (slice(lo, hi),)))

    def window_max(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), firsts=False):
        # Backend.window_max's passes (the maxima, then the first-max marks), all of them
        # over one block of channels (or samples) before the next, blocks on threads, into
        # arrays in the memory order of X (no temporaries but one small mask per block)
        pieces = self.window_slices(X, kernel_size, stride, padding, dilation, pad_value=-np.inf)
        if len(pieces) == 1 or pieces[0].size == 0:
            return super().window_max(X, kernel_size, stride, padding, dilation, firsts)
        Y = _in_layout_of(pieces[0], pieces[0].shape)
        masks = None
        if firsts:  # one allocation for the kh*kw masks, each in Y's memory order
            order = _memory_order(Y)
            stack = np.empty((len(pieces), *[Y.shape[axis] for axis in order]), dtype=np.bool_)
            masks = [mask.transpose(np.argsort(order)) for mask in stack]

        def block(index):
            y, parts = Y[index], [piece[index] for piece in pieces]
            np.maximum(parts[0], parts[1], out=y)
            for part in parts[2:]:
                np.maximum(y, part, out=y)
            if masks is not None:
                _first_maxima(parts, y, [m[index] for m in masks])

        axis = 0 if abs(Y.strides[0]) >= abs(Y.strides[1]) else 1  # N or C, whichever is outer in memory
        K = len(pieces)  # per output: K inputs, the output and K marks
        self._in_blocks(axis, Y.shape, Y.itemsize * (K + 1) + K * firsts, block, K * Y.size)
        return Y, masks

    def _in_blocks(self, axis, shape, unit_bytes, block, work) -> None:
        """``block(index)`` over slices of ``axis`` of an array of ``shape`` that hold about
        BLOCK_BYTES each (THREADED_BLOCK_BYTES on threads; ``unit_bytes``: the bytes a block's
        passes touch per element), the blocks split over threads by ``_in_parts`` (``work``:
        the elements read, as there)."""
        n = shape[axis]
        workers = min(self._workers(work), n)
        size = BLOCK_BYTES if workers <= 1 else THREADED_BLOCK_BYTES
        step = max(1, size * n // max(1, math.prod(shape) * unit_bytes))
        lead = (slice(None),) * axis

        def part(lo, hi):
            for start in range(lo, hi, step):
                block(lead + (slice(start, min(start + step, hi)),))

        self._in_parts(n, work, part, workers)

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
        self._in_slices(out, lambda index: np.copyto(out[index], a[index]))
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
        N, C = X.shape[:2]
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        K = C * kernel_size[0] * kernel_size[1]
        view = _windows(self._padded(X, padding), kernel_size, stride, dilation, OH, OW)
        cols = np.empty((K + ones_row, OH * OW * N), dtype=X.dtype)
        windows = cols[:K].reshape(view.shape)

        def copy_rows(lo, hi):  # split over output rows: that works for one channel too
            windows[:, :, :, lo:hi] = view[:, :, :, lo:hi]

        self._in_parts(OH, K * OH * OW * N, copy_rows)
        if ones_row:
            cols[K] = 1.0
        return cols

    def _padded(self, X, padding):
        """X (N, C, H, W) copied into zero-padded (C, H + 2 ph, W + 2 pw, N) memory."""
        (ph, pw), (N, C, H, W) = padding, X.shape
        Xp = np.empty((C, H + 2 * ph, W + 2 * pw, N), dtype=X.dtype)
        if ph:
            Xp[:, :ph] = 0.0
            Xp[:, ph + H :] = 0.0
        if pw:
            Xp[:, ph : ph + H, :pw] = 0.0
            Xp[:, ph : ph + H, pw + W :] = 0.0
        source = X.transpose(1, 2, 3, 0)  # (C, H, W, N)

        def pad_rows(lo, hi):  # split over rows of the image: that works for one channel too
            Xp[:, ph + lo : ph + hi, pw : pw + W, :] = source[:, lo:hi]

        self._in_parts(H, X.size, pad_rows)
        return Xp

    def conv_forward(self, W2, X, kernel_size, stride, padding, dilation, ones_row=False):
        # Large columns are made a band at a time (see CONV_BANDS_FROM), each band multiplied
        # while it is in the core's cache; backward makes the bands again from the padded
        # input, kept instead of the columns. The bands are split over threads, each thread
        # with one BLAS thread: copies and products of both halves then run side by side.
        workers = self._workers(X.size * kernel_size[0] * kernel_size[1])  # about the columns' size
        if not _in_bands(X.shape, kernel_size, stride, padding, dilation, X.itemsize, workers):
            return super().conv_forward(W2, X, kernel_size, stride, padding, dilation, ones_row)
        Xp = self._padded(X, padding)
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        N, K = X.shape[0], W2.shape[1] - ones_row
        windows = _windows(Xp, kernel_size, stride, dilation, OH, OW)
        bands = _bands(OH, OW, N, W2.shape[1] * X.itemsize)
        Y2 = np.empty((W2.shape[0], OH * OW * N), dtype=np.result_type(W2, X))

        def part(lo, hi):
            cols = _band_buffer(K, ones_row, bands, X.dtype)
            for band in bands[lo:hi]:
                columns = _band_columns(windows, band, cols)
                np.matmul(W2, columns, out=Y2[:, band[2]])

        self._in_parts_one_blas(len(bands), workers, part)
        return Y2, Xp

    def conv_backward(
        self, W2, dY2, kept, X_shape, kernel_size, stride, padding, dilation, ones_row=False, need_dX=True
    ):
        # kept is the columns (2-D: all at once) or conv_forward's padded input (4-D: in bands).
        # In bands, one output row at a time, split over threads by input channel so that no
        # two threads write the same rows of dW2 or pixels of dX: each thread remakes its
        # channels' rows of the columns, adds their product with the row of dY2 into its rows
        # of dW2 (the same sum in another order: float rounding may differ) and its channels'
        # share of dX into place while the row is in its cache. The ones row goes with the
        # last channel.
        if kept.ndim == 2:
            return super().conv_backward(
                W2, dY2, kept, X_shape, kernel_size, stride, padding, dilation, ones_row, need_dX
            )
        Xp, kk = kept, kernel_size[0] * kernel_size[1]
        C, N = Xp.shape[0], Xp.shape[3]
        OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
        windows = _windows(Xp, kernel_size, stride, dilation, OH, OW)
        # one whole output row a band (1 byte a column: a row is split only past BAND_BYTES
        # columns). _RowsToInput takes part of a row too, but forward's smaller bands ran
        # slower here: more, smaller products into dW2
        bands = _bands(OH, OW, N, 1, most_rows=1)
        dW2T = np.empty((C * kk + ones_row, W2.shape[0]), dtype=np.result_type(Xp, dY2))
        dtype = np.result_type(W2, dY2)
        total = np.empty((Xp.shape[1], C, Xp.shape[2] * N + 16), dtype=dtype) if need_dX else None
        dX = np.empty((C, *X_shape[2:], N), dtype=dtype) if need_dX else None  # (C, H, W, N), as col2im's

        def part(c0, c1):
            last = ones_row and c1 == C
            cols = _band_buffer((c1 - c0) * kk, last, bands, Xp.dtype)
            dW, product = dW2T[c0 * kk : c1 * kk + last], None
            shares = _RowsToInput(W2, total, c0, c1, N, kernel_size, stride, dilation) if need_dX else None
            for band in bands:
                columns, dY_band = _band_columns(windows[c0:c1], band, cols), dY2[:, band[2]]
                if product is None:  # dW2.T = cols @ dY2.T: see Backend.conv_backward
                    product = np.empty_like(dW)
                    np.matmul(columns, dY_band.T, out=dW)
                else:
                    dW += np.matmul(columns, dY_band.T, out=product)
                if shares is not None:
                    shares.add(dY_band, band)
            if shares is not None:
                shares.result(dX, padding)

        self._in_parts_one_blas(C, self._workers(dY2.size * kk), part)
        return dW2T.T, (dX.transpose(3, 0, 1, 2) if need_dX else None)

    def _in_parts_one_blas(self, n: int, workers: int, part) -> None:
        """``_in_parts`` over ``workers`` threads, each running its matrix products on one
        BLAS thread: the parts' products then run side by side, one a core, instead of
        each product on all cores in turn."""
        if workers <= 1:
            part(0, n)
            return
        blas = self._own_blas()
        threads = blas.num_threads if blas else None
        if blas:
            blas.set_num_threads(1)
        try:
            self._in_parts(n, n, part, workers)
        finally:
            if blas:
                blas.set_num_threads(threads)

    def col2im(self, cols, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        # The adjoint of im2col above: kh*kw strided adds of whole slices into a padded
        # (C, H, W, N) array, split over channels (or, for fewer channels than threads, over
        # the batch), returned as its NCHW-shaped view.
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
        N, C, H, W = X_shape
        padded, (OH, OW), overlap, tiled = scatter_plan(X_shape, kernel_size, stride, padding, dilation)
        pieces = cols.reshape(C, kh, kw, OH, OW, N)
        dXp = (np.empty if tiled else np.zeros)((C, *padded[2:], N), dtype=cols.dtype)
        workers = self._workers(cols.size)
        by_channel = C >= workers

        def part(lo, hi):
            cut = (slice(lo, hi), Ellipsis) if by_channel else (Ellipsis, slice(lo, hi))
            out, src = dXp[cut], pieces[cut]
            for i in range(kh):
                for j in range(kw):
                    index = (
                        slice(None),
                        slice(i * dh, i * dh + sh * (OH - 1) + 1, sh),
                        slice(j * dw, j * dw + sw * (OW - 1) + 1, sw),
                    )
                    if overlap:
                        out[index] += src[:, i, j]
                    else:
                        out[index] = src[:, i, j]

        self._in_parts(C if by_channel else N, cols.size, part)
        return dXp[:, ph : ph + H, pw : pw + W, :].transpose(3, 0, 1, 2)

    def add_window_slices(
        self, pieces, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), masks=None
    ):
        # Backend.add_window_slices (pooling's backward) a block of channels at a time: its
        # zeros (windows that leave gaps) and all kh*kw pieces while the block is in cache
        (_, kw), (ph, pw), (H, W) = kernel_size, padding, X_shape[2:]
        shape, (OH, OW), overlap, tiled = scatter_plan(X_shape, kernel_size, stride, padding, dilation)
        dXp = self._canvas(pieces[0], shape, None)

        def block(cut):
            out = dXp[cut]
            if not tiled:
                out.fill(0)
            for k, piece in enumerate(pieces):
                mask = None if masks is None or masks[k] is None else masks[k][cut]
                self._place(out, window_index(*divmod(k, kw), stride, dilation, OH, OW), piece[cut], mask, overlap)

        self._in_blocks(1, shape, 2 * dXp.itemsize, block, len(pieces) * pieces[0].size)
        return dXp[:, :, ph : ph + H, pw : pw + W] if ph or pw else dXp

    def overflow_allowed(self):
        return np.errstate(over="ignore", invalid="ignore")

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
        if _flush_due(scratch, m):  # subnormal m and v (stuck there, and slow: see base.flush_subnormal) become 0
            tiny = np.finfo(m.dtype).smallest_normal
            np.abs(m, out=tmp)
            np.copyto(m, 0.0, where=tmp < tiny)
            np.copyto(v, 0.0, where=v < tiny)
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


# Conv2D's columns are made a band at a time when all of them would take more than
# CONV_BANDS_FROM bytes: the band of output rows (or of part of a row) that fills about
# BAND_BYTES, a share of the core's L2 cache (2 MB here), is copied and multiplied while it
# is still there, instead of the whole columns going out to memory and back. Measured on
# 2 cores, in a training step of a 32->64 channel 3x3 convolution on 14x14 images, batch
# 128 (29 MB of columns): see docs/performance.md.
CONV_BANDS_FROM = 8 << 20
BAND_BYTES = 1 << 20


def _in_bands(X_shape, kernel_size, stride, padding, dilation, itemsize, workers) -> bool:
    """Whether conv_forward makes the columns a band at a time: large columns, windows that
    step one pixel across (_RowsToInput's flat adds) and at least one input channel per
    thread (conv_backward splits the channels over threads)."""
    N, C = X_shape[:2]
    OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
    size = (C * kernel_size[0] * kernel_size[1] + 1) * OH * OW * N * itemsize
    return size > CONV_BANDS_FROM and stride[1] == 1 and C >= workers


def _windows(Xp, kernel_size, stride, dilation, OH, OW):
    """Every window of the padded Xp (C, Hp, Wp, N) as one read-only strided view
    (C, kh, kw, OH, OW, N), in the columns' axis order."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    sC, sH, sW, sN = Xp.strides
    shape, strides = (Xp.shape[0], kh, kw, OH, OW, Xp.shape[3]), (sC, sH * dh, sW * dw, sH * sh, sW * sw, sN)
    return np.lib.stride_tricks.as_strided(Xp, shape, strides, writeable=False)


def _bands(OH, OW, N, column_bytes, most_rows=None):
    """The column bands of about BAND_BYTES (column_bytes: one column's), whole output rows
    (at most ``most_rows``) or part of one row, each as (output rows, output columns, its
    slice of im2col's columns)."""
    row = OW * N * column_bytes
    if row <= BAND_BYTES:
        rows = min(max(1, BAND_BYTES // row), most_rows or OH)
        spans = [(y, min(y + rows, OH), 0, OW) for y in range(0, OH, rows)]
    else:
        pieces = min(OW, -(-row // BAND_BYTES))
        xs = [OW * i // pieces for i in range(pieces + 1)]
        spans = [(y, y + 1, xs[i], xs[i + 1]) for y in range(OH) for i in range(pieces)]
    # columns run (y, x, n): the band's first is (y0, x0, 0), its last (y1 - 1, x1 - 1, N - 1)
    return [
        (slice(y0, y1), slice(x0, x1), slice((y0 * OW + x0) * N, ((y1 - 1) * OW + x1) * N)) for y0, y1, x0, x1 in spans
    ]


def _band_buffer(K, ones_row, bands, dtype):
    """A buffer for the widest band's K rows of columns (and the ones row, filled here)."""
    cols = np.empty((K + ones_row, max(span.stop - span.start for _, _, span in bands)), dtype=dtype)
    if ones_row:
        cols[K] = 1.0
    return cols


def _band_columns(windows, band, cols):
    """The band's columns copied from ``windows`` (_windows' view) into the first columns of
    ``cols`` (_band_buffer's), which are returned (with its ones row, if it has one)."""
    rows, xs, span = band
    view = windows[:, :, :, rows, xs]
    out = cols[:, : span.stop - span.start]
    out[: math.prod(view.shape[:3])].reshape(view.shape)[...] = view
    return out


class _RowsToInput:
    """col2im a band of one output row at a time for the input channels [c0, c1): their
    share of dX for a convolution whose columns come in such bands (stride 1 across).

    The sum, shared by all blocks of channels, is laid out (padded row, c, line), lines of
    the padded input's width Wp*N plus 16 (a power of two bytes a line makes the product's
    stores collide in the cache). The block's product W2.T @ dY_row comes out ordered
    (i, j, c) with each line padded with zeros to the same length: the share of kernel
    offset (i, j) for all the block's channels is then one contiguous run that lands on one
    contiguous run of the sum, shifted by j columns (the zeros at each line's end shift into
    the next line's start). One flat add per offset: NumPy's adds over many strided lines
    (col2im's) run several times slower.
    """

    def __init__(self, W2, total, c0, c1, N, kernel_size, stride, dilation):
        (kh, kw), (_, C, line) = kernel_size, total.shape
        W = W2.reshape(W2.shape[0], C, kh, kw)[:, c0:c1]
        self.W_T = np.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(kh * kw * (c1 - c0), -1))  # (i, j, c) x out
        self.buf = np.zeros((kh * kw * (c1 - c0), line), dtype=total.dtype)
        self.flat = total.reshape(-1)
        self.total, self.c0, self.c1, self.N, self.width = total, c0, c1, N, 0
        self.kernel, self.stride, self.dilation = kernel_size, stride, dilation
        total[:, c0:c1].fill(0)

    def add(self, dY_band, band) -> None:
        """Add the share of a band (_bands') of one output row, dY_band (out, its columns)."""
        (kh, kw), (dh, dw), (_, C, line) = self.kernel, self.dilation, self.total.shape
        (y, x0), width, blocks = (band[0].start, band[1].start), dY_band.shape[1], self.c1 - self.c0
        if width < self.width:  # a narrower band than the last: the lines' ends must stay zeros
            self.buf[:, width : self.width] = 0.0
        self.width = width
        np.matmul(self.W_T, dY_band, out=self.buf[:, :width])
        # the run ends at the last line's last value: the next channel's line may be another block's
        size = (blocks - 1) * line + width
        for i in range(kh):
            for j in range(kw):
                start = ((y * self.stride[0] + i * dh) * C + self.c0) * line + (x0 + j * dw) * self.N
                k = (i * kw + j) * blocks
                self.flat[start : start + size] += self.buf[k : k + blocks].reshape(-1)[:size]

    def result(self, dX, padding) -> None:
        """Copy the block's channels of the sum into dX (C, H, W, N)."""
        (ph, pw), (_, H, W, N) = padding, dX.shape
        block = self.total[ph : ph + H, self.c0 : self.c1, pw * N : (pw + W) * N]
        dX[self.c0 : self.c1] = block.reshape(H, self.c1 - self.c0, W, N).transpose(1, 0, 2, 3)


def _flush_due(scratch, m) -> bool:
    """Whether this Adam step flushes m's and v's subnormals: every FLUSH_EVERY-th step of
    each state array when the optimizer keeps ``scratch`` (a step counter per array), else
    every step."""
    if scratch is None:
        return True
    key = ("flush", id(m))  # m is updated in place: the same object every step
    count = scratch.get(key, 0) + 1
    scratch[key] = count % FLUSH_EVERY
    return count == FLUSH_EVERY


def _run_part(part, lo: int, hi: int) -> None:
    _inside.part = True
    try:
        part(lo, hi)
    finally:
        _inside.part = False


def _numpy_blas():
    """threadpoolctl's controller of the BLAS NumPy itself uses (False if not found)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return False
    found = ThreadpoolController().select(user_api="blas").lib_controllers
    own = [c for c in found if os.path.dirname(np.__file__).rstrip(os.sep) + ".libs" in c.filepath]
    return (own or found or [False])[0]


def _outermost(a: np.ndarray) -> int:
    """The axis of ``a`` with the largest stride (its outermost in memory)."""
    return max(range(a.ndim), key=lambda axis: (a.shape[axis] > 1, abs(a.strides[axis])))


def _axis_order(a: np.ndarray) -> list[int]:
    """The axes of ``a`` from outermost to innermost in memory (length-1 axes left out)."""
    return [axis for axis in _memory_order(a) if a.shape[axis] > 1]


def _memory_order(a: np.ndarray) -> list[int]:
    """All the axes of ``a``, outermost in memory first (ties: in axis order)."""
    return sorted(range(a.ndim), key=lambda axis: abs(a.strides[axis]), reverse=True)


def _first_maxima(pieces, Y, out) -> None:
    """Backend.window_max's masks written into ``out`` (same shape as Y): out[k] True where
    pieces[k] == Y and no earlier piece is."""
    np.equal(pieces[0], Y, out=out[0])
    taken = None  # where an earlier piece holds the max, once there are two
    for k in range(1, len(pieces)):
        np.equal(pieces[k], Y, out=out[k])
        np.greater(out[k], out[0] if taken is None else taken, out=out[k])  # hit and not taken (booleans)
        if k < len(pieces) - 1:
            taken = np.bitwise_or(out[0], out[k]) if taken is None else np.bitwise_or(taken, out[k], out=taken)


def _in_layout_of(like: np.ndarray, shape, fill=None) -> np.ndarray:
    """A NumPy array of ``shape`` (filled with ``fill`` unless None), its axes in memory in
    the same order as ``like``'s: np.full_like for another shape (padded, or unpadded)."""
    order = _memory_order(like)
    out = np.empty([shape[axis] for axis in order], dtype=like.dtype).transpose(np.argsort(order))
    if fill is not None:
        out.fill(fill)
    return out
