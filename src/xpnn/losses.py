"""Losses: the scalar a model minimises, and its gradient with respect to the prediction.

Every loss follows one contract:

- ``forward(pred, target)`` returns the mean loss as a 0-d array on pred's device. It
  never calls ``float()``: turning it into a Python number is a host sync, and the
  training loop decides when to pay for one.
- ``backward()`` returns dL/d(pred) for that mean, with pred's shape and dtype. It is
  where backprop starts: the model feeds it to the last layer's ``backward``.

Reductions follow PyTorch's defaults: the mean over every element for the elementwise
losses (MSE, MAE, Huber, BCE, BCEWithLogits), the mean over the batch (over every
position, for a sequence) for the cross-entropies (each example's loss is a sum over
its C classes). So for a mean over
n numbers, every gradient carries a factor 1/n.

Shapes: pred and target have the same shape for the elementwise losses; for the
cross-entropies pred is (batch, C) and target is either integer labels (batch,) or
rows of class probabilities (batch, C) (one-hot rows included); a sequence model's
pred (batch, seq, C) takes labels (batch, seq) or rows (batch, seq, C), and the mean is
over every position.

float32 stays float32: targets are cast to pred's dtype and every constant is a Python
float, which the array API never lets upcast an array.
"""

from __future__ import annotations

import math

from . import _checks
from .backends import backend_of
from .functional import log_softmax, sigmoid, softmax
from .registry import Registry

__all__ = [
    "Loss",
    "MSE",
    "MAE",
    "Huber",
    "BinaryCrossEntropy",
    "BCEWithLogits",
    "SoftmaxCrossEntropy",
    "CrossEntropy",
    "LOSSES",
    "register_loss",
    "get_loss",
]


