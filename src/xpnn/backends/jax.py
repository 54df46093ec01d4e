"""JAX arrays: immutable, so every update goes through the write-back path.

``a -= b`` on a JAX array makes a new array and rebinds the name, and ``a[i] = v`` is an
error; xpnn's optimizers, BatchNorm and the window primitives store their results back
(``layer.params[name] = new``), and slice updates use JAX's ``a.at[i].set(v)`` /
``.add(v)``. Operations run eagerly, one dispatch each, unless the model is compiled with
``jit=True``: then each training step (and each inference batch) is one ``jax.jit``
function, the same code traced once (xpnn.training.jit).

Float64: JAX computes in float32 unless ``jax_enable_x64`` is on. xpnn always names its
dtypes, so this backend turns the flag on when it is created: float32 models stay
float32, and gradient checks can run in float64.
"""

from __future__ import annotations

import functools
import math
import weakref

import array_api_compat
import numpy as np

from .base import Backend, adam_math, import_library, output_hw, register_backend

HELP = 'backend "jax" needs JAX: pip install "xpnn[jax]"'


def _jax():
    return import_library("jax", HELP)


@register_backend
class JaxBackend(Backend):
    name = "jax"

    @classmethod
    def create(cls, device=None) -> "JaxBackend":
        jax = _jax()
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        return cls(jnp, _resolve_device(jax, device), jax)

    @classmethod
    def is_array(cls, a) -> bool:
        return array_api_compat.is_jax_array(a)

    @classmethod
    def devices(cls) -> list:
        return [_device_name(d) for d in _jax().devices()]

    @property
    def device_name(self) -> str:
        return _device_name(self.device)

    def device_of(self, a):
        # a traced array (inside a compiled step) has no device of its own: it is this one's
        found = array_api_compat.device(a)
        return self.device if found is None else found

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)  # a read-only host copy

    def set_at(self, x, index, values):
        return x.at[index].set(values)

    def add_at(self, x, index, values):
        return x.at[index].add(values)

    def scatter_add(self, target, indices, values):
        return target.at[indices].add(values)  # repeated indices add up, as the contract wants

    # ---- sliding windows without scatters --------------------------------------------------
    # The generic helpers write into a canvas with ``.at[index].set/add``, which JAX lowers to
    # XLA scatters: an element-by-element loop on the CPU (a 2x2 max pool's backward took
    # ~85 ms at batch 128). A strided slice's adjoint is a pad with interior padding (the
    # stride's gaps), so both are written as ``lax.pad``: XLA fuses the pads and their sum
    # into one pass over the output.

    batch_first_columns = True  # see Backend.batch_first_columns
    bias_in_columns = False

    def pad2d(self, X, padding, value=0.0):
        ph, pw = padding
        if ph == 0 and pw == 0:
            return X
        fill = self.xp.asarray(value, dtype=X.dtype)
        return self.native.lax.pad(X, fill, [(0, 0, 0), (0, 0, 0), (ph, ph, 0), (pw, pw, 0)])

    def window_max(self, X, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), firsts=False):
        (kh, kw), (ph, pw) = kernel_size, padding
        if tuple(stride) != (kh, kw) or (ph, pw) != (0, 0) or tuple(dilation) != (1, 1):
            return Backend.window_max(self, X, kernel_size, stride, padding, dilation, firsts)
        # windows that tile the input (a 2x2 max pool): a view (N, C, OH, OW, kh*kw) and one
        # reduction that finds each window's maximum and its first offset together. XLA
        # copies a reduction's result once; the generic masks, kh*kw chains of compares over
        # the slices, it fused into the backward and recomputed for every pixel of dX
        xp, lax = self.xp, self.native.lax
        N, C = X.shape[:2]
        OH, OW = output_hw(X.shape, kernel_size, stride, padding, (1, 1))
        tiles = xp.reshape(X[:, :, : OH * kh, : OW * kw], (N, C, OH, kh, OW, kw))
        windows = xp.reshape(xp.permute_dims(tiles, (0, 1, 2, 4, 3, 5)), (N, C, OH, OW, kh * kw))
        if not firsts:
            return xp.max(windows, axis=4), None
        offsets = lax.broadcasted_iota(xp.int8 if kh * kw < 127 else xp.int32, windows.shape, 4)
        start = (xp.asarray(-math.inf, dtype=X.dtype), xp.asarray(0, dtype=offsets.dtype))
        Y, first = lax.reduce((windows, offsets), start, _first_max, (4,))
        # a window holding a NaN marks no offset, as the generic masks (NaN == NaN is False)
        first = xp.where(Y == Y, first, xp.asarray(kh * kw, dtype=first.dtype))
        return Y, [first == k for k in range(kh * kw)]

    def add_window_slices(
        self, pieces, X_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), masks=None
    ):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
        H, W = X_shape[2:]
        OH, OW = output_hw(X_shape, kernel_size, stride, padding, dilation)
        lax, zero = self.native.lax, self.xp.asarray(0, dtype=pieces[0].dtype)
        if masks is not None:
            pieces = [self.mask_multiply(piece, mask) for piece, mask in zip(pieces, masks)]
        if (kh, kw) == (sh, sw) and (dh, dw) == (1, 1):
            # windows that tile the input (a 2x2 max pool): every pixel gets one piece, so
            # dX is the pieces interleaved, (kh, kw, N, C, OH, OW) -> (N, C, OH, kh, OW, kw),
            # one copy in which each pixel reads one piece, not the kh*kw pads summed
            N, C = X_shape[:2]
            xp = self.xp
            tiles = xp.reshape(xp.stack(pieces, axis=0), (kh, kw, N, C, OH, OW))
            dXp = xp.reshape(xp.permute_dims(tiles, (2, 3, 4, 0, 5, 1)), (N, C, OH * kh, OW * kw))
            # drop the padding; zeros for the rows and columns no window reached
            bottom, right = H + ph - OH * kh, W + pw - OW * kw
            return lax.pad(dXp, zero, [(0, 0, 0), (0, 0, 0), (-ph, bottom, 0), (-pw, right, 0)])
        # Each piece is spread by a pad (interior padding: the stride's gaps; negative low/high
        # pads: what falls on the padding is cropped). Pads are separable, so each kernel
        # row's pieces are spread across and summed first, then the rows spread down: XLA
        # fuses these short sums into one pass, where it copied each of kh*kw pads out first
        dX = None
        for i in range(kh):
            # piece[y, x] lands on padded row y*sh + i*dh: unpadded row y*sh + i*dh - ph
            top = i * dh - ph
            bottom = H - (top + sh * (OH - 1) + 1)
            row = None
            for j in range(kw):
                left = j * dw - pw
                right = W - (left + sw * (OW - 1) + 1)
                spread = lax.pad(pieces[i * kw + j], zero, [(0, 0, 0), (0, 0, 0), (0, 0, 0), (left, right, sw - 1)])
                row = spread if row is None else row + spread
            spread = lax.pad(row, zero, [(0, 0, 0), (0, 0, 0), (top, bottom, sh - 1), (0, 0, 0)])
            dX = spread if dX is None else dX + spread
        return dX

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        # the generic formula compiled by jax.jit, once per shape: one fused kernel instead
        # of thirteen eager dispatches (the hyperparameters are traced, so a new lr or step
        # count does not recompile)
        if self._adam is None:
            self._adam = self.native.jit(functools.partial(adam_math, self.xp))
        return self._adam(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps)

    _adam = None
    _finite: set | None = None

    def all_finite(self, a) -> bool:
        # a JAX array is immutable: once found finite it stays so, and a fit, evaluate or
        # predict on the same arrays (every epoch of a loop of fits) need not read it again
        if self._finite is None:
            self._finite = set()  # ids of live arrays found finite
        key = id(a)
        if key in self._finite:
            return True
        ok = Backend.all_finite(self, a)
        if ok:
            try:
                weakref.finalize(a, self._finite.discard, key)  # the id is reused once a is gone
            except TypeError:  # no weak references to it (a tracer): not remembered
                return ok
            self._finite.add(key)
        return ok

    def jit(self, fn):
        # Python numbers passed to a jitted function are traced as weakly typed scalars: a
        # float64 lr does not promote float32 params, and a new value does not recompile
        return self.native.jit(fn)

    def jit_loop(self, body):
        jax = self.native
        lax, tree = jax.lax, jax.tree_util

        def run(carry, xs, consts, n):
            length = tree.tree_leaves(xs)[0].shape[0]
            # the step's outputs, for buffers of ``length`` rows (traces body once more, without running it)
            _, y_like = jax.eval_shape(body, carry, tree.tree_map(lambda a: a[0], xs), consts)
            ys = tree.tree_map(lambda s: self.xp.zeros((length, *s.shape), dtype=s.dtype), y_like)

            def step(i, state):
                carry, ys = state
                x = tree.tree_map(lambda a: lax.dynamic_index_in_dim(a, i, keepdims=False), xs)
                carry, y = body(carry, x, consts)
                return carry, tree.tree_map(lambda buf, v: lax.dynamic_update_index_in_dim(buf, v, i, 0), ys, y)

            # a while loop with a traced trip count: a shorter last chunk does not recompile
            return lax.fori_loop(0, n, step, (carry, ys))

        # carry not donated: one call runs many steps, so reusing its buffers saves little,
        # and arrays a user holds (model.named_arrays()) stay valid
        return jax.jit(run)


