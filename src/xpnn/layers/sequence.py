"""SequencePool: one vector per sequence from one vector per position.

A Transformer encoder maps (batch, seq, E) to (batch, seq, E); a classifier wants
(batch, E). Pooling over the sequence axis bridges the two:

    mean:   Y[b] = (1/T) sum_t X[b, t]     dX[b, t] = dY[b] / T          (every position)
    max:    Y[b, e] = max_t X[b, t, e]     dX goes to the arg-max position of each feature
    first:  Y[b] = X[b, 0]                 dX[b, 0] = dY[b], 0 elsewhere (a [CLS] token)
    last:   Y[b] = X[b, T-1]               dX[b, T-1] = dY[b], 0 elsewhere

Layout (batch, seq, features), as Embedding and MultiHeadSelfAttention use; Conv1D's
(N, C, L) is the other way round.
"""

from __future__ import annotations

from .base import Layer, register_layer

MODES = ("mean", "max", "first", "last")


@register_layer
class SequencePool(Layer):
    """Reduce the sequence axis: X (batch, seq, E) -> Y (batch, E). No params.

    Args:
        mode: "mean" (default), "max", "first" or "last"; see the module docstring.
            Max sends each feature's gradient to its first maximum on ties, as MaxPool2D.
    """

    def __init__(self, mode: str = "mean"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"SequencePool: mode must be one of {MODES}, found {mode!r}")
        self.mode = mode

    def forward(self, X, training=False):
        """X: (batch, seq, E) -> Y: (batch, E)."""
        self.prepare(X)
        if X.ndim != 3 or X.shape[1] == 0:
            raise ValueError(
                f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, features) with seq >= 1"
            )
        xp = self.xp
        if not xp.isdtype(X.dtype, "real floating"):
            raise TypeError(
                f"{self._where()}: X has dtype {str(X.dtype).rsplit('.', 1)[-1]}, "
                f"expected a floating-point array (put an Embedding before it for token ids)"
            )
        T = X.shape[1]
        self.saved = (T, None) if training else None
        if self.mode == "mean":
            return xp.mean(X, axis=1)
        if self.mode == "first":
            return X[:, 0, :]
        if self.mode == "last":
            return X[:, -1, :]
        if training:  # max: remember which position won for each (sample, feature); argmax picks the first
            self.saved = (T, xp.argmax(X, axis=1))  # (batch, E)
        return xp.max(X, axis=1)

    def backward(self, dY, need_dX=True):
        """dY: (batch, E) -> dX: (batch, seq, E)."""
        xp = self.xp
        T, winner = self.take_saved()
        if self.mode == "mean":
            # every position contributed 1/T of Y: broadcast to a real (batch, seq, E) array
            ones = xp.ones((1, T, 1), dtype=dY.dtype, device=self.backend.device)
            return (dY * (1.0 / T))[:, None, :] * ones
        pos = xp.arange(T, device=self.backend.device)[None, :, None]  # (1, seq, 1)
        if self.mode == "max":
            chosen = pos == winner[:, None, :]  # (batch, seq, E)
        else:
            chosen = pos == (0 if self.mode == "first" else T - 1)  # (1, seq, 1)
        # where() of a bool mask: exact zeros elsewhere, and dY's dtype kept
        return xp.where(chosen, dY[:, None, :], xp.zeros((), dtype=dY.dtype, device=self.backend.device))

    def config(self) -> dict:
        return {"mode": self.mode}

    def output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])
