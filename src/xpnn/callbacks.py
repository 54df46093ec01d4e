"""Callbacks: code that runs at fixed points of ``model.fit`` (the Trainer's hooks).

Every hook is optional (the base class does nothing) and runs in this order each batch:

- ``on_batch_begin(step, batch) -> batch``: may return another Batch (a rank's shard) or
  None to skip the batch;
- ``on_loss(step, loss, out)``: after forward and loss (0-d device array; reading it is a
  sync); the layers still hold their activations;
- ``on_batch_loss(epoch, step, value)``: the batch loss as a Python float before the
  update, only for callbacks that set ``needs_batch_loss = True`` (one host sync per
  batch: only TerminateOnNaN asks);
- ``after_backward(params) -> params``: after backward, before the optimizer step; read
  the gradients, or return params carrying other ones (``param.with_grad(g)``: clipped,
  summed over ranks);
- ``on_batch_end(step, running)``: after the step; ``running()`` returns the running logs
  (it reads the device, so call it only when needed).

and around them ``on_train_begin()``, ``on_epoch_begin(epoch)``, ``on_epoch_end(epoch,
logs)``, ``on_train_end()``. Gradient reducers (DataParallel) also use
``reduce_batch_loss(value) -> value`` and ``reduce_epoch(totals) -> totals``. Setting
``model.stop_training = True`` ends training after the current step.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time

from . import _checks
from .layers.base import arguments, unknown_arguments
from .registry import Registry

_MAX_WORDS = ("acc", "auc", "f1", "precision", "recall", "r2")


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', found {mode!r}")
    if mode != "auto":
        return mode
    from .metrics import METRIC_MODE

    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name in METRIC_MODE:
        return METRIC_MODE[name]
    return "max" if any(w in name for w in _MAX_WORDS) else "min"


def _monitored(name: str, monitor: str, logs: dict) -> float:
    if monitor not in logs:
        hint = " (pass validation_data or validation_split to fit)" if monitor.startswith("val_") else ""
        raise ValueError(f"{name}: monitor {monitor!r} is not in the epoch logs {sorted(logs)}{hint}")
    return float(logs[monitor])


class Callback:
    """Base class: every hook does nothing (or passes its argument on); ``self.model`` is
    set by fit. See the module docstring for when each runs."""

    model = None

    needs_batch_loss: bool = False
    """Whether on_batch_loss is called: with each batch's loss as a Python float, before
    the update (one host sync per batch: only TerminateOnNaN asks)."""

    traceable: bool = False
    """Whether on_loss and after_backward only do array math (no host reads, no Python
    branches on values), so a compiled step (``compile(jit=True)``) may trace them;
    otherwise a callback that has them keeps the fit eager (xpnn.training.jit)."""

    fusable: bool = False
    """Whether it has no per-batch hooks and its epoch hooks only observe (History,
    CSVLogger): fit may then run many steps per compiled call (``compile(jit=True)`` on
    JAX; xpnn.training.fused) and call its epoch hooks after the call, epoch by epoch;
    otherwise one call per step."""

    reads_shard: tuple | None = None
    """DataParallel: (rank, world size) on its gradient hook, whose rank reads only its
    part of each streamed batch (the Trainer reads it); None for every other callback."""

    root_only: bool = False
    """Whether DataParallel runs it on rank 0 only (one that writes files or prints;
    CSVLogger and ModelCheckpoint count as such without saying so)."""

    def on_train_begin(self): ...
    def on_epoch_begin(self, epoch): ...

    def on_batch_begin(self, step, batch):
        return batch

    def on_loss(self, step, loss, out): ...
    def on_batch_loss(self, epoch, batch, loss): ...

    def reduce_batch_loss(self, value):
        return value

    def after_backward(self, params):
        return params

    def on_batch_end(self, batch, running): ...

    def reduce_epoch(self, totals):
        return totals

    def on_epoch_end(self, epoch, logs): ...
    def on_train_end(self): ...


def overriding(hooks, name: str) -> list:
    """The hooks (in order) whose ``name`` method does something: the ones that override
    Callback's, which does nothing or passes its argument on. A loop that runs once per
    step calls only these (found once per fit): the base methods cost a call each."""
    base = getattr(Callback, name)
    return [h for h in hooks if name in getattr(h, "__dict__", ()) or getattr(type(h), name, base) is not base]


# name -> Callback class, for configs that name callbacks (``get_callback``); callbacks
# whose arguments are not plain values (LearningRateScheduler's function) are not in it
CALLBACKS = Registry("callback", "xpnn.callbacks.register_callback", Callback, normalize=str.lower)


def register_callback(cls):
    """Make a Callback subclass known by its ``name`` to ``get_callback`` (use as a class
    decorator); its constructor should take plain values (numbers, strings, paths)."""
    return CALLBACKS.register(cls)


def get_callback(spec, **kwargs) -> Callback:
    """A Callback from its registered name and arguments (``get_callback("early_stopping",
    patience=3)``), from a ``{"name": ..., **arguments}`` dict (a config file's), or a
    Callback (returned as is)."""
    if isinstance(spec, Callback) and not kwargs:
        return spec
    if isinstance(spec, dict):
        config = dict(spec)
        return get_callback(config.pop("name", None), **{**config, **kwargs})
    cls = CALLBACKS.lookup(spec)
    if cls is None:
        raise ValueError(f"callback must be one of {sorted(CALLBACKS)} or a Callback instance, found {spec!r}")
    unknown = unknown_arguments(cls, kwargs)
    if unknown:
        raise TypeError(f"get_callback: {cls.__name__} does not take {unknown}; it takes {arguments(cls)}")
    return cls(**kwargs)


@register_callback
class ClipGradNorm(Callback):
    """Scale each step's gradients together so that their global L2 norm is at most
    ``max_norm`` (``clip_grad_norm``'s factor), between backward and the optimizer step.
    ``compile(..., clip_norm=...)`` adds one; use it as a callback to clip only some fits.
    ``last_norm`` is the last step's norm before clipping, a 0-d device array (reading it
    is a sync; under ``compile(jit=True)`` it is not kept, as the step is traced)."""

    traceable = True
    fusable = True

    name = "clip_grad_norm"

    def __init__(self, max_norm: float):
        self.max_norm = _checks.positive_number(max_norm, "max_norm", "ClipGradNorm")
        self.last_norm = None

    def after_backward(self, params):
        from .optimizers import clip_grad_norm

        clipped, self.last_norm = clip_grad_norm(params, self.max_norm)
        return clipped


class History(Callback):
    """``history.history`` is a dict of per-epoch lists, like Keras; ``history.epoch`` the epochs."""

    fusable = True

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        history = self.history
        for k, v in logs.items():
            if k in history:  # not setdefault(k, []): that makes a list every epoch (a tiny net's epochs are short)
                history[k].append(v)
            else:
                history[k] = [v]


class _Better:
    """Tracks the best value of a monitored quantity."""

    def __init__(self, monitor, mode, min_delta):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


@register_callback
class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` the model ends training with the best epoch's weights,
    whether it stopped early or ran all its epochs."""

    name = "early_stopping"

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=True):
        patience = _checks.non_negative_int(patience, "patience", "EarlyStopping")
        self.tracker = _Better(monitor, mode, min_delta)
        self.monitor, self.patience, self.restore_best_weights = monitor, patience, restore_best_weights

    def on_train_begin(self):
        self.tracker.best = math.inf if self.tracker.mode == "min" else -math.inf
        self.wait, self.best_weights, self.best_epoch, self.stopped_epoch = 0, None, None, None

    def on_epoch_end(self, epoch, logs):
        value = _monitored("EarlyStopping", self.monitor, logs)
        if self.tracker.improved(value):
            self.tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:  # patience epochs in a row without improvement (as Keras)
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self):
        # also when the epochs ran out before patience did: the best epoch may lie behind
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


