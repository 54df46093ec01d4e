"""Optimizers: turn gradients into parameter updates, stored back through the model.

Contract:

- ``step(params)`` takes ``model.parameters()``: :class:`~xpnn.param.Param` handles in
  layer order, each reading ``layer.params[name]`` and its gradient. The new value is
  written back through the handle (``param.value = new``), so libraries whose arrays are
  immutable (JAX) or whose ``-=`` rebinds the name train correctly; on NumPy, CuPy and
  PyTorch the arithmetic runs in place and the new value is the same object. Plain
  ``(array, grad)`` tuples are accepted where the update happens in place; elsewhere
  they are refused (an update that cannot reach the model must not pass silently).
  Grads are only read, never written: the caller may reuse them.
- State (momentum buffers, moment estimates) is made lazily on the first step with
  ``xp.zeros_like(param)``, so it lives on the param's device and has its dtype. While
  training it is kept per position in the params list (``self.state["m"][i]`` belongs to
  ``params[i]``: what a compiled step binds); ``paths`` names each position by the param's
  stable path in its model ("0.W"), and saved state is keyed by it (``"m.0.W"``), so a
  model file does not depend on the order in which params are listed.
  Scratch buffers a backend reuses between steps (NumPy's Adam) belong to the optimizer.
- Every scalar coefficient is a Python float, so float32 params stay float32.
- Low precision: for a float16 or bfloat16 param the arithmetic happens in float32 (the
  param and its gradient cast up, the state kept in float32) and the result is cast back
  into the param's dtype: Adam's eps = 1e-8 is 0 in float16, and g**2 underflows. A
  mixed-precision model (``dtype="mixed_float16"``) hands over float32 master params
  instead (:class:`~xpnn.precision.MasterParam`); when they carry a loss scale, a step
  whose gradients are not all finite is skipped (params and state kept, selected with
  ``where`` on the device: no host sync) and the scale updated. A skipped step still
  counts in ``iterations``.
- ``lr`` is a float or a schedule (a callable ``step -> lr``, see ``xpnn.schedules``);
  ``get_lr()`` is the lr the next step will use. Callbacks may assign ``opt.lr = 0.01``.

SGD, Adam and AdamW follow ``torch.optim`` exactly (dampening 0, no amsgrad); RMSprop
follows Keras (eps inside the square root); Adagrad follows ``torch.optim.Adagrad``
(eps outside the square root, accumulator starting at 0).
"""

from __future__ import annotations

import inspect
import math

from ._checks import boolean, is_number, non_negative_int, number, positive_number
from .backends import LOW_PRECISION, backend_of, dtype_name, get_backend
from .param import Param
from .registry import Registry
from .schedules import get_schedule

__all__ = [
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adam",
    "AdamW",
    "OPTIMIZERS",
    "register_optimizer",
    "get_optimizer",
    "clip_grad_norm",
]


# ---- the base class -----------------------------------------------------------------------


