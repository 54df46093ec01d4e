"""The Trainer: the training loop behind ``model.fit``, in one place, with explicit hooks.

One epoch, and where each hook runs (every hook is a method of a Callback; see
xpnn.callbacks for what each may do and return):

    on_epoch_begin(epoch)
    for step, batch in batches (shuffled from the model's seeded generator):
        batch = on_batch_begin(step, batch)       # may replace the batch (a rank's shard) or skip it (None)
        out = model.forward(X, training=True, **inputs)
        loss = loss_fn.forward(out, y)            # a 0-d array on the device: no host sync
        on_loss(step, loss, out)                  # activations are still there (GradientMonitor)
        on_batch_loss(epoch, step, value)         # only if a hook asks for the float: one sync
        model.backward(loss_fn.backward(), need_dX=False)
        params = after_backward(params)           # reduce grads over ranks, clip them, read them
        optimizer.step(params)
        on_batch_end(step, running)
    (model.stop_training, set by any hook, ends the loop: before the step if set by
    on_loss or on_batch_loss, after it if set later)
    totals = reduce_epoch(totals)                 # sum the epoch's loss over ranks
    validation, metrics
    on_epoch_end(epoch, logs)

Hooks run in order: the Trainer's own (a gradient reducer, then clipping from
``compile(clip_norm=...)``), then the user's callbacks, then History and the progress bar.
The loop itself has no branches for these: each is a hook.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

from .. import _checks
from .. import callbacks as cb
from . import data, fused, inference, jit
from .batches import INFERENCE_BATCH, Batches, shuffle_option
from .compiled import metric_values
from .step import TrainStep
from .threads import largest_matmul

NONFINITE_HINT = (
    "lower the learning rate, scale the inputs (StandardScaler) or clip the gradients "
    "(compile(clip_norm=...)); TerminateOnNaN stops training at the first non-finite batch"
)


class EpochTotals:
    """What an epoch adds up: the summed loss (a float), the samples seen, and the
    outputs and targets for the epoch's metrics (None without metrics)."""

    __slots__ = ("loss_sum", "seen", "outputs", "targets")

    def __init__(self, loss_sum: float, seen: int, outputs=None, targets=None):
        self.loss_sum, self.seen, self.outputs, self.targets = loss_sum, seen, outputs, targets


class _Hooks:
    """For each hook an epoch or a step of the Trainer calls, the fit's hooks (in order) that
    override Callback's do-nothing method: found once per fit, not at every call."""

    __slots__ = ("all", "epoch_begin", "batch_begin", "batch_end", "reduce_epoch", "epoch_end")

    def __init__(self, hooks: list):
        self.all = list(hooks)
        self.epoch_begin = cb.overriding(hooks, "on_epoch_begin")
        self.batch_begin = cb.overriding(hooks, "on_batch_begin")
        self.batch_end = cb.overriding(hooks, "on_batch_end")
        self.reduce_epoch = cb.overriding(hooks, "reduce_epoch")
        self.epoch_end = cb.overriding(hooks, "on_epoch_end")


