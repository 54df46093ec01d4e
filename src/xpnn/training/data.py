"""Data for fit, evaluate and predict: checked once and put on the model's device.

Host NumPy arrays are copied to the model's backend and device; an array of another
library or device is the mixing error. Features take the model's dtype (token ids for a
first Embedding stay integers); integer class labels stay int64 for the cross-entropies;
other targets become float columns. Per-sample inputs of forward (attention's ``mask``)
must have one entry per sample and a layer that takes them.
"""

from __future__ import annotations

import contextlib

import array_api_compat

from .. import _checks
from .batches import Batch


def require_compiled(model, where: str) -> None:
    if model.loss is None:
        raise RuntimeError(f"{where}: call model.compile(loss=..., optimizer=...) first")


def on_device(model, a, argname: str, where: str):
    """``a`` as an array of the model's backend: host NumPy data is copied there, any
    other library's array (or another device's) gets the clear mixing error."""
    b = model.backend
    if array_api_compat.is_numpy_array(a):
        if a.dtype.kind not in "biuf":  # strings, objects, complex: no number to train on
            raise TypeError(
                f"{where}: {argname} must hold real numbers (bool, integer or float), found dtype {a.dtype}"
            )
        return b.asarray(a)
    if array_api_compat.is_array_api_obj(a):
        b.check(a, argname, where)
        return a
    raise TypeError(f"{where}: {argname} must be an array, found {type(a).__name__}")


def features(model, X, argname: str, where: str):
    """X on the model's device, in the model's dtype (integer token ids stay integers when
    the model takes them: an Embedding first)."""
    X = on_device(model, X, argname, where)
    xp = model.backend.xp
    if xp.isdtype(X.dtype, "integral") and model.first_leaf().takes_indices:
        return X
    return X if X.dtype == model.dtype else xp.astype(X, model.dtype)


def targets(model, y, argname: str, where: str, allow_nonfinite: bool = False):
    """y on the model's device: int64 labels (n,) for losses that take labels (whole-number
    floats too, as Keras takes them), else float in the dtype the loss computes in (the
    model's, float32 under a mixed-precision policy), a 1-D y as a column (n, 1)."""
    y = on_device(model, y, argname, where)
    if not allow_nonfinite:
        check_finite(model, y, argname, where)
    xp = model.backend.xp
    labels = model.loss is not None and model.loss.accepts_labels
    if labels and y.ndim >= 2 and xp.isdtype(y.dtype, "integral"):
        # integer labels per position (batch, seq) for a sequence model's (batch, seq, C),
        # or integer one-hot rows, which the loss casts: either way no float copy here
        return xp.astype(y, xp.int64)
    if labels and y.ndim == 1:
        if not xp.isdtype(y.dtype, "integral"):
            # a 1-D y here can only be class labels: say so rather than fail on a (n, 1) column later
            whole = y == xp.round(y)
            if not bool(xp.all(whole)):
                i, value = _first_failure(model, whole, y)
                raise ValueError(
                    f"{where}: {argname} is 1-D, so it holds class labels for {model.loss.name}, "
                    f"which must be whole numbers; found {value} at index {i[0]}"
                )
        return xp.astype(y, xp.int64)
    # the dtype the loss computes in: a mixed-precision model's output is float32, and a
    # float16 copy of y would turn targets beyond 65504 into inf
    dtype = xp.float32 if model.policy.mixed else model.dtype
    y = y if y.dtype == dtype else xp.astype(y, dtype)
    return xp.reshape(y, (y.shape[0], 1)) if y.ndim == 1 else y


def record_sample_shape(model, X) -> None:
    """Keep the shape of one sample of the first data the model sees as
    ``model.input_shape_`` (the ONNX export reads it)."""
    if model.input_shape_ is None:
        model.input_shape_ = tuple(int(d) for d in X.shape[1:])


def check_inputs(model, X, argname: str, where: str) -> None:
    """The first layer's check of the whole input, where it has one (an Embedding's id
    range): one host sync per fit, evaluate or predict instead of one per batch in forward."""
    model.first_leaf().check_inputs(X, argname, where)


@contextlib.contextmanager
def trusted_inputs(model):
    """Inside fit's and inference's loops, whose input ``check_inputs`` checked whole:
    layers skip their own per-forward input checks (``check_ids``: a sync per batch),
    and check again afterwards (a direct ``forward`` call)."""
    layers = [layer for layer in model.walk() if layer.check_ids]
    for layer in layers:
        layer.check_ids = False
    try:
        yield
    finally:
        for layer in layers:
            layer.check_ids = True


