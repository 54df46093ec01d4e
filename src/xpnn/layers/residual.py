"""Layers made of layers: Residual (y = x + f(x)), TimeDistributed (a 2-D stack applied to
every position of a sequence) and the pre-norm TransformerEncoderBlock built from them.

Each is a Container (container.py): its children run in sequence, their params are
named by path ("0.W" is the first child's W, "1.0.gamma" one level deeper), and keyword
inputs such as an attention ``mask`` are routed to the children that take them.
"""

from __future__ import annotations

from .. import _checks
from .base import Layer, register_layer
from .container import Container


def _children(owner: str, args, layers_config) -> list:
    """The inner layers from positional Layers or from ``layers_config`` (Layers or saved
    specs, as ``config()`` writes them), not both."""
    if args and layers_config is not None:
        raise ValueError(f"{owner}: give the inner layers either as arguments or as layers_config=[...], not both")
    items = list(args) if args else list(layers_config or [])
    if not items:
        raise ValueError(f"{owner}: needs at least one inner layer, e.g. {owner}(Dense(8, 8), ReLU())")
    return items


@register_layer
class Residual(Container):
    """y = x + f(x), f being the inner layers applied in sequence (a skip connection).

    ``Residual(LayerNorm(64), MultiHeadSelfAttention(64, 4))`` or
    ``Residual(layers_config=[...])`` (Layers or saved {"class", "config"} specs, as
    ``config()`` writes them); params are named "<child index>.<name>" ("1.Wq").

    Shapes: X (batch, ...) -> Y of the same shape; f must keep the shape.
    Backward: dX = dY + f'(X)^T dY, the identity path adds the gradient straight through,
    which is why deep residual stacks train.
    ``forward(X, training=False, mask=None)`` passes ``mask`` to attention layers inside.
    """

    def __init__(self, *layers, layers_config=None):
        super().__init__(_children("Residual", layers, layers_config))

    def forward(self, X, training=False, **inputs):
        """X: (batch, ...) -> X + f(X)."""
        FX = self.run(X, training, inputs)
        if tuple(FX.shape) != tuple(X.shape):
            raise ValueError(
                f"{self._where()}: the inner layers map shape {tuple(X.shape)} to {tuple(FX.shape)}; "
                f"a residual connection needs them to keep the shape"
            )
        return X + FX

    def backward(self, dY, need_dX=True):
        """dY: like X -> dX = dY + df/dX^T dY (the skip path needs the inner dX, always)."""
        return dY + self.run_backward(dY)

    def config(self) -> dict:
        return {"layers_config": self.layer_specs()}

    def output_shape(self, input_shape):
        return tuple(input_shape)


@register_layer
class TimeDistributed(Container):
    """Applies 2-D layers (such as Dense) to every position of a sequence independently.

    Shapes: X (batch, seq, ...) is reshaped to (batch * seq, ...), passed through the inner
    layers in sequence, and reshaped back: Y (batch, seq, ...out). Backward undoes the same
    reshapes around the inner backward. Params are named "<child index>.<name>".
    """

    def __init__(self, *layers, layers_config=None):
        super().__init__(_children("TimeDistributed", layers, layers_config))

    def accepts(self, name: str) -> bool:
        return False  # its rows are single positions, not sequences: a mask means nothing there

    def forward(self, X, training=False):
        """X: (batch, seq, ...) -> Y: (batch, seq, ...out)."""
        if X.ndim < 3:
            raise ValueError(
                f"TimeDistributed.forward: X has shape {tuple(X.shape)}, expected (batch, seq, features...)"
            )
        self.prepare(X)
        B, T = X.shape[0], X.shape[1]
        Y = self.run(self.xp.reshape(X, (B * T, *X.shape[2:])), training, {})
        self.saved = tuple(X.shape) if training else None  # a shape, no arrays
        return self.xp.reshape(Y, (B, T, *Y.shape[1:]))

    def backward(self, dY, need_dX=True):
        """dY: (batch, seq, ...out) -> dX: (batch, seq, ...)."""
        in_shape = self.take_saved()
        B, T = in_shape[0], in_shape[1]
        dX = self.run_backward(self.xp.reshape(dY, (B * T, *dY.shape[2:])), need_dX)
        return None if dX is None else self.xp.reshape(dX, in_shape)

    def config(self) -> dict:
        return {"layers_config": self.layer_specs()}

    def output_shape(self, input_shape):
        B, T, *rest = input_shape
        out = super().output_shape((None, *rest))
        return (B, T, *out[1:])


@register_layer
class TransformerEncoderBlock(Container):
    """A pre-norm Transformer encoder block:

        H = X + Attention(LayerNorm(X))                       (self-attention sublayer)
        Y = H + Dropout(FF(LayerNorm(H)))                     FF = Dense(E, F), GELU, Dense(F, E)

    Args:
        embed_dim: E, the size of each position's vector.
        num_heads: H, the attention heads (E divisible by H).
        ff_dim: F, the hidden size of FF.
        dropout: attention-weight dropout and dropout on the feed-forward output.
        causal: causal self-attention (each position sees itself and earlier ones).

    Shapes: X (batch, seq, E) -> Y (batch, seq, E). Params are named like
    "0.1.Wq" (first residual, its attention) and "1.1.0.W" (second residual, FF, first Dense).
    ``forward(X, training=False, mask=None)``: mask is the attention's (batch, seq) key
    padding mask, True for real tokens (routed to the attention inside).
    """

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.0, causal: bool = False):
        from .activations import GELU
        from .attention import MultiHeadSelfAttention
        from .dense import Dense
        from .dropout import Dropout
        from .normalization import LayerNorm

        ff_dim = _checks.positive_int(ff_dim, "ff_dim", "TransformerEncoderBlock")
        attention = MultiHeadSelfAttention(embed_dim, num_heads, causal=causal, dropout=dropout)
        feed_forward = TimeDistributed(Dense(embed_dim, ff_dim), GELU(), Dense(ff_dim, embed_dim))
        super().__init__(
            [
                Residual(LayerNorm(embed_dim), attention),
                Residual(LayerNorm(embed_dim), feed_forward, Dropout(dropout)),
            ]
        )
        self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
        self.dropout, self.causal = float(dropout), causal

    def forward(self, X, training=False, **inputs):
        """X: (batch, seq, E) -> Y: (batch, seq, E); ``mask=``: (batch, seq) bool or None."""
        if X.ndim != 3 or X.shape[2] != self.embed_dim:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, {self.embed_dim})")
        return self.run(X, training, inputs)

    def config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "causal": self.causal,
        }

    def output_shape(self, input_shape):
        return tuple(input_shape)

    __repr__ = Layer.__repr__  # its constructor arguments, not the layers it builds from them
