"""Finite-difference gradient checks: how we know every hand-written backward is right.

Backprop is the chain rule applied layer by layer: if L depends on Y = f(X), then
dL/dX = dL/dY * dY/dX, and each layer's ``backward(dY)`` computes exactly that product
for its own f. A finite difference needs no chain rule at all: nudge one input number by
a tiny h in each direction and watch the scalar L,

    dL/dx  ~  (L(x + h) - L(x - h)) / (2 h)          (central difference, error O(h^2))

Doing this for every number of X and every parameter gives the true gradient (up to
rounding) by brute force, one forward pass per nudge. If it agrees with ``backward``,
the calculus in the layer is right. The check runs in float64: in float32 rounding
error (about 1e-7 relative) divided by a small h would swamp the comparison.

To check a layer we need a scalar, so we contract its output with a fixed random array
R: L = sum(Y * R). Then dL/dY = R, which is what we feed to ``backward``.

Agreement is measured per tensor as ||analytic - numeric|| / (||analytic|| + ||numeric||),
which is scale-free and does not blow up where one gradient entry is near zero.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .backends import backend_of
from .layers.base import Layer
from .model import Sequential


def _relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    if denom == 0.0:
        return 0.0
    return float(np.linalg.norm(analytic - numeric) / denom)


def _numeric_grad(f, x_host: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of scalar f with respect to every entry of x_host (float64)."""
    grad = np.zeros_like(x_host)
    flat, gflat = x_host.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = f(x_host)
        flat[i] = orig - eps
        minus = f(x_host)
        flat[i] = orig
        gflat[i] = (plus - minus) / (2.0 * eps)
    return grad


def gradcheck(
    layer_or_loss,
    X,
    target=None,
    eps: float = 1e-6,
    seed: int = 0,
    check_input: bool = True,
    details: bool = False,
    **inputs,
):
    """Compare ``backward`` with central differences for the input and every parameter.

    Args:
        layer_or_loss: a Layer (``forward(X, training=True)``/``backward(dY)``: any layer,
            containers included, whose params are checked through ``named_params()``) or a
            Loss (``forward(pred, target)``/``backward()``).
        X: the input (a backend array; cast to float64 here). For a loss, the prediction.
        target: the loss target (losses only).
        eps: the finite-difference step h.
        check_input: also check dX (False for integer inputs such as embedding indices).
        details: return ``{name: relative_error}`` instead of the worst error.
        inputs: keyword inputs of the layer's forward (attention's ``mask=``), the same
            on every call.

    The layer runs in training mode (the only one with a backward: Dropout's mask is drawn
    once and reused for every nudge, BatchNorm uses batch statistics). Its params, buffers,
    dtype and generator are restored afterwards, also when the check fails.

    Returns:
        The worst relative error over the input and all parameters (float), or the dict.
    """
    backend = backend_of(X)
    xp = backend.xp
    if xp.isdtype(X.dtype, "real floating"):
        X = xp.astype(X, xp.float64)
    if target is not None or not isinstance(layer_or_loss, Layer):
        errors = _check_loss(layer_or_loss, X, target, eps)
    else:
        layer = _ready_layer(layer_or_loss, X, seed, inputs)
        with _restored(layer):
            errors = _check_layer(layer, X, eps, seed, check_input, inputs)
    return errors if details else max(errors.values())


def _check_loss(loss, X, target, eps: float) -> dict:
    """{"input": relative error} of a loss's ``backward()`` against central differences."""
    backend = backend_of(X)

    def f_input(x_host):
        return backend.to_float(loss.forward(backend.asarray(x_host, backend.xp.float64), target))

    loss.forward(X, target)
    analytic = np.asarray(backend.to_numpy(loss.backward()), np.float64)
    x_host = np.array(backend.to_numpy(X), dtype=np.float64)
    return {"input": _relative_error(analytic, _numeric_grad(f_input, x_host, eps))}


