"""Param: a handle on one array a layer (or anything with a dict) owns.

Optimizers, DataParallel and ``set_weights`` never update an array where it lies: they
compute the new value and store it back through a Param, ``store[key] = new``. On NumPy,
CuPy and PyTorch the new value is the same object, updated in place, so the store is
free; on JAX (immutable arrays) and libraries whose ``-=`` rebinds the name, the store is
what makes the update reach the model at all.
"""

from __future__ import annotations

from typing import Any


class Param:
    """``store[key]``, read and written through: the value lives in the owner's dict.

    Args:
        store: the dict holding the array (``layer.params``, ``layer.buffers``, or a dict
            of your own), or a list (an optimizer's state buffers).
        key: its name in that dict, or its index in that list.
        grads: the dict holding its gradient under the same key (``layer.grads``), or None.
        grad: a gradient to carry instead of ``grads[key]`` (``with_grad`` makes these).
        path: the param's stable name in its model ("0.W": layer 0's W, "1.0.b"), or None
            for an array outside a model; optimizers key their state by it in model files.

    A Param unpacks as ``(value, grad)``: ``for W, dW in model.parameters(): ...``.
    """

    __slots__ = ("store", "key", "grads", "_grad", "path")

    loss_scale: Any = None
    """The loss scale a mixed_float16 model's master param (xpnn.precision.MasterParam)
    divides its gradient by (xpnn.precision.LossScale): the optimizer then skips a step
    whose gradients overflowed and updates the scale; None for a plain param."""

    def __init__(self, store: dict | list, key: Any, grads: dict | None = None, grad=None, *, path: str | None = None):
        self.store, self.key, self.grads, self._grad, self.path = store, key, grads, grad, path

    @property
    def value(self):
        return self.store[self.key]

    @value.setter
    def value(self, new) -> None:
        self.store[self.key] = new

    @property
    def grad(self):
        if self._grad is not None:
            return self._grad
        return None if self.grads is None else self.grads.get(self.key)

    @property
    def carries_grad(self) -> bool:
        """Whether the gradient is carried by the handle (``with_grad``), not read from ``grads``."""
        return self._grad is not None

    def with_grad(self, grad) -> "Param":
        """The same value handle carrying another gradient (clipped, or summed over ranks)."""
        return Param(self.store, self.key, self.grads, grad, path=self.path)

    def __iter__(self):
        yield self.value
        yield self.grad

    def __repr__(self) -> str:
        shape = tuple(getattr(self.value, "shape", ()))
        return f"Param({self.key!r}, shape={shape})"