def _first_max(a, b):
    """The reducer of window_max: (value, offset) pairs -> their maximum as the generic
    ``xp.maximum`` chain gives it (NaN wins, +0 over -0) and the first offset that holds
    it (-0 and +0 tie)."""
    import jax.numpy as jnp

    (a_value, a_offset), (b_value, b_offset) = a, b
    take_b = (b_value > a_value) | (b_value != b_value) | ((b_value == a_value) & (b_offset < a_offset))
    return jnp.maximum(a_value, b_value), jnp.where(take_b, b_offset, a_offset)


def _device_name(device) -> str:
    return f"{device.platform}:{device.id}"


def _resolve_device(jax, device):
    """A jax Device from None (JAX's default), a Device, "cpu", "gpu", "cuda:1", "tpu:0"."""
    if device is None:
        return jax.devices()[0]
    if hasattr(device, "platform") and hasattr(device, "id"):
        return device
    text = str(device)
    platform, _, index = text.partition(":")
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(platform, platform)
    if isinstance(device, bool) or (index and not index.isdigit()):
        raise ValueError(
            f'backend "jax": device must be a jax Device, "cpu", "gpu", "cuda:<index>" or '
            f'"tpu:<index>", found {device!r}'
        )
    try:
        found = jax.devices(platform)
    except RuntimeError as exc:
        raise RuntimeError(f'backend "jax": no {platform!r} devices are available ({exc})') from None
    i = int(index or 0)
    if i >= len(found):
        raise RuntimeError(
            f'backend "jax": device {device!r} does not exist; JAX sees {len(found)} {platform} device(s)'
        )
    return found[i]
