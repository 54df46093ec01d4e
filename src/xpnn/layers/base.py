"""The layer contract every layer follows.

- ``params`` and ``grads`` are dicts with the same keys ("W", "b", ...).
- ``forward(X, training=False) -> Y`` keeps only what ``backward`` needs.
- ``backward(dY) -> dX`` returns the gradient for the input and overwrites ``grads``.

A layer is bound to a backend, a seeded generator and a dtype by its model
(``bind``). A layer used on its own binds itself to the backend and float dtype of the
first array it sees, with seed 0.
"""

from __future__ import annotations

from ..backends import Backend, Generator, backend_of


class Layer:
    """Base class: holds the backend binding and the params/grads dicts."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}  # non-trained state that is saved and moved (running stats)
        self.backend: Backend | None = None
        self.generator: Generator | None = None
        self.dtype = None
        self.built = False
        # False when nothing upstream needs dX (the first layer of a model during fit):
        # layers may then skip that product, as autograd skips inputs without grad.
        self.need_dX = True

    # ---- binding ------------------------------------------------------------------------

    @property
    def xp(self):
        return self.backend.xp

    def bind(self, backend: Backend, generator: Generator, dtype) -> "Layer":
        """Attach backend, generator and dtype; create params if the input size is known."""
        self.backend = backend
        self.generator = generator
        self.dtype = backend.dtype(dtype)
        if not self.built and self.ready():
            self.build()
            self.built = True
        return self

    def ready(self) -> bool:
        """Whether params can be created before the first input is seen."""
        return True

    def build(self, X=None) -> None:
        """Create params (X is the first input, for layers that infer their size)."""

    def _prepare(self, X) -> None:
        """Bind on first use (standalone layers) and build lazily-sized params."""
        if self.backend is None:
            backend = backend_of(X)
            self.bind(backend, backend.rng(0), X.dtype if _is_float(backend, X) else "float32")
        if not self.built:
            self.build(X)
            self.built = True

    # ---- the contract -------------------------------------------------------------------

    def forward(self, X, training: bool = False):
        raise NotImplementedError

    def backward(self, dY):
        raise NotImplementedError

    def __call__(self, X, training: bool = False):
        return self.forward(X, training=training)

    # ---- description (summary, save/load) -----------------------------------------------

    def config(self) -> dict:
        """Constructor arguments as JSON-able values (used by save/load)."""
        return {}

    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of Y for an input of ``input_shape`` (batch axis included)."""
        return input_shape

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def _where(self) -> str:
        return f"{self!r}.forward"


def _is_float(backend: Backend, X) -> bool:
    return backend.xp.isdtype(X.dtype, "real floating")
