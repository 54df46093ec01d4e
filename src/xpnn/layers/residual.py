"""Layers made of layers: Residual (y = x + f(x)), TimeDistributed (a 2-D stack applied to
every position of a sequence) and the pre-norm TransformerEncoderBlock built from them.

A container is one Layer to its model. Its ``params``, ``grads`` and ``buffers`` are live
views over its children's dicts with prefixed keys: ``"0.W"`` is ``layers[0].params["W"]``,
``"1.0.gamma"`` goes one level deeper. Reading gives the children's own array objects (so
an optimizer updating them in place updates the children) and writing stores into the
child (so ``model.to``, ``load`` or a float64 gradient check can replace an array). Because
nothing is copied, nothing can go out of sync after a build or a backward.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from .base import Layer


class _PrefixedView(MutableMapping):
    """``{"i.key": layers[i].<store>[key]}`` over children, read and written through."""

    def __init__(self, layers, store: str):
        self._layers = layers
        self._store = store

    def _locate(self, key):
        index, sep, rest = key.partition(".") if isinstance(key, str) else ("", "", "")
        if not sep or not index.isdigit() or int(index) >= len(self._layers):
            raise KeyError(key)
        return getattr(self._layers[int(index)], self._store), rest

    def __getitem__(self, key):
        store, rest = self._locate(key)
        return store[rest]

    def __setitem__(self, key, value):
        store, rest = self._locate(key)
        store[rest] = value

    def __delitem__(self, key):
        store, rest = self._locate(key)
        del store[rest]

    def __iter__(self):
        for i, layer in enumerate(self._layers):
            for k in list(getattr(layer, self._store)):
                yield f"{i}.{k}"

    def __len__(self):
        return sum(len(getattr(layer, self._store)) for layer in self._layers)

    def __repr__(self):
        return repr(dict(self.items()))


def _view_property(store: str):
    """A params/grads/buffers attribute backed by the children: assigning a dict (as
    ``Layer.__init__`` and ``model.to`` do) clears the children's dicts and stores its
    items through the view."""

    def get(self):
        return _PrefixedView(self.layers, store)

    def set(self, mapping):
        if "layers" not in self.__dict__:  # Layer.__init__, before the children are attached
            return
        for layer in self.layers:
            setattr(layer, store, {})
        view = _PrefixedView(self.layers, store)
        for k, v in dict(mapping).items():
            view[k] = v

    return property(get, set)


def _build_layers(owner: str, args, layers) -> list:
    """Children from positional Layers, or from ``layers_config`` (Layers or saved specs
    ``{"class": name, "config": {...}}``, looked up in xpnn.layers.LAYERS)."""
    if args and layers is not None:
        raise ValueError(f"{owner}: give the inner layers either as arguments or as layers_config=[...], not both")
    items = list(args) if args else list(layers or [])
    if not items:
        raise ValueError(f"{owner}: needs at least one inner layer, e.g. {owner}(Dense(8, 8), ReLU())")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "class" in item:
            from . import LAYERS  # lazily: the registry imports this module

            if item["class"] not in LAYERS:
                raise ValueError(f"{owner}: unknown layer class {item['class']!r} at position {i} (known: {sorted(LAYERS)})")
            item = LAYERS[item["class"]](**item.get("config", {}))
        if not isinstance(item, Layer):
            raise TypeError(f"{owner}: inner layer {i} must be a Layer or a {{'class': ..., 'config': ...}} spec, "
                            f"found {type(item).__name__}")
        out.append(item)
    return out


def _dtype_name(dtype) -> str:
    """"float32" for NumPy's, CuPy's or array_api_strict's float32."""
    return getattr(dtype, "__name__", None) or str(dtype).rsplit(".", 1)[-1]


def _forward(layer, X, training, mask):
    """``layer.forward``, passing ``mask`` to the layers that take one (attention)."""
    if mask is not None and getattr(layer, "takes_mask", False):
        return layer.forward(X, training=training, mask=mask)
    return layer.forward(X, training=training)


class _Container(Layer):
    """A Layer holding child layers in ``self.layers``, bound like itself."""

    params = _view_property("params")
    grads = _view_property("grads")
    buffers = _view_property("buffers")
    takes_mask = True

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def bind(self, backend, generator, dtype) -> "Layer":
        """Bind every child to the same backend, generator and dtype (children build their
        own params, now or on their first input)."""
        self.backend, self.generator, self.dtype = backend, generator, backend.dtype(dtype)
        for layer in self.layers:
            layer.bind(backend, generator, self.dtype)
        self.built = True  # nothing of its own to build
        return self

    def _sync(self) -> None:
        """Pass a changed binding on: ``model.to`` sets ``backend`` and ``generator`` on the
        top-level layers only, and a gradient check switches ``dtype`` to float64."""
        # dtypes are compared by name: after a move, self.dtype may still be the old
        # library's dtype object, and dtypes of two libraries must not be compared
        for layer in self.layers:
            if (layer.backend is not self.backend or layer.generator is not self.generator
                    or _dtype_name(layer.dtype) != _dtype_name(self.dtype)):
                layer.bind(self.backend, self.generator, self.dtype)

    def _run(self, X, training, mask):
        """The children in sequence: X -> f(X)."""
        self._prepare(X)
        self._sync()
        for layer in self.layers:
            X = _forward(layer, X, training, mask)
        return X

    def _run_backward(self, dY):
        """dL/df(X) -> dL/dX through the children, last first."""
        for layer in reversed(self.layers):
            dY = layer.backward(dY)
        return dY

    def _layer_specs(self) -> list:
        from . import layer_name  # lazily: the registry imports this module

        return [{"class": layer_name(layer), "config": layer.config()} for layer in self.layers]

    def _inner_shape(self, shape):
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return tuple(shape)