class Loss:
    """Base class: binds to pred's backend on each forward and keeps what backward needs.

    Subclasses set ``name`` (the string ``get_loss`` knows them by) and implement
    ``forward``/``backward``; ``config()`` returns their constructor arguments.
    """

    name = "loss"
    classifies: bool = False
    """True for the losses of classifiers: the model's outputs are class scores, so
    ``predict_classes`` and ``xpnn evaluate``'s accuracy and confusion matrix apply."""

    accepts_labels: bool = False
    """True where target may be integer labels (batch,): forward then also takes
    check_labels=True, a range check of every label (one host sync); fit checks the whole
    set once and passes check_labels=False for each batch (xpnn.training.data)."""

    def __init__(self):
        self.backend = None
        self._saved = None  # what backward needs, set by forward
        self._accepted = None  # (type, device, dtype) of the last pred that passed _bind's checks

    @property
    def xp(self):
        return self.backend.xp

    # ---- the contract -------------------------------------------------------------------

    def forward(self, pred, target):
        """The mean loss as a 0-d array on pred's device."""
        raise NotImplementedError

    def backward(self):
        """d(mean loss)/d(pred): pred's shape and dtype."""
        raise NotImplementedError

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def predict(self, pred):
        """What ``model.predict`` returns for the model's raw output ``pred``.

        The identity here; losses that work on logits return probabilities.
        """
        return pred

    # ---- description (save/load) --------------------------------------------------------

    def config(self) -> dict:
        """Constructor arguments as JSON-able values: ``get_loss(loss.name, **loss.config())``
        rebuilds the loss."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ---- helpers for subclasses ---------------------------------------------------------

    def _where(self, method: str = "forward") -> str:
        return f"{type(self).__name__}.{method}"

    def _bind(self, pred, target) -> None:
        """Take the backend from pred; check pred is a non-empty float array and target an
        array of the same backend (a host array given to a GPU model fails here, clearly)."""
        # A training loop passes the same kinds of arrays every batch. When pred has the
        # type, device and dtype of the last pred that passed, and target pred's type and
        # device, the lookups below would find the same answers: only the shape is checked
        # again. Anything else takes the full checks and their error messages.
        kind = (type(pred), getattr(pred, "device", None), getattr(pred, "dtype", None))
        if kind == getattr(self, "_accepted", None) and (type(target), getattr(target, "device", None)) == kind[:2]:
            self._check_not_empty(pred)
            return
        try:
            self.backend = backend_of(pred)
        except TypeError:
            raise TypeError(f"{self._where()}: pred must be an array, found {type(pred).__name__}") from None
        if not self.xp.isdtype(pred.dtype, "real floating"):
            raise TypeError(f"{self._where()}: pred must be a floating-point array, found dtype {pred.dtype}")
        self._check_not_empty(pred)
        self.backend.check(target, "target", self._where())
        self._accepted = kind

    def _check_not_empty(self, pred) -> None:
        if pred.ndim == 0 or math.prod(pred.shape) == 0:
            raise ValueError(
                f"{self._where()}: pred has shape {tuple(pred.shape)}; "
                f"a loss needs at least one prediction (batch is axis 0)"
            )

    def _same_shape_target(self, pred, target):
        """target checked to have pred's shape (no silent broadcasting: (32, 1) against
        (32,) would broadcast to (32, 32)) and cast to pred's dtype."""
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"{self._where()}: pred has shape {tuple(pred.shape)} but target has shape "
                f"{tuple(target.shape)}; they must be the same"
            )
        if target.dtype != pred.dtype:
            target = self.xp.astype(target, pred.dtype)
        return target

    def _class_rows(self, pred, target, check_labels: bool):
        """target as rows of pred's shape (..., C) in pred's dtype: integer labels of shape
        pred.shape[:-1] become one-hot rows (range-checked if ``check_labels``), probability
        rows of pred's shape are cast. pred must be (batch, C) or (batch, ..., C)."""
        xp = self.xp
        if pred.ndim < 2:
            raise ValueError(
                f"{self._where()}: pred has shape {tuple(pred.shape)}, expected (batch, classes) "
                f"or (batch, ..., classes)"
            )
        C = pred.shape[-1]
        lead = tuple(pred.shape[:-1])  # one label per position: (batch,) or (batch, seq, ...)
        if target.ndim == pred.ndim - 1:
            if not xp.isdtype(target.dtype, "integral"):
                raise TypeError(
                    f"{self._where()}: a {target.ndim}-D target holds class labels, which must be integers, found "
                    f"dtype {target.dtype}; cast it with xp.astype(target, xp.int64), or pass rows of shape "
                    f"{tuple(pred.shape)}"
                )
            if tuple(target.shape) != lead:
                raise ValueError(
                    f"{self._where()}: pred has shape {tuple(pred.shape)} but target has shape "
                    f"{tuple(target.shape)}; labels need shape {lead}"
                )
            # int64 first: comparing uint8 labels with C = 300 would overflow the dtype
            target = xp.astype(target, xp.int64) if target.dtype != xp.int64 else target
            if check_labels:
                self.check_labels(target, C)
            classes = xp.arange(C, dtype=target.dtype, device=self.backend.device)
            return xp.astype(target[..., None] == classes, pred.dtype)
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"{self._where()}: pred has shape {tuple(pred.shape)} but target has shape "
                f"{tuple(target.shape)}; expected integer labels of shape {lead} "
                f"or probability rows of shape {tuple(pred.shape)}"
            )
        if target.dtype != pred.dtype:
            target = xp.astype(target, pred.dtype)
        return target

    def check_labels(self, labels, num_classes: int) -> None:
        """Raise a clear ValueError unless every label is in [0, num_classes).

        ``labels`` is (batch,) or one label per position (batch, seq, ...), checked whole.
        The one host sync of the label path: a label >= C would otherwise give a silently
        all-zero one-hot row (and on the GPU no error at all).
        """
        xp = backend_of(labels).xp  # the labels' own backend: fit may call this after model.to()
        flat = xp.reshape(labels, (-1,))
        bad = (flat < 0) | (flat >= num_classes)
        if bool(xp.any(bad)):
            k = _checks.first_true(xp, bad)
            value = int(flat[k])
            # the flat position as an index of labels (a plain number for 1-D labels)
            index = _checks.unravel(k, labels.shape) if labels.ndim > 1 else k
            raise ValueError(
                f"{self._where()}: labels must be integers in [0, {num_classes}), found {value} at index {index}"
            )

    def check_targets(self, target, num_outputs: int) -> None:
        """Raise a clear ValueError if ``target`` (the whole target array, on the device)
        cannot be meant for this loss with a model of ``num_outputs`` outputs.

        fit and evaluate call it once, not per batch (each check is a host sync). Here:
        nothing to check (regression targets may be any finite number); the classification
        losses override it.
        """

    def _check_unit_interval(self, target, what: str, hint: str = "") -> None:
        """Every value of target in [0, 1], else a ValueError naming the first one outside."""
        xp = backend_of(target).xp
        if not xp.isdtype(target.dtype, "real floating"):
            target = xp.astype(target, xp.float64 if xp.isdtype(target.dtype, "integral") else xp.float32)
        inside = (target >= 0.0) & (target <= 1.0)
        if bool(xp.all(inside)):
            return
        k = _checks.first_true(xp, ~inside)  # the first value outside
        value = backend_of(target).to_float(xp.reshape(target, (-1,))[k])
        row = k // (math.prod(target.shape[1:]) or 1)
        raise ValueError(f"{type(self).__name__}: {what} must be in [0, 1], found {value:g} in sample {row}{hint}")

    def _get_saved(self):
        if self._saved is None:
            raise RuntimeError(f"{self._where('backward')} called before forward")
        return self._saved


