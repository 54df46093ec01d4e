"""Multi-head self-attention and sinusoidal positional encoding (the Transformer's parts).

Self-attention lets every position of a sequence look at every other one:

    Q = X Wq + bq,  K = X Wk + bk,  V = X Wv + bv            (batch, seq, embed)
    split into H heads of size d = embed / H                 (batch, H, seq, d)
    S = Q K^T / sqrt(d)          scores: query t vs key s    (batch, H, seq, seq)
    P = softmax(S) over the keys (masked keys get 0)
    A = dropout(P)               (training only)
    O = A V,  merged back to (batch, seq, embed)
    Y = O Wo + bo

Backward walks the same lines bottom to top; the only non-matmul step is the softmax,
whose Jacobian applied to dP row by row is P * (dP - sum(dP * P)).
"""

from __future__ import annotations

import math

from .. import _checks
from .. import init as initializers
from ..functional import softmax, softmax_backward
from .base import Layer, register_layer

# Added to the scores of masked keys: exp() of it is exactly 0 in float32 and float64,
# while staying finite so that a row with every key masked gives no inf - inf = NaN.
_MASKED = -1e30


@register_layer
class MultiHeadSelfAttention(Layer):
    """Multi-head scaled dot-product self-attention.

    Args:
        embed_dim: E, the size of each position's vector (divisible by num_heads).
        num_heads: H; each head attends with vectors of size E / H.
        causal: if True, position t attends only to positions <= t (for language models).
        dropout: probability of dropping an attention weight while training.

    Shapes: X (batch, seq, E) -> Y (batch, seq, E); Wq, Wk, Wv, Wo (E, E); bq, bk, bv, bo (E,).

    ``forward(X, training=False, mask=None)``: ``mask`` is an optional boolean key padding
    mask of shape (batch, seq), True where a position is a real token that may be attended
    to and False for padding (the opposite of PyTorch's ``key_padding_mask``). It combines
    with ``causal``. A query whose every key is masked gets all-zero attention weights
    (its output is ``bo``) instead of NaN.
    """

    forward_inputs = ("mask",)  # containers (Sequential, Residual, ...) route ``mask`` here

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False, dropout: float = 0.0):
        super().__init__()
        where = "MultiHeadSelfAttention"
        self.embed_dim = _checks.positive_int(embed_dim, "embed_dim", where)
        self.num_heads = _checks.positive_int(num_heads, "num_heads", where)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{where}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.causal = _checks.boolean(causal, "causal", where)
        self.dropout = _checks.number(dropout, "dropout", where, 0.0, 1.0, high_open=True)
        self.head_dim = self.embed_dim // self.num_heads

    def build(self, X=None) -> None:
        E = self.embed_dim
        for name in ("q", "k", "v", "o"):
            self.params[f"W{name}"] = initializers.glorot_uniform(self.generator, (E, E), self.dtype)
            self.params[f"b{name}"] = initializers.zeros(self.generator, (E,), self.dtype)

    # ---- head split and merge: pure reshapes, so their backward is the other one --------

    def _split(self, Z):
        """(batch, seq, E) -> (batch, H, seq, d)."""
        B, T, _ = Z.shape
        return self.xp.permute_dims(self.xp.reshape(Z, (B, T, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def _merge(self, Z):
        """(batch, H, seq, d) -> (batch, seq, E)."""
        B, _, T, _ = Z.shape
        return self.xp.reshape(self.xp.permute_dims(Z, (0, 2, 1, 3)), (B, T, self.embed_dim))

    def _allowed(self, mask, B, T):
        """Which (query, key) pairs may attend: bool, broadcastable to (B, H, T, T), or None."""
        xp = self.xp
        allowed = None
        if self.causal:  # key s is visible from query t when s <= t
            pos = xp.arange(T, device=self.backend.device)
            allowed = (pos[None, :] <= pos[:, None])[None, None, :, :]
        if mask is not None:
            self.backend.check(mask, "mask", self._where())
            if mask.dtype != xp.bool or tuple(mask.shape) != (B, T):
                raise ValueError(
                    f"{self._where()}: mask must be a boolean key padding mask of shape "
                    f"(batch, seq) = {(B, T)}, True for tokens to attend to; "
                    f"found dtype {str(mask.dtype).rsplit('.', 1)[-1]} and shape {tuple(mask.shape)}"
                )
            keys = mask[:, None, None, :]
            allowed = keys if allowed is None else (allowed & keys)
        return allowed

    # ---- forward and backward -------------------------------------------------------------

    def forward(self, X, training=False, mask=None):
        """X: (batch, seq, E) -> Y: (batch, seq, E); mask: (batch, seq) bool or None."""
        self.prepare(X)
        if X.ndim != 3 or X.shape[2] != self.embed_dim:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, {self.embed_dim})")
        xp, p = self.xp, self.params
        B, T, _ = X.shape
        Q = self._split(X @ p["Wq"] + p["bq"])
        K = self._split(X @ p["Wk"] + p["bk"])
        V = self._split(X @ p["Wv"] + p["bv"])
        S = (Q @ xp.matrix_transpose(K)) * (1.0 / math.sqrt(self.head_dim))
        allowed = self._allowed(mask, B, T)
        if allowed is None:
            P = softmax(xp, S)
        else:
            P = softmax(xp, xp.where(allowed, S, _MASKED))
            P = xp.where(allowed, P, 0.0)  # only changes rows with no key allowed
        drop = None
        if training and self.dropout > 0.0:
            keep = 1.0 - self.dropout
            drop = self.generator.bernoulli(tuple(P.shape), keep, dtype=P.dtype) * (1.0 / keep)
        A = P if drop is None else P * drop
        O = self._merge(A @ V)
        self.saved = (X, Q, K, V, P, drop, A, O) if training else None
        return O @ p["Wo"] + p["bo"]

    def backward(self, dY, need_dX=True):
        """dY: (batch, seq, E) -> dX: (batch, seq, E); fills the grads of all 8 params."""
        X, Q, K, V, P, drop, A, O = self.take_saved()
        xp, p = self.xp, self.params
        E = self.embed_dim

        def rows(Z):  # (batch, seq, E) -> (batch * seq, E): weight grads are sums over both
            return xp.reshape(Z, (-1, E))

        # Y = O Wo + bo
        self.grads["Wo"] = rows(O).T @ rows(dY)
        self.grads["bo"] = xp.sum(rows(dY), axis=0)
        dO = self._split(dY @ p["Wo"].T)  # (B, H, T, d)
        # O = A V
        dA = dO @ xp.matrix_transpose(V)  # (B, H, T, T)
        dV = xp.matrix_transpose(A) @ dO  # (B, H, T, d)
        # A = P * drop
        dP = dA if drop is None else dA * drop
        # P = softmax(S): masked entries have P = 0, so they get dS = 0
        dS = softmax_backward(xp, P, dP)
        dS = dS * (1.0 / math.sqrt(self.head_dim))
        # S = Q K^T (scaled above)
        dQ = dS @ K
        dK = xp.matrix_transpose(dS) @ Q
        # Q = X Wq + bq, and likewise K, V: X feeds all three, so dX sums three terms
        dX = None
        for name, dZ in (("q", dQ), ("k", dK), ("v", dV)):
            dZ = self._merge(dZ)  # (B, T, E)
            self.grads[f"W{name}"] = rows(X).T @ rows(dZ)
            self.grads[f"b{name}"] = xp.sum(rows(dZ), axis=0)
            term = dZ @ p[f"W{name}"].T
            dX = term if dX is None else dX + term
        return dX

    def config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "causal": self.causal,
            "dropout": self.dropout,
        }

    def output_shape(self, input_shape):
        return tuple(input_shape)


@register_layer
class PositionalEncoding(Layer):
    """Adds the fixed sinusoidal position signal of "Attention Is All You Need":

        PE[t, 2i] = sin(t / 10000^(2i / E)),   PE[t, 2i + 1] = cos(t / 10000^(2i / E))

    Shapes: X (batch, seq, E) -> Y = X + PE[:seq] (batch, seq, E), seq <= max_len.
    No params; backward passes dY through unchanged. The table is computed for the
    positions a batch has (a few sin/cos per number, cheap beside attention) and never
    kept: the layer holds no arrays.
    """

    def __init__(self, max_len: int = 512):
        super().__init__()
        self.max_len = _checks.positive_int(max_len, "max_len", "PositionalEncoding")

    def table(self, T: int, E: int, dtype):
        """PE[:T]: (T, E) in ``dtype`` on this layer's device (computed in float64)."""
        xp = self.xp
        assert self.backend is not None  # bound: forward prepares the layer (and self.xp needs it)
        dev = self.backend.device
        t = xp.arange(T, dtype=xp.float64, device=dev)[:, None]  # (T, 1)
        j = xp.arange(E, device=dev)
        pair = xp.astype(j - j % 2, xp.float64)  # 2i for columns 2i, 2i+1
        angle = t * xp.exp(pair * (-math.log(10000.0) / E))[None, :]  # (T, E)
        pe = xp.where((j % 2 == 0)[None, :], xp.sin(angle), xp.cos(angle))
        return xp.astype(pe, dtype)

    def forward(self, X, training=False):
        """X: (batch, seq, E) -> Y: (batch, seq, E)."""
        self.prepare(X)
        if X.ndim != 3:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, embed)")
        if X.shape[1] > self.max_len:
            raise ValueError(
                f"{self._where()}: X has {X.shape[1]} positions (shape {tuple(X.shape)}), more than "
                f"max_len={self.max_len}; build it with PositionalEncoding(max_len={X.shape[1]}) or more"
            )
        return X + self.table(X.shape[1], X.shape[2], X.dtype)[None, :, :]

    def backward(self, dY, need_dX=True):
        """dY: (batch, seq, E) -> dX = dY (the encoding is a constant)."""
        return dY

    def config(self) -> dict:
        return {"max_len": self.max_len}

    def output_shape(self, input_shape):
        return tuple(input_shape)
