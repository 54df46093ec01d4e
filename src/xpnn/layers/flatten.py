"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

from __future__ import annotations

import math

from .base import Layer, register_layer


@register_layer
class Flatten(Layer):
    """Reshape every sample to one axis; backward restores the shape."""

    def forward(self, X, training=False):
        self.prepare(X)
        self.saved = tuple(X.shape) if training else None  # a shape, no arrays
        # the size spelled out, not -1: reshape cannot infer -1 for an empty batch
        return self.xp.reshape(X, (X.shape[0], math.prod(X.shape[1:])))

    def backward(self, dY, need_dX=True):
        return self.xp.reshape(dY, self.take_saved())

    def output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))