@register_callback
class ModelCheckpoint(Callback):
    """Save the model after each epoch (``{epoch}`` and log names may appear in ``path``);
    with ``save_best_only`` only when ``monitor`` improved. Files are written atomically."""

    name = "model_checkpoint"

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path = str(path)
        self.save_best_only = save_best_only
        self.tracker = _Better(monitor, mode, 0.0)
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if not self.tracker.improved(value):
                return
            self.tracker.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        self.model.save(path, epoch=epoch + 1)
        self.last_saved = path


class LearningRateScheduler(Callback):
    """Set the optimizer's lr at each epoch start to ``schedule(epoch, lr)``."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable (epoch, lr) -> lr, found {schedule!r}")
        self.schedule = schedule

    def on_epoch_begin(self, epoch):
        opt = self.model.optimizer
        opt.lr = float(self.schedule(epoch, opt.get_lr()))

    def on_epoch_end(self, epoch, logs):
        logs["lr"] = self.model.optimizer.get_lr()


@register_callback
class ReduceLROnPlateau(Callback):
    """Multiply lr by ``factor`` when ``monitor`` has not improved for ``patience`` epochs."""

    name = "reduce_lr_on_plateau"

    def __init__(
        self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0, cooldown=0, mode="auto"
    ):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), found {factor!r}")
        self.tracker = _Better(monitor, mode, min_delta)
        self.monitor, self.factor, self.patience = monitor, float(factor), patience
        self.min_lr, self.cooldown = float(min_lr), cooldown

    def on_train_begin(self):
        self.wait, self.cooldown_left = 0, 0
        self.tracker.best = math.inf if self.tracker.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs):
        value = _monitored("ReduceLROnPlateau", self.monitor, logs)
        opt = self.model.optimizer
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.tracker.improved(value):
            self.tracker.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                opt.lr = max(opt.get_lr() * self.factor, self.min_lr)
                self.wait, self.cooldown_left = 0, self.cooldown
        logs["lr"] = opt.get_lr()


@register_callback
class CSVLogger(Callback):
    """Append one row per epoch to a CSV file (header from the first epoch's logs)."""

    name = "csv_logger"
    fusable = True

    def __init__(self, path, append=False):
        self.path, self.append = str(path), append

    def on_train_begin(self):
        self.keys = None
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, epoch, logs):
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if self.keys is None:
            self.keys = sorted(logs)
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["epoch", *self.keys])
            writer.writerow([epoch + 1, *(logs.get(k, "") for k in self.keys)])


