"""Elementwise activations and softmax. Each keeps what its derivative needs.

Shapes: any X -> Y of the same shape (Softmax: over the last axis).
"""

from __future__ import annotations

import math

from .. import _checks
from ..functional import sigmoid, softmax, softmax_backward
from .base import Layer, register_layer


class Activation(Layer):
    """Base for parameter-free activations."""

    def output_shape(self, input_shape):
        return input_shape

    def prepare(self, X):
        if self.backend is None:
            super().prepare(X)


@register_layer
class ReLU(Activation):
    """max(0, x); derivative 1 where x > 0, else 0."""

    def forward(self, X, training=False):
        self.prepare(X)
        xp = self.xp
        # where the slope is 1 (booleans: a quarter of a float mask's bytes)
        self.saved = (X > 0) if training else None
        return xp.maximum(X, *self.backend.constants(X.dtype, 0.0))  # a cached 0-d array on NumPy, not a new one

    @property
    def mask(self):
        """The derivative a training forward saved, as 0.0 / 1.0 in the layer's dtype (None
        once backward took it, or after inference)."""
        return None if self.saved is None else self.xp.astype(self.saved, self.dtype)

    def backward(self, dY, need_dX=True):
        # dY where X > 0, else 0: a multiply by the boolean mask (several times faster than
        # where() on NumPy), dY first brought to the mask's memory order (NumPy speed only:
        # a Conv2D output's layout)
        active = self.take_saved()
        backend = self.backend
        return backend.mask_multiply(backend.match_layout(dY, active), active)


@register_layer
class LeakyReLU(Activation):
    """x if x > 0 else alpha * x."""

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = _checks.number(alpha, "alpha", "LeakyReLU")

    def forward(self, X, training=False):
        self.prepare(X)
        # slope is 1 where x > 0, alpha elsewhere; Y = x * slope, dX = dY * slope
        slope = self.xp.astype(X > 0, X.dtype) * (1.0 - self.alpha) + self.alpha
        self.saved = slope if training else None
        return X * slope

    def backward(self, dY, need_dX=True):
        return dY * self.take_saved()

    def config(self):
        return {"alpha": self.alpha}


@register_layer
class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1); derivative there is Y + alpha."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = _checks.number(alpha, "alpha", "ELU")

    def forward(self, X, training=False):
        self.prepare(X)
        xp = self.xp
        positive = X > 0
        # expm1 of min(x, 0): no overflow for large positive x on the branch not taken
        neg = xp.expm1(xp.minimum(X, xp.zeros_like(X))) * self.alpha
        self.saved = (positive, neg) if training else None
        return xp.where(positive, X, neg)

    def backward(self, dY, need_dX=True):
        positive, neg = self.take_saved()
        return self.xp.where(positive, dY, dY * (neg + self.alpha))

    def config(self):
        return {"alpha": self.alpha}


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@register_layer
class GELU(Activation):
    """0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): the tanh approximation
    (the array API has no erf)."""

    def forward(self, X, training=False):
        self.prepare(X)
        t = self.xp.tanh(_SQRT_2_OVER_PI * (X + 0.044715 * X * X * X))
        self.saved = (X, t) if training else None
        return 0.5 * X * (1.0 + t)

    def backward(self, dY, need_dX=True):
        X, t = self.take_saved()
        du_dx = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * X * X)
        return dY * (0.5 * (1.0 + t) + 0.5 * X * (1.0 - t * t) * du_dx)


@register_layer
class Sigmoid(Activation):
    """1 / (1 + exp(-x)); derivative Y (1 - Y)."""

    def forward(self, X, training=False):
        self.prepare(X)
        backend = self.backend
        Y = sigmoid(backend.xp, X, *backend.constants(X.dtype, 0.0, 1.0))
        self.saved = Y if training else None
        return Y

    def backward(self, dY, need_dX=True):
        Y = self.take_saved()
        (one,) = self.backend.constants(Y.dtype, 1.0)
        dX = one - Y
        dX *= Y  # in place on the fresh array: no temporaries
        dX *= dY
        return dX


@register_layer
class Tanh(Activation):
    """tanh(x); derivative 1 - Y^2."""

    def forward(self, X, training=False):
        self.prepare(X)
        Y = self.xp.tanh(X)
        self.saved = Y if training else None
        return Y

    def backward(self, dY, need_dX=True):
        Y = self.take_saved()
        return dY * (1.0 - Y * Y)


@register_layer
class Softmax(Activation):
    """Softmax over the last axis. Backward: dX = Y * (dY - sum(dY * Y)) (the Jacobian
    diag(Y) - Y Y^T applied row by row without building it)."""

    def forward(self, X, training=False):
        self.prepare(X)
        Y = softmax(self.xp, X)
        self.saved = Y if training else None
        return Y

    def backward(self, dY, need_dX=True):
        return softmax_backward(self.xp, self.take_saved(), dY)


@register_layer
class Identity(Activation):
    """y = x (a placeholder activation)."""

    def forward(self, X, training=False):
        self.prepare(X)
        return X

    def backward(self, dY, need_dX=True):
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
