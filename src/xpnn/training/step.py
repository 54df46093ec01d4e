"""One training step of ``fit``, eagerly: forward, loss, the hooks between them, backward,
the optimizer update. The Trainer calls ``step(epoch, i, batch)`` once per batch; a model
compiled with ``jit=True`` gets the same step traced into one compiled function
(xpnn.training.jit), which calls this very code while it is traced."""

from __future__ import annotations

from .. import callbacks as cb
from . import data


class TrainStep:
    """The eager step: what ``fit`` does with one batch.

    Args:
        model: the compiled model.
        hooks: the fit's hooks in order (reducers, clipping, the user's callbacks, ...).
        unchecked: the prepared data sets whose targets are still to be checked (done at
            the first step, when the number of outputs is known; emptied then).
        check_batch: ``check_batch(batch, out)`` checks one batch's targets (streamed data
            whose targets are too many to check whole), or None.
    """

    def __init__(self, model, hooks, unchecked: list, check_batch=None):
        self.model = model
        self.hooks = hooks
        self.unchecked = unchecked
        self.check_batch = check_batch
        self.watchers = [h for h in hooks if h.needs_batch_loss]
        # the hooks that do something between forward and update (found once, not every step)
        self.loss_hooks = cb.overriding(hooks, "on_loss")
        self.grad_hooks = cb.overriding(hooks, "after_backward")
        self.batch_loss_reducers = cb.overriding(hooks, "reduce_batch_loss")
        self.checked = data.no_label_check(model.loss)
        self.params = None  # the model's Param handles, made at the first step (after lazy layers are built)

    def __call__(self, epoch, step, batch):
        """``(loss, out)`` after one update on ``batch`` (loss: a 0-d device array, out:
        the model's outputs); None when a hook stopped training before the update."""
        model = self.model
        loss_fn = model.loss
        out = model.run(batch.X, True, batch.inputs)  # the data was checked once, in fit
        if self.unchecked:  # every target at once, when the number of outputs is known: once per fit
            for part in self.unchecked:
                if part is not None:
                    data.check_targets(loss_fn, part.y, out)
            self.unchecked.clear()
        if self.check_batch is not None:
            self.check_batch(batch, out)
        # a call with ** takes the slow path even when empty: only label-taking losses get it
        loss = loss_fn.forward(out, batch.y, **self.checked) if self.checked else loss_fn.forward(out, batch.y)
        for h in self.loss_hooks:
            h.on_loss(step, loss, out)
        if self.watchers:
            value = model.backend.to_float(loss)
            for h in self.batch_loss_reducers:
                value = h.reduce_batch_loss(value)
            for h in self.watchers:
                h.on_batch_loss(epoch, step, value)
        if model.stop_training:  # asked before the step: it is not taken
            model.release_saved()
            return None
        model.backward(loss_fn.backward(), need_dX=False)
        if self.params is None:  # the handles stay valid: made once
            self.params = model.parameters()
        params = self.params
        for h in self.grad_hooks:
            params = h.after_backward(params)
        model.optimizer.step(params)
        return loss, out

    def report(self) -> str | None:
        """A line for ``verbose=2`` (the compiled step says how often it compiled)."""
        return None