class Trainer:
    """Train a compiled model.

    Args:
        model: a compiled Sequential (``model.compile(loss, optimizer, metrics)``).
        callbacks: the user's Callbacks.
        hooks: Callbacks that run before everything else (gradient reducers such as
            DataParallel's), then clipping if the model was compiled with ``clip_norm``.
        check_labels: check the targets once per fit, on the device (label range, binary
            targets in [0, 1]: the loss's ``check_targets``; one host sync), instead of on
            every batch.
        verbose: 0 silent, 1 a progress bar (one line per epoch when not a terminal),
            2 one line per epoch.
    """

    def __init__(self, model, callbacks=(), hooks=(), check_labels: bool = True, verbose: int = 1):
        data.require_compiled(model, "fit")
        self.model = model
        self.callbacks = list(callbacks)
        for i, c in enumerate(self.callbacks):
            if not isinstance(c, cb.Callback):
                raise TypeError(f"fit: callbacks[{i}] must be a Callback, found {type(c).__name__}")
        self.hooks = list(hooks)
        if model.clip_norm is not None:
            self.hooks.append(cb.ClipGradNorm(model.clip_norm))
        self.check_labels = _checks.boolean(check_labels, "check_labels", "fit")
        self.verbose = _checks.non_negative_int(verbose, "verbose", "fit")
        self.step: TrainStep | jit.CompiledStep | None = None  # made per fit (step.py, jit.py)
        self._warned_nonfinite = False  # fit warns once, not every epoch, when the loss diverges
        self._per_batch_labels = False  # streamed targets too large to check whole: checked per batch

    def fit(
        self,
        X,
        y=None,
        *,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle=True,
        validation_split: float = 0.0,
        validation_data=None,
        initial_epoch: int = 0,
        inputs=None,
        drop_last: bool = False,
        allow_nonfinite: bool = False,
        steps_per_epoch: int | None = None,
        prefetch: int = 2,
        workers: int = 0,
    ):
        """Train for ``epochs - initial_epoch`` epochs; returns the History.

        X, y: training data: in-memory arrays (NumPy or the model's backend; checked and
        copied to the device once), array-likes read a batch at a time (``np.memmap``,
        h5py, zarr), an ``xpnn.data.Dataset``, or an iterable of ``(X, y)`` batches with
        y=None (see xpnn.data). inputs: per-sample keyword inputs of forward
        (``{"mask": M}``), batched and shuffled with X.
        shuffle: True, False or "blocks" (contiguous runs of batch_size samples in a random
            order: one read per batch from a chunked store).
        validation_data: ``(X_val, y_val)``, ``(X_val, y_val, inputs_val)``, a Dataset or
            an iterable of batches.
        drop_last: skip each epoch's last batch when it is smaller than ``batch_size``
            (BatchNorm cannot train on a batch of one sample).
        allow_nonfinite: accept NaN and inf in the data (otherwise an error names the first);
            without it, fit warns once when the training loss becomes non-finite.
        steps_per_epoch: batches per epoch (needed for an iterable without a length).
        prefetch, workers: streamed data only: batches read ahead by a background thread
            (0: read in the training thread), and threads reading them (0 or 1: that one).
        """
        model = self.model
        epochs = _checks.non_negative_int(epochs, "epochs", "fit")
        initial_epoch = _checks.non_negative_int(initial_epoch, "initial_epoch", "fit")
        batches, validation, sample_shape, unchecked, allow_nonfinite = self._prepare(
            X, y, inputs, validation_data, batch_size=batch_size, shuffle=shuffle, validation_split=validation_split,
            drop_last=drop_last, allow_nonfinite=allow_nonfinite, steps_per_epoch=steps_per_epoch,
            prefetch=prefetch, workers=workers,
        )  # fmt: skip
        hooks, history = self._begin(epochs, batches, allow_nonfinite)
        # eager, or compiled for compile(jit=True)
        self.step = run = jit.train_step(model, hooks, unchecked, self._batch_check(batches))
        calls = _Hooks(hooks)
        macs = None if sample_shape is None else largest_matmul(model, (batches.batch_size, *sample_shape))
        # small products: one BLAS thread (NumPy); the input was checked whole in prepare
        # (streamed batches are checked one by one as they are read)
        eval_batch = max(batches.batch_size, INFERENCE_BATCH)
        with model.backend.threads_for(macs), data.trusted_inputs(model):
            self._epochs(initial_epoch, epochs, batches, validation, calls, run, eval_batch)
        for h in hooks:
            h.on_train_end()
        return history

    def _epochs(self, epoch, epochs, batches, validation, hooks, run, eval_batch) -> None:
        """Epochs ``epoch`` to ``epochs - 1``, until a hook stops training; several steps per
        compiled call where the backend and every hook allow it (fused.py), else one by one.
        ``hooks``: a _Hooks."""
        fuses = isinstance(run, jit.CompiledStep)  # an eager step never fuses: not asked again every epoch
        while epoch < epochs:
            done = fused.fit_epochs(self, run, hooks, batches, validation, epoch, epochs, eval_batch) if fuses else 0
            if not done and not self._epoch(epoch, batches, validation, hooks, run, eval_batch):
                break
            epoch += done or 1
            if self.model.stop_training:
                break

    def _prepare(
        self, X, y, inputs, validation_data, *, batch_size, shuffle, validation_split, drop_last, allow_nonfinite,
        steps_per_epoch, prefetch, workers,
    ):  # fmt: skip
        """Check fit's data options; (batches, validation, sample shape, data to check, allow_nonfinite)."""
        from ..data import stream

        where = "fit"
        batch_size = _checks.optional_positive_int(batch_size, "batch_size", where, "the whole set each step")
        shuffle = shuffle_option(shuffle, where)
        validation_split = _checks.number(validation_split, "validation_split", where, 0.0, 1.0, high_open=True)
        drop_last = _checks.boolean(drop_last, "drop_last", where)
        allow_nonfinite = _checks.boolean(allow_nonfinite, "allow_nonfinite", where)
        prefetch, workers, steps_per_epoch = stream.options(where, prefetch, workers, steps_per_epoch)
        streaming: dict[str, Any] = {"prefetch": prefetch, "workers": workers, "allow_nonfinite": allow_nonfinite}
        split = validation_split if validation_data is None and validation_split > 0 else 0.0
        options = (batch_size, shuffle, drop_last, split, validation_data, streaming)
        if stream.is_streamed(X, y):
            batches, validation, sample_shape, unchecked = self._streamed(X, y, inputs, steps_per_epoch, *options)
        else:
            if steps_per_epoch is not None:
                raise ValueError(f"{where}: steps_per_epoch is for iterables of batches; X is an array")
            batches, validation, sample_shape, unchecked = self._in_memory(X, y, inputs, *options)
        if self.check_labels and validation is not None and not isinstance(validation, stream.Stream):
            unchecked.append(validation)
        return batches, validation, sample_shape, unchecked, allow_nonfinite

    def _streamed(self, X, y, inputs, steps, batch_size, shuffle, drop_last, split, validation_data, streaming):
        """Streamed training data: (its Stream, validation, sample shape, data to check)."""
        from ..data import stream

        model, where = self.model, "fit"
        # DataParallel's hook says which part of each batch this rank reads
        shard = next((h.reads_shard for h in self.hooks if h.reads_shard), None)
        train = stream.Stream(
            model, X, y, inputs, where=where, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
            steps=steps, shard=shard, **streaming,
        )  # fmt: skip
        if split:
            train, validation = train.split(split)
        else:
            validation = stream.validation(model, validation_data, where, streaming)
        labels = train.whole_labels() if self.check_labels else None
        self._per_batch_labels = self.check_labels and labels is None
        return train, validation, train.sample_shape, [labels] if labels is not None else []

    def _in_memory(self, X, y, inputs, batch_size, shuffle, drop_last, split, validation_data, streaming):
        """In-memory training data, prepared once: (its Batches, validation, sample shape, data to check)."""
        from ..data import stream

        model, where = self.model, "fit"
        train = data.prepare(model, X, y, inputs, where, allow_nonfinite=streaming["allow_nonfinite"])
        if split:
            train, validation = data.split_off(train, split, where)
        else:
            validation = stream.validation(model, validation_data, where, streaming)
            _warn_missing_inputs(train, validation, where)
        batches = Batches(train.X, train.y, train.inputs, batch_size, shuffle, model.generator, drop_last)
        self._per_batch_labels = False
        return batches, validation, tuple(train.X.shape[1:]), [train] if self.check_labels else []

    def _begin(self, epochs, batches, allow_nonfinite):
        """The fit's hooks (own, user's, History, progress bar), begun: (hooks, history)."""
        model = self.model
        history = cb.History()
        # History after the user's callbacks, so that what they add to the logs (the lr of
        # LearningRateScheduler and ReduceLROnPlateau) is recorded too
        hooks = [*self.hooks, *self.callbacks, history]
        if self.verbose:
            hooks.append(cb.ProgressBar(epochs, len(batches), self.verbose))
        for h in hooks:
            h.model = model
        model.stop_training = False
        model.history = history
        self._warned_nonfinite = allow_nonfinite  # data with NaN by request: a NaN loss is no surprise
        for h in hooks:
            h.on_train_begin()
        return hooks, history

    def _batch_check(self, batches):
        """Each streamed batch's target check when the targets are too many to check whole, else None."""
        if not self._per_batch_labels:
            return None

        def check_batch(batch, out):
            if batch.indices is not None:
                batches.check_targets(batch, out)

        return check_batch

    def _epoch(self, epoch, batches, validation, hooks, run, eval_batch) -> bool:
        """One epoch; False if it stopped before its first step (nothing to log).
        ``model.epochs_trained`` counts it only if every batch was taken. ``run(epoch, step,
        batch)`` is the step (TrainStep, or its compiled form); ``hooks``: a _Hooks."""
        model = self.model
        for h in hooks.epoch_begin:
            h.on_epoch_begin(epoch)
        start = time.perf_counter()
        outputs: list = []
        targets: list = []
        iterator = iter(batches)
        try:
            completed, seen, total = self._steps(epoch, batches, iterator, hooks, run, outputs, targets)
        finally:  # a streamed epoch's prefetch thread ends here, also on an error or Ctrl-C
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        if model.stop_training and seen == 0:
            return False
        ended = self.end_epoch(epoch, total, seen, outputs, targets, validation, hooks, completed, eval_batch, start)
        if self.verbose >= 2 and run.report():
            print(run.report())
        return ended

    def _steps(self, epoch, batches, iterator, hooks, run, outputs, targets):
        """The epoch's steps: (completed, samples seen, the summed loss on the device)."""
        model = self.model
        b = model.backend
        total = None  # the summed loss, a 0-d array that stays on the device: no sync per batch
        seen, completed = 0, True
        for step, batch in enumerate(iterator):
            for h in hooks.batch_begin:
                batch = h.on_batch_begin(step, batch) if batch is not None else None
            if batch is None:
                continue
            taken = run(epoch, step, batch)  # forward, loss, backward, update (step.py, jit.py)
            if taken is None:  # a hook stopped training before the update
                completed = False
                break
            loss, out = taken
            size = batch.size
            total = loss * float(size) if total is None else total + loss * float(size)
            seen += size
            if model.metric_fns:
                outputs.append(out)
                targets.append(batch.y)
            if hooks.batch_end:  # most fits have none (verbose=0): no closure to make
                running = lambda: {"loss": f"{b.to_float(total) / seen:.4f}"}
                for h in hooks.batch_end:
                    h.on_batch_end(step, running)
            if model.stop_training:
                completed = step == len(batches) - 1
                break
        return completed, seen, total

    def end_epoch(self, epoch, total, seen, outputs, targets, validation, hooks, completed, eval_batch, start) -> bool:
        """The epoch's logs (loss, metrics, validation) and its end hooks."""
        model = self.model
        b = model.backend
        totals = EpochTotals(
            0.0 if total is None else b.to_float(total),
            seen,
            b.xp.concat(outputs, axis=0) if outputs else None,
            b.xp.concat(targets, axis=0) if targets else None,
        )
        for h in hooks.reduce_epoch:
            totals = h.reduce_epoch(totals)
        nan = math.nan  # an epoch whose batches were all skipped: the same keys, no numbers
        loss = totals.loss_sum / totals.seen if totals.seen else nan
        logs = {"loss": loss}
        # the epoch's loss is read once per epoch anyway: the check costs no extra sync
        if not math.isfinite(loss) and totals.seen and not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(
                f"fit: the training loss is {loss} in epoch {epoch + 1}: training diverged; {NONFINITE_HINT}",
                RuntimeWarning,
                stacklevel=4,
            )
        if model.metric_fns:
            logs.update(
                metric_values(model, totals.outputs, totals.targets)
                if totals.outputs is not None
                else {name: nan for name in model.metric_names}
            )
        if validation is not None:
            # prepared and checked once, in fit: not again every epoch
            found = inference.evaluate_prepared(model, validation, eval_batch, check_targets=False)
            logs.update({f"val_{k}": v for k, v in found.items()})
        logs["seconds"] = time.perf_counter() - start
        if completed:  # an epoch stopped part-way (Ctrl-C, a callback) is not a trained epoch
            model.epochs_trained = epoch + 1
        for h in hooks.epoch_end:
            h.on_epoch_end(epoch, logs)
        return True


def _warn_missing_inputs(train, validation, where) -> None:
    """Forward inputs given for training (a ``mask``) but not with validation_data: the
    validation outputs would be computed without them, and its scores mislead."""
    from ..data import stream

    if validation is None or isinstance(validation, stream.Stream):  # a stream of batches says nothing ahead
        return
    missing = sorted(set(train.inputs or {}) - set(validation.inputs or {}))
    if missing:
        names = ", ".join(repr(n) for n in missing)
        plural = len(missing) > 1
        warnings.warn(
            f"{where}: the training data has the forward input{'s' if plural else ''} {names} but "
            f"validation_data has not: the validation scores are computed without {'them' if plural else 'it'}; "
            f"pass validation_data=(X_val, y_val, {{{names}: ...}})",
            UserWarning,
            stacklevel=6,  # model.fit's caller, past _in_memory, _prepare, Trainer.fit and model.fit
        )
