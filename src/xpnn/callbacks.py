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
    needs_batch_loss = False

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
    is a sync)."""

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

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)


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
        seconds = time.perf_counter() - self.start
        if self.use_bar:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if isinstance(v, float)})
            self.bar.close()
        elif self.verbose:
            shown = {k: v for k, v in logs.items() if k != "seconds"}
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {_format_logs(shown)}", file=self.file, flush=True
            )


# ---- gradient health ----------------------------------------------------------------------


class GradientWarning(UserWarning):
    """Gradients vanish or explode, or most ReLU units are dead (raised by GradientMonitor)."""


@register_callback
class GradientMonitor(Callback):
    """Watch gradient health while training: per-layer norms, update sizes, dead ReLUs.

    Every ``every`` batches it records, for each layer with params (named by path and
    repr, e.g. ``"2:Dense(64, 64)"``; all of a layer's params count as one vector):

    - ``grad_norm``: ||grad||, the L2 norm of the layer's gradient as the optimizer got it
      (after the Trainer's clipping and, under DataParallel, summed over ranks);
    - ``weight_norm``: ||W||, the norm of its params after the step;
    - ``update_ratio``: ||W_t - W_{t-1}|| / ||W_{t-1}||, the size of the update this step
      actually made relative to the weights, measured exactly from a copy of the weights
      taken one batch before (so it includes momentum, Adam's scaling and weight decay,
      which ``lr * ||grad||`` would not). About 1e-3 is the usual healthy value; 1e-1 and
      above means the steps rewrite the weights, 1e-6 and below that they barely move.

    and for each ReLU layer ``dead_relu``: the fraction of its units that were not active
    for any sample of the batch (from the 0/1 mask the ReLU keeps from its forward pass).

    It warns (``warnings.warn`` with category :class:`GradientWarning`, and a line in
    ``self.warnings``), once per layer and kind, when:

    - gradients vanish: a layer's gradient norm is below ``vanish_ratio`` (1e-3) times the
      gradient norm of the last layer with params, so the early layers learn orders of
      magnitude slower than the last;
    - gradients explode: a norm is not finite or above ``explode_norm`` (1e3), or the mean
      of the last ``window`` records is ``explode_growth`` (10) times the mean of the first
      ``window`` records;
    - ReLUs die: more than ``dead_fraction`` (0.9) of a ReLU layer's units are inactive for
      the whole batch: they pass no gradient, so they may never recover.

    Cost: each record computes a few norms on the device and reads them all back in one
    host sync, and the batch before a record keeps a device copy of every param (the
    model's parameter memory once more). With ``every=1`` that is one sync and one copy
    per batch, fine on the CPU; on a GPU choose ``every`` in the tens or hundreds.

    Attributes:
        history: ``{"step": [...], "epoch": [...], "grad_norm": {layer: [...]},
            "weight_norm": {layer: [...]}, "update_ratio": {layer: [...]},
            "dead_relu": {layer: [...]}}``, one entry per record; ``step`` counts batches
            from 1 over every fit this monitor saw.
        warnings: the warning messages, in order.
    """

    name = "gradient_monitor"

    def __init__(
        self,
        every: int = 1,
        vanish_ratio: float = 1e-3,
        explode_norm: float = 1e3,
        explode_growth: float = 10.0,
        window: int = 5,
        dead_fraction: float = 0.9,
    ):
        where = "GradientMonitor"
        self.every = _checks.positive_int(every, "every", where)
        self.window = _checks.positive_int(window, "window", where)
        self.vanish_ratio = _checks.positive_number(vanish_ratio, "vanish_ratio", where)
        self.explode_norm = _checks.positive_number(explode_norm, "explode_norm", where)
        self.explode_growth = _checks.positive_number(explode_growth, "explode_growth", where)
        self.dead_fraction = _checks.number(dead_fraction, "dead_fraction", where, 0.0, 1.0, low_open=True)
        self._watched = None
        self._reset()

    def _reset(self):
        self.history = {
            "step": [],
            "epoch": [],
            "grad_norm": {},
            "weight_norm": {},
            "update_ratio": {},
            "dead_relu": {},
        }
        self.warnings: list = []
        self._warned: set = set()
        self._step = 0
        self._epoch = 0
        self._previous = None  # device copies of the params, taken the batch before a record
        self._dead = None  # per ReLU layer, the dead fraction of the batch being recorded (device)
        self._grads = None  # per layer (by its params dict), the gradients the optimizer used

    # ---- hooks ----------------------------------------------------------------------------

    def on_train_begin(self):
        if self.model is not self._watched:  # a new model: its layers are other layers
            self._watched = self.model
            self._reset()
        self._snapshot_if_next_is_recorded()

    def on_epoch_begin(self, epoch):
        self._epoch = epoch

    def on_loss(self, step, loss, out):
        # the ReLU masks exist between forward and backward (backward hands them back):
        # take what the record needs from them now
        if (self._step + 1) % self.every == 0:
            self._dead = self._dead_fractions()

    def after_backward(self, params):
        # the gradients the optimizer is given: summed over ranks and clipped where the
        # Trainer does that (its own hooks run first), not only what backward wrote
        if (self._step + 1) % self.every == 0:
            self._grads = {id(p.store): [] for p in params}
            for p in params:
                self._grads[id(p.store)].append(p.grad)
        return params

    def on_batch_end(self, batch, running):
        self._step += 1
        if self._step % self.every == 0:
            self._record()
        self._snapshot_if_next_is_recorded()

    # ---- measuring ------------------------------------------------------------------------

    def _param_layers(self, with_grads=True):
        """(name, layer) for every layer with params of its own, nested ones included,
        named by path and repr ("2:Dense(64, 64)", "1.0:Dense(8, 8)")."""
        return [
            (f"{path}:{layer!r}", layer)
            for path, layer in self.model.named_layers()
            if path and layer.params and (not with_grads or all(k in layer.grads for k in layer.params))
        ]

    def _dead_fractions(self):
        """{name: 0-d array}: the fraction of each ReLU layer's units inactive for every
        sample of the batch (from the mask its forward saved)."""
        from .layers.activations import ReLU

        xp = self.model.backend.xp
        found = {}
        for path, layer in self.model.named_layers():
            mask = layer.mask if isinstance(layer, ReLU) else None
            if mask is not None:
                ever_active = xp.max(mask, axis=0)  # mask is 0/1: the max over the batch is 1 if any sample fired
                found[f"{path}:{layer!r}"] = xp.mean(xp.astype(ever_active == 0, self.model.dtype))
        return found

    def _snapshot_if_next_is_recorded(self):
        if (self._step + 1) % self.every == 0:
            xp = self.model.backend.xp
            self._previous = {
                name: [xp.asarray(p, copy=True) for p in layer.params.values()]
                for name, layer in self._param_layers(with_grads=False)
            }
        else:
            self._previous = None

    def _record(self):
        backend = self.model.backend
        xp = backend.xp
        zero = xp.zeros((), dtype=self.model.dtype, device=backend.device)

        def sq(arrays):  # the squared L2 norm of several arrays taken as one vector
            total = zero
            for a in arrays:
                a = xp.astype(a, self.model.dtype) if a.dtype != self.model.dtype else a
                total = total + xp.sum(a * a)
            return total

        layers, dead = self._param_layers(), self._dead or {}
        relus = list(dead.items())
        self._dead = None
        values = []  # 0-d device arrays, read back together: one host sync per record
        grads = self._grads or {}
        self._grads = None
        for name, layer in layers:
            params = list(layer.params.values())
            values.append(xp.sqrt(sq(grads.get(id(layer.params), [layer.grads[k] for k in layer.params]))))
            values.append(xp.sqrt(sq(params)))
            previous = (self._previous or {}).get(name)
            if previous is not None and len(previous) == len(params):
                values.append(xp.sqrt(sq(p - q for p, q in zip(params, previous))) / xp.sqrt(sq(previous)))
            else:
                values.append(zero + float("nan"))
        values += [fraction for _, fraction in relus]  # a unit is dead if no sample of the batch activated it
        host = backend.to_numpy(xp.stack(values)).tolist() if values else []

        h = self.history
        h["step"].append(self._step)
        h["epoch"].append(self._epoch)
        for j, (name, _) in enumerate(layers):
            g, w, u = host[3 * j : 3 * j + 3]
            h["grad_norm"].setdefault(name, []).append(g)
            h["weight_norm"].setdefault(name, []).append(w)
            h["update_ratio"].setdefault(name, []).append(u)
        for j, (name, _) in enumerate(relus):
            h["dead_relu"].setdefault(name, []).append(host[3 * len(layers) + j])
        self._check([name for name, _ in layers], [name for name, _ in relus])

    # ---- judging --------------------------------------------------------------------------

    def _warn(self, kind, layer, message):
        if (kind, layer) in self._warned:
            return
        self._warned.add((kind, layer))
        message = f"GradientMonitor (step {self._step}): {message}"
        self.warnings.append(message)
        import warnings

        warnings.warn(message, GradientWarning, stacklevel=3)

    def _check(self, names, relus):
        h = self.history
        if names:
            last = names[-1]
            g_last = h["grad_norm"][last][-1]
            for name in names:
                series = h["grad_norm"][name]
                g = series[-1]
                if not math.isfinite(g):
                    self._warn("explode", name, f"gradients explode in layer {name}: the gradient norm is {g}")
                    continue
                if g > self.explode_norm:
                    self._warn(
                        "explode",
                        name,
                        f"gradients explode in layer {name}: the gradient norm is {g:.3g} > {self.explode_norm:.3g}",
                    )
                w = self.window
                if len(series) >= 2 * w:
                    first, recent = sum(series[:w]) / w, sum(series[-w:]) / w
                    if first > 0 and recent > self.explode_growth * first:
                        self._warn(
                            "explode",
                            name,
                            f"gradients explode in layer {name}: the gradient norm grew "
                            f"{recent / first:.3g}x, from {first:.3g} (mean of the first {w} "
                            f"records) to {recent:.3g} (the last {w})",
                        )
                if name != last and math.isfinite(g_last) and g_last > 0 and g == 0.0:
                    self._warn(
                        "vanish",
                        name,
                        f"no gradient reaches layer {name} (its gradient is exactly 0, the "
                        f"last layer's {g_last:.3g}): dead ReLUs or a path that passes "
                        f"no gradient in between",
                    )
                elif name != last and math.isfinite(g_last) and g_last > 0 and g < self.vanish_ratio * g_last:
                    self._warn(
                        "vanish",
                        name,
                        f"gradients vanish in layer {name}: the gradient norm {g:.3g} is "
                        f"{g / g_last:.2g}x that of the last layer {last} ({g_last:.3g}); "
                        f"try ReLU with He init, BatchNorm or residual connections",
                    )
        for name in relus:
            dead = h["dead_relu"][name][-1]
            if dead > self.dead_fraction:
                self._warn(
                    "dead",
                    name,
                    f"{dead:.0%} of the units of {name} are dead (inactive for every sample "
                    f"of the batch); try a smaller learning rate, LeakyReLU or He init",
                )

    # ---- reading ---------------------------------------------------------------------------

    def summary(self) -> str:
        """A table of the last record: one row per layer (also printed)."""
        h = self.history
        rows = [("layer", "grad norm", "weight norm", "update/weight", "dead ReLU")]
        for name in h["grad_norm"]:
            rows.append(
                (
                    name,
                    f"{h['grad_norm'][name][-1]:.3g}",
                    f"{h['weight_norm'][name][-1]:.3g}",
                    f"{h['update_ratio'][name][-1]:.3g}",
                    "",
                )
            )
        for name in h["dead_relu"]:
            rows.append((name, "", "", "", f"{h['dead_relu'][name][-1]:.0%}"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [
            "  ".join(f"{c:<{widths[i]}}" if i == 0 else f"{c:>{widths[i]}}" for i, c in enumerate(r)) for r in rows
        ]
        text = "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
        print(text)
        return text

    def plot(self, path=None, title="Gradient norms per layer"):
        """Per-layer gradient norms over the training steps (log scale), next to the
        update/weight ratios and, if there are ReLU layers, their dead fractions.
        Returns the matplotlib Figure; saves a PNG at ``path``."""
        from .plotting import plot_gradient_history

        return plot_gradient_history(self.history, path=path, title=title)


# its own module (the tensorboardX writer is imported only when one is made); here too, beside the others
from .tensorboard import TensorBoard  # noqa: E402, F401
