"""The XOR step written by hand in JAX and compiled with ``jax.jit``, called in a bare
Python loop: the floor for xpnn's compiled steps on JAX (what a step costs when all that
is left is one jitted call per step). Same net, init and math as numpy_ref's XorRef.
"""

from __future__ import annotations

import math

NAME = "jax-ref"


def unavailable(device: str):
    try:
        import jax
    except Exception as exc:
        return f"JAX not installed ({type(exc).__name__}: {exc})"
    if device == "gpu" and not any(d.platform == "gpu" for d in jax.devices()):
        return "JAX sees no GPU"
    return None


def supports(case):
    return None if case.kind == "xor" else "the jitted JAX loop is written for XOR only"


def build(case, X, y, device: str, seed: int = 0):
    return XorJax(device, seed)


class XorJax:
    def __init__(self, device, seed=0, lr=0.1):
        import jax
        import jax.numpy as jnp
        import numpy as np

        self.jax, self.timer = jax, "cpu"
        dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        rng = np.random.default_rng(seed)
        f32 = np.float32
        lim1, lim2 = math.sqrt(6 / 6), math.sqrt(6 / 5)
        put = lambda a: jax.device_put(a, dev)  # noqa: E731
        self.X = put(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=f32))
        self.Y = put(np.array([[0], [1], [1], [0]], dtype=f32))
        self.params = [
            put(rng.uniform(-lim1, lim1, (2, 4)).astype(f32)),
            put(np.zeros(4, f32)),
            put(rng.uniform(-lim2, lim2, (4, 1)).astype(f32)),
            put(np.zeros(1, f32)),
        ]

        def step(params, X, Y):
            W1, b1, W2, b2 = params
            H = 1.0 / (1.0 + jnp.exp(-(X @ W1 + b1)))
            P = 1.0 / (1.0 + jnp.exp(-(H @ W2 + b2)))
            Pc = jnp.clip(P, 1e-7, 1.0 - 1e-7)
            loss = -jnp.mean(Y * jnp.log(Pc) + (1.0 - Y) * jnp.log(1.0 - Pc))
            dZ2 = (P - Y) * 0.25
            dZ1 = (dZ2 @ W2.T) * H * (1.0 - H)
            new = [W1 - lr * (X.T @ dZ1), b1 - lr * dZ1.sum(0), W2 - lr * (H.T @ dZ2), b2 - lr * dZ2.sum(0)]
            return new, loss

        self.step = jax.jit(step)
        self._loss = None

    def sync(self):
        self.jax.block_until_ready(self.params)

    def run(self, steps):
        params, X, Y, step = self.params, self.X, self.Y, self.step
        for _ in range(steps):
            params, self._loss = step(params, X, Y)
        self.params = params

    def loss(self):
        return float(self._loss)
