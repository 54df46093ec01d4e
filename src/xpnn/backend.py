"""The single door to arrays: every layer, loss and optimizer gets ``xp`` from a Backend.

A :class:`Backend` wraps one array library (NumPy, CuPy, array-api-strict, or any
array-API namespace) behind the array API standard (via array-api-compat), a device,
a seeded random generator, and the few operations the standard lacks. Layer code
calls ``backend.xp`` and the backend's helpers and never asks which library it is on.

Choosing the default: ``get_backend(name)``, ``set_backend(name)``,
``with use_backend(name): ...`` or the environment variable ``XPNN_BACKEND``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "Backend",
    "Generator",
    "get_backend",
    "set_backend",
    "use_backend",
    "available_backends",
]

BACKEND_NAMES = ("numpy", "cupy", "array_api_strict")

_CUPY_HELP = 'backend "cupy" needs CuPy: pip install "xpnn[cuda12]" (or "xpnn[cuda13]" for CUDA 13)'


class Generator:
    """Seeded random numbers for one model: init, dropout masks and shuffling draw from it.

    Draws are made on the host with NumPy's PCG64 and copied to the device, so the same
    seed gives the same numbers on every backend. ``state`` / ``set_state`` round-trip
    through JSON (checkpoints store it).
    """

    def __init__(self, backend: "Backend", seed: int = 0):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, found {seed!r}")
        self.backend = backend
        self.seed = int(seed)
        self._np = np.random.Generator(np.random.PCG64(self.seed))

    def _dtype(self, dtype):
        return self.backend.dtype(dtype or "float32")

    def normal(self, shape, std=1.0, mean=0.0, dtype=None):
        """Normal draws of ``shape``: N(mean, std**2)."""
        host = self._np.normal(mean, std, size=shape)
        return self.backend.asarray(host, dtype=self._dtype(dtype))

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        """Uniform draws of ``shape`` in [low, high)."""
        host = self._np.uniform(low, high, size=shape)
        return self.backend.asarray(host, dtype=self._dtype(dtype))

    def bernoulli(self, shape, p, dtype=None):
        """0/1 draws of ``shape`` in ``dtype``, each 1 with probability ``p``."""
        host = self._np.random(size=shape, dtype=np.float32) < p
        return self.backend.asarray(host, dtype=self._dtype(dtype))

    def permutation(self, n):
        """A random permutation of ``range(n)`` as an int64 backend array."""
        return self.backend.asarray(self._np.permutation(n), dtype=self.backend.xp.int64)

    def integers(self, low, high, shape):
        """Integers in [low, high) of ``shape`` as an int64 backend array."""
        host = self._np.integers(low, high, size=shape, dtype=np.int64)
        return self.backend.asarray(host, dtype=self.backend.xp.int64)

    @property
    def state(self) -> dict:
        """JSON-able state of the generator (for checkpoints)."""
        return {"seed": self.seed, "bit_generator": self._np.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._np.bit_generator.state = state["bit_generator"]


class Backend:
    """One array library on one device.

    Attributes:
        name: "numpy", "cupy", "array_api_strict" or the namespace's module name.
        xp: the array-API namespace (array-api-compat's wrapper for NumPy and CuPy).
        device: where arrays are created.
    """

    def __init__(self, name: str, xp: ModuleType, device: Any = None, native: ModuleType | None = None):
        self.name = name
        self.xp = xp
        self.device = device
        self.native = native  # the library itself (numpy, cupy), used only for fast paths

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Backend) and (self.name, str(self.device)) == (other.name, str(other.device))

    def __hash__(self) -> int:
        return hash((self.name, str(self.device)))

    # ---- dtypes and arrays -------------------------------------------------------------

    def dtype(self, dtype):
        """The namespace's dtype for a name ("float32"), a NumPy dtype or a namespace dtype."""
        if isinstance(dtype, str) or isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
            name = np.dtype(dtype).name
            try:
                return getattr(self.xp, name)
            except AttributeError:
                raise ValueError(f"dtype {name!r} is not available on backend {self.name!r}") from None
        return dtype

    def asarray(self, x, dtype=None):
        """``x`` (host data, NumPy array or an array of this backend) as an array on this device."""
        dtype = None if dtype is None else self.dtype(dtype)
        if self.name == "cupy" and isinstance(x, np.ndarray):
            return self.native.asarray(x if dtype is None else x.astype(np.dtype(str(np.dtype(dtype)))))
        if self.name == "array_api_strict" and isinstance(x, (list, tuple)):
            x = np.asarray(x)
        return self.xp.asarray(x, dtype=dtype, device=self.device)

    def to_numpy(self, a) -> np.ndarray:
        """A host NumPy array of backend array ``a``: a copy from CuPy, but a view that
        shares memory on NumPy and array_api_strict (copy it with ``np.array`` before keeping
        it across in-place updates)."""
        if isinstance(a, np.ndarray):
            return a
        if self.name == "cupy":
            return a.get()
        if self.name == "array_api_strict":
            return np.from_dlpack(a)
        try:
            return np.from_dlpack(a)
        except Exception:
            return np.asarray(a)

    def to_float(self, a) -> float:
        """A 0-d array as a Python float (the one place a host sync happens on purpose)."""
        return float(self.to_numpy(a))

    def zeros(self, shape, dtype="float32"):
        return self.xp.zeros(shape, dtype=self.dtype(dtype), device=self.device)

    def owns(self, a) -> bool:
        """Whether ``a`` is an array of this backend (namespace and device)."""
        try:
            ns = array_api_compat.array_namespace(a)
        except TypeError:
            return False
        if ns is not self.xp:
            return False
        if self.name == "array_api_strict":
            return a.device == self.device
        return True

    def check(self, a, argname: str, where: str = "") -> None:
        """Raise a clear TypeError if ``a`` is not an array of this backend.

        This catches the NumPy/CuPy mixing error (a host array given to a GPU model, or
        the other way round) before it turns into a cryptic failure deep in a layer.
        """
        if self.owns(a):
            return
        prefix = f"{where}: " if where else ""
        raise TypeError(
            f"{prefix}{argname} is {_describe(a)}, but this model runs on backend "
            f"{self.name!r} (device {self.device!r}); convert it with backend.asarray({argname}) "
            f"or move the model with model.to(...)"
        )

    def rng(self, seed: int = 0) -> Generator:
        """A seeded :class:`Generator` drawing arrays for this backend."""
        return Generator(self, seed)

    # ---- operations outside the array API standard --------------------------------------

    def scatter_add(self, target, indices, values):
        """``target[indices[i]] += values[i]`` for every i, summing repeats; returns target.

        target: (n, ...); indices: (m,) integer; values: (m, ...). The generic path is a
        one-hot matrix product (fine for the small n of embeddings in tests).
        """
        if self.name == "numpy":
            np.add.at(target, indices, values)
            return target
        if self.name == "cupy":
            self.native.add.at(target, indices, values)
            return target
        xp = self.xp
        n = target.shape[0]
        onehot = xp.astype(indices[:, None] == xp.arange(n, device=self.device)[None, :], values.dtype)
        flat = xp.reshape(values, (values.shape[0], -1))
        target += xp.reshape(onehot.T @ flat, target.shape)
        return target


    # ---- sliding windows: convolution and pooling ----------------------------------------
    #
    # A 2-D window operation on X (N, C, H, W) with kernel (kh, kw), stride (sh, sw),
    # padding (ph, pw) and dilation (dh, dw) reads, for each kernel offset (i, j), the
    # strided slice  Xpad[:, :, i*dh :: sh, j*dw :: sw]  cut to (OH, OW). Convolution sums
    # weights times these kh*kw slices, pooling reduces over them, and both backward passes
    # add gradients back through the same slices. Geometry arguments are (height, width)
    # pairs; OH, OW come from window_output_size.
    #
    # Memory layout on NumPy: im2col orders its columns (y, x, n), batch last, from an input
    # padded into (C, H, W, N) memory, so that each window slice is one contiguous run of
    # OW*N numbers rather than many OW-long rows; the copy of im2col and the adds of col2im
    # then run at memory speed. Conv2D hands on its output as an NCHW-shaped view of that
    # (C, H, W, N) memory, and NumPy's elementwise results (ReLU, pooling) follow their
    # input's memory order, so a conv-ReLU-pool-conv stack never copies a transpose.

    def match_layout(self, a, like):
        """``a`` (the shape of ``like``) in ``like``'s memory order.

        NumPy walks an elementwise operation in one memory order for all its operands, so
        when two disagree (an NCHW gradient from Flatten meeting a Conv2D output, which
        lives in (C, H, W, N) memory) one is read across its rows, several times slower
        than copying it into the other's order first. On NumPy that copy is made when the
        orders differ; otherwise, and on other backends, ``a`` is returned as it is.
        """
        if self.name != "numpy" or a.strides == like.strides or _axis_order(a) == _axis_order(like):
            return a
        out = np.empty_like(like, dtype=a.dtype)  # like's memory order
        out[...] = a
        return out

    def mask_multiply(self, a, mask):
        """``a * mask`` for a boolean ``mask`` (broadcastable to ``a``): ``a`` where mask is
        True, 0 elsewhere (a NaN stays NaN, as in a product with 0.0).

        The array API defines no arithmetic between booleans and floats, so the generic path
        casts the mask first; NumPy multiplies by the booleans directly, which saves that
        pass and lets a layer keep a 1-byte mask rather than a float one.
        """
        if self.name == "numpy":
            return a * mask
        return a * self.xp.astype(mask, a.dtype)

    def pad2d(self, X, padding, value=0.0):
        """X: (N, C, H, W) -> (N, C, H + 2 ph, W + 2 pw), the border filled with ``value``.

        Built as ``full`` plus a slice assignment, which every array library has (``pad``
        is not in the array API standard).
        """
        ph, pw = padding
        if ph == 0 and pw == 0:
            return X
        N, C, H, W = X.shape
        shape = (N, C, H + 2 * ph, W + 2 * pw)
        if self.name == "numpy":
            Xp = _numpy_in_layout_of(X, shape, fill=value)  # X's memory order: slices stay long runs
        else:
            Xp = self.xp.full(shape, value, dtype=X.dtype, device=self.device)
        Xp[:, :, ph:ph + H, pw:pw + W] = X
        return Xp

    def window_slices(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0):
        """The kh*kw shifted, strided slices of the padded input, one per kernel offset.

        X: (N, C, H, W) -> list of kh*kw arrays (N, C, OH, OW), offsets in row-major order:
        ``slices[i*kw + j][n, c, y, x] == Xpad[n, c, y*sh + i*dh, x*sw + j*dw]``.
        On NumPy and CuPy they are views (no copy).
        """
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        Xp = self.pad2d(X, padding, pad_value)
        OH, OW = _output_hw(X.shape, kernel_size, stride, padding, dilation)
        return [Xp[:, :, i * dh:i * dh + sh * (OH - 1) + 1:sh, j * dw:j * dw + sw * (OW - 1) + 1:sw]
                for i in range(kh) for j in range(kw)]

    def add_window_slices(self, pieces, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                          masks=None):
        """The adjoint of ``window_slices``: add each piece back where its slice came from.

        pieces: kh*kw arrays (N, C, OH, OW) -> dX: (N, C, H, W). Where windows overlap
        (stride < kernel) the contributions add up; what falls on the padding is dropped.
        masks: optional kh*kw boolean arrays (N, C, OH, OW); piece k then counts only where
        masks[k] is True (``mask_multiply``, on NumPy done in the same pass as the placing).
        """
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
        N, C, H, W = X_shape
        OH, OW = _output_hw(X_shape, kernel_size, stride, padding, dilation)
        shape = (N, C, H + 2 * ph, W + 2 * pw)
        # Windows no wider than the stride never overlap: each pixel gets one piece at most,
        # so plain assignment does (the common pooling case, kernel == stride). When they
        # also tile the padded input, every pixel gets exactly one: no zeros needed first.
        overlap = dh * (kh - 1) + 1 > sh or dw * (kw - 1) + 1 > sw
        tiled = (kh, kw) == (sh, sw) and (dh, dw) == (1, 1) and (OH * sh, OW * sw) == shape[2:]
        if self.name == "numpy":  # in the pieces' memory order: long runs
            dXp = _numpy_in_layout_of(pieces[0], shape, fill=None if tiled else 0)
        else:
            make = self.xp.empty if tiled else self.xp.zeros
            dXp = make(shape, dtype=pieces[0].dtype, device=self.device)
        in_place = self.name in ("numpy", "cupy")  # views alias there; the standard does not promise it
        for k, piece in enumerate(pieces):
            i, j = divmod(k, kw)
            at = (slice(None), slice(None),
                  slice(i * dh, i * dh + sh * (OH - 1) + 1, sh), slice(j * dw, j * dw + sw * (OW - 1) + 1, sw))
            if masks is not None:
                if self.name == "numpy" and not overlap:
                    np.multiply(piece, masks[k], out=dXp[at])  # masked and placed in one pass
                    continue
                piece = self.mask_multiply(piece, masks[k])
            if not overlap:
                dXp[at] = piece
            elif in_place:
                dXp[at] += piece
            else:
                dXp[at] = dXp[at] + piece
        return dXp[:, :, ph:ph + H, pw:pw + W] if ph or pw else dXp

    def im2col(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), ones_row=False):
        """Gather every window of X (zero padding) into the columns of one matrix.

        X: (N, C, H, W) -> cols: (C * kh * kw, OH * OW * N), the batch index last, with
        ``cols[(c*kh + i)*kw + j, (y*OW + x)*N + n] == Xpad[n, c, y*sh + i*dh, x*sw + j*dw]``,
        so a convolution is one matrix product: W.reshape(out, C*kh*kw) @ cols.
        ones_row=True appends a last row of ones, (C * kh * kw + 1, OH * OW * N), so that a
        bias can ride along in that product as a last column of the weights.
        """
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
        N, C, H, W = X.shape
        OH, OW = _output_hw(X.shape, kernel_size, stride, padding, dilation)
        K, M = C * kh * kw, OH * OW * N
        if self.name == "numpy":
            # Pad into (C, H, W, N) memory, take every window as one strided view with the
            # columns' axis order, then copy it once into cols; see the note above.
            Xp = np.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=X.dtype)
            Xp[:, ph:ph + H, pw:pw + W, :] = X.transpose(1, 2, 3, 0)
            sC, sH, sW, sN = Xp.strides
            view = np.lib.stride_tricks.as_strided(
                Xp, (C, kh, kw, OH, OW, N), (sC, sH * dh, sW * dw, sH * sh, sW * sw, sN), writeable=False)
            cols = np.empty((K + ones_row, M), dtype=X.dtype)
            cols[:K].reshape(C, kh, kw, OH, OW, N)[...] = view
            if ones_row:
                cols[K] = 1.0
            return cols
        xp = self.xp
        cols = xp.stack(self.window_slices(X, kernel_size, stride, padding, dilation), axis=0)  # (kh*kw, N, C, OH, OW)
        cols = xp.reshape(xp.permute_dims(cols, (2, 0, 3, 4, 1)), (K, M))  # (C, kh*kw, OH, OW, N) flattened
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
        OH, OW = _output_hw(X_shape, kernel_size, stride, padding, dilation)
        xp = self.xp
        cols = xp.reshape(cols, (C, kh * kw, OH, OW, N))
        # One piece per kernel offset, viewed as (C, N, OH, OW): the channels play the batch
        # axis of add_window_slices. No reordering copy: on NumPy the sum is built in the
        # columns' own (C, H, W, N) memory order and dX comes back as a transposed view.
        pieces = [xp.permute_dims(cols[:, k, ...], (0, 3, 1, 2)) for k in range(kh * kw)]
        dX = self.add_window_slices(pieces, (C, N, H, W), kernel_size, stride, padding, dilation)
        return xp.permute_dims(dX, (1, 0, 2, 3))


    # ---- fused optimizer updates (speed only: the math is Adam's, written once) ----------

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps):
        """One Adam step in place, as torch.optim.Adam places the bias corrections:

            m += (1 - beta1) (g - m);  v += (1 - beta2) (g^2 - v)
            param -= step_size * m / (sqrt(v) / bias2_sqrt + eps)

        with step_size = lr / (1 - beta1^t) and bias2_sqrt = sqrt(1 - beta2^t). The generic
        path is plain array-API code; NumPy reuses one scratch buffer per shape instead of
        allocating a temporary per operation; CuPy runs one fused elementwise kernel.
        """
        if self.name == "cupy":
            from ._cupy_kernels import adam_update

            adam_update(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps)
            return
        if self.name == "numpy":
            tmp = self._scratch(param)
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
            return
        m += (1.0 - beta1) * (grad - m)
        v += (1.0 - beta2) * (grad * grad - v)
        param -= step_size * (m / (self.xp.sqrt(v) / bias2_sqrt + eps))

    def _scratch(self, like):
        """A reusable NumPy buffer shaped like ``like`` (keyed by shape and dtype)."""
        cache = self.__dict__.setdefault("_scratch_buffers", {})
        key = (tuple(like.shape), like.dtype)
        buf = cache.get(key)
        if buf is None:
            buf = cache[key] = np.empty_like(like)
        return buf


