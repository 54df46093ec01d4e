"""Compiled steps: ``model.compile(..., jit=True)`` traces the hand-written training step
into one compiled function of (params, optimizer state, random draws, batch) ->
(new params, new state, loss, outputs), and inference's forward into one of (params, X).

There is no second implementation of anything: the pure function binds the traced arrays
into the model's Param handles (params, buffers) and the optimizer's state lists, runs
today's eager step (step.py: forward, loss, the traceable hooks, backward, the optimizer
update), reads the new values back and puts the real ones back in place. The backend owns
the compiler (``Backend.jit``): ``jax.jit`` on JAX, ``torch.compile`` on PyTorch; NumPy
and array_api_strict have none and run the eager step, exactly as without ``jit``.

What cannot be traced stays outside:
- Random draws (Dropout's masks) are made on the host from the model's generator before
  each call, in the order the step makes them, and handed in (``Generator.draw_plan``):
  same seed, same masks and the same generator state as an eager run, so resuming from a
  checkpoint is exact.
- The learning rate and step count are arguments (``Backend.jit_scalar``), so a schedule
  or a new step does not recompile.
- The first batch of each shape runs eagerly: it builds lazy layers, makes the optimizer
  state, checks the targets and records the step's draws. The next batch of that shape
  compiles (once: a new shape, such as an epoch's smaller last batch, compiles once more;
  ``compiles`` counts them, ``verbose=2`` prints it).
- A hook that reads host values between forward and update (``on_loss``,
  ``on_batch_loss``, ``after_backward``) runs only in the eager step unless it says
  ``traceable = True`` (ClipGradNorm does); a layer whose code needs a host value (a
  ``bool(xp.any(...))`` check, a branch on an array's value) cannot be traced. Either
  way the fit warns once (JitFallbackWarning, naming the callback or the layer) and
  continues eagerly.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

from .. import callbacks as cb
from . import data
from .batches import Batch
from .step import TrainStep

_STEP_HOOKS = ("on_loss", "on_batch_loss", "after_backward")


class JitFallbackWarning(UserWarning):
    """A compiled step could not be made: the named layer or callback runs eagerly."""


def enabled(model) -> bool:
    """Whether ``model`` trains and infers with compiled functions: compiled with ``jit``
    True or "auto", on a backend that has a compiler."""
    return model.jit in (True, "auto") and model.backend.has_jit()


def check(jit, where: str = "compile"):
    """``jit``: True (compile; a backend without a compiler warns and runs eagerly),
    "auto" (compile where the backend can, silently eager elsewhere) or False."""
    if jit != "auto" and not isinstance(jit, bool):
        raise ValueError(f'{where}: jit must be True, False or "auto", found {jit!r}')
    return jit


def train_step(model, hooks, unchecked: list, check_batch=None):
    """The step ``fit`` calls per batch: the eager TrainStep, or a CompiledStep around it."""
    eager = TrainStep(model, hooks, unchecked, check_batch)
    if model.jit is True and not model.backend.has_jit():
        warnings.warn(
            f"jit: backend {model.backend.name!r} has no compiler; training runs eagerly "
            f'(jit="auto" compiles where the backend can, without this warning)',
            JitFallbackWarning,
            stacklevel=4,
        )
    if not enabled(model):
        model.jit_step = None
        return eager
    # kept on the model: a later fit (or a benchmark's next timed run) reuses what compiled,
    # unless the traced hooks changed (compile() and to() start afresh)
    key = (model.backend, *_hook_key(hooks))
    step = model.jit_step
    if step is None or step.key != key:
        step = model.jit_step = CompiledStep(eager, key)
    else:
        step.use(eager)
    return step


def _hook_key(hooks) -> tuple:
    """What of the hooks a trace bakes in: the traceable ones' types and plain settings."""
    return tuple(
        (type(h), tuple(sorted((k, v) for k, v in vars(h).items() if isinstance(v, (bool, int, float, str)))))
        for h in hooks
        if h.traceable
    )


def _warn(why: str, model) -> None:
    warnings.warn(
        f"jit: {why}; training runs eagerly on backend {model.backend.name!r}", JitFallbackWarning, stacklevel=5
    )