# name -> Loss class: what compile, get_loss and model files read
LOSSES = Registry("loss", "xpnn.losses.register_loss", Loss, normalize=str.lower)


def register_loss(cls):
    """Make a Loss subclass known by its ``name`` to ``compile``, ``get_loss`` and model
    files (use as a class decorator); its ``config()`` must return its constructor arguments."""
    return LOSSES.register(cls)


def _mean(backend, A):
    """The mean of every element as sum * (1 / n): NumPy's mean (and sum) spend several
    microseconds in Python before they add anything, which is most of a small batch's loss."""
    return backend.sum(A) * (1.0 / math.prod(A.shape))


def _positions(pred) -> int:
    """How many predictions a cross-entropy averages over: every position of pred
    (..., C) but the class axis (the batch for (batch, C), batch * seq for a sequence)."""
    return math.prod(pred.shape[:-1])


# ---- regression ----------------------------------------------------------------------------


@register_loss
class MSE(Loss):
    """Mean squared error: mean((pred - target)^2).

    Backward: d/d(pred) = 2 (pred - target) / n, n the number of elements.
    """

    name = "mse"

    def forward(self, pred, target):
        self._bind(pred, target)
        R = pred - self._same_shape_target(pred, target)  # residuals
        self._saved = R
        return _mean(self.backend, R * R)

    def backward(self):
        R = self._get_saved()
        return R * (2.0 / math.prod(R.shape))


@register_loss
class MAE(Loss):
    """Mean absolute error: mean(|pred - target|).

    Backward: sign(pred - target) / n (0 where they are equal, as in PyTorch).
    """

    name = "mae"

    def forward(self, pred, target):
        self._bind(pred, target)
        R = pred - self._same_shape_target(pred, target)
        self._saved = R
        return _mean(self.backend, self.xp.abs(R))

    def backward(self):
        R = self._get_saved()
        return self.xp.sign(R) * (1.0 / math.prod(R.shape))


@register_loss
class Huber(Loss):
    """Huber loss: quadratic near the target, linear far from it (robust to outliers).

    With r = pred - target: 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta)
    (PyTorch's HuberLoss). Backward: r where |r| <= delta, else delta sign(r); over n.
    """

    name = "huber"

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = _checks.positive_number(delta, "delta", "Huber")

    def forward(self, pred, target):
        self._bind(pred, target)
        xp, d = self.xp, self.delta
        R = pred - self._same_shape_target(pred, target)
        A = xp.abs(R)
        small = A <= d
        self._saved = (R, small)
        return _mean(self.backend, xp.where(small, 0.5 * R * R, d * (A - 0.5 * d)))

    def backward(self):
        R, small = self._get_saved()
        xp = self.xp
        return xp.where(small, R, self.delta * xp.sign(R)) * (1.0 / math.prod(R.shape))

    def config(self):
        return {"delta": self.delta}


# ---- binary classification -----------------------------------------------------------------


class _BinaryLoss(Loss):
    """Base of the binary cross-entropies: targets are 0/1 labels or probabilities."""

    classifies = True

    def check_targets(self, target, num_outputs: int) -> None:
        self._check_unit_interval(
            target,
            "targets (0/1 labels or probabilities)",
            "; for class labels 0..C-1 use softmax_cross_entropy with one output per class",
        )