def window_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a window operation along one axis (PyTorch's formula, floor mode):
    (size + 2 padding - dilation (kernel - 1) - 1) // stride + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _output_hw(X_shape, kernel_size, stride, padding, dilation) -> tuple[int, int]:
    return tuple(window_output_size(X_shape[2 + a], kernel_size[a], stride[a], padding[a], dilation[a])
                 for a in range(2))


def _axis_order(a: np.ndarray) -> list[int]:
    """The axes of ``a`` from outermost to innermost in memory (length-1 axes left out)."""
    order = sorted(range(a.ndim), key=lambda axis: abs(a.strides[axis]), reverse=True)
    return [axis for axis in order if a.shape[axis] > 1]


def _numpy_in_layout_of(like: np.ndarray, shape, fill=None) -> np.ndarray:
    """A NumPy array of ``shape`` (filled with ``fill`` unless None), its axes in memory in
    the same order as ``like``'s: np.full_like for another shape (padded, or unpadded)."""
    order = sorted(range(like.ndim), key=lambda axis: abs(like.strides[axis]), reverse=True)  # outermost first
    out = np.empty([shape[axis] for axis in order], dtype=like.dtype).transpose(np.argsort(order))
    if fill is not None:
        out.fill(fill)
    return out


def _describe(a) -> str:
    mod = type(a).__module__.split(".")[0]
    shape = getattr(a, "shape", None)
    kind = f"an {mod}.{type(a).__name__}" if mod[0] in "aeiou" else f"a {mod}.{type(a).__name__}"
    if mod == "numpy":
        kind += " (host memory, backend 'numpy')"
    elif mod == "cupy":
        kind += " (GPU memory, backend 'cupy')"
    elif mod == "array_api_strict":
        kind += f" (backend 'array_api_strict', device {getattr(a, 'device', '?')!r})"
    return kind + (f" of shape {tuple(shape)}" if shape is not None else "")


# ---- construction and the default -----------------------------------------------------

_cache: dict = {}
_state = threading.local()
_default_name: str | None = None


def _make(name: str, device=None) -> Backend:
    if name == "numpy":
        import array_api_compat.numpy as xp

        return Backend("numpy", xp, "cpu", np)
    if name == "cupy":
        try:
            import cupy
        except Exception as exc:  # ImportError, or a broken CUDA install
            raise RuntimeError(f"{_CUPY_HELP} (import failed: {exc})") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise RuntimeError(f'backend "cupy": CuPy is installed but no CUDA GPU is visible ({exc})') from None
        if count == 0:
            raise RuntimeError('backend "cupy": CuPy is installed but no CUDA GPU is visible')
        import array_api_compat.cupy as xp

        return Backend("cupy", xp, cupy.cuda.Device(device or 0), cupy)
    if name == "array_api_strict":
        try:
            import array_api_strict as xp
        except ImportError:
            raise RuntimeError('backend "array_api_strict" needs array-api-strict: pip install array-api-strict') from None
        # A non-default device, so that an array made without the model's device (or a
        # host array slipped in) raises: the CPU stand-in for CuPy's host/device errors.
        dev = device if device is not None else xp.Device("device1")
        return Backend("array_api_strict", xp, dev, xp)
    raise ValueError(f"backend must be one of {BACKEND_NAMES} or an array namespace module, found {name!r}")


def get_backend(name_or_namespace: "str | ModuleType | Backend | None" = None, device=None) -> Backend:
    """The Backend for a name ("numpy", "cupy", "array_api_strict"), a namespace module,
    or, with None, the current default (``set_backend``, ``use_backend``, ``XPNN_BACKEND``,
    else "numpy")."""
    if isinstance(name_or_namespace, Backend):
        return name_or_namespace
    if name_or_namespace is None:
        name_or_namespace = getattr(_state, "stack", None) and _state.stack[-1] or _default_name
        if name_or_namespace is None:
            env = os.environ.get("XPNN_BACKEND", "") or "numpy"
            try:
                return get_backend(env, device)
            except ValueError as exc:  # say where the bad name came from
                raise ValueError(f"environment variable XPNN_BACKEND: {exc}") from None
        if isinstance(name_or_namespace, Backend):
            return name_or_namespace
    if isinstance(name_or_namespace, ModuleType):
        mod = name_or_namespace.__name__
        for known in BACKEND_NAMES:
            if mod in (known, f"array_api_compat.{known}"):
                return get_backend(known, device)
        probe = name_or_namespace.asarray([0.0])
        xp = array_api_compat.array_namespace(probe)
        return Backend(mod, xp, array_api_compat.device(probe), name_or_namespace)
    if not isinstance(name_or_namespace, str):
        raise TypeError(
            f"backend must be a name {BACKEND_NAMES}, an array namespace module or a Backend, "
            f"found {type(name_or_namespace).__name__}"
        )
    key = (name_or_namespace.lower().replace("-", "_"), None if device is None else str(device))
    if key not in _cache:
        _cache[key] = _make(key[0], device)
    return _cache[key]


def backend_of(a) -> Backend:
    """The Backend an array belongs to (its namespace and device)."""
    ns = array_api_compat.array_namespace(a)
    name = ns.__name__.split(".")[-1]
    if name in ("numpy", "cupy"):
        return get_backend(name)
    if name == "array_api_strict":
        return get_backend(name, a.device) if str(a.device) != str(get_backend(name).device) else get_backend(name)
    return get_backend(ns)


def set_backend(name) -> Backend:
    """Make ``name`` the default backend for new models; returns it."""
    global _default_name
    backend = get_backend(name)  # validate before storing
    _default_name = backend
    return backend


@contextlib.contextmanager
def use_backend(name):
    """``with use_backend("cupy"): ...`` makes ``name`` the default inside the block."""
    backend = get_backend(name)
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(backend)
    try:
        yield backend
    finally:
        stack.pop()


def available_backends() -> dict:
    """Each known backend name mapped to True or to the reason it cannot be used."""
    found = {}
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
            found[name] = True
        except Exception as exc:
            found[name] = str(exc)
    return found
