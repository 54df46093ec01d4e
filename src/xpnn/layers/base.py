"""The layer contract every layer follows, and the one registry of layer classes.

- ``params`` and ``grads`` are dicts with the same keys ("W", "b", ...); ``buffers`` holds
  state that is saved and moved but not trained (BatchNorm's running statistics).
- ``forward(X, training=False, **inputs) -> Y``. With ``training=True`` the layer keeps
  what its backward needs in ``self.saved``; with ``training=False`` it keeps nothing.
  ``inputs`` are extra per-sample arrays some layers take (attention's ``mask``); a
  layer names them in ``forward_inputs``.
- ``backward(dY, need_dX=True) -> dX`` returns the gradient for the input, overwrites
  ``grads`` and hands ``saved`` back (the layer then holds no activations). With
  ``need_dX=False`` (nothing upstream needs it: the first layer while training) a layer
  may skip computing dX and return None, as autograd skips inputs without grad.

A layer is bound to a backend, a seeded generator and a dtype by its model (``bind``). A
layer used on its own binds itself to the backend and float dtype of the first array it
sees, with seed 0. Layers made of layers (containers: Sequential, Residual, ...) list
them in ``children()``; ``named_params()`` walks the tree and names each array by its
path ("1.0.W": child 1, its child 0, its W).
"""

from __future__ import annotations

import inspect
import math

from ..backends import Backend, Generator, backend_of
from ..param import Param
from ..registry import Registry

# class name -> class: what save/load, xpnn.layers and the ONNX exporter read
LAYERS = Registry("layer", "xpnn.layers.register_layer", key=lambda cls: cls.__name__)


def register_layer(cls):
    """Make a Layer subclass known by its class name to save/load, ``xpnn.layers`` and the
    ONNX exporter (use as a class decorator). Registering another class under a name that
    is taken is an error: a saved model must mean one thing."""
    return LAYERS.register(cls)


def layer_name(layer) -> str:
    """The registry name of ``layer``'s class (what a saved model records)."""
    return LAYERS.name_of(layer, f"saving {layer!r}")


def build_layer(spec, where: str) -> "Layer":
    """A Layer from a Layer (returned as is) or a saved spec ``{"class": name, "config": {...}}``."""
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, dict) and "class" in spec:
        name, config = spec["class"], spec.get("config", {})
        if not isinstance(name, str) or not isinstance(config, dict):
            raise ValueError(
                f"{where}: a layer spec needs a class name (a string) and a config (a dict), "
                f"found class {type(name).__name__} and config {type(config).__name__}"
            )
        cls = LAYERS.lookup(name)
        if cls is None:
            raise ValueError(f"{where}: unknown layer class {name!r} (known: {sorted(LAYERS)})")
        unknown, missing = unknown_arguments(cls, config), missing_arguments(cls, config)
        if unknown or missing:  # said so, rather than a TypeError from the call
            problem = f"no argument {unknown[0]!r}" if unknown else f"the required arguments {missing}"
            raise ValueError(f"{where}: the spec of {name} has {problem}; {name} takes {arguments(cls)}")
        return cls(**config)
    raise TypeError(f"{where}: expected a Layer or a {{'class': ..., 'config': ...}} spec, found {type(spec).__name__}")


