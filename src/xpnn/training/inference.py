"""Inference: a model's outputs over data, in batches, keeping nothing (``training=False``):
what ``infer``, ``evaluate`` and ``predict`` are."""

from __future__ import annotations

from .. import _checks
from . import data, jit
from .batches import Batches
from .compiled import metric_values
from .threads import largest_matmul


def outputs(model, ds, batch_size, where: str):
    """The raw outputs for the samples of Batch ``ds`` on the model's device, batch by batch."""
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", where, "all samples at once")
    batches = Batches(ds.X, None, ds.inputs, batch_size)
    macs = largest_matmul(model, (batches.batch_size, *ds.X.shape[1:]))
    run = jit.forward(model)  # model.run, or its compiled form for compile(jit=True)
    with model.backend.threads_for(macs), data.trusted_inputs(model):
        outs = [run(b.X, b.inputs) for b in batches]
    return outs[0] if len(outs) == 1 else model.backend.xp.concat(outs, axis=0)


def streamed(model, X, y, batch_size, inputs, where, allow_nonfinite, prefetch=2, workers=0):
    """A Stream of X (and y) for inference, or None for in-memory arrays (prepared whole)."""
    from ..data import stream

    if not stream.is_streamed(X, y):
        return None
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", where, "all samples at once")
    prefetch, workers, _ = stream.options(where, prefetch, workers, None)
    return stream.Stream(
        model, X, y, inputs, where=where, batch_size=batch_size, targets=where == "evaluate", to_end=True,
        prefetch=prefetch, workers=workers, allow_nonfinite=_allow(allow_nonfinite, where),
    )  # fmt: skip


def infer(model, X, batch_size, inputs, allow_nonfinite: bool = False):
    s = streamed(model, X, None, batch_size, inputs, "infer", allow_nonfinite)
    if s is not None:
        from ..data.stream import batches_of

        return batches_of(s, False)[0]
    ds = data.prepare(model, X, None, inputs, "infer", allow_nonfinite=_allow(allow_nonfinite, "infer"))
    return outputs(model, ds, batch_size, "infer")


def evaluate(model, X, y, batch_size, inputs, allow_nonfinite: bool = False) -> dict:
    """{"loss": ..., metric: ...} on (X, y), the data and the targets checked once."""
    where = "evaluate"
    data.require_compiled(model, where)
    s = streamed(model, X, y, batch_size, inputs, where, allow_nonfinite)
    if s is not None:
        return evaluate_prepared(model, s, batch_size)
    ds = data.prepare(model, X, y, inputs, where, allow_nonfinite=_allow(allow_nonfinite, where))
    return evaluate_prepared(model, ds, batch_size)


def evaluate_prepared(model, ds, batch_size, check_targets: bool = True) -> dict:
    """``evaluate`` on a Batch ``prepare`` made already: fit's validation data, checked and
    on the device once per fit, is not prepared again every epoch. A Stream (streamed
    data) is read again, its targets checked batch by batch on its first pass."""
    from ..data.stream import Stream, batches_of

    if isinstance(ds, Stream):
        out, y = batches_of(ds.for_inference(batch_size), check_targets=True)
        ds.labels_checked = True
    else:
        out, y = outputs(model, ds, batch_size, "evaluate"), ds.y
        if check_targets:
            data.check_targets(model.loss, y, out)
    loss = model.loss.forward(out, y, **data.no_label_check(model.loss))
    logs = {"loss": model.backend.to_float(loss)}
    logs.update(metric_values(model, out, y))
    return logs


def predict(model, X, batch_size, inputs, allow_nonfinite: bool = False):
    """The outputs as a NumPy array, through the loss's predict when compiled."""
    s = streamed(model, X, None, batch_size, inputs, "predict", allow_nonfinite)
    if s is not None:
        from ..data.stream import batches_of

        out = batches_of(s, False)[0]
    else:
        ds = data.prepare(model, X, None, inputs, "predict", allow_nonfinite=_allow(allow_nonfinite, "predict"))
        out = outputs(model, ds, batch_size, "predict")
    if model.loss is not None:
        out = model.loss.predict(out)
    return model.backend.to_numpy(out)


def _allow(allow_nonfinite, where: str) -> bool:
    return _checks.boolean(allow_nonfinite, "allow_nonfinite", where)