class Residual(_Container):
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
        super().__init__(_build_layers("Residual", layers, layers_config))

    def forward(self, X, training=False, mask=None):
        """X: (batch, ...) -> X + f(X)."""
        FX = self._run(X, training, mask)
        if tuple(FX.shape) != tuple(X.shape):
            raise ValueError(f"{self._where()}: the inner layers map shape {tuple(X.shape)} to {tuple(FX.shape)}; "
                             f"a residual connection needs them to keep the shape")
        return X + FX

    def backward(self, dY):
        """dY: like X -> dX = dY + df/dX^T dY."""
        return dY + self._run_backward(dY)

    def config(self) -> dict:
        return {"layers_config": self._layer_specs()}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __repr__(self) -> str:
        return f"Residual({', '.join(repr(layer) for layer in self.layers)})"


class TimeDistributed(_Container):
    """Applies 2-D layers (such as Dense) to every position of a sequence independently.

    Shapes: X (batch, seq, ...) is reshaped to (batch * seq, ...), passed through the inner
    layers in sequence, and reshaped back: Y (batch, seq, ...out). Backward undoes the same
    reshapes around the inner backward. Params are named "<child index>.<name>".
    """

    takes_mask = False  # its rows are not sequences any more

    def __init__(self, *layers, layers_config=None):
        super().__init__(_build_layers("TimeDistributed", layers, layers_config))

    def forward(self, X, training=False):
        """X: (batch, seq, ...) -> Y: (batch, seq, ...out)."""
        if X.ndim < 3:
            raise ValueError(f"TimeDistributed.forward: X has shape {tuple(X.shape)}, expected (batch, seq, features...)")
        self._prepare(X)
        B, T = X.shape[0], X.shape[1]
        self.in_shape = tuple(X.shape)
        Y = self._run(self.xp.reshape(X, (B * T, *X.shape[2:])), training, None)
        return self.xp.reshape(Y, (B, T, *Y.shape[1:]))

    def backward(self, dY):
        """dY: (batch, seq, ...out) -> dX: (batch, seq, ...)."""
        B, T = self.in_shape[0], self.in_shape[1]
        dX = self._run_backward(self.xp.reshape(dY, (B * T, *dY.shape[2:])))
        return None if dX is None else self.xp.reshape(dX, self.in_shape)

    def config(self) -> dict:
        return {"layers_config": self._layer_specs()}

    def output_shape(self, input_shape):
        B, T, *rest = input_shape
        out = self._inner_shape((None, *rest))
        return (B, T, *out[1:])

    def __repr__(self) -> str:
        return f"TimeDistributed({', '.join(repr(layer) for layer in self.layers)})"


class TransformerEncoderBlock(_Container):
    """A pre-norm Transformer encoder block:

        H = X + Attention(LayerNorm(X))                       (self-attention sublayer)
        Y = H + Dropout(FF(LayerNorm(H)))                     FF = Dense(E, F), GELU, Dense(F, E)

    Args:
        embed_dim: E; num_heads: H (E divisible by H); ff_dim: F, the hidden size of FF.
        dropout: attention-weight dropout and dropout on the feed-forward output.
        causal: causal self-attention (each position sees itself and earlier ones).

    Shapes: X (batch, seq, E) -> Y (batch, seq, E). Params are named like
    "0.1.Wq" (first residual, its attention) and "1.1.0.W" (second residual, FF, first Dense).
    ``forward(X, training=False, mask=None)``: mask is the attention's (batch, seq) key
    padding mask, True for real tokens.
    """

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.0, causal: bool = False):
        from .activations import GELU
        from .attention import MultiHeadSelfAttention
        from .dense import Dense
        from .dropout import Dropout
        from .normalization import LayerNorm

        if isinstance(ff_dim, bool) or not isinstance(ff_dim, int) or ff_dim < 1:
            raise ValueError(f"TransformerEncoderBlock: ff_dim must be a positive integer, found {ff_dim!r}")
        attention = MultiHeadSelfAttention(embed_dim, num_heads, causal=causal, dropout=dropout)
        feed_forward = TimeDistributed(Dense(embed_dim, ff_dim), GELU(), Dense(ff_dim, embed_dim))
        super().__init__([
            Residual(LayerNorm(embed_dim), attention),
            Residual(LayerNorm(embed_dim), feed_forward, Dropout(dropout)),
        ])
        self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
        self.dropout, self.causal = float(dropout), causal

    def forward(self, X, training=False, mask=None):
        """X: (batch, seq, E) -> Y: (batch, seq, E); mask: (batch, seq) bool or None."""
        if X.ndim != 3 or X.shape[2] != self.embed_dim:
            raise ValueError(f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, {self.embed_dim})")
        return self._run(X, training, mask)

    def backward(self, dY):
        """dY: (batch, seq, E) -> dX: (batch, seq, E)."""
        return self._run_backward(dY)

    def config(self) -> dict:
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "ff_dim": self.ff_dim,
                "dropout": self.dropout, "causal": self.causal}

    def output_shape(self, input_shape):
        return tuple(input_shape)