def batch_signature(X, y, inputs: dict) -> tuple:
    arrays = [X, y, *(inputs[k] for k in sorted(inputs))]
    return tuple(sorted(inputs)) + tuple((tuple(a.shape), a.dtype) for a in arrays if a is not None)


class CompiledStep:
    """A TrainStep run as one compiled function per batch shape (see the module docstring).

    ``compiles``: the compiled versions made (one per batch shape); ``fallback``: why the
    step runs eagerly (None while it compiles).
    """

    def __init__(self, eager: TrainStep, key=None):
        self.key = key
        self.model = eager.model
        self.compiles = 0
        self.plans: dict = {}  # batch signature -> the draws its step makes, recorded eagerly
        self.compiled_shapes: set = set()
        self.out_shapes: dict = {}  # batch signature -> the step's output shape
        self.broken: str | None = None  # why tracing failed (for good: the model's code cannot be traced)
        self._fn: Any = None
        self.traced = False  # set by ``pure``: whether the last compiled call traced the step
        self.loop: Any = None  # its steps fused into compiled loops (fused.py), made at the first fused epoch
        self.eager = eager  # the current fit's eager step (a later fit's replaces it: use)
        self.use(eager)

    @property
    def fallback(self):
        """Why this fit's steps run eagerly, or None."""
        return self.broken or self.blocked

    def use(self, eager: TrainStep) -> None:
        """Take a new fit's eager step (its hooks); warn if one of them keeps it eager."""
        if eager.params is None and eager is not self.eager:
            # a later fit: the handles the earlier fit made (and its optimizer checked), not new
            # ones made inside the trace (torch.compile guards on both and would compile again)
            eager.params = self.eager.params
        self.eager = eager
        self.blocked: str | None = None
        blocking = [
            h
            for h in eager.hooks
            if not h.traceable
            and (h.needs_batch_loss or any(getattr(type(h), n) is not getattr(cb.Callback, n) for n in _STEP_HOOKS))
        ]
        if blocking:
            self.blocked = f"the callback {type(blocking[0]).__name__} reads the step's loss or gradients on the host"
        layers = self.model.named_layers()
        untraceable = [(p, layer) for p, layer in layers if not layer.traceable]
        if untraceable:
            path, layer = untraceable[0]
            self.blocked = f"the layer at {path or 'the top'} ({layer!r}) says it cannot be traced"
        if self.fallback:
            _warn(self.fallback, self.model)

    def fall_back(self, why: str) -> None:
        self.broken = why
        _warn(why, self.model)

    def report(self) -> str | None:
        if self.fallback:
            return f"jit: eager ({self.fallback})"
        return f"jit: {self.compiles} compiled step(s) so far, one per batch shape"

    def __call__(self, epoch, step, batch):
        if self.fallback:
            return self.eager(epoch, step, batch)
        X, y, inputs = batch.X, batch.y, batch.inputs
        sig = batch_signature(X, y, inputs)
        if sig not in self.plans:  # a new shape: eagerly, recording its draws
            return self.record(sig, epoch, step, batch)
        self.check_targets(sig)
        model, gen = self.model, self.model.generator
        self.bind()
        first = sig not in self.compiled_shapes
        calls = self.plans[sig]
        before = gen.state if first and calls else None
        drawn = gen.draw_plan(calls) if calls else []  # on the host, as the eager step would draw them
        flat = self.flat(model.optimizer.get_lr(), model.optimizer.iterations, drawn)
        flat += [X, y] + [inputs[k] for k in sorted(inputs)]
        self.lay_out(drawn, inputs)
        result = self._run(flat, first)
        if result is None:  # tracing failed: the step runs eagerly from now on
            if before is not None:
                gen.set_state(before)  # the eager step draws again
            return self.eager(epoch, step, batch)
        if first:
            self.compiled_shapes.add(sig)
            self.compiles += 1
        loss, out = self.store(result, 1)
        if self.eager.check_batch is not None:  # a host check: after the compiled call, on its outputs
            self.eager.check_batch(batch, out)
        return loss, out

    def record(self, sig, epoch, step, batch):
        """The eager step on ``batch``, recording the draws it makes (the plan of ``sig``)
        and its output shape (for the fit's target check)."""
        with self.model.generator.recording() as calls:
            taken = self.eager(epoch, step, batch)
        if taken is not None:
            self.plans[sig] = list(calls)
            self.out_shapes[sig] = tuple(taken[1].shape)
        self.forget_grads()  # as after a compiled call: the state every compiled call starts from
        return taken

    def check_targets(self, sig) -> None:
        """The fit's check of all its targets, which the eager step makes at a fit's first
        step, from the output shape recorded for ``sig``: a later fit starts compiled."""
        unchecked = self.eager.unchecked
        if unchecked:
            shape = self.out_shapes[sig]
            out = types.SimpleNamespace(shape=shape, ndim=len(shape))
            for part in unchecked:
                if part is not None:
                    data.check_targets(self.model.loss, part.y, out)
            unchecked.clear()

    def bind(self) -> None:
        """The compiled function, the model's handles and the optimizer's state keys, made once."""
        if self._fn is None:
            model, opt = self.model, self.model.optimizer
            self._fn = model.backend.jit(self.pure)
            self._handles = list(model.named_handles().values())
            self._keys = [k for k in opt.state_names if k in opt.state]

    def flat(self, lr, iterations, drawn) -> list:
        """The first arguments of ``pure``: params and buffers, optimizer state, lr, step
        count, draws (the batch follows)."""
        b = self.model.backend
        values = [h.value for h in self._handles]
        return values + self._state() + [b.jit_scalar(lr), b.jit_scalar(iterations)] + [a for _, a in drawn]

    def _state(self) -> list:
        """The optimizer's state arrays, then the loss scale's (mixed_float16), flat."""
        opt, scale = self.model.optimizer, self.model.loss_scale
        found = [a for k in self._keys for a in opt.state[k]]
        return found if scale is None else [*found, scale.scale, scale.good_steps]

    def _set_state(self, arrays) -> int:
        """Put ``_state``'s arrays in place (traced or real); returns how many it took."""
        opt, scale = self.model.optimizer, self.model.loss_scale
        i = 0
        for k in self._keys:
            n = len(opt.state[k])
            opt.state[k] = list(arrays[i : i + n])
            i += n
        if scale is not None:
            scale.scale, scale.good_steps = arrays[i], arrays[i + 1]
            scale.inverse = 1.0 / scale.scale
            i += 2
        return i

    def lay_out(self, drawn, inputs) -> None:
        """Tell ``pure`` how its flat argument list is laid out."""
        self._layout = (len(self._handles), len(self._state()), [c for c, _ in drawn], sorted(inputs))

    def _run(self, flat, first: bool):
        """``self._fn(flat)``, or None if its first call failed to trace (the fit falls back)."""
        opt = self.model.optimizer
        iterations, lr = opt.iterations, opt.lr
        kept = self.keep() if first else None  # a first call traces: what it changes is put back
        self.traced = False
        try:
            result = self._fn(flat)
        except Exception as exc:
            if not first:  # it compiled and ran before: a real error, not a tracing limit
                raise
            self.restore(kept)
            self.fall_back(blame(self.model, exc))
            return None
        finally:
            opt.iterations, opt.lr = iterations, lr
        if first:
            self.restore(kept)
        elif self.traced:  # traced again (torch.compile replays the trace's side effects on every call)
            self.forget_grads()
        return result

    def forget_grads(self) -> None:
        """Drop the layers' gradients and saved arrays, after an eager step or a traced
        call: every compiled call then starts from the same state (torch.compile guards on
        it, the number of gradients a layer holds, and would otherwise compile again)."""
        self.model.release_saved()
        for layer in self.model.walk():
            layer.grads.clear()

    def store(self, result, steps: int):
        """Put a compiled call's new params, buffers and optimizer state in place (``steps``
        updates were taken); returns the rest of its results."""
        for h, a in zip(self._handles, result):
            h.value = a
        i = len(self._handles)
        i += self._set_state(result[i:])
        self.model.optimizer.iterations += steps
        return result[i:]

    def pure(self, flat):
        """The eager step on traced arrays: ``flat`` as laid out in __call__ -> new params
        and buffers, new optimizer state, loss, outputs. It leaves traced arrays in the
        model: the caller puts the real ones back (``keep``, ``restore``)."""
        opt, gen = self.model.optimizer, self.model.generator
        self.traced = True  # a side effect that only tracing has (on JAX)
        n_h, n_s, calls, input_keys = self._layout
        values, state = flat[:n_h], flat[n_h : n_h + n_s]
        lr, t = flat[n_h + n_s], flat[n_h + n_s + 1]
        i = n_h + n_s + 2
        drawn = list(zip(calls, flat[i : i + len(calls)]))
        i += len(calls)
        X, y = flat[i], flat[i + 1]
        inputs = dict(zip(input_keys, flat[i + 2 :]))
        for h, a in zip(self._handles, values):
            h.value = a
        self._set_state(state)
        opt.iterations = t
        opt.trace_lr(lr)
        check, self.eager.check_batch = self.eager.check_batch, None  # a host check: done after the call
        try:
            with gen.replaying(drawn):
                loss, out = self.eager(None, None, Batch(X, y, inputs))
        finally:
            self.eager.check_batch = check
        return [*(h.value for h in self._handles), *self._state(), loss, out]

    def keep(self):
        """What ``pure`` changes in the model, optimizer and hooks, to put back after the
        call (here, outside the compiled function, whose guards would otherwise watch it)."""
        model, opt = self.model, self.model.optimizer
        return (
            [h.value for h in self._handles],
            {k: list(v) for k, v in opt.state.items()},
            opt.iterations,
            opt.lr,
            [(layer, dict(layer.grads)) for layer in model.walk()],
            [(h, dict(vars(h))) for h in self.eager.hooks if h.traceable],
            self._state(),
        )

    def restore(self, kept) -> None:
        model, opt = self.model, self.model.optimizer
        handles_kept, opt.state, opt.iterations, opt.lr, grads_kept, hooks_kept, state_kept = kept
        self._set_state(state_kept)
        for h, a in zip(self._handles, handles_kept):
            h.value = a
        for layer, grads in grads_kept:
            layer.grads.clear()
            layer.grads.update(grads)
        for hook, attrs in hooks_kept:
            vars(hook).clear()
            vars(hook).update(attrs)
        model.release_saved()


