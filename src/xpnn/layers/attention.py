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

from .. import init as initializers
from ..functional import softmax, softmax_backward
from .base import Layer

# Added to the scores of masked keys: exp() of it is exactly 0 in float32 and float64,
# while staying finite so that a row with every key masked gives no inf - inf = NaN.
_MASKED = -1e30


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

    takes_mask = True  # containers (Residual, TransformerEncoderBlock) pass ``mask`` on

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False, dropout: float = 0.0):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MultiHeadSelfAttention: {name} must be a positive integer, found {value!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadSelfAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        if not isinstance(causal, bool):
            raise ValueError(f"MultiHeadSelfAttention: causal must be True or False, found {causal!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadSelfAttention: dropout must be a number in [0, 1), found {dropout!r}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.causal = causal
        self.dropout = float(dropout)

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
                raise ValueError(f"{self._where()}: mask must be a boolean key padding mask of shape "
                                 f"(batch, seq) = {(B, T)}, True for tokens to attend to; "
                                 f"found dtype {str(mask.dtype).rsplit('.', 1)[-1]} and shape {tuple(mask.shape)}")
            keys = mask[:, None, None, :]
            allowed = keys if allowed is None else (allowed & keys)
        return allowed

    # ---- forward and backward -------------------------------------------------------------

    def forward(self, X, training=False, mask=None):
        """X: (batch, seq, E) -> Y: (batch, seq, E); mask: (batch, seq) bool or None."""
        self._prepare(X)
        if X.ndim != 3 or X.shape[2] != self.embed_dim:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, {self.embed_dim})")
        xp, p = self.xp, self.params
        B, T, _ = X.shape
        self.X = X
        self.Q = self._split(X @ p["Wq"] + p["bq"])
        self.K = self._split(X @ p["Wk"] + p["bk"])
        self.V = self._split(X @ p["Wv"] + p["bv"])
        S = (self.Q @ xp.matrix_transpose(self.K)) * (1.0 / math.sqrt(self.head_dim))
        allowed = self._allowed(mask, B, T)
        if allowed is None:
            self.P = softmax(xp, S)
        else:
            self.P = softmax(xp, xp.where(allowed, S, _MASKED))
            self.P = xp.where(allowed, self.P, 0.0)  # only changes rows with no key allowed
        self.drop = None
        if training and self.dropout > 0.0:
            keep = 1.0 - self.dropout
            self.drop = self.generator.bernoulli(tuple(self.P.shape), keep, dtype=self.P.dtype) * (1.0 / keep)
        self.A = self.P if self.drop is None else self.P * self.drop
        self.O = self._merge(self.A @ self.V)
        return self.O @ p["Wo"] + p["bo"]

    def backward(self, dY):
        """dY: (batch, seq, E) -> dX: (batch, seq, E); fills the grads of all 8 params."""
        xp, p = self.xp, self.params
        E = self.embed_dim

        def rows(Z):  # (batch, seq, E) -> (batch * seq, E): weight grads are sums over both
            return xp.reshape(Z, (-1, E))

        # Y = O Wo + bo
        self.grads["Wo"] = rows(self.O).T @ rows(dY)
        self.grads["bo"] = xp.sum(rows(dY), axis=0)
        dO = self._split(dY @ p["Wo"].T)                        # (B, H, T, d)
        # O = A V
        dA = dO @ xp.matrix_transpose(self.V)                   # (B, H, T, T)
        dV = xp.matrix_transpose(self.A) @ dO                   # (B, H, T, d)
        # A = P * drop
        dP = dA if self.drop is None else dA * self.drop
        # P = softmax(S): masked entries have P = 0, so they get dS = 0
        dS = softmax_backward(xp, self.P, dP)
        dS = dS * (1.0 / math.sqrt(self.head_dim))
        # S = Q K^T (scaled above)
        dQ = dS @ self.K
        dK = xp.matrix_transpose(dS) @ self.Q
        # Q = X Wq + bq, and likewise K, V: X feeds all three, so dX sums three terms
        dX = None
        for name, dZ in (("q", dQ), ("k", dK), ("v", dV)):
            dZ = self._merge(dZ)                                # (B, T, E)
            self.grads[f"W{name}"] = rows(self.X).T @ rows(dZ)
            self.grads[f"b{name}"] = xp.sum(rows(dZ), axis=0)
            term = dZ @ p[f"W{name}"].T
            dX = term if dX is None else dX + term
        return dX

    def config(self) -> dict:
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "causal": self.causal,
                "dropout": self.dropout}

    def output_shape(self, input_shape):
        return tuple(input_shape)


class PositionalEncoding(Layer):
    """Adds the fixed sinusoidal position signal of "Attention Is All You Need":

        PE[t, 2i] = sin(t / 10000^(2i / E)),   PE[t, 2i + 1] = cos(t / 10000^(2i / E))

    Shapes: X (batch, seq, E) -> Y = X + PE[:seq] (batch, seq, E), seq <= max_len.
    No params; backward passes dY through unchanged. The table is computed once per
    (E, dtype, backend) and not saved (it is a function of the shape).
    """

    def __init__(self, max_len: int = 512):
        super().__init__()
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"PositionalEncoding: max_len must be a positive integer, found {max_len!r}")
        self.max_len = max_len
        self._table = None
        self._key = None

    def table(self, E: int, dtype):
        """PE: (max_len, E) in ``dtype`` on this layer's device (computed in float64)."""
        key = (E, dtype, self.backend)
        if self._key != key:
            xp, dev = self.xp, self.backend.device
            t = xp.arange(self.max_len, dtype=xp.float64, device=dev)[:, None]      # (max_len, 1)
            j = xp.arange(E, device=dev)
            pair = xp.astype(j - j % 2, xp.float64)                                 # 2i for columns 2i, 2i+1
            angle = t * xp.exp(pair * (-math.log(10000.0) / E))[None, :]             # (max_len, E)
            pe = xp.where((j % 2 == 0)[None, :], xp.sin(angle), xp.cos(angle))
            self._table, self._key = xp.astype(pe, dtype), key
        return self._table

    def forward(self, X, training=False):
        """X: (batch, seq, E) -> Y: (batch, seq, E)."""
        self._prepare(X)
        if X.ndim != 3:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, embed)")
        if X.shape[1] > self.max_len:
            raise ValueError(f"{self._where()}: X has {X.shape[1]} positions (shape {tuple(X.shape)}), more than "
                             f"max_len={self.max_len}; build it with PositionalEncoding(max_len={X.shape[1]}) or more")
        return X + self.table(X.shape[2], X.dtype)[None, : X.shape[1], :]

    def backward(self, dY):
        """dY: (batch, seq, E) -> dX = dY (the encoding is a constant)."""
        return dY

    def config(self) -> dict:
        return {"max_len": self.max_len}

    def output_shape(self, input_shape):
        return tuple(input_shape)
