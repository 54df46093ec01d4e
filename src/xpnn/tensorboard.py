"""TensorBoard logs of a fit: scalars, histograms and hyperparameters, written with tensorboardX.

``TensorBoard(log_dir)`` is a Callback (also ``xpnn.callbacks.TensorBoard``). One fit writes
one run: point TensorBoard at the parent folder (``tensorboard --logdir runs``) to compare
runs. The tags:

- ``epoch/<key>`` for every number of the epoch logs (``loss``, the metrics, ``val_loss``,
  ``val_<metric>``, ``seconds``) and ``epoch/lr`` (the lr the next step uses), at step
  ``epoch`` (counted from 1, as the progress line does);
- ``batch/loss`` (the mean loss of the last ``update_freq`` batches) and ``batch/lr``, every
  ``update_freq`` batches, at the step counted in batches over the whole run;
- ``weights/<path>`` and ``gradients/<path>`` (``weights/0.W``: param ``W`` of layer 0),
  histograms every ``histogram_freq`` epochs; the gradients are those the optimizer got in
  the epoch's last step (after clipping, summed over ranks under DataParallel);
- the HParams view: the run's hyperparameters (``hparams``, and the optimizer, lr, loss,
  backend, dtype and size of the model) as one session, whose metrics TensorBoard takes
  from the last value of each scalar tag: the run's final metrics.

Host syncs: with ``update_freq="epoch"`` the callback reads nothing during the epoch; with
``update_freq=N`` it adds the batch losses up on the device and reads the sum once every
N batches; histograms read the params (and the last gradients) once per histogram epoch.
"""

from __future__ import annotations

import math
import os
from typing import Any

from . import _checks
from .backends import dtype_name
from .callbacks import Callback, register_callback

_EXTRA = 'pip install "xpnn[tensorboard]"'


def require_tensorboardx():
    """The tensorboardX module, or an ImportError naming the extra that installs it."""
    try:
        import tensorboardX
    except ImportError:
        raise ImportError(f"TensorBoard logs need the tensorboardX package: {_EXTRA}") from None
    return tensorboardX


def _hparam_value(value):
    """A value the HParams view shows: bool, number or string (lists and the rest as text)."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else str(value)
    return str(value)


@register_callback
class TensorBoard(Callback):
    """Write the run's scalars, histograms and hyperparameters for TensorBoard.

    Args:
        log_dir: the run's folder (made if missing); event files are added to it.
        histogram_freq: every this many epochs, histograms of every param and its last
            gradient (0: none).
        update_freq: ``"epoch"`` (scalars once per epoch, no host sync during the epoch) or
            a positive int N: also the mean batch loss and the lr every N batches (one host
            sync per N batches).
        hparams: hyperparameters to show in the HParams view (``{"batch_size": 32, ...}``),
            beside the ones read from the model; values that are not bool, number or
            string are shown as text.

    Needs tensorboardX: ``pip install "xpnn[tensorboard]"`` (TensorFlow is not needed).
    """

    name = "tensorboard"

    model: Any = None  # set by fit

    def __init__(self, log_dir, histogram_freq: int = 0, update_freq="epoch", hparams: dict | None = None):
        where = "TensorBoard"
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"{where}: log_dir must be a folder path, found {type(log_dir).__name__}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = _checks.non_negative_int(histogram_freq, "histogram_freq", where)
        if update_freq != "epoch":
            if isinstance(update_freq, str):
                raise ValueError(f"{where}: update_freq must be 'epoch' or a positive int, found {update_freq!r}")
            update_freq = _checks.positive_int(update_freq, "update_freq", where)
        self.update_freq = update_freq
        if hparams is not None and not isinstance(hparams, dict):
            raise TypeError(f"{where}: hparams must be a dict of name -> value, found {type(hparams).__name__}")
        self.hparams = dict(hparams or {})
        require_tensorboardx()  # now, not after the first epoch's work
        self.writer: Any = None  # a tensorboardX SummaryWriter while a fit runs
        self.step = 0  # batches taken over every fit this callback saw: the step of the batch tags
        self._final: dict = {}

    # ---- hooks ----------------------------------------------------------------------------

    def on_train_begin(self):
        os.makedirs(self.log_dir, exist_ok=True)
        self.writer = require_tensorboardx().SummaryWriter(logdir=self.log_dir)
        self._names = {(id(h.store), h.key): name for name, h in self.model.named_params().items()}
        self._loss_sum, self._losses = None, 0  # the batch losses since the last write, on the device
        self._last_params = None
        self._start_hparams = self._model_hparams()
        self._final = {}

    def on_epoch_begin(self, epoch):
        self._histograms = self.histogram_freq > 0 and (epoch + 1) % self.histogram_freq == 0

    def on_loss(self, step, loss, out):
        if self.update_freq == "epoch":
            return
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss  # no sync: stays on the device
        self._losses += 1

    def after_backward(self, params):
        if self._histograms:  # the handles carry the gradients the optimizer gets: keep the last step's
            self._last_params = params
        return params

    def on_batch_end(self, batch, running):
        self.step += 1
        if self.update_freq != "epoch" and self._losses and self.step % self.update_freq == 0:
            loss = self.model.backend.to_float(self._loss_sum) / self._losses  # one sync per update_freq batches
            self.writer.add_scalar("batch/loss", loss, self.step)
            self.writer.add_scalar("batch/lr", self.model.optimizer.get_lr(), self.step)
            self._loss_sum, self._losses = None, 0

    def on_epoch_end(self, epoch, logs):
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        values.setdefault("lr", self.model.optimizer.get_lr())
        for key, value in values.items():
            self.writer.add_scalar(f"epoch/{key}", value, epoch + 1)
        self._final = values
        if self._histograms:
            self._write_histograms(epoch + 1)
            self._last_params = None
        self.writer.flush()

    def on_train_end(self):
        if self.writer is None:
            return
        self._write_hparams()
        self.writer.close()
        self.writer = None

    # ---- writing ---------------------------------------------------------------------------

    def _write_histograms(self, step: int) -> None:
        to_numpy = self.model.backend.to_numpy
        for name, handle in self.model.named_params().items():
            self.writer.add_histogram(f"weights/{name}", to_numpy(handle.value).astype("float32"), step)
        for handle in self._last_params or ():
            name = self._names.get((id(handle.store), handle.key))
            if name is not None and handle.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", to_numpy(handle.grad).astype("float32"), step)

    def _model_hparams(self) -> dict:
        """What the model says about the run, before training changes the lr."""
        model, optimizer = self.model, self.model.optimizer
        found = {
            "optimizer": optimizer.name,
            "lr": optimizer.lr if not callable(optimizer.lr) else type(optimizer.lr).__name__,
            "loss": model.loss.name,
            "backend": model.backend.name,
            "dtype": dtype_name(model.dtype),
            "params": model.count_params(),
        }
        return {**found, **{k: v for k, v in self.hparams.items() if v is not None}}  # None: not given

    def _write_hparams(self) -> None:
        """The session of the HParams view: its hyperparameters; TensorBoard finds its metrics
        in this run's scalar tags (the last value of each: the final metrics)."""
        from tensorboardX.summary import hparams

        values = {k: _hparam_value(v) for k, v in self._start_hparams.items() if v is not None}
        metrics = {f"epoch/{k}": v for k, v in self._final.items()}
        # no experiment summary: with one per run, TensorBoard would show only one run's
        # columns; without, it gathers the columns of every run under the log folder
        _, start, end = hparams(values, metrics)
        self.writer.file_writer.add_summary(start)
        self.writer.file_writer.add_summary(end)