def check_finite(model, a, argname: str, where: str) -> None:
    """Raise a ValueError naming ``argname`` and the first NaN or inf of a float array.

    One host sync for the whole array (fit, evaluate and predict check their data once,
    not per batch): NaN in X would otherwise train every weight to NaN without a word.
    """
    xp = model.backend.xp
    if not xp.isdtype(a.dtype, "real floating"):
        return
    if model.backend.all_finite(a):
        return
    finite = xp.isfinite(a)
    i, value = _first_failure(model, finite, a)
    at = f"sample {i[0]}" + (f", index {i}" if len(i) > 1 else "")
    raise ValueError(
        f"{where}: {argname} contains NaN or inf ({value} at {at}); clean or impute the data first "
        f"(xpnn.preprocessing), or pass allow_nonfinite=True if non-finite values are meant"
    )


def _first_failure(model, ok, a) -> tuple:
    """(index tuple, value) of the first element of ``a`` where the bool array ``ok`` (a's
    shape) is False: the host reads one number, not the array."""
    index = _checks.first_true_index(model.backend.xp, ~ok)
    return index, model.backend.to_float(a[index])


def forward_inputs(model, inputs, where: str, argname: str = "inputs") -> dict:
    """The per-sample forward inputs on the model's device, each taken by some layer."""
    inputs = inputs or {}
    # fit/predict take **inputs: a misspelled argument lands here
    model.check_accepts(
        inputs,
        lambda name: (
            f"{where}: unknown argument {name!r}: not an argument of {where}, and no layer of this "
            f"model takes an input of that name (layers list theirs in forward_inputs, e.g. "
            f"MultiHeadSelfAttention's 'mask')"
        ),
    )
    return {name: on_device(model, a, f"{argname}[{name!r}]", where) for name, a in inputs.items()}


def check_lengths(where: str, X, *named) -> None:
    """Every array has X's number of samples; X has at least one."""
    if X.shape[0] == 0:
        raise ValueError(f"{where}: X is empty")
    for argname, a in named:
        if a is not None and (a.ndim == 0 or a.shape[0] != X.shape[0]):
            found = "a 0-d array" if a.ndim == 0 else f"{a.shape[0]}"
            raise ValueError(f"{where}: X has {X.shape[0]} samples but {argname} has {found}")


def prepare(model, X, y, inputs, where: str, prefix: str = "", allow_nonfinite: bool = False) -> Batch:
    """Features, targets (None allowed) and forward inputs, checked and on the device, as
    one Batch of all the samples. NaN or inf anywhere is an error unless
    ``allow_nonfinite``."""
    X = features(model, X, f"{prefix}X" if not prefix else f"{prefix}[0]", where)
    record_sample_shape(model, X)
    check_inputs(model, X, f"{prefix}X" if not prefix else f"{prefix}[0]", where)
    if not allow_nonfinite:
        check_finite(model, X, f"{prefix}X" if not prefix else f"{prefix}[0]", where)
    if y is not None:
        y = targets(model, y, f"{prefix}y" if not prefix else f"{prefix}[1]", where, allow_nonfinite)
    inputs = forward_inputs(model, inputs, where, f"{prefix}inputs" if not prefix else f"{prefix}[2]")
    if not allow_nonfinite:
        for name, a in inputs.items():
            check_finite(model, a, f"input {name!r}", where)
    check_lengths(
        where, X, ("y" if not prefix else f"{prefix}[1]", y), *((f"input {k!r}", v) for k, v in inputs.items())
    )
    return Batch(X, y, inputs)


def split_off(train: Batch, fraction: float, where: str):
    """(train, validation): the last ``fraction`` of the samples held out, before any
    shuffling (as Keras does)."""
    n = train.X.shape[0]
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"{where}: validation_split={fraction} leaves no data on one side of {n} samples")
    cut = n - n_val
    return train.take(0, cut), train.take(cut, n)


def validation(model, validation_data, where: str, allow_nonfinite: bool = False):
    """``(X_val, y_val)`` or ``(X_val, y_val, inputs_val)`` as one Batch, or None."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(f"{where}: validation_data must be (X_val, y_val) or (X_val, y_val, inputs_val)")
    inputs = validation_data[2] if len(validation_data) == 3 else None
    if inputs is not None and not isinstance(inputs, dict):
        raise TypeError(
            f"{where}: validation_data[2] must be a dict of forward inputs such as {{'mask': M}}, "
            f"found {type(inputs).__name__}"
        )
    return prepare(
        model,
        validation_data[0],
        validation_data[1],
        inputs,
        where,
        prefix="validation_data",
        allow_nonfinite=allow_nonfinite,
    )


def check_targets(loss, y, out) -> None:
    """The loss's check of the whole target array (label range, binary targets in [0, 1]),
    once per fit or evaluate, when the model's number of outputs is known from ``out``."""
    if y is None:
        return
    if loss.accepts_labels and y.ndim >= 2 and y.ndim == out.ndim - 1:
        loss.check_labels(y, out.shape[-1])  # a label per position: (batch, seq) for (batch, seq, C)
    else:
        loss.check_targets(y, out.shape[-1])


def no_label_check(loss) -> dict:
    """The keyword that tells a label-taking loss its labels were checked already."""
    return {"check_labels": False} if loss.accepts_labels else {}
