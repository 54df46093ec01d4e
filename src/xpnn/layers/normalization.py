"""Normalization layers: BatchNorm1D, BatchNorm2D and LayerNorm.

Both kinds standardize a slice of the activations to zero mean and unit variance, then
let the network rescale it (``gamma``) and shift it (``beta``):

    xhat = (x - mean) / sqrt(var + eps)          Y = gamma * xhat + beta

BatchNorm takes mean and var per channel over the batch (and the pixels, in 2-D), so a
sample's output depends on the other samples of its batch while training; at inference it
uses running averages gathered while training instead. LayerNorm takes them per sample
over the features, so it behaves the same in training and inference.

The backward pass is the one subtle part: mean and var depend on every x of their slice,
so dL/dx has three terms (through xhat directly, through the mean, through the var). Over
a slice of m numbers they collapse to the well-known closed form

    dX = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),   dxhat = dY * gamma
"""

from __future__ import annotations

from .. import _checks
from .. import init as initializers
from .base import Layer, register_layer


class _BatchNorm(Layer):
    """BatchNorm over every axis except the channel axis 1 (shared by 1-D and 2-D).

    PyTorch semantics: training normalizes with the batch mean and the biased batch
    variance, and updates ``running_mean`` / ``running_var`` (the latter with the unbiased
    variance, m / (m - 1) times the biased one) as
    ``running = (1 - momentum) * running + momentum * batch_stat``; inference
    (``training=False``) normalizes with the running statistics.
    """

    expected = ""  # the input layout, for error messages
    ndim = 0

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        name = type(self).__name__
        self.num_features = _checks.positive_int(num_features, "num_features", name)
        self.momentum = _checks.number(momentum, "momentum", name, 0.0, 1.0)
        self.eps = _checks.positive_number(eps, "eps", name)

    def build(self, X=None) -> None:
        C = (self.num_features,)
        self.params["gamma"] = initializers.ones(self.generator, C, self.dtype)
        self.params["beta"] = initializers.zeros(self.generator, C, self.dtype)
        self.buffers["running_mean"] = initializers.zeros(self.generator, C, self.dtype)
        self.buffers["running_var"] = initializers.ones(self.generator, C, self.dtype)

    def _check(self, X) -> None:
        if X.ndim != self.ndim or X.shape[1] != self.num_features:
            raise ValueError(
                f"{self._where()}: X has shape {tuple(X.shape)}, expected {self.expected.format(C=self.num_features)}"
            )

    def _per_channel(self, v):
        """A (C,) vector shaped to broadcast against X: (1, C) or (1, C, 1, 1)."""
        return self.xp.reshape(v, (1, self.num_features) + (1,) * (self.ndim - 2))

    def forward(self, X, training=False):
        """X: (N, C) or (N, C, H, W) -> Y of the same shape."""
        self.prepare(X)
        self._check(X)
        xp = self.xp
        axes = (0,) + tuple(range(2, self.ndim))  # everything but the channel axis
        m = X.shape[0] * (X.shape[2] * X.shape[3] if self.ndim == 4 else 1)  # numbers per channel
        if training:
            if m < 2:
                raise ValueError(
                    f"{self._where()}: training needs more than one value per channel to take a "
                    f"variance, found X of shape {tuple(X.shape)}; in fit, drop_last=True skips a last "
                    f"batch of one sample (or choose a batch_size that does not leave one)"
                )
            mean = xp.mean(X, axis=axes, keepdims=True)
            var = xp.mean((X - mean) ** 2, axis=axes, keepdims=True)  # biased: what we normalize with
            self._update_running(xp.reshape(mean, (-1,)), xp.reshape(var, (-1,)) * (m / (m - 1)))
        else:
            mean = self._per_channel(self.buffers["running_mean"])
            var = self._per_channel(self.buffers["running_var"])
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = (X - mean) * inv_std
        self.saved = (xhat, inv_std, m) if training else None
        return self._per_channel(self.params["gamma"]) * xhat + self._per_channel(self.params["beta"])

    def backward(self, dY, need_dX=True):
        """dY: like X -> dX: like X. dgamma = sum(dY * xhat), dbeta = sum(dY) per channel."""
        xhat, inv_std, m = self.take_saved()
        xp = self.xp
        axes = (0,) + tuple(range(2, self.ndim))
        dbeta = xp.sum(dY, axis=axes, keepdims=True)
        dgamma = xp.sum(dY * xhat, axis=axes, keepdims=True)
        self.grads["gamma"] = xp.reshape(dgamma, (-1,))
        self.grads["beta"] = xp.reshape(dbeta, (-1,))
        gamma = self._per_channel(self.params["gamma"])
        # the closed form above, with sum(dxhat) = gamma * dbeta and sum(dxhat * xhat) = gamma * dgamma
        return (gamma * inv_std / m) * (m * dY - dbeta - xhat * dgamma)

    def _update_running(self, mean, unbiased_var) -> None:
        """running = (1 - momentum) * running + momentum * batch, stored back into
        ``buffers`` (in place where the library allows it; JAX makes a new array)."""
        xp, mom = self.xp, self.momentum
        for name, batch in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.buffers[name]
            running *= 1.0 - mom
            running += xp.astype(batch * mom, running.dtype)  # a float64 check must not upcast a float32 buffer
            self.buffers[name] = running

    def config(self) -> dict:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}

    def output_shape(self, input_shape):
        return tuple(input_shape)


