"""Fused CuPy kernels, imported lazily by the CuPy backend (backends/cupy.py) only, never by layer code.

Each kernel does in one pass over memory what the array-API version does in several,
which is what bounds small networks on a GPU.
"""

import cupy

_adam = cupy.ElementwiseKernel(
    "T g, T step_size, T one_minus_beta1, T one_minus_beta2, T bias2_sqrt, T eps",
    "T param, T m, T v",
    """
    m += one_minus_beta1 * (g - m);
    v += one_minus_beta2 * (g * g - v);
    param -= step_size * (m / (sqrt(v) / bias2_sqrt + eps));
    """,
    "xpnn_adam_update",
)


def adam_update(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps):
    """In-place Adam step on CuPy arrays (see Backend.adam_update for the formula).

    The same operations in the same order as ``base.adam_math``, with 1 - beta taken on the
    host in double precision as the generic code does (1 - float32(0.999) in the kernel
    would be 1.3e-5 off: about 200 ulps in v). ``param`` is float32 or float64: the
    optimizer hands float16 params (and mixed-precision masters) over in float32."""
    dt = param.dtype.type
    _adam(grad, dt(step_size), dt(1.0 - beta1), dt(1.0 - beta2), dt(bias2_sqrt), dt(eps), param, m, v)