@register_loss
class BinaryCrossEntropy(_BinaryLoss):
    """Binary cross-entropy on probabilities p (e.g. after a Sigmoid layer):
    mean(-(y log p + (1 - y) log(1 - p))), target y in [0, 1] (checked once per fit and
    evaluate by ``check_targets``, not in forward: that would cost a host sync every batch).

    p is clipped to [eps, 1 - eps] so neither log sees 0. Backward: (p - y) / (p (1 - p)) / n,
    with the clipped p in the denominator. Beyond the clip the forward is flat, but the
    gradient keeps the slope at the edge, so a confidently wrong prediction still gets
    pushed back (as PyTorch does by clamping the same denominator).

    Prefer :class:`BCEWithLogits` on raw scores: it is exact where this one must clip.
    """

    name = "bce"

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = _checks.number(eps, "eps", "BinaryCrossEntropy", 0.0, 0.5, low_open=True, high_open=True)

    def forward(self, pred, target):
        self._bind(pred, target)
        xp = self.xp
        Y = self._same_shape_target(pred, target)
        lo, hi, one, n = self.backend.constants(pred.dtype, self.eps, 1.0 - self.eps, 1.0, float(math.prod(pred.shape)))
        # clip as maximum + minimum: array-api-compat's clip spends several microseconds on
        # argument handling, far more than a small batch's arithmetic
        Pc = xp.minimum(xp.maximum(pred, lo), hi)
        Qc = one - Pc
        self._saved = (pred, Y, Pc, Qc, n)
        # y log p + (1 - y) log(1 - p) as log(1 - p) + y (log p - log(1 - p)): one operation fewer
        log_q = xp.log(Qc)
        terms = xp.log(Pc)
        terms -= log_q
        terms *= Y
        terms += log_q
        return -_mean(self.backend, terms)

    def backward(self):
        P, Y, Pc, Qc, n = self._get_saved()
        den = Pc * Qc
        den *= n  # the number of predictions
        dP = P - Y
        dP /= den
        return dP

    def config(self):
        return {"eps": self.eps}


@register_loss
class BCEWithLogits(_BinaryLoss):
    """Binary cross-entropy on logits x (raw scores, no Sigmoid layer), fused and stable.

    The loss -(y log s(x) + (1 - y) log(1 - s(x))) with s the sigmoid simplifies to
    max(x, 0) - x y + log(1 + exp(-|x|)): exp only ever sees a number <= 0, so x = +-1000
    is fine. Backward: (s(x) - y) / n, no division by s(x)(1 - s(x)) at all.
    ``predict`` returns s(x), the probability.
    """

    name = "bce_with_logits"

    def forward(self, pred, target):
        self._bind(pred, target)
        xp = self.xp
        Y = self._same_shape_target(pred, target)
        self._saved = (pred, Y)
        relu = xp.maximum(pred, 0.0)  # max(x, 0)
        return _mean(self.backend, relu - pred * Y + xp.log1p(xp.exp(-xp.abs(pred))))

    def backward(self):
        X, Y = self._get_saved()
        return (sigmoid(self.xp, X) - Y) * (1.0 / math.prod(X.shape))

    def predict(self, pred):
        return sigmoid(backend_of(pred).xp, pred)


# ---- multi-class classification ------------------------------------------------------------


class _ClassLoss(Loss):
    """Base of the cross-entropies: targets are labels (n,) in [0, C) or rows (n, C) in [0, 1]."""

    classifies = True

    accepts_labels = True

    def check_targets(self, target, num_outputs: int) -> None:
        if target.ndim == 1:
            self.check_labels(target, num_outputs)
        else:
            self._check_unit_interval(target, "target rows (one-hot or class probabilities)")