class Optimizer:
    """Base class: lr handling, lazy per-param state, state save/load and device moves.

    Subclasses set ``name`` (the registry name), ``state_names`` (the per-param buffers
    they keep, e.g. ``("m", "v")``) and implement ``update(i, param, grad, lr)``.
    """

    name = "optimizer"
    state_names: tuple = ()

    def __init__(self, lr):
        self.iterations = 0  # steps taken so far
        self.state: dict = {}  # buffer name -> list of arrays, one per position in params
        # the path of the param at each position ("0.W"): from the first step's handles, or a loaded file
        self.paths: list[str] | None = None
        self.scratch: dict = {}  # reusable buffers a backend may keep between steps (NumPy's Adam)
        self._checked = self._checked_handles = None  # the last params list that passed the checks
        self._direct: list | None = None  # its (position, store, key, grads) when every handle is a plain Param
        self._backend = None  # the params' backend, looked up with the handles (see ``backend``)
        self._low: list = []  # per position: whether the param is float16/bfloat16 (updated in float32)
        self._loss_scale = None  # the LossScale that mixed_float16 master params carry
        self._lr = self._check_lr(lr, at_init=True)

    @property
    def backend(self):
        """The Backend of the params this optimizer updates: found at the first step (one
        lookup for all params of a model), None before it."""
        return self._backend

    # ---- learning rate ----------------------------------------------------------------

    @property
    def lr(self):
        """A float, or a schedule (callable ``step -> lr``)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = self._check_lr(value, at_init=False)

    def _check_lr(self, value, at_init: bool):
        where = type(self).__name__
        if isinstance(value, dict):  # a schedule's config (from a saved optimizer config)
            return get_schedule(value)
        if callable(value):
            return value
        # A callback may anneal lr down to 0 (frozen training); a new optimizer needs lr > 0.
        if not is_number(value) or not math.isfinite(value) or value < 0 or (at_init and value == 0):
            expected = "> 0" if at_init else ">= 0"
            raise ValueError(f"{where}: lr must be a number {expected} or a schedule, found {value!r}")
        return float(value)  # a Python float: a NumPy float64 would upcast float32 params

    def trace_lr(self, value) -> None:
        """Set lr to a 0-d array unchecked, for the duration of a trace: a compiled step
        (xpnn.training.jit) passes the lr in as an input of the compiled function, and puts
        the real lr back afterwards (``opt.lr = ...``)."""
        self._lr = value

    def get_lr(self) -> float:
        """The lr the next step uses: ``lr``, or ``lr(iterations)`` for a schedule."""
        if callable(self._lr):
            return float(self._lr(self.iterations))
        return self._lr  # a float; a 0-d array while a compiled step is traced (xpnn.training.jit)

    # ---- the update -------------------------------------------------------------------

    def step(self, params) -> None:
        """Update each param of ``params`` (``model.parameters()``) and store it back."""
        if params is self._checked:  # the list a training loop passes every step: checked at its first
            handles = self._checked_handles
        else:
            handles = self._check(params)
        lr = self.get_lr()
        self.iterations += 1
        if self._loss_scale is not None:
            self._step_unless_overflow(handles, lr)
            return
        update = self.update
        if self._direct is not None and params is self._checked:
            # plain handles, each ``grads[key]`` of ``store[key]``: read and written straight
            # (a small model's step would spend more on the handles' properties than on the math)
            for i, store, key, grads in self._direct:
                value = store[key]
                new = update(i, value, grads.get(key), lr)
                if new is not value:  # JAX: a new array; NumPy, CuPy, PyTorch: the same, updated in place
                    store[key] = new
            return
        for i, handle in enumerate(handles):
            if self._low[i]:
                handle.value = self._update_in_float32(i, handle.value, handle.grad, lr)
            else:
                handle.value = update(i, handle.value, handle.grad, lr)

    def _check(self, params) -> list:
        """``params`` checked and made handles, the state made on a first step; a list is
        remembered, so that the next step given the same list skips all this."""
        handles = _handles(params, f"{type(self).__name__}.step")
        self._ensure_state(handles)
        # one lookup, not one per param or per step: all params of a model share one backend
        self._backend = backend_of(handles[0].value) if handles else None
        self._low = [_is_low(h.value) for h in handles]
        self._loss_scale = handles[0].loss_scale if handles else None
        self._direct = None
        if isinstance(params, list):
            self._checked, self._checked_handles = params, handles
            plain = all(type(h) is Param and not h.carries_grad and h.grads is not None for h in handles)
            if plain and not any(self._low):
                self._direct = [(i, h.store, h.key, h.grads) for i, h in enumerate(handles)]
        return handles

    def _update_in_float32(self, i: int, param, grad, lr: float):
        """``update`` for a float16/bfloat16 param: computed in float32 (the state is
        float32), the result written into the param in its own dtype."""
        b = self._backend
        assert b is not None  # set with the handles, at the first step
        xp = b.xp
        new = self.update(i, xp.astype(param, xp.float32), xp.astype(grad, xp.float32), lr)
        return b.set_at(param, ..., xp.astype(new, param.dtype))

    def _step_unless_overflow(self, handles, lr: float) -> None:
        """One step on loss-scaled gradients (already divided by the scale): taken if every
        gradient is finite, else params and state stay as they were; then the scale is
        updated. Array operations only, so no host sync and a traceable step."""
        scale, b = self._loss_scale, self._backend
        assert scale is not None and b is not None  # set with the handles, at the first step
        xp = b.xp
        grads = [h.grad for h in handles]
        ok = scale.all_finite(grads)
        for i, (h, grad) in enumerate(zip(handles, grads)):
            grad = xp.where(ok, grad, xp.zeros_like(grad))  # no inf arithmetic in a step thrown away
            before = [xp.asarray(a, copy=True) for a in (h.value, *(self.state[k][i] for k in self.state_names))]
            new = self.update(i, h.value, grad, lr)
            h.value = xp.where(ok, new, before[0])
            for key, old in zip(self.state_names, before[1:]):
                self.state[key][i] = xp.where(ok, self.state[key][i], old)
        scale.update(ok)

    def update(self, i: int, param, grad, lr: float):
        """The new value of ``param`` (position ``i`` in params) after one step on ``grad``.

        Written with in-place operators (``param -= ...``): NumPy, CuPy and PyTorch then
        update the array itself; on JAX the name is rebound to a new array. Either way the
        result is returned, and state buffers are stored back into ``self.state``.
        """
        raise NotImplementedError

    def _ensure_state(self, handles) -> None:
        """Check the params and make zero state on the first step (on each param's device);
        params named by other paths than the state was made for are refused."""
        where = f"{type(self).__name__}.step"
        paths = [h.path for h in handles] if all(h.path is not None for h in handles) else None
        for i, h in enumerate(handles):
            param, grad = h.value, h.grad
            if grad is None:
                raise ValueError(
                    f"{where}: params[{i}] ({h.key!r}) has no gradient yet; run the model's forward and backward first"
                )
            if tuple(param.shape) != tuple(grad.shape):
                raise ValueError(
                    f"{where}: params[{i}] has param shape {tuple(param.shape)} but grad shape {tuple(grad.shape)}"
                )
        if not self.state_names or not self.state:
            self.paths = paths
            for key in self.state_names:
                self.state[key] = [_zero_state(h.value) for h in handles]
            return
        known = len(self.state[self.state_names[0]])
        if known != len(handles):
            raise ValueError(
                f"{where}: got {len(handles)} params, but this optimizer's state "
                f"was made for {known}; use one optimizer per model (or a new one)"
            )
        if paths is not None and self.paths is not None and paths != self.paths:
            i = next(i for i, (a, b) in enumerate(zip(paths, self.paths)) if a != b)
            raise ValueError(
                f"{where}: params[{i}] is {paths[i]!r}, but this optimizer's state at that position "
                f"belongs to {self.paths[i]!r}; use one optimizer per model (or a new one)"
            )
        self.paths = paths if self.paths is None else self.paths
        for key in self.state_names:
            for i, (h, s) in enumerate(zip(handles, self.state[key])):
                if tuple(s.shape) != tuple(h.value.shape):
                    raise ValueError(
                        f"{where}: state {key}.{i} has shape {tuple(s.shape)} "
                        f"but params[{i}] has shape {tuple(h.value.shape)}"
                    )

    # ---- description, saving and moving ---------------------------------------------------

    def config(self) -> dict:
        """Constructor arguments as JSON-able values, plus ``"name"``."""
        lr = self._lr
        if callable(lr):
            if not hasattr(lr, "config"):
                raise TypeError(
                    f"{type(self).__name__}.config: lr is a callable without config(); "
                    f"use a schedule from xpnn.schedules to save it"
                )
            lr = lr.config()
        return {"name": self.name, "lr": lr, **self._hyper()}

    def _hyper(self) -> dict:
        """Constructor arguments other than lr."""
        return {}

    def state_arrays(self, paths=None) -> dict:
        """The state by buffer and param path: ``{"m.0.W": array, "v.0.W": array, ...}``
        (empty before step 1). ``paths``: the params' paths in order (``list(model.named_params())``),
        if not those of the first step; a param without a path is named by its position ("m.0")."""
        names = self.paths if paths is None else list(paths)
        if names is not None and self.state and any(len(v) != len(names) for v in self.state.values()):
            raise ValueError(
                f"{type(self).__name__}.state_arrays: got {len(names)} paths, but the state holds "
                f"{len(next(iter(self.state.values())))} arrays per buffer"
            )
        return {
            f"{key}.{names[i] if names is not None else i}": a
            for key, arrays in self.state.items()
            for i, a in enumerate(arrays)
        }

    def load_state_arrays(self, arrays: dict, iterations: int, backend=None, paths=None) -> None:
        """Restore what ``state_arrays()`` returned and the step count.

        ``arrays`` must be on the params' backend, or pass ``backend`` to convert them.
        ``paths``: the params' paths in order (``list(model.named_params())``), which the
        names' paths are matched against (else those of this optimizer's steps). Names with
        a position instead of a path ("m.0": how xpnn kept state before it keyed it by path)
        are read by position.
        """
        where = f"{type(self).__name__}.load_state_arrays"
        iterations = non_negative_int(iterations, "iterations", where)
        known = self.paths if paths is None else [str(p) for p in paths]
        position = {p: i for i, p in enumerate(known or [])}
        state: dict = {}
        for flat, a in arrays.items():
            key = max((k for k in self.state_names if str(flat).startswith(f"{k}.")), key=len, default=None)
            name = str(flat)[len(key) + 1 :] if key is not None else ""
            if key is None or (name not in position and not name.isdigit()):
                expected = ", ".join(f"'{k}.<path>'" for k in self.state_names) or "no state arrays"
                found = f"unexpected state name {flat!r}"
                if key is not None:
                    found += f" (no param has the path {name!r}" + ("" if known else "; pass paths=") + ")"
                raise ValueError(f"{where}: {found}; {self.name} expects {expected}")
            if backend is not None:
                a = _move(a, get_backend(backend))
            state.setdefault(key, {})[position[name] if name in position else int(name)] = a
        lists = {}
        for key, by_index in state.items():
            n = len(by_index)
            if sorted(by_index) != list(range(n)):
                raise ValueError(f"{where}: state {key!r} has indices {sorted(by_index)}, expected 0..{n - 1}")
            lists[key] = [by_index[i] for i in range(n)]
        if lists and (set(lists) != set(self.state_names) or len({len(v) for v in lists.values()}) != 1):
            counts = {k: len(v) for k, v in lists.items()}
            raise ValueError(
                f"{where}: expected the same number of arrays for each of {self.state_names}, found {counts}"
            )
        self.state = lists
        self.paths = known if known is None or not lists or len(known) == len(next(iter(lists.values()))) else None
        self.iterations = iterations
        self._checked = None  # new state: check the params against it again

    def to(self, backend) -> "Optimizer":
        """Move the state arrays to another backend (``model.to`` calls this); returns self."""
        new = get_backend(backend)
        self.state = {key: [_move(a, new) for a in arrays] for key, arrays in self.state.items()}
        self.scratch = {}
        self._checked = None
        return self

    def __repr__(self) -> str:
        try:
            args = {"lr": self._lr, **self._hyper()}
        except AttributeError:  # its __init__ raised (a traceback's or debugger's view of it)
            return f"{type(self).__name__}(<not constructed>)"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def _sqrt(x):
    """math.sqrt of a float; of a 0-d array (the traced step count of a compiled step), ``** 0.5``."""
    return math.sqrt(x) if isinstance(x, float) else x**0.5


def _is_low(a) -> bool:
    """Whether ``a`` is float16 or bfloat16 (updated in float32)."""
    return dtype_name(a.dtype) in LOW_PRECISION


def _zero_state(param):
    """A state buffer for ``param``: zeros on its device, float32 for a low-precision param."""
    xp = backend_of(param).xp
    zeros = xp.zeros_like(param)
    return xp.astype(zeros, xp.float32) if _is_low(param) else zeros


# name -> Optimizer class: what compile, get_optimizer and model files read
OPTIMIZERS = Registry("optimizer", "xpnn.optimizers.register_optimizer", Optimizer, normalize=str.lower)


def register_optimizer(cls):
    """Make an Optimizer subclass known by its ``name`` to ``compile``, ``get_optimizer``
    and model files (use as a class decorator)."""
    return OPTIMIZERS.register(cls)


def _move(a, new):
    """Array ``a`` (any backend, or NumPy) as an array of backend ``new`` (a copy)."""
    return new.asarray(backend_of(a).to_numpy(a), copy=True)


# ---- the optimizers -----------------------------------------------------------------------


@register_optimizer
class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov and L2 weight decay.

    As ``torch.optim.SGD`` with dampening 0 (g is the grad, wd the weight decay):

        g = g + wd * param
        buf = momentum * buf + g                         (buf starts at 0)
        param -= lr * (g + momentum * buf)               if nesterov
        param -= lr * buf                                if momentum > 0
        param -= lr * g                                  otherwise
    """

    name = "sgd"

    def __init__(self, lr=0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = number(momentum, "momentum", "SGD", low=0.0)
        self.weight_decay = number(weight_decay, "weight_decay", "SGD", low=0.0)
        self.nesterov = boolean(nesterov, "nesterov", "SGD")
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs momentum > 0, found momentum=0.0")
        self.state_names = ("velocity",) if self.momentum > 0.0 else ()

    def update(self, i, param, grad, lr):
        if self.weight_decay:
            grad = grad + self.weight_decay * param  # a new array: the caller's grad is untouched
        if not self.momentum:
            # lr in the param's dtype (faster on NumPy); a zero lr stays as it is, as
            # constants() takes 0.0 and -0.0 for one number
            rate = lr if type(lr) is float and lr == 0.0 else self._backend.constants(param.dtype, lr)[0]
            param -= rate * grad
            return param
        buf = self.state["velocity"][i]
        buf *= self.momentum
        buf += grad
        self.state["velocity"][i] = buf
        if self.nesterov:
            param -= lr * (grad + self.momentum * buf)
        else:
            param -= lr * buf
        return param

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}


