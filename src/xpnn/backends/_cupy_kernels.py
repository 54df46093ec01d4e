"""Fused CuPy kernels, imported lazily by backend.py only (never by layer code).

Each kernel does in one pass over memory what the array-API version does in several,
which is what bounds small networks on a GPU.
"""

import cupy

_adam = cupy.ElementwiseKernel(
    "T g, T step_size, T beta1, T beta2, T inv_bias2_sqrt, T eps",
    "T param, T m, T v",
    """
    m += (1 - beta1) * (g - m);
    v += (1 - beta2) * (g * g - v);
    param -= step_size * m / (sqrt(v) * inv_bias2_sqrt + eps);
    """,
    "xpnn_adam_update",
)


def adam_update(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps):
    """In-place Adam step on CuPy arrays (see Backend.adam_update for the formula)."""
    dt = param.dtype.type
    _adam(grad, dt(step_size), dt(beta1), dt(beta2), dt(1.0 / bias2_sqrt), dt(eps), param, m, v)
