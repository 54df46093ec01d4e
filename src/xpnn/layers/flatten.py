"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

from __future__ import annotations

import math

from .base import Layer


class Flatten(Layer):
    """Reshape every sample to one axis; backward restores the shape."""

    def forward(self, X, training=False):
        self._prepare(X)
        self.shape = tuple(X.shape)
        # the size spelled out, not -1: reshape cannot infer -1 for an empty batch
        return self.xp.reshape(X, (X.shape[0], math.prod(X.shape[1:])))

    def backward(self, dY):
        return self.xp.reshape(dY, self.shape)

    def output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))