@register_optimizer
class RMSprop(Optimizer):
    """Divide the step by a running root mean square of the gradient (Keras's formula).

        ms = rho * ms + (1 - rho) * g**2                (ms starts at 0)
        inc = lr * g / sqrt(ms + eps)                   (eps inside the root, as Keras)
        mom = momentum * mom + inc; param -= mom        if momentum > 0
        param -= inc                                    otherwise

    (torch.optim.RMSprop puts eps outside the root, ``sqrt(ms) + eps``, default 1e-8.)
    """

    name = "rmsprop"

    def __init__(self, lr=0.001, rho: float = 0.9, eps: float = 1e-7, momentum: float = 0.0):
        super().__init__(lr)
        self.rho = number(rho, "rho", "RMSprop", 0.0, 1.0, high_open=True)
        self.eps = number(eps, "eps", "RMSprop", low=0.0)
        self.momentum = number(momentum, "momentum", "RMSprop", low=0.0)
        self.state_names = ("ms", "mom") if self.momentum > 0.0 else ("ms",)

    def update(self, i, param, grad, lr):
        xp = self._backend.xp
        ms = self.state["ms"][i]
        ms *= self.rho
        ms += (1.0 - self.rho) * (grad * grad)
        self.state["ms"][i] = ms
        inc = grad / xp.sqrt(ms + self.eps)
        inc *= lr
        if self.momentum:
            mom = self.state["mom"][i]
            mom *= self.momentum
            mom += inc
            self.state["mom"][i] = mom
            inc = mom
        param -= inc
        return param

    def _hyper(self):
        return {"rho": self.rho, "eps": self.eps, "momentum": self.momentum}


