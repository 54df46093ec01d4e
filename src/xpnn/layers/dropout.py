"""Inverted dropout: active only when training, masks drawn from the model's generator."""

from __future__ import annotations

from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` while training and scale the survivors by
    1 / (1 - rate), so that nothing changes at inference time (inverted dropout).

    Shapes: X (any) -> Y (same).
    """

    def __init__(self, rate: float = 0.5):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be a number in [0, 1), found {rate!r}")
        self.rate = float(rate)

    def forward(self, X, training=False):
        self._prepare(X)
        self.mask = None
        if not training or self.rate == 0.0:
            return X
        keep = 1.0 - self.rate
        self.mask = self.generator.bernoulli(tuple(X.shape), keep, dtype=X.dtype) * (1.0 / keep)
        return X * self.mask

    def backward(self, dY):
        return dY if self.mask is None else dY * self.mask

    def config(self):
        return {"rate": self.rate}
