"""Lesson 1: activation functions and their derivatives, from xpnn's own layers.

Backprop multiplies the incoming gradient by f'(x) at every activation layer. So the
derivative, not the function, decides how well gradients survive depth: sigmoid's is at
most 0.25, so ten sigmoid layers scale the gradient by at most 0.25**10 ~ 1e-6 (before the
weights even enter); ReLU's is exactly 1 for every active unit.

The curves are computed by the layers themselves: ``layer.forward(x, training=True)`` for f and
``layer.backward(ones)`` for f'(x) (the chain rule with dL/dy = 1), and a central finite
difference confirms each backward.

    python examples/lessons/1_activations.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn.plotting import plot_activations  # noqa: E402

NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu")


def derivative(backend, name, x_host):
    """f(x) and f'(x) from the layer: forward, then backward of ones."""
    layer = xpnn.layers.get_activation(name)
    X = backend.asarray(x_host, "float64")
    f = np.array(backend.to_numpy(layer.forward(X, training=True)))
    d = np.array(backend.to_numpy(layer.backward(backend.xp.ones_like(X))))
    return f, d


def main(argv=None):
    args = parse_args(__doc__, argv)
    backend = xpnn.get_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal(20_000 if args.quick else 200_000)  # typical pre-activations, N(0, 1)
    x = np.linspace(-6, 6, 2401)
    h = 1e-5
    findings = {}
    print("f'(x) from layer.backward; 'fd error' is the largest gap to (f(x+h) - f(x-h)) / 2h")
    print(
        f"{'activation':<11} {'fd error':>9} {'max f_':>7} {'f_(-4)':>7} {'f_(4)':>7} "
        f"{'E f_(z)':>8} {'(E f_)^10':>10}".replace("f_", "f'")
    )
    for name in NAMES:
        f, d = derivative(backend, name, x)
        f_plus, _ = derivative(backend, name, x + h)
        f_minus, _ = derivative(backend, name, x - h)
        away = np.abs(x) > 1e-3  # ReLU-like kinks at 0 have no derivative
        fd_error = float(np.max(np.abs(d - (f_plus - f_minus) / (2 * h))[away]))
        _, dz = derivative(backend, name, z)
        mean_slope = float(dz.mean())
        at = {v: float(d[np.argmin(np.abs(x - v))]) for v in (-4.0, 4.0)}
        findings[name] = {
            "max_slope": float(d.max()),
            "mean_slope": mean_slope,
            "fd_error": fd_error,
            "slope_at_-4": at[-4.0],
            "slope_at_4": at[4.0],
        }
        print(
            f"{name:<11} {fd_error:9.1e} {d.max():7.3f} {at[-4.0]:7.3f} {at[4.0]:7.3f} "
            f"{mean_slope:8.3f} {mean_slope**10:10.2e}"
        )
    s = findings["sigmoid"]
    print(
        f"\nsigmoid's slope is at most {s['max_slope']:.3f}; averaged over z ~ N(0, 1) it is "
        f"{s['mean_slope']:.3f}, so 10 sigmoid layers shrink a gradient by about {s['mean_slope'] ** 10:.0e} "
        f"from the slopes alone."
    )
    print(
        f"tanh saturates too (slope {findings['tanh']['slope_at_4']:.4f} at x = 4); relu's slope is 1 "
        f"for active units and 0 otherwise (mean {findings['relu']['mean_slope']:.2f}, which He init's "
        f"factor 2 in the weight variance makes up for)."
    )
    fig = plot_activations(names=NAMES)
    save(fig, args, "1_activations")
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
