"""Elementwise activations and softmax. Each keeps what its derivative needs.

Shapes: any X -> Y of the same shape (Softmax: over the last axis).
"""

from __future__ import annotations

import math

from ..functional import sigmoid, softmax, softmax_backward
from .base import Layer


class Activation(Layer):
    """Base for parameter-free activations."""

    def output_shape(self, input_shape):
        return input_shape

    def _prepare(self, X):
        if self.backend is None:
            super()._prepare(X)


class ReLU(Activation):
    """max(0, x); derivative 1 where x > 0, else 0."""

    def forward(self, X, training=False):
        self._prepare(X)
        xp = self.xp
        self.active = X > 0  # where the slope is 1 (booleans: a quarter of a float mask's bytes)
        return xp.maximum(X, xp.zeros((), dtype=X.dtype, device=self.backend.device))

    @property
    def mask(self):
        """The last forward's derivative as 0.0 / 1.0 in the layer's dtype."""
        return self.xp.astype(self.active, self.dtype)

    def backward(self, dY):
        # dY where X > 0, else 0: a multiply by the boolean mask (several times faster than
        # where() on NumPy), dY first brought to the mask's memory order (NumPy speed only:
        # a Conv2D output's layout)
        backend = self.backend
        return backend.mask_multiply(backend.match_layout(dY, self.active), self.active)


class LeakyReLU(Activation):
    """x if x > 0 else alpha * x."""

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, X, training=False):
        self._prepare(X)
        # slope is 1 where x > 0, alpha elsewhere; Y = x * slope, dX = dY * slope
        self.slope = self.xp.astype(X > 0, X.dtype) * (1.0 - self.alpha) + self.alpha
        return X * self.slope

    def backward(self, dY):
        return dY * self.slope

    def config(self):
        return {"alpha": self.alpha}


class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1); derivative there is Y + alpha."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, X, training=False):
        self._prepare(X)
        xp = self.xp
        self.mask = X > 0
        # expm1 of min(x, 0): no overflow for large positive x on the branch not taken
        self.neg = xp.expm1(xp.minimum(X, xp.zeros_like(X))) * self.alpha
        return xp.where(self.mask, X, self.neg)

    def backward(self, dY):
        return self.xp.where(self.mask, dY, dY * (self.neg + self.alpha))

    def config(self):
        return {"alpha": self.alpha}


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Activation):
    """0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): the tanh approximation
    (the array API has no erf)."""

    def forward(self, X, training=False):
        self._prepare(X)
        xp = self.xp
        self.X = X
        self.t = xp.tanh(_SQRT_2_OVER_PI * (X + 0.044715 * X * X * X))
        return 0.5 * X * (1.0 + self.t)

    def backward(self, dY):
        X, t = self.X, self.t
        du_dx = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * X * X)
        return dY * (0.5 * (1.0 + t) + 0.5 * X * (1.0 - t * t) * du_dx)


class Sigmoid(Activation):
    """1 / (1 + exp(-x)); derivative Y (1 - Y)."""

    def forward(self, X, training=False):
        self._prepare(X)
        self.Y = sigmoid(self.xp, X)
        return self.Y

    def backward(self, dY):
        return dY * self.Y * (1.0 - self.Y)


class Tanh(Activation):
    """tanh(x); derivative 1 - Y^2."""

    def forward(self, X, training=False):
        self._prepare(X)
        self.Y = self.xp.tanh(X)
        return self.Y

    def backward(self, dY):
        return dY * (1.0 - self.Y * self.Y)


class Softmax(Activation):
    """Softmax over the last axis. Backward: dX = Y * (dY - sum(dY * Y)) (the Jacobian
    diag(Y) - Y Y^T applied row by row without building it)."""

    def forward(self, X, training=False):
        self._prepare(X)
        self.Y = softmax(self.xp, X)
        return self.Y

    def backward(self, dY):
        return softmax_backward(self.xp, self.Y, dY)


class Identity(Activation):
    """y = x (a placeholder activation)."""

    def forward(self, X, training=False):
        self._prepare(X)
        return X

    def backward(self, dY):
        return dY


ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "gelu": GELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softmax": Softmax,
    "linear": Identity,
    "identity": Identity,
}


def get_activation(name, argname: str = "activation") -> Layer:
    """A new activation layer from a name (or a Layer instance, returned as is)."""
    if isinstance(name, Layer):
        return name
    if isinstance(name, str) and name.lower() in ACTIVATIONS:
        return ACTIVATIONS[name.lower()]()
    raise ValueError(f"{argname} must be one of {sorted(ACTIVATIONS)} or a Layer, found {name!r}")
