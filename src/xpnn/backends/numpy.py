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
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import array_api_compat
import numpy as np

from .base import InPlaceBackend, _window_index, output_hw, register_backend, scatter_plan

# Below this many multiply-adds per matrix product, a second OpenBLAS thread costs more
# than it saves (measured on 2 cores: 0.5M: 15 us on one thread, 57 us on two), and far
# more when another process keeps the cores busy (xpnn train on the digits: 0.7 s on one
# thread, 4.7-12.9 s on two). Set it to 0 to keep OpenBLAS's own choice.
SMALL_MATMUL = 4_000_000

# Below this many elements a kernel runs on one thread: handing a part to another thread
# costs some tens of microseconds, what a pass over ~256K floats takes.
PARALLEL_MIN = 1 << 18
# The convolution products (matmul_im2col, ...) make their columns a few output rows at a
# time, in a buffer of about this size: small enough to stay in a core's cache (measured:
# 4 MB blocks run a 32-channel 3x3 convolution's forward a quarter faster than one
# 29 MB column matrix, and need no such matrix).
BLOCK_BYTES = 4 << 20
# Each thread keeps the scratch arrays of its last few convolution calls (the padded input,
# the block buffers) to reuse them: a fresh array of megabytes costs page faults each time
# (measured: 2,300 a batch, 12 ms of system time, in the benchmark CNN's step).
SCRATCH_ENTRIES = 8
_pool: ThreadPoolExecutor | None = None  # the kernels' worker threads, made at first use
_inside = threading.local()  # .part is True while this thread runs a part
_scratch = threading.local()  # .arrays: this thread's scratch arrays, most recently used last


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

    @classmethod
    def _controller(cls):
        """threadpoolctl's controller, found once (False without threadpoolctl)."""
        if cls._threads is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                cls._threads = False
            else:
                cls._threads = ThreadpoolController()
        return cls._threads

    def _threaded_products(self, n: int, size: int, part) -> None:
        """``_in_parts`` for parts that run matrix products: while the parts run on their
        threads, each product runs on its part's thread alone (BLAS held to one thread),
        so that each part fills and multiplies its own blocks with no waiting between
        them. With one part, BLAS keeps its threads for the products."""
        k = min(self._workers(size), n)
        if k <= 1 or not self._controller():
            part(0, n)
            return
        with self._controller().limit(limits=1, user_api="blas"):
            self._in_parts(n, size, part, workers=k)

    def threads_for(self, macs):
        """One BLAS thread for loops of small matrix products (see SMALL_MATMUL); needs
        threadpoolctl, else OpenBLAS's own choice."""
        if macs is None or macs >= SMALL_MATMUL or not self._controller():
            return contextlib.nullcontext()
        return self._controller().limit(limits=1, user_api="blas")

    def _workers(self, size: int) -> int:
        """How many threads a kernel over ``size`` elements uses: NumPy's BLAS thread count
        (threadpoolctl), 1 for small arrays or where threadpoolctl is missing."""
        if size < PARALLEL_MIN or getattr(_inside, "part", False):
            return 1  # small, or inside a part already: parts never wait on parts (no deadlock)
        if NumpyBackend._blas is None:
            NumpyBackend._blas = _numpy_blas()
        return max(1, min(NumpyBackend._blas.num_threads, os.cpu_count() or 1)) if NumpyBackend._blas else 1

    def _in_parts(self, n: int, size: int, part, workers: int | None = None) -> None:
        """``part(lo, hi)`` over [0, n) in as many pieces as ``_workers(size)`` (or
        ``workers``) allows, at once; each call must write only its own slice (lo:hi) of
        the output."""
        k = min(self._workers(size) if workers is None else workers, n)
        if k <= 1:
            part(0, n)
            return
        global _pool
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="xpnn-numpy")
        bounds = [n * i // k for i in range(k + 1)]
        futures = [_pool.submit(_run_part, part, bounds[i], bounds[i + 1]) for i in range(1, k)]
        try:
            _run_part(part, bounds[0], bounds[1])  # this thread takes the first part
        finally:
            for f in futures:
                f.result()  # waits; raises what a part raised

    def _by_parts(self, like, kernel, axis=None) -> None:
        """``kernel(index)`` for the parts of ``like``'s ``axis`` (default: its outermost in
        memory) that ``_in_parts`` makes, each on its own thread."""
        axis = _outermost(like) if axis is None else axis
        lead = (slice(None),) * axis
        self._in_parts(like.shape[axis], like.size, lambda lo, hi: kernel((*lead, slice(lo, hi))))

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

    def mask_multiply(self, a, mask):
        # NumPy multiplies by a 1-byte mask directly (no cast pass), and faster read as
        # uint8 (0 and 1: the same products) than as booleans
        mask = _bytes(mask)
        if a.shape != mask.shape or a.ndim == 0 or self._workers(a.size) == 1:
            return a * mask
        out = np.empty_like(a)  # a's memory order
        axis = _outermost(a)

        def part(lo, hi):
            index = (slice(None),) * axis + (slice(lo, hi),)
            np.multiply(a[index], mask[index], out=out[index])

        self._in_parts(a.shape[axis], a.size, part)
        return out

    def relu(self, X, mask=False):
        # Y and the mask written in parts on threads (a small X: in one go, no thread)
        if X.ndim == 0 or self._workers(X.size) == 1:
            return np.maximum(X, 0.0), (X > 0) if mask else None
        Y = np.empty_like(X)  # X's memory order
        M = np.empty_like(X, dtype=np.bool_) if mask else None

        def kernel(index):
            x = X[index]
            np.maximum(x, 0.0, out=Y[index])
            if M is not None:
                np.greater(x, 0.0, out=M[index])

        self._by_parts(X, kernel)
        return Y, M

    def window_max(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), firsts=False):
        # Backend.window_max's passes (the maxima, then the marks of the first maxima) on
        # parts of the channels (or samples) at once, on threads, written into arrays made
        # once in the memory order of X (no temporaries)
        pieces = self.window_slices(X, kernel_size, stride, padding, dilation, pad_value=-np.inf)
        if len(pieces) == 1:
            return super().window_max(X, kernel_size, stride, padding, dilation, firsts)
        shape, K = pieces[0].shape, len(pieces)
        Y = _in_layout_of(pieces[0], shape)
        masks = [_in_layout_of(pieces[0], shape, dtype=np.bool_) for _ in pieces] if firsts else None
        strides = pieces[0].strides

        def kernel(index):
            y = Y[index]
            np.maximum(pieces[0][index], pieces[1][index], out=y)
            for piece in pieces[2:]:
                np.maximum(y, piece[index], out=y)
            if masks is None:
                return
            first = masks[0][index]
            np.equal(pieces[0][index], y, out=first)
            taken = first.copy(order="K")  # where an offset so far holds the max (in first's layout)
            for k in range(1, K):
                hit = masks[k][index]
                np.equal(pieces[k][index], y, out=hit)
                np.greater(hit, taken, out=hit)  # a max, and no earlier offset had one: hit & ~taken
                if k < K - 1:
                    taken |= hit

        # split N or C, whichever is outer in memory (the pieces share those two axes with Y)
        self._by_parts(Y, kernel, axis=0 if abs(strides[0]) >= abs(strides[1]) else 1)
        return Y, masks

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
        axis = _outermost(out)

        def part(lo, hi):
            index = (slice(None),) * axis + (slice(lo, hi),)
            out[index] = a[index]

        self._in_parts(out.shape[axis], out.size, part)
        return out

    def _canvas(self, like, shape, fill):
        return _in_layout_of(like, shape, fill)  # like's memory order: window slices stay long runs

    def _place(self, out, index, piece, mask, add):
        if mask is not None and not add:
            np.multiply(piece, _bytes(mask), out=out[index])  # masked and placed in one pass
            return out
        return super()._place(out, index, piece, mask, add)

    # ---- convolution: im2col, col2im and the products over them ------------------------------
    #
    # The columns come from X padded into (C, H, W, N) memory and viewed, without a copy,
    # as every window at once (_windows: (C, kh, kw, OH, OW, N), the columns' axis order).
    # The products below never make the whole column matrix (C*kh*kw x OH*OW*N, 29 MB for
    # a 32-channel 14x14 batch of 128): they fill a buffer of a few output rows' columns at
    # a time and multiply it while it is still in the core's cache. Results are those of
    # the plain formula up to the order of the additions in dW (a sum over blocks).

    def _padded(self, X, padding, scratch=False):
        """X (N, C, H, W) copied into zero-padded (C, H + 2 ph, W + 2 pw, N) memory (with
        ``scratch``: this thread's scratch array, valid until its next call)."""
        (ph, pw), (N, C, H, W) = padding, X.shape
        shape = (C, H + 2 * ph, W + 2 * pw, N)
        Xp = scratch_array("padded", shape, X.dtype) if scratch else np.empty(shape, dtype=X.dtype)
        if ph:
            Xp[:, :ph] = 0.0
            Xp[:, ph + H :] = 0.0
        if pw:
            Xp[:, ph : ph + H, :pw] = 0.0
            Xp[:, ph : ph + H, pw + W :] = 0.0
        source = X.transpose(1, 2, 3, 0)  # (C, H, W, N)

        def pad_rows(lo, hi):  # split over image rows: works for any C, one channel included
            Xp[:, ph + lo : ph + hi, pw : pw + W, :] = source[:, lo:hi]

        self._in_parts(H, X.size, pad_rows)
        return Xp

    @staticmethod
    def _windows(Xp, kernel_size, stride, dilation, OH, OW):
        """Every window of the padded Xp (C, Hp, Wp, N) as one read-only strided view
        (C, kh, kw, OH, OW, N)."""
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        C, _, _, N = Xp.shape
        sC, sH, sW, sN = Xp.strides
        shape, strides = (C, kh, kw, OH, OW, N), (sC, sH * dh, sW * dw, sH * sh, sW * sw, sN)
        return np.lib.stride_tricks.as_strided(Xp, shape, strides, writeable=False)

    def _fill_columns(self, out, windows, lo, hi):
        """Copy the windows of output rows [lo, hi) into ``out`` (C*kh*kw, (hi-lo)*OW*N)."""
        C, kh, kw, _, OW, N = windows.shape
        target = out.reshape(C, kh, kw, hi - lo, OW, N)
        if hi - lo > 1:  # split over the rows (any C), else over the channels

            def part(a, b):
                target[:, :, :, a - lo : b - lo] = windows[:, :, :, a:b]

            self._in_parts(hi - lo, out.size, lambda a, b: part(lo + a, lo + b))
        else:

            def part(a, b):
                target[a:b] = windows[a:b, :, :, lo:hi]

            self._in_parts(C, out.size, part)

    def _row_blocks(self, K, OH, OW, N, itemsize, parts=1):
        """[(lo, hi)]: output rows per block, so that a block's columns (K of them per
        position) take about BLOCK_BYTES, and at least ``parts`` blocks where OH allows."""
        rows = max(1, min(BLOCK_BYTES // max(K * OW * N * itemsize, 1), -(-OH // parts)))
        return [(lo, min(lo + rows, OH)) for lo in range(0, OH, rows)]

    def im2col(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), ones_row=False):
        # see the module docstring and the note above: one copy of the windows view into cols
        (kh, kw), (N, C, _, _) = kernel_size, X.shape
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        K, M = C * kh * kw, OH * OW * N
        windows = self._windows(self._padded(X, padding), kernel_size, stride, dilation, OH, OW)
        cols = np.empty((K + ones_row, M), dtype=X.dtype)
        self._fill_columns(cols[:K], windows, 0, OH)
        if ones_row:
            cols[K] = 1.0
        return cols

    def _column_blocks(self, X, kernel_size, stride, padding, dilation, ones_row):
        """(windows view, blocks of output rows, K, columns per output row, a function
        making one block's buffer (with its ones row) for a part's thread)."""
        (kh, kw), (N, C, _, _) = kernel_size, X.shape
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        K = C * kh * kw
        windows = self._windows(self._padded(X, padding, scratch=True), kernel_size, stride, dilation, OH, OW)
        blocks = self._row_blocks(K + ones_row, OH, OW, N, X.itemsize, self._workers((K + 1) * OH * OW * N))
        rows = blocks[0][1] - blocks[0][0]

        def buffer():
            cols = scratch_array("columns", (K + ones_row, rows * OW * N), X.dtype)
            if ones_row:
                cols[K] = 1.0
            return cols

        return windows, blocks, K, OW * N, buffer

    def matmul_im2col(self, A, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), ones_row=False):
        # the blocks of columns shared out over threads, each filling its own buffer
        windows, blocks, K, step, buffer = self._column_blocks(X, kernel_size, stride, padding, dilation, ones_row)
        out = np.empty((A.shape[0], blocks[-1][1] * step), dtype=np.result_type(A, X))

        def part(first, last):
            cols_buffer = buffer()
            for lo, hi in blocks[first:last]:
                cols = cols_buffer[:, : (hi - lo) * step]
                self._fill_columns(cols[:K], windows, lo, hi)
                np.matmul(A, cols, out=out[:, lo * step : hi * step])

        self._threaded_products(len(blocks), out.size + windows.size, part)
        return out

    def matmul_im2col_t(self, B, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), ones_row=False):
        # each thread sums cols @ B.T over its blocks, then the threads' sums are added in
        # order; transposed at the end: OpenBLAS runs this shape (small result, long inner
        # axis) faster than B @ cols.T
        windows, blocks, K, step, buffer = self._column_blocks(X, kernel_size, stride, padding, dilation, ones_row)
        sums = {}

        def part(first, last):
            cols_buffer, total, scratch = buffer(), None, None
            for lo, hi in blocks[first:last]:
                cols = cols_buffer[:, : (hi - lo) * step]
                self._fill_columns(cols[:K], windows, lo, hi)
                scratch = np.matmul(cols, B[:, lo * step : hi * step].T, out=scratch)
                if total is None:
                    total, scratch = scratch, None
                else:
                    total += scratch
            sums[first] = total

        self._threaded_products(len(blocks), B.size + windows.size, part)
        parts = [sums[first] for first in sorted(sums)]
        total = parts[0]
        for other in parts[1:]:
            total += other
        return total.T

    def col2im(self, cols, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        # The adjoint of im2col above: kh*kw strided adds of whole slices into a padded
        # (C, H, W, N) array, returned as its NCHW-shaped view.
        OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
        dXp = self._col2im_canvas(X_shape, kernel_size, stride, padding, dilation, cols.dtype)
        self._add_columns(dXp, cols, kernel_size, stride, dilation, 0, OH, OW)
        return self._unpad(dXp, X_shape, padding)

    def col2im_matmul(self, A, B, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        # the channels shared out over threads: each multiplies its rows of A by every
        # block of B and adds the result into its own channels of dX (no pixel is written
        # by two threads)
        (kh, kw), (N, C, _, _) = kernel_size, X_shape
        OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
        step, taps = OW * N, kh * kw
        dtype = np.result_type(A, B)
        dXp = self._col2im_canvas(X_shape, kernel_size, stride, padding, dilation, dtype)
        blocks = self._row_blocks(A.shape[0], OH, OW, N, dtype.itemsize)
        rows = blocks[0][1] - blocks[0][0]

        def part(c0, c1):
            cols_buffer = scratch_array("columns", ((c1 - c0) * taps, rows * step), dtype)
            for lo, hi in blocks:
                cols = np.matmul(
                    A[c0 * taps : c1 * taps], B[:, lo * step : hi * step], out=cols_buffer[:, : (hi - lo) * step]
                )
                self._add_columns(dXp[c0:c1], cols, kernel_size, stride, dilation, lo, hi, OW)

        self._threaded_products(C, A.shape[0] * B.shape[1], part)
        return self._unpad(dXp, X_shape, padding)

    @staticmethod
    def _col2im_canvas(X_shape, kernel_size, stride, padding, dilation, dtype):
        """The padded (C, Hp, Wp, N) sum of col2im: zeros, or left empty where the windows
        tile it exactly (every pixel is then written once)."""
        N, C, _, _ = X_shape
        padded, _, _, tiled = scatter_plan(X_shape, kernel_size, stride, padding, dilation)
        return (np.empty if tiled else np.zeros)((C, *padded[2:], N), dtype=dtype)

    @staticmethod
    def _unpad(dXp, X_shape, padding):
        (ph, pw), (_, _, H, W) = padding, X_shape
        return dXp[:, ph : ph + H, pw : pw + W, :].transpose(3, 0, 1, 2)

    def _add_columns(self, dXp, cols, kernel_size, stride, dilation, lo, hi, OW):
        """Add the columns of output rows [lo, hi), cols (C*kh*kw, (hi-lo)*OW*N), back into
        the padded (C, Hp, Wp, N) dXp: kh*kw strided adds of whole slices, split over the
        channels (or, for fewer channels than threads, over the batch: parts never write
        the same pixel)."""
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        C, _, _, N = dXp.shape
        pieces = cols.reshape(C, kh, kw, hi - lo, OW, N)
        overlap = dh * (kh - 1) + 1 > sh or dw * (kw - 1) + 1 > sw
        by_channel = C >= self._workers(cols.size)

        def part(a, b):
            cut = (slice(a, b), Ellipsis) if by_channel else (Ellipsis, slice(a, b))
            out, src = dXp[cut], pieces[cut]
            for i in range(kh):
                for j in range(kw):
                    index = (
                        slice(None),
                        slice(lo * sh + i * dh, lo * sh + i * dh + sh * (hi - lo - 1) + 1, sh),
                        slice(j * dw, j * dw + sw * (OW - 1) + 1, sw),
                    )
                    if overlap:
                        out[index] += src[:, i, j]
                    else:
                        out[index] = src[:, i, j]

        self._in_parts(C if by_channel else N, cols.size, part)

    def add_window_slices(
        self, pieces, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), masks=None
    ):
        # Backend.add_window_slices (pooling's backward) on parts of the channel axis at once
        (_, kw), (ph, pw), (_, C, H, W) = kernel_size, padding, X_shape
        shape, (OH, OW), overlap, tiled = scatter_plan(X_shape, kernel_size, stride, padding, dilation)
        dXp = self._canvas(pieces[0], shape, None if tiled else 0)

        def part(lo, hi):
            cut = (slice(None), slice(lo, hi))
            out = dXp[cut]
            for k, piece in enumerate(pieces):
                mask = None if masks is None or masks[k] is None else masks[k][cut]
                self._place(out, _window_index(*divmod(k, kw), stride, dilation, OH, OW), piece[cut], mask, overlap)

        self._in_parts(C, len(pieces) * pieces[0].size, part)
        return dXp[:, :, ph : ph + H, pw : pw + W] if ph or pw else dXp

    def overflow_allowed(self):
        return np.errstate(over="ignore", invalid="ignore")

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        # the generic formula in place, through one reusable buffer per shape instead of a
        # temporary per operation (the buffer belongs to the optimizer: ``scratch``); a large
        # param is updated in parts on threads (each element's arithmetic is the same)
        key = (tuple(param.shape), param.dtype)
        tmp = scratch.get(key) if scratch is not None else None
        if tmp is None:
            tmp = np.empty_like(param)
            if scratch is not None:
                scratch[key] = tmp
        arrays = (param, grad, m, v, tmp)
        tiny = np.finfo(m.dtype).smallest_normal
        if param.ndim == 0 or not all(a.flags.c_contiguous for a in arrays):
            _adam(*arrays, step_size, beta1, beta2, bias2_sqrt, eps, tiny)
            return param, m, v
        flat = [a.reshape(-1) for a in arrays]
        self._in_parts(
            param.size,
            6 * param.size,  # about the passes it makes over param's size, in elements
            lambda lo, hi: _adam(*(a[lo:hi] for a in flat), step_size, beta1, beta2, bias2_sqrt, eps, tiny),
        )
        return param, m, v

    def allreducer(self, comm, MPI):
        def reduce(flat):  # MPI sums straight into the array's memory
            comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            return flat

        return reduce, "mpi"


def _adam(param, grad, m, v, tmp, step_size, beta1, beta2, bias2_sqrt, eps, tiny) -> None:
    """Backend.adam_update's formula in place on NumPy arrays, ``tmp`` the scratch."""
    np.subtract(grad, m, out=tmp)
    tmp *= 1.0 - beta1
    m += tmp
    np.multiply(grad, grad, out=tmp)
    tmp -= v
    tmp *= 1.0 - beta2
    v += tmp
    # subnormal m and v (stuck there, and slow: see base.flush_subnormal) become 0
    np.abs(m, out=tmp)
    np.copyto(m, 0.0, where=tmp < tiny)
    np.copyto(v, 0.0, where=v < tiny)
    np.sqrt(v, out=tmp)
    tmp *= 1.0 / bias2_sqrt
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= step_size
    param -= tmp


def scratch_array(purpose: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialized array of this thread's, reused by its next call with the same
    purpose, shape and dtype (the last SCRATCH_ENTRIES kept): for arrays that never leave
    the call that asks for them."""
    arrays = getattr(_scratch, "arrays", None)
    if arrays is None:
        arrays = _scratch.arrays = {}
    key = (purpose, tuple(shape), np.dtype(dtype))
    found = arrays.pop(key, None)
    if found is None:
        found = np.empty(shape, dtype=dtype)
        while len(arrays) >= SCRATCH_ENTRIES:
            arrays.pop(next(iter(arrays)))  # the least recently used
    arrays[key] = found  # most recently used: last
    return found


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
    order = sorted(range(a.ndim), key=lambda axis: abs(a.strides[axis]), reverse=True)
    return [axis for axis in order if a.shape[axis] > 1]


def _bytes(mask: np.ndarray) -> np.ndarray:
    """A boolean mask viewed as uint8 (no copy): NumPy multiplies floats by uint8 about a
    third faster than by booleans, with the same results (float16 * uint8 is float16)."""
    return mask.view(np.uint8) if mask.dtype == np.bool_ else mask


def _in_layout_of(like: np.ndarray, shape, fill=None, dtype=None) -> np.ndarray:
    """A NumPy array of ``shape`` (filled with ``fill`` unless None; ``like``'s dtype unless
    given), its axes in memory in the same order as ``like``'s: np.full_like for another
    shape (padded, or unpadded)."""
    order = sorted(range(like.ndim), key=lambda axis: abs(like.strides[axis]), reverse=True)  # outermost first
    dtype = like.dtype if dtype is None else dtype
    out = np.empty([shape[axis] for axis in order], dtype=dtype).transpose(np.argsort(order))
    if fill is not None:
        out.fill(fill)
    return out