def _ready_layer(layer, X, seed: int, inputs: dict):
    """The layer bound (a fresh standalone one: to X's backend in float64) and built."""
    if "training" in inputs:
        raise TypeError(
            "gradcheck: there is no training argument any more: a layer is always checked in training "
            "mode, the only mode with a backward"
        )
    backend = backend_of(X)
    xp = backend.xp
    if layer.backend is None:  # a fresh standalone layer: bind it in float64
        layer.bind(backend, backend.rng(seed), "float64")
    if not all(part.built for part in layer.walk()):  # build lazily-sized layers inside (inference keeps nothing)
        layer.forward(xp.astype(X, layer.dtype) if xp.isdtype(X.dtype, "real floating") else X, **inputs)
    return layer


@contextmanager
def _restored(layer):
    """Put back what the check changes, also when it fails: the check must not leave a
    model's float32 layer in float64, its running stats moved or its dropout generator
    advanced."""
    xp = layer.xp
    restore, buffers = layer.named_params(), layer.named_buffers()  # a mixed-precision model's masters too
    saved_values = {name: h.value for name, h in restore.items()}
    saved_buffers = {name: xp.asarray(h.value, copy=True) for name, h in buffers.items()}
    # a model restores its dtype by name: a mixed-precision policy is more than its compute dtype
    saved_dtype = layer.dtype_name if isinstance(layer, Sequential) else layer.dtype
    generator = layer.generator
    saved_state = _rng_state(generator)
    try:
        layer.bind(layer.backend, generator, "float64")  # the whole tree computes (and holds params) in float64
        yield
    finally:
        for name, h in restore.items():
            h.value = saved_values[name]
        for name, h in buffers.items():
            h.value = saved_buffers[name]
        layer.bind(layer.backend, generator, saved_dtype)
        layer.release_saved()  # the numeric passes' activations: the layer holds none afterwards
        if saved_state is not None:
            generator.set_state(saved_state)


def _rng_state(generator):
    """The generator's state to rewind to (None for a layer bound to none)."""
    return None if generator is None else generator.state


def _check_layer(layer, X, eps: float, seed: int, check_input: bool, inputs: dict) -> dict:
    """{"input": error, param name: error, ...} of a float64-bound layer's backward against
    central differences of L = sum(Y * R), R a fixed random array."""
    backend, generator = layer.backend, layer.generator
    f64 = backend.xp.float64
    params = layer.named_params()  # the layers' own params, now float64 (no master copies)
    Y = layer.forward(X, training=True, **inputs)
    R_host = np.random.default_rng(seed).standard_normal(tuple(Y.shape))
    X_cur = [X]

    def objective() -> float:
        state = _rng_state(generator)
        out = layer.forward(X_cur[0], training=True, **inputs)
        if state is not None:  # the same dropout mask on every call
            generator.set_state(state)
        return float(np.sum(backend.to_numpy(out) * R_host))

    # analytic gradients, with the generator rewound so the mask matches the numeric passes
    state = _rng_state(generator)
    layer.forward(X, training=True, **inputs)
    if state is not None:
        generator.set_state(state)
    dX = layer.backward(backend.asarray(R_host, f64))
    missing = [name for name, h in params.items() if h.grad is None]
    if missing:
        raise RuntimeError(f"gradcheck: {layer!r}.backward did not set grads for {missing}")
    analytic = {name: np.array(backend.to_numpy(h.grad), dtype=np.float64) for name, h in params.items()}

    errors = {}
    if check_input:

        def f_input(x_host):
            X_cur[0] = backend.asarray(x_host, f64)
            return objective()

        x_host = np.array(backend.to_numpy(X), dtype=np.float64)
        errors["input"] = _relative_error(
            np.array(backend.to_numpy(dX), np.float64), _numeric_grad(f_input, x_host, eps)
        )
        X_cur[0] = X

    for name, h in params.items():
        original = h.value

        def f_param(p_host, h=h):
            h.value = backend.asarray(p_host, f64)
            return objective()

        p_host = np.array(backend.to_numpy(original), dtype=np.float64)
        errors[name] = _relative_error(analytic[name], _numeric_grad(f_param, p_host, eps))
        h.value = original
    return errors
