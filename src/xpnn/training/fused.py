"""Fused steps: many training steps in one compiled call, where the backend compiles loops
(``Backend.jit_loop``: JAX) and nothing on the host needs to run between the steps.

A compiled step (jit.py) still costs one call from Python per batch, and a host read of
the loss per epoch. Like Keras's ``steps_per_execution``, ``fit`` then runs the steps of an
epoch (and, for full-batch training, the steps of many epochs) as one compiled loop: the
data is on the device once, the loop takes each batch's sample indices and gathers the
batch itself, and the losses come back once per call. It is the same traced step
(CompiledStep.pure) in a loop, so the weights are those of the eager run (within float32
tolerance): the shuffled order, Dropout's masks and the learning rates of a schedule are
drawn on the host before the call, in the order the eager steps draw them.

It happens only where it changes nothing a callback can see. Every hook of the fit must
say ``fusable = True`` (History, CSVLogger, ClipGradNorm, the printed progress lines of
``verbose=2`` or of ``verbose=1`` off a terminal): such a hook has no per-batch hooks, and
its epoch hooks only observe. Any other callback (EarlyStopping, ModelCheckpoint,
a scheduler, a user's callback) keeps one compiled call per step. Several epochs go into
one call only when every batch has the same size and there is no validation and no metric;
their ``on_epoch_begin`` and ``on_epoch_end`` then run after the call, epoch by epoch, with
each epoch's own loss (History records every epoch), and ``logs["seconds"]`` is the
call's time shared out.
"""

from __future__ import annotations

import functools
import time

from ..backends import host
from .batches import Batch, Batches
from .jit import CompiledStep, batch_signature, blame

MAX_STEPS = 1024  # steps per compiled call, at most: the loop's buffers have room for this many
MIN_STEPS = 16  # the smallest room kept for outputs: short epochs of one fit share one compiled loop


def fusable(hooks) -> bool:
    """Whether every hook (a list) lets fit run several steps per compiled call."""
    return all(h.fusable for h in hooks)


