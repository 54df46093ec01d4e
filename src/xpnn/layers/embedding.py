"""Embedding: a lookup table from integer ids (tokens, categories) to learned vectors."""

from __future__ import annotations

from .. import _checks
from .. import init as initializers
from ..backends import dtype_name
from .base import Layer, register_layer


@register_layer
class Embedding(Layer):
    """Row ``X[...]`` of the table ``W`` for every integer id in X.

    Shapes: X (...) integer ids in [0, num_embeddings) -> Y (..., embedding_dim);
    W (num_embeddings, embedding_dim).

    The lookup is the product of a one-hot matrix with W, computed without building it, so
    its gradient is that one-hot matrix transposed times dY: each row of dY is added to
    the row of dW its id picked. An id used k times gets the sum of its k rows (a
    scatter-add, never an overwrite). The ids themselves are not differentiable, so
    ``backward`` returns None: put Embedding first in a model.

    Ids outside the table are an IndexError naming the first one (NumPy would raise an
    obscure error, a GPU gather reads a wrong row without a word). Checking costs a host
    sync, so it happens once per call of fit, evaluate and predict, on the whole id array
    (``check_inputs``), not on every batch: ``check_ids`` (whether ``forward`` checks the
    ids it is given, one sync a call) is off only inside those loops.
    """

    takes_indices = True  # fit/predict keep integer inputs as they are for this layer (Layer.takes_indices)

    def __init__(self, num_embeddings: int, embedding_dim: int, init="uniform"):
        super().__init__()
        self.num_embeddings = _checks.positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _checks.positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.init = initializers.get(init)  # default U(-0.05, 0.05), as Keras
        self.init_name = init if isinstance(init, str) else initializers.name_of(init)
        self.check_ids = True

    def build(self, X=None) -> None:
        self.params["W"] = self.init(self.generator, (self.num_embeddings, self.embedding_dim), self.dtype)

    def forward(self, X, training=False):
        """X: (...) integer ids -> Y: (..., embedding_dim)."""
        self.prepare(X)
        xp = self.xp
        if not xp.isdtype(X.dtype, "integral"):
            raise TypeError(
                f"{self._where()}: X must be integer ids in [0, {self.num_embeddings}), "
                f"found dtype {dtype_name(X.dtype)}; convert with xp.astype(X, xp.int64)"
            )
        ids = xp.reshape(X, (-1,))
        if self.check_ids:
            self._check_range(ids, tuple(X.shape), f"{self._where()}: X")
        self.saved = ids if training else None  # dW scatters dY back by id
        Y = xp.take(self.params["W"], ids, axis=0)  # (X.size, embedding_dim)
        return xp.reshape(Y, (*X.shape, self.embedding_dim))

    def backward(self, dY, need_dX=True):
        """dY: (..., embedding_dim) -> None. dW[i] = sum of the rows of dY whose id is i."""
        ids = self.take_saved()
        dY = self.xp.reshape(dY, (-1, self.embedding_dim))
        self.grads["W"] = self.backend.scatter_add(self.xp.zeros_like(self.params["W"]), ids, dY)
        return None

    def check_inputs(self, X, argname: str = "X", where: str = "") -> None:
        """Check every id of ``X`` (the whole input of fit, evaluate or predict) at once:
        one host sync. The loops then turn ``check_ids`` off while they run: their batches
        are all cut from this X, so checking each again would only add a sync per batch."""
        self.prepare(X)
        if not self.xp.isdtype(X.dtype, "integral"):
            return  # forward refuses non-integer ids with its own TypeError
        prefix = f"{where}: " if where else ""
        self._check_range(self.xp.reshape(X, (-1,)), tuple(X.shape), f"{prefix}{argname}", f" (the ids of {self!r})")

    def _check_range(self, ids, shape, what: str, note: str = "") -> None:
        """Raise an IndexError that names ``what`` and the first id outside the table.
        One host sync (and two more to read the culprit)."""
        xp = self.xp
        assert self.backend is not None  # bound: forward and check_inputs prepare the layer (and self.xp needs it)
        if ids.shape[0] == 0:
            return
        bad = (ids < 0) | (ids >= self.num_embeddings)
        if not bool(xp.any(bad)):
            return
        flat = _checks.first_true(xp, bad)
        value = int(self.backend.to_numpy(ids[flat]))
        index = _checks.unravel(flat, shape)  # the flat position as an index of X
        raise IndexError(f"{what} must hold ids in [0, {self.num_embeddings}){note}, found {value} at index {index}")

    def config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim, "init": self.init_name}

    def output_shape(self, input_shape):
        return (*input_shape, self.embedding_dim)