def blame(model, exc) -> str:
    """Why tracing failed, naming the innermost layer whose code raised."""
    paths = {id(layer): path for path, layer in model.named_layers()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in paths and not owner.children():
            found = owner
        tb = tb.tb_next
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {first}"[:300]
    if found is None:
        return f"the step could not be traced ({reason})"
    return f"the layer at {paths[id(found)]} ({found!r}) cannot be traced ({reason})"


class CompiledForward:
    """Inference's forward (``training=False``) as one compiled function of (params and
    buffers, X, inputs) per input shape; kept on the model for evaluate, predict and fit's
    validation."""

    def __init__(self, model):
        self.model = model
        self.backend = model.backend
        self._fn = model.backend.jit(self.pure)
        self._handles = list(model.named_handles().values())
        self.shapes: set = set()
        self.fallback = None

    def __call__(self, X, inputs: dict):
        model = self.model
        if self.fallback or not all(layer.built for layer in model.walk()):
            return model.run(X, False, inputs)
        keys = sorted(inputs)
        self._keys = keys
        sig = batch_signature(X, None, inputs)
        kept = [h.value for h in self._handles]
        try:
            out = self._fn(kept + [X] + [inputs[k] for k in keys])
        except Exception as exc:
            if sig in self.shapes:
                raise
            for h, a in zip(self._handles, kept):
                h.value = a
            self.fallback = blame(model, exc)
            warnings.warn(f"jit: {self.fallback}; inference runs eagerly", JitFallbackWarning, stacklevel=4)
            return model.run(X, False, inputs)
        finally:
            for h, a in zip(self._handles, kept):
                h.value = a
        self.shapes.add(sig)
        return out

    def pure(self, flat):
        n = len(self._handles)
        for h, a in zip(self._handles, flat[:n]):
            h.value = a
        return self.model.run(flat[n], False, dict(zip(self._keys, flat[n + 1 :])))


def forward(model):
    """``run(X, inputs)`` for inference: the model's eager forward, or its compiled one."""
    if not enabled(model):
        return lambda X, inputs: model.run(X, False, inputs)
    cached = model.jit_forward
    if cached is None or cached.backend is not model.backend or len(cached._handles) != len(model.named_handles()):
        cached = model.jit_forward = CompiledForward(model)
    return cached
