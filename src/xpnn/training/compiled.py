"""What ``model.compile`` sets up for training and evaluation: the loss, the optimizer, the
metrics, gradient clipping (each given as a name or an object) and whether steps are
compiled (``jit``, see jit.py); and the metrics' values for a model's outputs."""

from __future__ import annotations

from .. import _checks
from ..losses import get_loss
from ..metrics import get_metric
from ..optimizers import get_optimizer
from .jit import check as check_jit


def compile_model(model, loss="softmax_cross_entropy", optimizer="adam", metrics=(), clip_norm=None, jit=False):
    """Give ``model`` its loss, optimizer, metrics, clip norm and jit setting; returns the model."""
    model.loss = get_loss(loss)
    model.optimizer = get_optimizer(optimizer)
    if isinstance(metrics, str):
        metrics = [metrics]
    model.metric_names = [m if isinstance(m, str) else getattr(m, "__name__", "metric") for m in metrics]
    model.metric_fns = [get_metric(m) for m in metrics]
    model.clip_norm = None if clip_norm is None else _checks.positive_number(clip_norm, "clip_norm", "compile")
    model.jit = check_jit(jit, "compile")
    model.jit_forward = model.jit_step = None  # compiled for the old loss and optimizer
    return model


def all_finite(model, out) -> bool:
    """Whether every output is finite (one host sync). A diverged model's NaN outputs
    must not be scored: the argmax of a NaN row would read as class 0."""
    xp = model.backend.xp
    return bool(model.backend.to_numpy(xp.all(xp.isfinite(out))))


def metric_values(model, out, y) -> dict:
    """The compiled metrics of outputs ``out`` against targets ``y``, as floats (the
    outputs read through the loss's predict: probabilities for the cross-entropies).
    Non-finite outputs (a diverged model) give NaN for every metric, not an error, so that
    training can log them and go on to its callbacks (TerminateOnNaN, EarlyStopping)."""
    if not model.metric_fns:
        return {}
    if not all_finite(model, out):
        return {name: float("nan") for name in model.metric_names}
    scores = model.loss.predict(out)
    return {name: float(fn(y, scores)) for name, fn in zip(model.metric_names, model.metric_fns)}