@register_optimizer
class Adagrad(Optimizer):
    """Per-coordinate steps shrinking with the sum of squared gradients (torch's formula).

    sum += g**2                                     (sum starts at 0)
    param -= lr * g / (sqrt(sum) + eps)
    """

    name = "adagrad"
    state_names = ("sum",)

    def __init__(self, lr=0.01, eps: float = 1e-10):
        super().__init__(lr)
        self.eps = number(eps, "eps", "Adagrad", low=0.0)

    def update(self, i, param, grad, lr):
        xp = self._backend.xp
        acc = self.state["sum"][i]
        acc += grad * grad
        self.state["sum"][i] = acc
        denom = xp.sqrt(acc)
        denom += self.eps
        param -= lr * (grad / denom)
        return param

    def _hyper(self):
        return {"eps": self.eps}


@register_optimizer
class Adam(Optimizer):
    """Adam: steps from bias-corrected running means of g and g**2 (as torch.optim.Adam).

    At step t (1, 2, ...), with weight decay as L2 added to the gradient:

        g = g + wd * param
        m = beta1 * m + (1 - beta1) * g                 (m, v start at 0)
        v = beta2 * v + (1 - beta2) * g**2
        param -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    name = "adam"
    state_names = ("m", "v")

    def __init__(self, lr=1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr)
        where = type(self).__name__
        self.beta1 = number(beta1, "beta1", where, 0.0, 1.0, high_open=True)
        self.beta2 = number(beta2, "beta2", where, 0.0, 1.0, high_open=True)
        self.eps = number(eps, "eps", where, low=0.0)
        self.weight_decay = number(weight_decay, "weight_decay", where, low=0.0)

    def update(self, i, param, grad, lr):
        if self.weight_decay:
            grad = grad + self.weight_decay * param  # a new array: the caller's grad is untouched
        return self._adam(i, param, grad, lr)

    def _adam(self, i, param, grad, lr):
        # m = b1 m + (1 - b1) g and v = b2 v + (1 - b2) g^2, written as in-place lerps;
        # bias correction placed as torch does: folded into the step size and the
        # denominator. The backend runs it fused (a scratch buffer on NumPy, one kernel on
        # CuPy, PyTorch's in-place ops); the formula is in Backend.adam_update.
        t = self.iterations
        param, self.state["m"][i], self.state["v"][i] = self._backend.adam_update(
            param,
            grad,
            self.state["m"][i],
            self.state["v"][i],
            step_size=lr / (1.0 - self.beta1**t),
            beta1=self.beta1,
            beta2=self.beta2,
            bias2_sqrt=_sqrt(1.0 - self.beta2**t),
            eps=self.eps,
            scratch=self.scratch,
        )
        return param

    def _hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "weight_decay": self.weight_decay}


@register_optimizer
class AdamW(Adam):
    """Adam with decoupled weight decay (as torch.optim.AdamW).

    The params shrink first, then take the plain Adam step (the gradient is not changed):

        param *= 1 - lr * wd
        param -= (the Adam step above, without the L2 term)
    """

    name = "adamw"

    def __init__(
        self, lr=1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.01
    ):
        super().__init__(lr, beta1, beta2, eps, weight_decay)

    def update(self, i, param, grad, lr):
        if self.weight_decay:
            param *= 1.0 - lr * self.weight_decay
        return self._adam(i, param, grad, lr)


def get_optimizer(name_or_obj="adam", **kwargs) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop", "adagrad") and kwargs,
    from a ``config()`` dict, or an Optimizer instance (returned as is)."""
    if isinstance(name_or_obj, Optimizer):
        if kwargs:
            raise ValueError(
                f"get_optimizer: got an Optimizer instance and also arguments {sorted(kwargs)}; "
                f"set them on the instance instead"
            )
        return name_or_obj
    if isinstance(name_or_obj, dict):
        config = dict(name_or_obj)
        name = config.pop("name", None)
        return get_optimizer(name, **{**config, **kwargs})
    cls = OPTIMIZERS.lookup(name_or_obj)
    if cls is not None:
        accepted = [a for a in inspect.signature(cls).parameters]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise TypeError(f"get_optimizer: {cls.__name__} does not take {unknown}; it takes {accepted}")
        return cls(**kwargs)
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer instance, found {name_or_obj!r}")