@register_layer
class BatchNorm1D(_BatchNorm):
    """Batch normalization of features: X (N, C) -> Y (N, C); statistics per feature over
    the batch. Params gamma, beta: (C,); buffers running_mean, running_var: (C,)."""

    expected = "(batch, {C})"
    ndim = 2


@register_layer
class BatchNorm2D(_BatchNorm):
    """Batch normalization of images: X (N, C, H, W) -> Y (N, C, H, W); statistics per
    channel over the batch and all pixels. Params gamma, beta: (C,); buffers running_mean,
    running_var: (C,)."""

    expected = "(batch, {C}, height, width)"
    ndim = 4


@register_layer
class LayerNorm(Layer):
    """Layer normalization over the last axis: X (..., D) -> Y (..., D), D = normalized_shape.

    Every position is standardized on its own (biased variance), so training and inference
    agree and the batch size does not matter. Params gamma (ones), beta (zeros): (D,).
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)) and len(normalized_shape) == 1:
            normalized_shape = normalized_shape[0]  # PyTorch style (D,)
        self.normalized_shape = _checks.positive_int(
            normalized_shape, "normalized_shape (the size of the last axis)", "LayerNorm"
        )
        self.eps = _checks.positive_number(eps, "eps", "LayerNorm")

    def build(self, X=None) -> None:
        D = (self.normalized_shape,)
        self.params["gamma"] = initializers.ones(self.generator, D, self.dtype)
        self.params["beta"] = initializers.zeros(self.generator, D, self.dtype)

    def forward(self, X, training=False):
        """X: (..., D) -> Y: (..., D)."""
        self.prepare(X)
        if X.ndim < 1 or X.shape[-1] != self.normalized_shape:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (..., {self.normalized_shape})")
        xp = self.xp
        mean = xp.mean(X, axis=-1, keepdims=True)
        var = xp.mean((X - mean) ** 2, axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = (X - mean) * inv_std
        self.saved = (xhat, inv_std) if training else None
        return self.params["gamma"] * xhat + self.params["beta"]

    def backward(self, dY, need_dX=True):
        """dY: (..., D) -> dX: (..., D). gamma and beta collect over every leading axis."""
        xhat, inv_std = self.take_saved()
        xp = self.xp
        D = self.normalized_shape
        lead = tuple(range(dY.ndim - 1))
        self.grads["gamma"] = xp.sum(dY * xhat, axis=lead)
        self.grads["beta"] = xp.sum(dY, axis=lead)
        dxhat = dY * self.params["gamma"]
        return (inv_std / D) * (
            D * dxhat - xp.sum(dxhat, axis=-1, keepdims=True) - xhat * xp.sum(dxhat * xhat, axis=-1, keepdims=True)
        )

    def config(self) -> dict:
        return {"normalized_shape": self.normalized_shape, "eps": self.eps}

    def output_shape(self, input_shape):
        return tuple(input_shape)