def fit_epochs(trainer, run, hooks, batches, validation, epoch: int, epochs: int, eval_batch: int) -> int:
    """Train from ``epoch`` with fused steps: the number of epochs done (0: fit runs
    ``epoch`` its usual way: no loops on this backend, a hook that needs its batches, ...)."""
    if not isinstance(run, CompiledStep) or run.fallback or not isinstance(batches, Batches):
        return 0
    if not fusable(hooks.all) or batches.n == 0 or not run.model.backend.has_jit_loop():
        return 0
    if run.loop is None:
        run.loop = FusedSteps(run)
    loop = run.loop
    full, rest = divmod(batches.n, batches.batch_size)
    rest = 0 if batches.drop_last else rest
    if full == 0:
        return 0
    model = trainer.model
    many = rest == 0 and validation is None and not model.metric_fns and full <= MAX_STEPS // 2
    if many and loop.signature(batches) in run.plans and epochs - epoch > 1:
        state = model.generator.state
        try:
            return _epochs(trainer, loop, hooks, batches, epoch, min(epochs - epoch, MAX_STEPS // full), eval_batch)
        except _Eager:  # could not be traced: the step falls back, and fit runs this epoch eagerly
            model.generator.set_state(state)
            return 0
    _epoch(trainer, loop, hooks, batches, validation, epoch, full, rest, eval_batch)
    return 1


def _epoch(trainer, loop, hooks, batches, validation, epoch, full, rest, eval_batch) -> None:
    """One epoch: its full batches in compiled loops, a smaller last batch as one compiled step."""
    model, run = trainer.model, loop.step
    for h in hooks.epoch_begin:
        h.on_epoch_begin(epoch)
    start = time.perf_counter()
    order = _order(batches)
    B = batches.batch_size
    losses, outputs, targets = [], [], []
    taken = loop.steps(epoch, [order], full, B, batches, want_outputs=bool(model.metric_fns))
    for loss_sum, out, y in taken:
        losses.append(loss_sum)
        if out is not None:
            outputs.append(out)
            targets.append(y)
    seen = full * B
    if rest:
        batch = _batch(batches, order, full * B, batches.n)
        loss, out = run(epoch, full, batch)
        losses.append(loss * float(rest))
        seen += rest
        if model.metric_fns:
            outputs.append(out)
            targets.append(batch.y)
    total = losses[0]
    for more in losses[1:]:
        total = total + more
    trainer.end_epoch(epoch, total, seen, outputs, targets, validation, hooks, True, eval_batch, start)
    _report(trainer, run)


def _epochs(trainer, loop, hooks, batches, epoch, count, eval_batch) -> int:
    """``count`` epochs in one compiled loop, then each epoch's hooks, in order."""
    start = time.perf_counter()
    per_epoch = batches.n // batches.batch_size
    losses = loop.epoch_losses(count, per_epoch, batches)
    share = (time.perf_counter() - start) / count
    for i, loss in enumerate(losses):
        for h in hooks.epoch_begin:
            h.on_epoch_begin(epoch + i)
        # the epoch's summed loss, read already (a host float, which to_float takes as it is)
        total, began = float(loss) * batches.n, time.perf_counter() - share
        trainer.end_epoch(epoch + i, total, batches.n, [], [], None, hooks, True, eval_batch, began)
        _report(trainer, loop.step)
    return count


def _report(trainer, run) -> None:
    if trainer.verbose >= 2 and run.report():
        print(run.report())


def _order(batches):
    """The epoch's order (host int64) or None: the same draw as ``Batches.__iter__``."""
    return batches.generator.host_order(batches.n, batches.batch_size, batches.shuffle) if batches.shuffle else None


def _batch(batches, order, lo, hi) -> Batch:
    """The Batch of samples lo:hi of the epoch's order (None: the stored order)."""
    if order is None:
        index = None if hi - lo == batches.n else slice(lo, hi)
    else:
        index = batches.generator.backend.asarray(order[lo:hi], dtype="int64")
    return Batch(batches.X, batches.y, batches.inputs, hi - lo, index)


class FusedSteps:
    """A CompiledStep's steps run ``MAX_STEPS`` at a time in one compiled loop
    (``Backend.jit_loop``) over the whole arrays of a fit, gathering each batch inside."""

    def __init__(self, step: CompiledStep):
        self.step = step
        self.model = step.model
        b = self.model.backend
        # with and without each step's outputs (kept for metrics): two functions, as the
        # compiled loop is cached by its arguments' shapes only
        self._fns = {want: b.jit_loop(functools.partial(self._body, want)) for want in (False, True)}
        self.compiled: set = set()  # (batch signature, room): the loops made

    def signature(self, batches) -> tuple:
        """The signature of a full batch of ``batches``, as the compiled step keys it."""
        B = batches.batch_size
        X, y = batches.X, batches.y
        inputs = batches.inputs
        return batch_signature(
            _Like(X, B), None if y is None else _Like(y, B), {k: _Like(v, B) for k, v in inputs.items()}
        )

    def steps(self, epoch, orders, per_epoch, B, batches, want_outputs):
        """Every full batch of the epoch whose order is ``orders[0]`` (None: the stored
        order); yields ``(loss summed over samples, outputs or None, targets or None)`` per
        compiled call (or eager step)."""
        run = self.step
        sig = self.signature(batches)
        first = 0
        if sig not in run.plans:
            batch = _batch(batches, orders[0], 0, B)
            loss, out = run(epoch, 0, batch)  # eagerly: builds the model, records the step's draws
            yield loss * float(B), out if want_outputs else None, batch.y if want_outputs else None
            first = 1
        if per_epoch == first:
            return
        run.check_targets(sig)
        indices = [(orders[0], i) for i in range(first, per_epoch)]
        for lo in range(0, len(indices), MAX_STEPS):
            part = indices[lo : lo + MAX_STEPS]
            found = None if run.fallback else self._call(sig, part, B, batches, want_outputs, per_epoch)
            if found is None:  # tracing failed: the rest of the epoch runs eagerly
                for order, i in part:
                    batch = _batch(batches, order, i * B, (i + 1) * B)
                    loss, out = run(epoch, i, batch)
                    yield loss * float(B), out if want_outputs else None, batch.y if want_outputs else None
                continue
            yield found

    def epoch_losses(self, count, per_epoch, batches):
        """Each epoch's mean loss (a host float64 array), ``count`` epochs run in one call."""
        sig = self.signature(batches)
        self.step.check_targets(sig)
        gen, calls = self.model.generator, self.step.plans[sig]
        indices, drawn = [], []
        for _ in range(count):  # each epoch's order, then its steps' draws: as the eager epochs draw them
            order = _order(batches)
            indices += [(order, i) for i in range(per_epoch)]
            drawn += [gen.draw_plan(calls) for _ in range(per_epoch)] if calls else []
        found = self._call(sig, indices, batches.batch_size, batches, False, drawn=drawn)
        if found is None:  # tracing failed: the step falls back, and these epochs run eagerly
            raise _Eager()
        return host.row_means(self.model.backend, found, count, per_epoch)

    def _call(self, sig, indices, B, batches, want_outputs, per_epoch=1, drawn=None):
        """One compiled loop over the batches ``indices`` ((order, batch number) pairs);
        ``drawn``: their steps' draws, made already (cross-epoch calls), or None to make them
        here; ``per_epoch``: full batches an epoch (sizes the kept outputs). Returns (the
        loss summed over samples, outputs, targets), or with ``drawn`` each step's loss;
        None if the loop could not be traced."""
        run, model = self.step, self.model
        b, xp = model.backend, model.backend.xp
        opt, gen = model.optimizer, model.generator
        count = len(indices)
        # room for every step of a call, so that the loop compiles once per batch shape; with
        # metrics the loop keeps each step's outputs, and room only for this call's steps
        rows = max(count, min(per_epoch, MAX_STEPS))  # sized by the epoch: its first call (one step fewer) shares it
        room = max(MIN_STEPS, 1 << (rows - 1).bit_length()) if want_outputs else MAX_STEPS
        run.bind()
        state_before = gen.state
        per_step = drawn is not None
        if drawn is None:
            calls = run.plans[sig]
            drawn = [gen.draw_plan(calls) for _ in range(count)] if calls else []
        lrs, ts = _schedule(opt, count, room, run.model)
        xs = [b.asarray(lrs), b.asarray(ts), _stacked(xp, drawn, room), _gather(b, indices, B, room, batches.n)]
        consts = [batches.X, batches.y, [batches.inputs[k] for k in sorted(batches.inputs)]]
        carry = run.flat(0.0, 0, [])[:-2]  # params, buffers, optimizer state
        run.lay_out(drawn[0] if drawn else [], batches.inputs)
        key = (sig, room, want_outputs)
        kept = run.keep()
        run.traced = False
        iterations, lr = opt.iterations, opt.lr
        try:
            carry, ys = self._fns[want_outputs](carry, xs, consts, count)
        except Exception as exc:
            if key in self.compiled:
                raise
            run.restore(kept)
            gen.set_state(state_before)  # the eager steps draw again
            run.fall_back(blame(model, exc))
            return None
        finally:
            opt.iterations, opt.lr = iterations, lr
        if run.traced:
            run.restore(kept)
        if key not in self.compiled:
            self.compiled.add(key)
            run.compiles += 1
        run.store(list(carry), count)
        losses, outs = ys
        if per_step:
            return losses
        total = xp.sum(losses[:count]) * float(B)
        if not want_outputs:
            return total, None, None
        out = xp.reshape(outs[:count], (count * B, *outs.shape[2:]))
        y = None if batches.y is None else xp.take(batches.y, _flat_index(b, indices, B, batches.n), axis=0)
        return total, out, y

    def _body(self, want_outputs, carry, x, consts):
        """One step inside the loop: ``pure`` on the batch gathered from the whole arrays."""
        run = self.step
        xp = self.model.backend.xp
        lr, t, drawn, idx = x
        X_all, y_all, inputs_all = consts
        take = (lambda a: a) if idx is None else (lambda a: xp.take(a, idx, axis=0))
        X, y = take(X_all), None if y_all is None else take(y_all)
        flat = [*carry, lr, t, *(drawn or []), X, y, *(take(a) for a in inputs_all)]
        result = run.pure(flat)
        n = len(carry)
        return result[:n], (result[n], result[n + 1] if want_outputs else None)


class _Eager(Exception):
    """The fused epochs could not be compiled: fit runs them its usual way."""


class _Like:
    """Shape and dtype of a batch of ``B`` rows of ``a`` (for the step's signature)."""

    def __init__(self, a, B):
        self.shape, self.dtype = (B, *a.shape[1:]), a.dtype


def _schedule(opt, count, room, model):
    """The lr and step count of each of ``count`` steps (a schedule's lr per step), in
    float32 arrays of ``room`` rows (float64 for a float64 model)."""
    float64 = any(str(h.value.dtype) == "float64" for h in model.named_handles().values())
    it = opt.iterations
    lrs = [float(opt.lr(it + i)) for i in range(count)] if callable(opt.lr) else [float(opt.lr)] * count
    return host.step_rows(lrs, it, room, float64)


def _stacked(xp, drawn, room):
    """The steps' draws, each position stacked over the steps and padded to ``room`` rows."""
    if not drawn:
        return None
    stacked = []
    for j in range(len(drawn[0])):
        rows = xp.stack([d[j][1] for d in drawn], axis=0)
        pad = xp.zeros((room - rows.shape[0], *rows.shape[1:]), dtype=rows.dtype)
        stacked.append(xp.concat([rows, pad], axis=0) if room > rows.shape[0] else rows)
    return stacked


def _gather(b, indices, B, room, n):
    """Each step's sample indices ((room, B) int64 on the device), or None when every
    step takes the whole set in order (full-batch training: no gather)."""
    if B == n and all(order is None for order, _ in indices):
        return None
    return b.asarray(host.index_rows(indices, B, room))


def _flat_index(b, indices, B, n):
    """The steps' sample indices, one after another (len(indices) * B,) on the device."""
    return b.asarray(host.index_rows(indices, B, len(indices)).reshape(-1))