def clip_grad_norm(params, max_norm: float):
    """Scale all grads together so that their global L2 norm is at most ``max_norm``.

    total_norm = sqrt(sum over every grad of sum(grad**2)); each grad is multiplied by
    min(1, max_norm / (total_norm + 1e-6)) (torch.nn.utils.clip_grad_norm_'s factor).

    The input grads are not modified (the layers own them): this returns
    ``(clipped, total_norm)``, the params (``model.parameters()``, or (param, grad) tuples)
    carrying the scaled grads, and the norm before clipping as a 0-d array on the device
    (no host sync: maximum/minimum, not clip, whose array-api-compat wrapper syncs).
    """
    max_norm = positive_number(max_norm, "max_norm", "clip_grad_norm")
    handles = _handles(params, "clip_grad_norm")
    if not handles:
        raise ValueError("clip_grad_norm: params is empty, expected model.parameters() or (param, grad) pairs")
    xp = backend_of(handles[0].grad).xp
    squares = None
    for h in handles:
        s = xp.sum(h.grad * h.grad)
        squares = s if squares is None else squares + s
    total_norm = xp.sqrt(squares)
    # against a 0-d array, not the number 1.0: array-api-compat's torch minimum looks up the
    # result dtype of a Python scalar, which torch.compile cannot trace
    scale = xp.minimum(max_norm / (total_norm + 1e-6), xp.ones_like(total_norm))
    clipped = [
        (h.value, h.grad * scale) if isinstance(h, _InPlaceOnly) else h.with_grad(h.grad * scale) for h in handles
    ]
    return clipped, total_norm


