"""Mixed precision: compute in bfloat16 or float16, keep float32 master weights.

A model made with ``dtype="mixed_bfloat16"`` or ``"mixed_float16"`` has a :class:`Policy`:

- its layers hold low-precision working copies of the params and compute forward and
  backward in that dtype (every layer is unchanged: it runs in whatever dtype it is bound to);
- the model keeps a float32 master copy of every param; ``model.parameters()`` hands the
  optimizer :class:`MasterParam` handles, which read the master and the layer's gradient
  cast to float32, and write each new master back into the layer as a low-precision copy;
  so the optimizer's state is float32 too, and small updates are not rounded away;
- at the model's boundary the input is cast to the compute dtype and the output back to
  float32, so losses and metrics compute in float32.

float16's range is narrow (largest 65504, smallest normal 6e-5): small gradients
underflow to zero. ``mixed_float16`` therefore scales the loss gradient up by a
:class:`LossScale` before the backward pass and the gradients down again before the
update; when a step's gradients overflow (inf or NaN) the optimizer skips it and the
scale halves; after ``growth_interval`` good steps in a row it doubles. All of it is array
arithmetic on the device (``where`` on a finite flag): no host sync per step.
bfloat16 has float32's range and needs no scaling.
"""

from __future__ import annotations

from .backends import backend_of
from .param import Param

__all__ = ["Policy", "LossScale", "MasterParam"]


class Policy:
    """What a model's dtype name means: the dtype layers compute in, the dtype params
    are kept (and saved) in, and whether the loss is scaled.

    ``Policy("float32")``: plain, compute = params = float32.
    ``Policy("mixed_bfloat16")``: compute bfloat16, params float32, no loss scaling.
    ``Policy("mixed_float16")``: compute float16, params float32, dynamic loss scaling.
    """

    def __init__(self, name: str):
        self.name = name
        self.mixed = name.startswith("mixed_")
        self.compute = name.removeprefix("mixed_")
        self.variable = "float32" if self.mixed else name
        self.loss_scaling = self.compute == "float16" and self.mixed

    def __repr__(self) -> str:
        return f"Policy({self.name!r})"


class LossScale:
    """Dynamic loss scaling (as torch.cuda.amp.GradScaler and Keras's LossScaleOptimizer).

    ``scale``: the factor the loss gradient is multiplied by (a float32 0-d array on the
    device, starting at ``initial``); ``inverse`` is 1 / scale. After each step,
    ``update(ok)`` with ``ok`` the 0-d "all gradients finite" flag: a bad step halves the
    scale, ``growth_interval`` good steps in a row double it.
    """

    def __init__(self, backend, initial: float = 2.0**15, growth_interval: int = 2000, good_steps: int = 0):
        self.backend = backend
        self.growth_interval = int(growth_interval)
        self.scale = backend.asarray(float(initial), dtype="float32")
        self.good_steps = backend.asarray(float(good_steps), dtype="float32")
        self.inverse = 1.0 / self.scale

    def all_finite(self, grads):
        """A 0-d boolean array: whether every value of every grad is finite (no host sync)."""
        xp = self.backend.xp
        ok = None
        for g in grads:
            finite = xp.all(xp.isfinite(g))
            ok = finite if ok is None else xp.logical_and(ok, finite)
        return ok

    def update(self, ok) -> None:
        """Lower the scale after a bad step, raise it after ``growth_interval`` good ones."""
        xp = self.backend.xp
        zero = xp.zeros_like(self.good_steps)
        good = xp.where(ok, self.good_steps + 1.0, zero)
        grow = good >= float(self.growth_interval)
        self.scale = xp.where(ok, xp.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5)
        self.good_steps = xp.where(grow, zero, good)
        self.inverse = 1.0 / self.scale

    def state(self) -> dict:
        """The scale and the count of good steps as Python numbers (a host sync: for saving)."""
        b = self.backend
        return {"scale": b.to_float(self.scale), "good_steps": int(b.to_float(self.good_steps))}

    def to(self, backend) -> "LossScale":
        """This loss scale's state on another backend."""
        state = self.state()
        return LossScale(backend, state["scale"], self.growth_interval, state["good_steps"])


class MasterParam(Param):
    """A mixed-precision model's param as the optimizer sees it: the float32 master in
    ``store[key]``, the gradient of the layer's low-precision copy ``working`` cast to
    float32 (and divided by the loss scale), and every new value written back to both."""

    __slots__ = ("working", "loss_scale")

    def __init__(self, store, key, working: Param, loss_scale: LossScale | None = None, grad=None):
        super().__init__(store, key, None, grad, path=working.path)
        self.working, self.loss_scale = working, loss_scale

    @property
    def value(self):
        return self.store[self.key]

    @value.setter
    def value(self, new) -> None:
        self.store[self.key] = new
        old = self.working.value
        self.working.value = backend_of(new).xp.astype(new, old.dtype)

    @property
    def grad(self):
        if self._grad is not None:
            return self._grad
        g = self.working.grad
        if g is None:
            return None
        g = backend_of(g).xp.astype(g, self.store[self.key].dtype)
        return g if self.loss_scale is None else g * self.loss_scale.inverse

    def with_grad(self, grad) -> "MasterParam":
        return MasterParam(self.store, self.key, self.working, self.loss_scale, grad)
