"""Keras 3 on its JAX and PyTorch backends: the same networks with keras.Sequential,
``model.compile`` and ``model.fit``, as a Keras user writes them.

Keras picks its backend from ``KERAS_BACKEND`` when it is first imported; every
implementation runs in its own worker process, so each of the two peers sets it there
before the import. On JAX, ``compile`` jit-compiles the whole training step (XLA: Keras's
default, ``jit_compile="auto"``); on PyTorch Keras runs eagerly (its default there).
Images are channels-last, Keras's default. XOR is not run: ``fit`` over 10,000 epochs of
one 4-sample batch times Keras's per-epoch bookkeeping, not a step.
"""

from __future__ import annotations

import os


class KerasPeer:
    """One Keras backend as a benchmark implementation (see peers/__init__.py)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.NAME = f"keras-{backend}"

    def _import(self):
        os.environ["KERAS_BACKEND"] = self.backend
        import keras

        if keras.backend.backend() != self.backend:  # imported earlier in this process with another
            raise RuntimeError(f"keras was imported with backend {keras.backend.backend()!r}")
        return keras

    def unavailable(self, device: str):
        try:
            keras = self._import()
        except Exception as exc:
            return f"Keras 3 on {self.backend} unavailable ({type(exc).__name__}: {exc})"
        if device == "gpu":
            if self.backend == "jax":
                import jax

                if not any(d.platform == "gpu" for d in jax.devices()):
                    return "JAX sees no GPU"
            else:
                import torch

                if not torch.cuda.is_available():
                    return "PyTorch has no CUDA device here"
        del keras
        return None

    def supports(self, case):
        if case.kind == "xor":
            return "XOR steps are epochs of one batch here: Keras's per-epoch bookkeeping, not a step"
        return None

    def build(self, case, X, y, device: str, seed: int = 0):
        return KerasRunner(self._import(), self.backend, case, X, y, device, seed)


class KerasRunner:
    def __init__(self, keras, backend, case, X, y, device, seed):
        import numpy as np

        keras.utils.set_random_seed(seed)
        self.keras, self.case, self.backend = keras, case, backend
        self.timer = "cpu"
        L = keras.layers
        if case.kind == "cnn":
            from harness import cnn_layers

            make = {
                "conv": lambda cin, cout: L.Conv2D(cout, 3, padding="same"),
                "relu": L.ReLU,
                "pool": lambda: L.MaxPooling2D(2),
                "flatten": L.Flatten,
                "dense": lambda a, b: L.Dense(b),
            }
            layers = [keras.Input((28, 28, 1))] + [make[kind](*args) for kind, *args in cnn_layers()]
            X = X.reshape(-1, 28, 28, 1)
        else:
            layers = [keras.Input((case.sizes[0],))]
            for i, b in enumerate(case.sizes[1:]):
                layers.append(L.Dense(b, activation="relu" if i < len(case.sizes) - 2 else None))
        self.model = keras.Sequential(layers)
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self.X, self.y = np.ascontiguousarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)
        self.history = None

    def sync(self):
        pass  # fit returns after its last step's values are read back (the History's loss)

    def run(self, n):
        m = min(self.X.shape[0], n * self.case.batch_size)
        self.history = self.model.fit(
            self.X[:m], self.y[:m], batch_size=self.case.batch_size, epochs=1, shuffle=True, verbose=0
        )

    def loss(self):
        return float(self.history.history["loss"][-1])


keras_jax = KerasPeer("jax")
keras_torch = KerasPeer("torch")