@register_callback
class TerminateOnNaN(Callback):
    """Stop at the first non-finite batch loss, before that batch's update, so the model
    keeps the last finite weights. Reads every batch loss (one host sync per batch)."""

    name = "terminate_on_nan"

    needs_batch_loss = True

    def on_train_begin(self):
        self.stopped_at = None
        self.message = None

    def on_batch_loss(self, epoch, batch, loss):
        if not math.isfinite(loss):
            self.stopped_at = (epoch + 1, batch + 1)
            self.message = (
                f"TerminateOnNaN: loss is {loss} at epoch {epoch + 1}, batch {batch + 1}; "
                f"training stopped, weights are those before this batch"
            )
            print(self.message, file=sys.stderr)
            self.model.stop_training = True


def _format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in logs.items())


class ProgressBar(Callback):
    """A tqdm bar per epoch on a terminal; one line per epoch otherwise (or verbose=2)."""

    def __init__(self, epochs, steps, verbose=1, file=None):
        self.epochs, self.steps, self.verbose = epochs, steps, verbose
        self.file = file or sys.stdout
        self.use_bar = verbose == 1 and hasattr(self.file, "isatty") and self.file.isatty()
        self.every = max(1, steps // 20)  # refresh ~20 times an epoch: few host syncs
        self.fusable = not self.use_bar  # printed lines only: nothing per batch

    def on_epoch_begin(self, epoch):
        self.start = time.perf_counter()
        if self.use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.steps,
                desc=f"Epoch {epoch + 1}/{self.epochs}",
                file=self.file,
                unit="batch",
                leave=True,
                dynamic_ncols=True,
            )

    def on_batch_end(self, batch, running):
        if self.use_bar:
            self.bar.update(1)
            if (batch + 1) % self.every == 0:
                self.bar.set_postfix(running(), refresh=False)

    def on_epoch_end(self, epoch, logs):
        # the epoch's own time (fused epochs end together, after one compiled call)
        seconds = logs.get("seconds", time.perf_counter() - self.start)
        if self.use_bar:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if isinstance(v, float)})
            self.bar.close()
        elif self.verbose:
            shown = {k: v for k, v in logs.items() if k != "seconds"}
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {_format_logs(shown)}", file=self.file, flush=True
            )


# in their own modules, importable from here too (TensorBoard imports tensorboardX only when one is made)
from .gradient_monitor import GradientMonitor, GradientWarning  # noqa: E402, F401
from .tensorboard import TensorBoard  # noqa: E402, F401
