"""The Backend base class: one array library on one device, and the generic array-API
implementation of every operation xpnn needs beyond the standard.

Layer, loss and optimizer code gets ``xp`` (the array-API namespace) and these methods
from a Backend and never asks which library it runs on. What is written here is the
reference: plain array-API code that any conforming library runs correctly. A library's
subclass (numpy.py, cupy.py, torch.py, jax.py, strict.py) overrides a method only where
it pays, and the tests compare each override with this version.

The write-back rule. The standard does not promise that ``a -= b`` or ``a[i] = v``
changes the array other code holds: JAX arrays are immutable, and some libraries rebind
the name instead of writing. So every method here that "updates" an array returns the
result, and the caller stores it where the array lives (``layer.params[name] = new``).
On NumPy, CuPy and PyTorch the result is the same object, updated in place, so storing
it back costs nothing.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ..registry import Registry
from .generator import Generator


class Backend:
    """One array library on one device.

    Attributes:
        name: the registry name ("numpy", "cupy", "torch", "jax", "array_api_strict"), or
            the module name of a namespace given directly ("dask.array").
        xp: the array-API namespace (array-api-compat's wrapper where the library needs one).
        device: where arrays are created (the library's own device object or "cpu").
        native: the library module itself, for the subclass's fast paths only.
    """

    name = "generic"

    def __init__(self, xp: ModuleType, device: Any = None, native: ModuleType | None = None, name: str | None = None):
        self.xp = xp
        self.device = device
        self.native = native if native is not None else xp
        if name is not None:
            self.name = name

    # ---- what a subclass describes: its library, its arrays and its devices ----------------

    @classmethod
    def create(cls, device=None) -> "Backend":
        """A backend on ``device`` (None: the library's default); a clear RuntimeError if the
        library is missing or the device does not exist."""
        raise NotImplementedError

    @classmethod
    def is_array(cls, a) -> bool:
        """Whether ``a`` is an array of this library (any device)."""
        return False

    @classmethod
    def array_device(cls, a):
        """The device an array of this library lies on (what ``backend_of`` reads, every step)."""
        return array_api_compat.device(a)

    @classmethod
    def devices(cls) -> list:
        """The devices this library can use here, as strings for ``xpnn info``."""
        return [str(cls.create().device)]

    # ---- identity ----------------------------------------------------------------------------

    @property
    def device_name(self) -> str:
        """The device as a short string ("cpu", "cuda:0")."""
        return str(self.device)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device_name!r})"

    def __str__(self) -> str:
        return f"{self.name} ({self.device_name})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Backend) and (self.name, str(self.device)) == (other.name, str(other.device))

    def __hash__(self) -> int:
        return hash((self.name, str(self.device)))

    # ---- dtypes and arrays -------------------------------------------------------------------

    def dtype(self, dtype):
        """The namespace's dtype for a name ("float32"), a NumPy dtype or a namespace dtype."""
        if isinstance(dtype, (str, np.dtype)) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
            # NumPy knows no "bfloat16": a name is looked up as it is
            name = dtype if isinstance(dtype, str) and dtype in MODEL_DTYPES else np.dtype(dtype).name
            try:
                return getattr(self.xp, name)
            except AttributeError:
                raise ValueError(f"dtype {name!r} is not available on backend {self.name!r}") from None
        return dtype

    def float_dtypes(self) -> list[str]:
        """The floating dtypes a model can hold its params in on this backend (names, from
        "float32", "float64", "float16", "bfloat16": those the library has)."""
        return [name for name in MODEL_DTYPES if getattr(self.xp, name, None) is not None]

    def model_dtypes(self) -> list[str]:
        """Every model dtype this backend accepts: ``float_dtypes()`` and the mixed-precision
        policies of its low-precision dtypes ("mixed_bfloat16", "mixed_float16")."""
        found = self.float_dtypes()
        return found + [f"mixed_{name}" for name in found if name in LOW_PRECISION]

    def check_dtype(self, dtype, where: str) -> str:
        """The name of ``dtype`` (a name, a NumPy dtype or a library's dtype) if a model can
        train in it on this backend (see ``model_dtypes``); else a ValueError naming it,
        ``where`` it was given, and what this backend accepts. Integer dtypes would build
        all-zero weights; float128 or float8 could not be saved or have no kernels."""
        name = dtype.strip().lower() if isinstance(dtype, str) else dtype_name(dtype)
        accepted = self.model_dtypes()
        if name in accepted:
            return name
        if name in MODEL_DTYPES or name.removeprefix("mixed_") in LOW_PRECISION:
            problem = f"backend {self.name!r} has no {name.removeprefix('mixed_')}"
        else:
            problem = "it is not a floating dtype xpnn trains in"
        raise ValueError(
            f"{where}: dtype {dtype!r} cannot be used: {problem}; backend {self.name!r} accepts {accepted}"
        )

    def asarray(self, x, dtype=None, copy=None):
        """``x`` (host data, a NumPy array or an array of this backend) on this device."""
        dtype = None if dtype is None else self.dtype(dtype)
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        return self.xp.asarray(x, dtype=dtype, device=self.device, copy=copy)

    def stage(self, host: np.ndarray):
        """A batch read from disk (a host NumPy array) on this device, called from the
        prefetch thread ahead of the step. Here a plain copy; GPU backends override it to
        copy from pinned memory without holding up the step."""
        return self.asarray(host)

    def to_numpy(self, a) -> np.ndarray:
        """A host NumPy array of ``a``. It may share memory with ``a`` (NumPy, CPU tensors):
        copy it with ``np.array`` before keeping it across updates."""
        if isinstance(a, np.ndarray):
            return a
        try:
            return np.from_dlpack(a)
        except Exception:  # no DLPack on this library or device: the __array__ protocol
            return np.asarray(a)

    def to_float(self, a) -> float:
        """A 0-d array as a Python float (the one place a host sync happens on purpose)."""
        return float(self.to_numpy(a))

    def zeros(self, shape, dtype="float32"):
        return self.xp.zeros(shape, dtype=self.dtype(dtype), device=self.device)

    def device_of(self, a):
        return array_api_compat.device(a)

    def owns(self, a) -> bool:
        """Whether ``a`` is an array of this backend: its library and its device."""
        if not self.is_array(a):
            return False
        try:
            return self.device_of(a) == self.device
        except Exception:
            return False

    def check(self, a, argname: str, where: str = "") -> None:
        """Raise a clear TypeError unless ``a`` is an array of this backend and device.

        This catches the mixing error (a host array given to a GPU model, a tensor on the
        wrong device) before it turns into a cryptic failure deep in a layer.
        """
        if self.owns(a):
            return
        prefix = f"{where}: " if where else ""
        raise TypeError(
            f"{prefix}{argname} is {describe(a)}, but this model runs on backend {self.name!r} "
            f"(device {self.device_name!r}); convert it with backend.asarray({argname}) "
            f"or move the model with model.to(...)"
        )

    def rng(self, seed: int = 0) -> Generator:
        """A seeded :class:`Generator` drawing arrays for this backend."""
        return Generator(self, seed)

    def all_finite(self, a) -> bool:
        """Whether every value of the float array ``a`` is finite: one host sync.

        The sum is finite unless a value is not (or the sum overflows: then isfinite
        decides), and takes one pass with no temporary: a third less than isfinite + all.
        """
        xp = self.xp
        with warnings.catch_warnings():  # NumPy-based libraries warn of the overflowing sum
            warnings.simplefilter("ignore", RuntimeWarning)
            total_finite = bool(xp.isfinite(xp.sum(a)))
        return total_finite or bool(xp.all(xp.isfinite(a)))

    def overflow_allowed(self):
        """A context manager for arithmetic that may overflow on purpose (a loss-scaled
        float16 backward: the step is then skipped). Here nothing; NumPy silences its
        overflow warnings inside."""
        return contextlib.nullcontext()

    def threads_for(self, macs: int | None):
        """A context manager for a loop whose largest matrix product takes ``macs``
        multiply-adds (None: unknown). Here the library keeps its own threading; the NumPy
        backend runs small products on one BLAS thread."""
        return contextlib.nullcontext()

    # ---- updates that write back (see the module docstring) -----------------------------------

    def set_at(self, x, index, values):
        """``x`` with ``x[index] = values``; the result may be ``x`` itself: use it."""
        import array_api_extra as xpx

        return xpx.at(x, index).set(values, xp=self.xp)

    def add_at(self, x, index, values):
        """``x`` with ``x[index] += values`` (a basic index: slices, no repeats); use the result."""
        import array_api_extra as xpx

        return xpx.at(x, index).add(values, xp=self.xp)

    def scatter_add(self, target, indices, values):
        """``target[indices[i]] += values[i]`` for every i, summing repeats; use the result.

        target: (n, ...); indices: (m,) integer; values: (m, ...). Generic path: a one-hot
        matrix product (fine for the small n of embeddings in tests).
        """
        xp = self.xp
        n = target.shape[0]
        onehot = xp.astype(indices[:, None] == xp.arange(n, device=self.device)[None, :], values.dtype)
        flat = xp.reshape(values, (values.shape[0], -1))
        return target + xp.reshape(onehot.T @ flat, target.shape)

    # ---- reductions and elementwise helpers ---------------------------------------------------

    def sum(self, a, axis=None, keepdims: bool = False):
        """``xp.sum(a, axis=axis, keepdims=keepdims)``, where a library has a faster route for
        the small arrays of a training step (NumPy does). a: any shape; axis: None, an int or
        a tuple of ints."""
        return self.xp.sum(a, axis=axis, keepdims=keepdims)

    def constants(self, dtype, *values) -> tuple:
        """``values`` (Python floats) as operands of arithmetic with arrays of ``dtype``, in
        a tuple (``one, = b.constants(X.dtype, 1.0)``). Here the numbers themselves: the
        array API computes a Python number in the array's dtype. A library whose numbers
        cost more than its tiny arrays' arithmetic returns 0-d arrays that give the same
        results (NumPy), cached by value, where 0.0 and -0.0 are one number: pass a zero
        only where its sign cannot matter."""
        return values

    def mask_multiply(self, a, mask):
        """``a * mask`` for a boolean ``mask`` broadcastable to ``a`` (a NaN stays NaN).

        The array API defines no arithmetic between booleans and floats, so the mask is
        cast first; libraries that multiply by booleans directly skip that pass.
        """
        return a * self.xp.astype(mask, a.dtype)

    def relu(self, X, mask: bool = False):
        """ReLU's forward: ``(max(X, 0), X > 0)``, the boolean mask only when ``mask`` (else None).

        X: any shape, real floating -> Y and the mask, X's shape. A NaN stays NaN in Y and
        is False in the mask.
        """
        Y = self.xp.maximum(X, *self.constants(X.dtype, 0.0))  # a cached 0-d array on NumPy, not a new one
        return Y, (X > 0) if mask else None

    def match_layout(self, a, like):
        """``a`` in ``like``'s memory order where that speeds up elementwise work (NumPy);
        here ``a`` as it is."""
        return a

    # ---- sliding windows: convolution and pooling ------------------------------------------------
    #
    # A 2-D window operation on X (N, C, H, W) with kernel (kh, kw), stride (sh, sw),
    # padding (ph, pw) and dilation (dh, dw) reads, for each kernel offset (i, j), the
    # strided slice  Xpad[:, :, i*dh :: sh, j*dw :: sw]  cut to (OH, OW). Convolution sums
    # weights times these kh*kw slices, pooling reduces over them, and both backward passes
    # add gradients back through the same slices. Geometry arguments are (height, width)
    # pairs; OH, OW come from window_output_size.

    def pad2d(self, X, padding, value=0.0):
        """X: (N, C, H, W) -> (N, C, H + 2 ph, W + 2 pw), the border filled with ``value``."""
        ph, pw = padding
        if ph == 0 and pw == 0:
            return X
        N, C, H, W = X.shape
        Xp = self._canvas(X, (N, C, H + 2 * ph, W + 2 * pw), value)
        return self.set_at(Xp, (slice(None), slice(None), slice(ph, ph + H), slice(pw, pw + W)), X)

    def _canvas(self, like, shape, fill):
        """A new array of ``shape`` in ``like``'s dtype, filled with ``fill`` (None: any values)."""
        if fill is None:
            return self.xp.empty(shape, dtype=like.dtype, device=self.device)
        return self.xp.full(shape, fill, dtype=like.dtype, device=self.device)

    def window_slices(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0):
        """The kh*kw shifted, strided slices of the padded input, one per kernel offset.

        X: (N, C, H, W) -> list of kh*kw arrays (N, C, OH, OW), offsets in row-major order:
        ``slices[i*kw + j][n, c, y, x] == Xpad[n, c, y*sh + i*dh, x*sw + j*dw]``.
        On NumPy, CuPy and PyTorch they are views (no copy).
        """
        (kh, kw) = kernel_size
        Xp = self.pad2d(X, padding, pad_value)
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        return [Xp[window_index(i, j, stride, dilation, OH, OW)] for i in range(kh) for j in range(kw)]

    def window_max(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), firsts: bool = False):
        """Max pooling's forward: the maximum of each window, padding filled with -inf.

        X: (N, C, H, W) -> (Y (N, C, OH, OW), masks). With ``firsts``, masks are kh*kw
        boolean arrays (N, C, OH, OW), one per kernel offset (row-major): True where that
        offset holds its window's maximum and no earlier offset does (ties go to the first;
        a window with a NaN is NaN in Y and False in every mask). Else masks is None.
        """
        xp = self.xp
        pieces = self.window_slices(X, kernel_size, stride, padding, dilation, pad_value=-math.inf)
        Y = pieces[0]
        for piece in pieces[1:]:
            Y = xp.maximum(Y, piece)
        if not firsts:
            return Y, None
        masks, taken = [], None
        for piece in pieces:
            hit = piece == Y  # this offset holds the max
            if taken is not None:
                hit = hit & ~taken  # unless an earlier offset tied with it
            taken = hit if taken is None else taken | hit
            masks.append(hit)
        return Y, masks

    def add_window_slices(
        self, pieces, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), masks=None
    ):
        """The adjoint of ``window_slices``: add each piece back where its slice came from.

        pieces: kh*kw arrays (N, C, OH, OW) -> dX: (N, C, H, W). Where windows overlap
        (stride < kernel) the contributions add up; what falls on the padding is dropped.
        masks: optional kh*kw boolean arrays (N, C, OH, OW); piece k then counts only where
        masks[k] is True.
        """
        (_, kw), (ph, pw), (H, W) = kernel_size, padding, X_shape[2:]
        shape, (OH, OW), overlap, tiled = scatter_plan(X_shape, kernel_size, stride, padding, dilation)
        dXp = self._canvas(pieces[0], shape, None if tiled else 0)
        for k, piece in enumerate(pieces):
            index = window_index(*divmod(k, kw), stride, dilation, OH, OW)
            dXp = self._place(dXp, index, piece, None if masks is None else masks[k], overlap)
        return dXp[:, :, ph : ph + H, pw : pw + W] if ph or pw else dXp

    def _place(self, out, index, piece, mask, add: bool):
        """``out[index] (+)= piece`` (times ``mask`` where given); returns the updated ``out``."""
        if mask is not None:
            piece = self.mask_multiply(piece, mask)
        return self.add_at(out, index, piece) if add else self.set_at(out, index, piece)

    def conv_forward(self, W2, X, kernel_size, stride, padding, dilation, ones_row=False):
        """A convolution's product: ``(W2 @ cols, kept)`` with cols = ``im2col(X, ..., ones_row)``.

        W2: (out, C*kh*kw [+ 1 with ones_row]), X: (N, C, H, W) -> Y2: (out, OH*OW*N) in
        im2col's column order. ``kept`` is what ``conv_backward`` needs of this call: here the
        columns; a backend that makes them again there may keep something smaller.
        """
        cols = self.im2col(X, kernel_size, stride, padding, dilation, ones_row=ones_row)
        return W2 @ cols, cols

    def conv_backward(
        self, W2, dY2, kept, X_shape, kernel_size, stride, padding, dilation, ones_row=False, need_dX=True
    ):
        """The chain rule through ``conv_forward``'s product: ``(dW2, dX)`` with

            dW2 = dY2 @ cols.T          (out, C*kh*kw [+ 1 with ones_row])
            dX = col2im(W2.T @ dY2)     X_shape = (N, C, H, W); None unless need_dX

        W2: (out, C*kh*kw), without the bias column; dY2: (out, OH*OW*N); kept: what
        ``conv_forward`` returned with the same geometry and ones_row.
        """
        cols = kept
        # dW2 as the transpose of cols @ dY2.T: the same numbers, but OpenBLAS runs this
        # shape (small result, long inner axis) faster that way round
        dW2 = (cols @ dY2.T).T
        if not need_dX:  # the first layer while training: nobody needs dX
            return dW2, None
        return dW2, self.col2im(W2.T @ dY2, X_shape, kernel_size, stride, padding, dilation)

    # The order of im2col's columns: batch last, (y, x, n), suits NumPy, whose strided copies
    # and adds then move runs of N numbers and whose Conv2D output is a free transposed view;
    # batch first, (n, y, x), suits a compiler (XLA), which writes every array in row-major
    # order: its layout changes then move whole image rows, not single numbers.
    batch_first_columns = False
    # Whether Conv2D's bias rides in the matrix product as a ones row of the columns (one
    # product does it all), or is added to the product's result (where making the columns
    # one row longer costs a copy as slow as the product: XLA)
    bias_in_columns = True

    def im2col(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), ones_row=False):
        """Gather every window of X (zero padding) into the columns of one matrix.

        X: (N, C, H, W) -> cols: (C * kh * kw, OH * OW * N), the batch index last, with
        ``cols[(c*kh + i)*kw + j, (y*OW + x)*N + n] == Xpad[n, c, y*sh + i*dh, x*sw + j*dw]``,
        so a convolution is one matrix product: W.reshape(out, C*kh*kw) @ cols. Where
        ``batch_first_columns`` is set the columns run (n, y, x) instead: column
        ``(n*OH + y)*OW + x``.
        ones_row=True appends a last row of ones, (C * kh * kw + 1, OH * OW * N), so that a
        bias can ride along in that product as a last column of the weights.
        """
        (kh, kw) = kernel_size
        N, C, H, W = X.shape
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, dilation)
        K, M = C * kh * kw, OH * OW * N
        xp = self.xp
        geometry = (kernel_size, stride, padding, dilation)
        if self.batch_first_columns:  # the slices of X seen as (C, N, H, W), stacked as (C, kh, kw, N, OH, OW)
            # one kernel row at a time: XLA fuses a stack of kw slices, and a stack of those,
            # into one copy, but copies each slice out first when one stack takes all kh*kw
            pieces = self.window_slices(xp.permute_dims(X, (1, 0, 2, 3)), *geometry)
            cols = xp.stack([xp.stack(pieces[i * kw : (i + 1) * kw], axis=1) for i in range(kh)], axis=1)
        else:  # (kh*kw, N, C, OH, OW) -> (C, kh*kw, OH, OW, N)
            cols = xp.permute_dims(xp.stack(self.window_slices(X, *geometry), axis=0), (2, 0, 3, 4, 1))
        cols = xp.reshape(cols, (K, M))
        if ones_row:
            cols = xp.concat([cols, xp.ones((1, M), dtype=X.dtype, device=self.device)], axis=0)
        return cols

    def col2im(self, cols, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        """The adjoint of ``im2col``: scatter-add the columns back into an input-shaped array.

        cols: (C * kh * kw, OH * OW * N) -> dX: X_shape = (N, C, H, W). Entries that came from
        the same input pixel (overlapping windows) are summed; padding is dropped.
        """
        (kh, kw) = kernel_size
        N, C, H, W = X_shape
        OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
        xp = self.xp
        # One piece per kernel offset, viewed as (C, N, OH, OW): the channels play the batch
        # axis of add_window_slices. No reordering copy: on NumPy the sum is built in the
        # columns' own (C, H, W, N) memory order and dX comes back as a transposed view.
        if self.batch_first_columns:
            cols = xp.reshape(cols, (C, kh * kw, N, OH, OW))
            pieces = [cols[:, k, ...] for k in range(kh * kw)]
        else:
            cols = xp.reshape(cols, (C, kh * kw, OH, OW, N))
            pieces = [xp.permute_dims(cols[:, k, ...], (0, 3, 1, 2)) for k in range(kh * kw)]
        dX = self.add_window_slices(pieces, (C, N, H, W), kernel_size, stride, padding, dilation)
        return xp.permute_dims(dX, (1, 0, 2, 3))

    # ---- fused optimizer updates (speed only: the math is Adam's, written once) --------------

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        """One Adam step, as torch.optim.Adam places the bias corrections; returns
        ``(param, m, v)``:

            m += (1 - beta1) (g - m);  v += (1 - beta2) (g^2 - v)
            param -= step_size * m / (sqrt(v) / bias2_sqrt + eps)

        with step_size = lr / (1 - beta1^t) and bias2_sqrt = sqrt(1 - beta2^t).
        ``scratch`` is a dict the optimizer owns, where a backend may keep reusable
        buffers between steps (NumPy does; this generic path needs none).
        """
        return adam_math(self.xp, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps)

    # ---- compiled steps (compile(jit=True); xpnn.training.jit) ----------------------------------

    def jit(self, fn):
        """``fn`` (a function of a list of arrays that returns a list of arrays) compiled by
        this library, or None where it has no compiler (NumPy, array_api_strict): the
        caller then runs the same code eagerly."""
        return None

    def has_jit(self) -> bool:
        """Whether ``jit`` compiles here (a subclass that overrides it)."""
        return type(self).jit is not Backend.jit

    def jit_loop(self, body):
        """A compiled loop of steps, or None where this library has none (then each step is
        its own compiled call). ``body(carry, x, consts) -> (carry, y)`` is one step; the
        result ``run(carry, xs, consts, n)`` applies it to ``x = xs[i]`` for i < n (``xs``:
        arrays, lists or None, stacked along a leading axis of any length >= n) and returns
        ``(carry, ys)``: the ``y`` stacked the same way, zeros past n. A new ``n`` does not
        recompile; a new length of ``xs`` does."""
        return None

    def has_jit_loop(self) -> bool:
        """Whether ``jit_loop`` compiles loops here (a subclass that overrides it)."""
        return type(self).jit_loop is not Backend.jit_loop

    def jit_scalar(self, x):
        """A Python number (the learning rate, the step count) as an argument of a compiled
        function, so that a new value is traced, not baked in (no recompile per step)."""
        return x

    # ---- multi-process training -----------------------------------------------------------------

    def allreducer(self, comm, MPI):
        """``(reduce, name)``: ``reduce(flat)`` returns the 1-D buffer ``flat`` summed over the
        ranks of ``comm``. Generic path: through a host copy."""

        def staged(flat):
            host = np.array(self.to_numpy(flat))
            comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            return self.asarray(host)

        return staged, "mpi-host-staging"

    def for_local_rank(self, local_rank: int) -> "Backend":
        """The backend rank ``local_rank`` of a node should train on (GPU backends spread
        the ranks over the node's devices); here the backend itself."""
        return self


MODEL_DTYPES = ("float32", "float64", "float16", "bfloat16")  # what a model's params may be
LOW_PRECISION = ("float16", "bfloat16")  # optimizers compute in float32 for these; mixed policies exist for them


def dtype_name(dtype) -> str:
    """The plain name of any library's dtype: "float32" for NumPy's, PyTorch's
    (torch.float32), JAX's or array_api_strict's float32."""
    return getattr(dtype, "__name__", None) or str(dtype).rsplit(".", 1)[-1]


def import_library(module: str, help_text: str):
    """``import module``, or a RuntimeError that says what to install (and why it failed)."""
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install (a CUDA library missing)
        raise RuntimeError(f"{help_text} (import failed: {exc})") from None


def adam_math(xp, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps):
    """Adam's update in array-API code (see Backend.adam_update); returns (param, m, v)."""
    m += (1.0 - beta1) * (grad - m)
    v += (1.0 - beta2) * (grad * grad - v)
    m, v = flush_subnormal(xp, m), flush_subnormal(xp, v)
    param -= step_size * (m / (xp.sqrt(v) / bias2_sqrt + eps))
    return param, m, v


def flush_subnormal(xp, a):
    """``a`` with its subnormal entries (below the dtype's smallest normal number) set to 0.

    A weight whose gradient stays 0 (an input pixel that is always 0, a dead ReLU) has
    Adam's m decay by beta1 each step until it is subnormal, and there it stays: 0.1 m
    rounds to 0, so m never reaches 0. Subnormal arithmetic is many times slower on CPUs,
    so every epoch after that got slower (the digits: 0.01 s to 0.04 s an epoch over 30
    epochs). Next to eps (1e-8) such values change no update."""
    tiny = xp.finfo(a.dtype).smallest_normal
    return xp.where(xp.abs(a) < tiny, xp.zeros_like(a), a)


def window_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a window operation along one axis (PyTorch's formula, floor mode):
    (size + 2 padding - dilation (kernel - 1) - 1) // stride + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_hw(X_shape, kernel_size, stride, padding, dilation) -> tuple[int, int]:
    """(OH, OW) of a 2-D window operation on an (N, C, H, W) input."""
    OH, OW = (window_output_size(X_shape[2 + a], kernel_size[a], stride[a], padding[a], dilation[a]) for a in range(2))
    return OH, OW


def scatter_plan(X_shape, kernel_size, stride, padding, dilation) -> tuple:
    """How the windows of a 2-D window operation on an (N, C, H, W) input add back into it
    (pooling's and convolution's backward): (padded shape (N, C, H + 2 ph, W + 2 pw),
    (OH, OW), overlap, tiled).

    Windows no wider than the stride never overlap (``overlap`` False): each pixel gets one
    piece at most, so plain assignment does (the common pooling case, kernel == stride).
    When they also tile the padded input (``tiled``), every pixel gets exactly one: no
    zeros are needed first.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    N, C, H, W = X_shape
    OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
    shape = (N, C, H + 2 * ph, W + 2 * pw)
    overlap = dh * (kh - 1) + 1 > sh or dw * (kw - 1) + 1 > sw
    tiled = (kh, kw) == (sh, sw) and (dh, dw) == (1, 1) and (OH * sh, OW * sw) == shape[2:]
    return shape, (OH, OW), overlap, tiled


def window_index(i, j, stride, dilation, OH, OW) -> tuple:
    """The index of kernel offset (i, j)'s strided slice in the padded input."""
    (sh, sw), (dh, dw) = stride, dilation
    return (
        slice(None),
        slice(None),
        slice(i * dh, i * dh + sh * (OH - 1) + 1, sh),
        slice(j * dw, j * dw + sw * (OW - 1) + 1, sw),
    )


def describe(a) -> str:
    """``a`` in words for error messages: its type, backend, device and shape."""
    from . import backend_of

    mod = type(a).__module__.split(".")[0]
    kind = f"{'an' if mod[:1] in 'aeiou' else 'a'} {mod}.{type(a).__name__}"
    try:
        b = backend_of(a)
        kind += f" (backend {b.name!r}, device {b.device_name!r})"
    except Exception:  # not an array of any library we know
        pass
    shape = getattr(a, "shape", None)
    return kind + (f" of shape {tuple(shape)}" if shape is not None else "")


class InPlaceBackend(Backend):
    """A library whose in-place operators and slice assignments write into the array
    (NumPy, CuPy, PyTorch): updates happen in place and return the same object, so
    writing it back costs nothing and no step allocates a copy of a parameter."""

    def set_at(self, x, index, values):
        x[index] = values
        return x

    def add_at(self, x, index, values):
        x[index] += values
        return x


# ---- the registry ------------------------------------------------------------------------------

# name -> Backend class, in the order registered: what get_backend, backend_of and
# available_backends read. A name is looked up as written by users: "Array-API-Strict" works.
BACKENDS = Registry(
    "backend", "xpnn.backends.register_backend", Backend, normalize=lambda name: name.strip().lower().replace("-", "_")
)


def register_backend(cls):
    """Make a Backend subclass known by its ``name`` to ``get_backend`` and ``backend_of``
    (use as a class decorator)."""
    return BACKENDS.register(cls)