class _InPlaceOnly(Param):
    """A (param, grad) tuple as a handle: there is no owner to store a new value in, so
    only an update that happened in place (the same object back) is accepted."""

    __slots__ = ("where",)

    def __init__(self, param, grad, where: str, i: int):
        super().__init__({f"pairs[{i}]": param}, f"pairs[{i}]", grad=grad)
        self.where = where

    @property
    def value(self):  # Param's getter, restated: mypy cannot see the setter of an inherited property
        return self.store[self.key]

    @value.setter
    def value(self, new) -> None:
        if new is not self.store[self.key]:
            raise TypeError(
                f"{self.where}: {self.key} is a (param, grad) tuple, but this backend updated a copy, not "
                f"the array itself (its arrays are immutable or its -= makes a new array), so the update "
                f"could not reach the model; pass model.parameters(), or xpnn.Param(store, key, grad=...) "
                f"handles, which store the new value back"
            )


def _handles(params, where: str) -> list:
    """``params`` as a list of Param handles (tuples wrapped as _InPlaceOnly)."""
    handles = []
    for i, p in enumerate(params):
        if isinstance(p, Param):
            handles.append(p)
        elif isinstance(p, tuple) and len(p) == 2:
            handles.append(_InPlaceOnly(p[0], p[1], where, i))
        else:
            raise TypeError(
                f"{where}: params[{i}] must be a Param (from model.parameters()) or a (param, grad) "
                f"tuple, found {type(p).__name__}"
            )
    return handles
