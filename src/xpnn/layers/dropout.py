"""Inverted dropout: active only when training, masks drawn from the model's generator."""

from __future__ import annotations

from .. import _checks
from .base import Layer, register_layer


@register_layer
class Dropout(Layer):
    """Zero each input with probability ``rate`` while training and scale the survivors by
    1 / (1 - rate), so that nothing changes at inference time (inverted dropout).

    Shapes: X (any) -> Y (same).
    """

    def __init__(self, rate: float = 0.5):
        super().__init__()
        self.rate = _checks.number(rate, "rate", "Dropout", 0.0, 1.0, high_open=True)

    def forward(self, X, training=False):
        self.prepare(X)
        self.saved = None
        if not training:
            return X
        if self.rate == 0.0:
            self.saved = ()  # nothing to scale: backward passes dY through
            return X
        keep = 1.0 - self.rate
        mask = self.generator.bernoulli(tuple(X.shape), keep, dtype=X.dtype) * (1.0 / keep)
        self.saved = (mask,)
        return X * mask

    def backward(self, dY, need_dX=True):
        saved = self.take_saved()
        return dY * saved[0] if saved else dY

    def config(self):
        return {"rate": self.rate}
