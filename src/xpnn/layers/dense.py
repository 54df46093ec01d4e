"""Dense (fully connected) layer: Y = X @ W + b."""

from __future__ import annotations

from .. import _checks
from .. import init as initializers
from .base import Layer, register_layer


@register_layer
class Dense(Layer):
    """A fully connected layer.

    ``Dense(in_features, out_features)`` or ``Dense(out_features)`` (the input size is
    then taken from the first input).

    Shapes: X (batch, in) -> Y (batch, out); W (in, out); b (out,).
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | None = None,
        init="glorot_uniform",
        bias: bool = True,
        bias_init="zeros",
    ):
        super().__init__()
        if out_features is None:  # Dense(out_features)
            in_features, out_features = None, in_features
        if out_features is None:
            raise ValueError("Dense: out_features is required, e.g. Dense(128) or Dense(784, 128)")
        self.in_features = _checks.optional_positive_int(
            in_features, "in_features", "Dense", "taken from the first input"
        )
        self.out_features = _checks.positive_int(out_features, "out_features", "Dense")
        self.use_bias = _checks.boolean(bias, "bias", "Dense")
        self.init = initializers.get(init)
        self.bias_init = initializers.get(bias_init, "bias_init")

    def ready(self) -> bool:
        return self.in_features is not None

    def build(self, X=None) -> None:
        if self.in_features is None:
            if X.ndim != 2:
                raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, in_features)")
            self.in_features = X.shape[1]
        shape = (self.in_features, self.out_features)
        self.params["W"] = self.init(self.generator, shape, self.dtype)
        if self.use_bias:
            self.params["b"] = self.bias_init(self.generator, (self.out_features,), self.dtype)

    def forward(self, X, training=False):
        """X: (batch, in) -> Y: (batch, out)."""
        self.prepare(X)
        if X.ndim != 2 or X.shape[1] != self.in_features:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, {self.in_features})")
        self.saved = X if training else None  # dW needs X
        Y = X @ self.params["W"]
        if self.use_bias:
            Y += self.params["b"]  # in place: Y is a fresh array, no second buffer
        return Y

    def backward(self, dY, need_dX=True):
        """dY: (batch, out) -> dX: (batch, in). dW = X^T dY, db = sum over the batch."""
        X = self.take_saved()
        self.grads["W"] = X.T @ dY
        if self.use_bias:
            self.grads["b"] = self.backend.sum(dY, axis=0)
        if not need_dX:  # the first layer while training: nobody needs dX
            return None
        return dY @ self.params["W"].T

    def config(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "init": initializers.name_of(self.init),
            "bias": self.use_bias,
        }

    def input_sample_shape(self):
        return None if self.in_features is None else (self.in_features,)

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.out_features)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features})"