def arguments(cls) -> list:
    """The names ``cls``'s constructor takes by keyword (what a saved config may hold)."""
    return [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def unknown_arguments(cls, config: dict) -> list:
    """The keys of ``config`` that ``cls``'s constructor does not take (none if it takes
    ``**kwargs``)."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return []
    return [k for k in config if k not in arguments(cls)]


def defaults(cls) -> dict:
    """The default of each constructor argument of ``cls`` that has one, read from its
    signature (so a repr that leaves defaults out cannot drift from the constructor)."""
    return {p.name: p.default for p in inspect.signature(cls).parameters.values() if p.default is not p.empty}


def missing_arguments(cls, config: dict) -> list:
    """The required constructor arguments of ``cls`` that ``config`` lacks."""
    return [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty and p.name not in config
    ]


class Layer:
    """Base class: the backend binding, params/grads/buffers, what forward saved."""

    forward_inputs: tuple = ()  # keyword inputs forward takes besides X, e.g. ("mask",)

    takes_indices: bool = False
    """Whether forward takes integer ids and looks rows up (an Embedding): fit, evaluate
    and predict keep integer X as it is for a model whose ``first_leaf`` takes ids, and the
    thread policy (xpnn.training.threads) counts no matrix product for such a layer."""

    traceable: bool = True
    """Whether forward and backward only do array math (no host reads, no Python branches
    on values), so a compiled step (``compile(jit=True)``) may trace them; a layer that sets
    False keeps a jit fit eager, with a warning naming it (xpnn.training.jit)."""

    check_ids: bool = False
    """Whether forward checks every input it is given (an Embedding's id range: a host sync
    per call). fit, evaluate and predict check their whole input once (``check_inputs``)
    and turn this off while their loops run (xpnn.training.data.trusted_inputs)."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.saved = None  # what forward(training=True) kept for backward
        self.backend: Backend | None = None
        self.generator: Generator | None = None
        self.dtype = None
        self.built = False

    # ---- binding ------------------------------------------------------------------------

    @property
    def xp(self):
        return self.backend.xp

    def bind(self, backend: Backend, generator: Generator, dtype) -> "Layer":
        """Attach backend, generator and dtype (to the children too); create params if the
        input size is known. A layer built elsewhere (a Sequential made on its own, then
        nested in a model on another backend or dtype) has its arrays moved and cast."""
        if backend is not self.backend:
            self.grads, self.saved = {}, None  # of the old backend: nothing to keep
        self.backend = backend
        self.generator = generator
        self.dtype = backend.dtype(dtype)
        for store in (self.params, self.buffers):
            for k, v in store.items():
                if not backend.owns(v):  # another library or device: through the host
                    v = backend.asarray(backend_of(v).to_numpy(v), copy=True)
                if v.dtype != self.dtype and backend.xp.isdtype(v.dtype, "real floating"):
                    v = backend.xp.astype(v, self.dtype)
                store[k] = v
        for child in self.children():
            child.bind(backend, generator, self.dtype)
        if not self.built and self.ready():
            self.build()
            self.built = True
        return self

    def ready(self) -> bool:
        """Whether params can be created before the first input is seen."""
        return True

    def build(self, X=None) -> None:
        """Create params (X is the first input, for layers that infer their size)."""

    def prepare(self, X) -> None:
        """Bind on first use (standalone layers) and build lazily-sized params."""
        if self.backend is None:
            backend = backend_of(X)
            self.bind(backend, backend.rng(0), X.dtype if backend.xp.isdtype(X.dtype, "real floating") else "float32")
        if not self.built:
            self.build(X)
            self.built = True

    # ---- the contract -------------------------------------------------------------------

    def forward(self, X, training: bool = False, **inputs):
        raise NotImplementedError

    def backward(self, dY, need_dX: bool = True):
        raise NotImplementedError

    def __call__(self, X, training: bool = False, **inputs):
        return self.forward(X, training=training, **inputs)

    def take_saved(self):
        """What forward(training=True) kept, handed to backward once: afterwards the layer
        holds no activations (a clear error if there is nothing to take)."""
        saved, self.saved = self.saved, None
        if saved is None:
            raise RuntimeError(
                f"{self!r}.backward needs a forward(X, training=True) first "
                f"(inference keeps nothing, and each forward serves one backward)"
            )
        return saved

    def release_saved(self) -> None:
        """Drop what a training forward saved, here and in every layer inside (when no
        backward will come: a training loop stopped between forward and backward)."""
        for part in self.walk():
            part.saved = None

    def check_inputs(self, X, argname: str = "X", where: str = "") -> None:
        """Check the whole input of fit, evaluate or predict at once, for a check that
        forward would otherwise make on every batch (an Embedding's id range). A layer
        with no such check (the default) accepts anything here."""

    def accepts(self, name: str) -> bool:
        """Whether forward (here or in a child) takes the keyword input ``name``."""
        return name in self.forward_inputs or any(child.accepts(name) for child in self.children())

    def check_accepts(self, names, message) -> None:
        """Raise ``ValueError(message(name))`` for the first of ``names`` that no layer here
        takes (a typo, or an input nothing can route): the one check behind a container's
        ``run``, ``Model.forward`` and the keyword inputs of fit, evaluate and predict."""
        for name in names:
            if not self.accepts(name):
                raise ValueError(message(name))

    # ---- the tree of layers --------------------------------------------------------------

    def children(self) -> list:
        """The layers this layer is made of (containers); a plain layer has none."""
        return []

    def first_leaf(self) -> "Layer":
        """The layer the input reaches first: first children followed down to a layer
        with none (this layer itself if it has none)."""
        first = self
        while first.children():
            first = first.children()[0]
        return first

    def walk(self):
        """This layer and every layer inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def named_params(self, prefix: str = "") -> dict:
        """Every trained array of this layer and its children as a Param handle, by path."""
        return self._named(prefix, params=True, buffers=False)

    def named_buffers(self, prefix: str = "") -> dict:
        """Every buffer (saved, not trained) as a Param handle, by path."""
        return self._named(prefix, params=False, buffers=True)

    def named_handles(self, prefix: str = "") -> dict:
        """Every param and buffer as a Param handle, by path, each layer's own before its
        children's (what save, set_weights, ``to`` and DataParallel walk)."""
        return self._named(prefix, params=True, buffers=True)

    def _named(self, prefix, params, buffers) -> dict:
        out = (
            {f"{prefix}{k}": Param(self.params, k, self.grads, path=f"{prefix}{k}") for k in self.params}
            if params
            else {}
        )
        if buffers:
            out.update({f"{prefix}{k}": Param(self.buffers, k, path=f"{prefix}{k}") for k in self.buffers})
        for i, child in enumerate(self.children()):
            out.update(child._named(f"{prefix}{i}.", params, buffers))
        return out

    def named_layers(self, prefix: str = ""):
        """(path, layer) for this layer and every layer inside it, depth first; the path of
        a child is its index ("2", "2.0")."""
        yield prefix.rstrip("."), self
        for i, child in enumerate(self.children()):
            yield from child.named_layers(f"{prefix}{i}.")

    def parameters(self) -> list:
        """The trained arrays as Param handles, in order: what ``optimizer.step`` takes."""
        return list(self.named_params().values())

    def count_params(self) -> int:
        return sum(math.prod(h.value.shape) for h in self.named_params().values())

    # ---- description (summary, save/load) -----------------------------------------------

    def config(self) -> dict:
        """Constructor arguments as JSON-able values (used by save/load)."""
        return {}

    def input_sample_shape(self) -> tuple | None:
        """The shape of one input sample (no batch axis) this layer fixes on its own, or
        None: a Dense of known size says ``(in_features,)``; a Conv2D fixes only its
        channels, not the height and width, so it says nothing."""
        return None

    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of Y for an input of ``input_shape`` (batch axis included)."""
        return input_shape

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def short_repr(self, positional: int) -> str:
        """``Name(a, b, key=value)``: the first ``positional`` config values bare, then the
        config entries that differ from the constructor's defaults (see ``defaults``)."""
        config, default = list(self.config().items()), defaults(type(self))
        args = [str(v) for _, v in config[:positional]]
        args += [f"{k}={v!r}" for k, v in config[positional:] if k not in default or default[k] != v]
        return f"{type(self).__name__}({', '.join(args)})"

    def _where(self) -> str:
        return f"{self!r}.forward"


LAYERS.base = Layer  # every registered layer is one