@register_loss
class SoftmaxCrossEntropy(_ClassLoss):
    """Softmax and cross-entropy fused, on logits (no Softmax layer before it).

    pred: logits (batch, C), or (batch, seq, C) for a prediction at every position of a
    sequence (a language model). target: integer labels of pred's shape without the class
    axis ((batch,) or (batch, seq)) or probability rows of pred's shape. The loss is
    -sum(T * log_softmax(pred)) / n, n the number of positions (batch, or batch * seq:
    the mean over every position, as PyTorch's cross_entropy), with log_softmax computed
    as shifted - log(sum(exp(shifted))), shifted = pred - rowmax: stable for +-1000.

    label_smoothing ls mixes the target with the uniform distribution, as in PyTorch:
    T = (1 - ls) T + ls / C.

    Backward, fused: (softmax(pred) * rowsum(T) - T) / n, which is the familiar
    (softmax(pred) - T) / n because each row of T sums to 1 (labels, one-hot or
    probability rows, smoothed or not). Going through a Softmax layer and CrossEntropy
    gives the same gradient with more work and a division by p.
    ``predict`` returns softmax(pred), the class probabilities.
    """

    name = "softmax_cross_entropy"

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = _checks.number(
            label_smoothing, "label_smoothing", "SoftmaxCrossEntropy", 0.0, 1.0, high_open=True
        )

    def forward(self, pred, target, check_labels: bool = True):
        self._bind(pred, target)
        xp = self.xp
        from_labels = target.ndim == pred.ndim - 1
        T = self._class_rows(pred, target, check_labels)
        C = pred.shape[-1]
        if C < 2:  # the softmax of one logit is always 1: the loss is 0 and nothing is learnt
            raise ValueError(
                f"SoftmaxCrossEntropy: pred has {C} column; a softmax cross-entropy needs at least 2 outputs "
                f"(one per class); for one output, a binary problem, use bce_with_logits"
            )
        ls = self.label_smoothing
        if ls > 0.0:
            T = (1.0 - ls) * T + ls / C
        logp = log_softmax(xp, pred)
        self._saved = (logp, T, from_labels)
        return -xp.sum(T * logp) * (1.0 / _positions(pred))

    def backward(self):
        logp, T, from_labels = self._get_saved()
        xp = self.xp
        P = xp.exp(logp)  # softmax(pred), from what forward kept
        if not from_labels:
            # rows given by the user may not sum to exactly 1: keep the gradient exact
            P = P * xp.sum(T, axis=-1, keepdims=True)
        return (P - T) * (1.0 / _positions(logp))

    def predict(self, pred):
        return softmax(backend_of(pred).xp, pred)

    def config(self):
        return {"label_smoothing": self.label_smoothing}


@register_loss
class CrossEntropy(_ClassLoss):
    """Classic cross-entropy on probabilities p (e.g. after a Softmax layer):
    -sum(T * log p) / n, n the number of positions (batch, or batch * seq).

    pred: probabilities (batch, C) or (batch, seq, C). target: integer labels of pred's
    shape without the class axis, or one-hot / probability rows of pred's shape. p is
    clipped below at eps (log 0 is the only danger; p = 1 still gives exactly 0).
    Backward: -T / p / n, with the clipped p.

    Prefer :class:`SoftmaxCrossEntropy` on logits: fused, exact and cheaper.
    """

    name = "cross_entropy"

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = _checks.number(eps, "eps", "CrossEntropy", 0.0, 0.5, low_open=True, high_open=True)

    def forward(self, pred, target, check_labels: bool = True):
        self._bind(pred, target)
        xp = self.xp
        T = self._class_rows(pred, target, check_labels)
        Pc = xp.maximum(pred, self.eps)
        self._saved = (T, Pc)
        return -xp.sum(T * xp.log(Pc)) * (1.0 / _positions(pred))

    def backward(self):
        T, Pc = self._get_saved()
        return -T / Pc * (1.0 / _positions(Pc))

    def config(self):
        return {"eps": self.eps}


# ---- lookup by name ------------------------------------------------------------------------


def get_loss(loss, **config) -> Loss:
    """A Loss from a name ("mse", "cross_entropy", ...) with optional constructor
    arguments (``get_loss("huber", delta=2.0)``), or a Loss instance, returned as is."""
    if isinstance(loss, Loss):
        if config:
            raise ValueError(
                f"get_loss: arguments {sorted(config)} given with a Loss instance {loss!r}; "
                f"pass them to its constructor instead"
            )
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss(**config)
    cls = LOSSES.lookup(loss)
    if cls is not None:
        return cls(**config)
    raise ValueError(f"loss must be one of {sorted(LOSSES)} or a Loss instance, found {loss!r}")
