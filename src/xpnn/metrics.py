"""Metrics: how good a model's predictions are, as plain Python numbers.

Every metric is ``metric(y_true, y_pred, ...)``. The inputs may be NumPy arrays or arrays
of any xpnn backend; a host NumPy array next to a device array is copied to that device
(labels often stay on the host while predictions come from the GPU). The work is done
with array-API operations where the arrays live, and a call ends with one transfer of a
few numbers to the host (plus one more to validate labels): metrics run at epoch end,
never per batch, so that sync is cheap.

What the classification metrics accept
--------------------------------------
y_pred, any of:
  - class labels, integers of shape (n,);
  - class scores of shape (n, C): probabilities, logits, any scores. The predicted class
    is the argmax of each row (the first one on ties);
  - for a binary problem, probabilities of class 1, floats in [0, 1] of shape (n,) or
    (n, 1). The predicted class is 1 where p > 0.5 (so p = 0.5 gives 0, as the argmax of
    [1 - p, p] would).
y_true, any of:
  - class labels of shape (n,) or (n, 1): integers, or floats holding whole numbers
    (binary targets are often stored as 0.0/1.0 for a sigmoid loss);
  - one-hot (or probability) rows of shape (n, C): the class is the argmax of each row.

Classes are the integers 0 .. K-1 (K is the number of score columns, or the largest
label + 1). Averages over classes follow scikit-learn: only classes that occur in y_true
or y_pred take part. A class that is never predicted has precision 0 (and a class
absent from y_true recall 0), silently: 0/0 is taken as 0, never NaN, never a warning.

The regression metrics (mse, mae, r2) take y_true and y_pred of the same shape,
(n,) or (n, outputs); (n,) and (n, 1) are taken as the same.

Non-finite values never rank: scores, probabilities or regression values that hold NaN
or inf (a diverged model's outputs) are an error naming the first one, as in
scikit-learn, never read as a class or a number. (The argmax of an all-NaN row would
otherwise be class 0.) ``fit``'s logs and the searches give a metric NaN instead when a
model's outputs are not finite, so a diverged trial is reported as failed, never best.

``get_metric(name)`` turns the names ``model.compile(metrics=[...])`` accepts into these
functions; ``METRIC_MODE[name]`` (and each function's ``higher_is_better``) tells
callbacks whether larger is better.
"""

from __future__ import annotations

from ._checks import first_true, is_integer, non_negative_int, optional_positive_int, positive_int
from .backends import common_backend, python_scalar
from .functional import bincount

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "confusion_matrix",
    "classification_report",
    "mse",
    "mae",
    "r2",
    "get_metric",
    "METRICS",
    "METRIC_MODE",
]

_AVERAGES = ("binary", "macro", "micro", "weighted", "auto")


# ---- inputs: labels, validation ---------------------------------------------------------


def _check_lengths(where, y_true, y_pred):
    for argname, a in (("y_true", y_true), ("y_pred", y_pred)):
        if a.ndim == 0:
            raise ValueError(f"{where}: {argname} must have one entry per sample (axis 0), found a 0-d array")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"{where}: y_true has {y_true.shape[0]} samples but y_pred has {y_pred.shape[0]}; they must be the same"
        )
    if y_true.shape[0] == 0:
        raise ValueError(f"{where}: y_true and y_pred are empty; a metric needs at least one sample")


class _Labels:
    """Class labels read from y_true or y_pred.

    values: (n,) int64 labels.
    width: C when they came from (n, C) rows, 2 for binary probabilities, else None;
    what: how the width came about, for error messages.
    bad: (n,) bool marking entries that break ``rule`` (None when nothing can be wrong);
    source: the (n,) array the bad entries are reported from.
    """

    def __init__(self, values, width=None, what="", bad=None, rule="", source=None, describe=None):
        self.values, self.width, self.what = values, width, what
        self.bad, self.rule, self.source = bad, rule, source
        # describe(i): the offending entry of row i, for the error (default: source[i] at index i)
        self.describe = describe or (lambda i: f"{python_scalar(source[i])} at index {i}")


_NONFINITE_RULE = "must be finite (NaN or inf: did training diverge?)"


def _nonfinite_in_row(xp, y):
    """For (n, C) scores: a describe(i) naming the first non-finite entry of row i."""

    def describe(i):
        j = first_true(xp, ~xp.isfinite(y[i, :]))
        return f"{python_scalar(y[i, j])} at row {i}, column {j}"

    return describe


def _read_labels(xp, y, argname, where, is_pred):
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # (n, 1) columns, as a sigmoid output or a column of targets, are (n,)
    if xp.isdtype(y.dtype, "bool"):
        return _Labels(xp.astype(y, xp.int64))
    if not xp.isdtype(y.dtype, ("integral", "real floating")):
        raise TypeError(f"{where}: {argname} must hold real numbers, found dtype {y.dtype}")
    if y.ndim == 2:
        C = y.shape[1]
        if C == 0:
            raise ValueError(f"{where}: {argname} has shape {tuple(y.shape)}: no class columns")
        labels = xp.astype(xp.argmax(y, axis=1), xp.int64)
        what = f"{argname} has {C} columns"
        if xp.isdtype(y.dtype, "integral"):
            return _Labels(labels, width=C, what=what)
        # the argmax of a row holding NaN says nothing about the class: an error, not class 0
        return _Labels(
            labels,
            width=C,
            what=what,
            bad=~xp.all(xp.isfinite(y), axis=1),
            rule=f"holds class scores, which {_NONFINITE_RULE}",
            describe=_nonfinite_in_row(xp, y),
        )
    if y.ndim != 1:
        raise ValueError(f"{where}: {argname} has shape {tuple(y.shape)}; expected labels (n,) or class scores (n, C)")
    if xp.isdtype(y.dtype, "integral"):
        return _Labels(xp.astype(y, xp.int64), bad=y < 0, rule="holds class labels, which must be >= 0", source=y)
    if is_pred:
        # NaN fails both comparisons, so it is caught too
        return _Labels(
            xp.astype(y > 0.5, xp.int64),
            width=2,
            what="y_pred holds probabilities of class 1",
            bad=~((y >= 0.0) & (y <= 1.0)),
            rule="is 1-D floats, read as probabilities of class 1, which must lie in "
            "[0, 1] (pass class labels as integers)",
            source=y,
        )
    bad = ~((y >= 0.0) & (y == xp.floor(y)) & xp.isfinite(y))  # inf == floor(inf)
    # zero the bad entries before the cast: casting NaN to an integer warns (an error in tests)
    values = xp.astype(xp.where(bad, xp.zeros_like(y), y), xp.int64)
    return _Labels(values, bad=bad, rule="holds class labels, which must be whole numbers >= 0", source=y)


def _fetch(be, values):
    """0-d arrays as Python floats, in one device-to-host transfer.

    Counts go through float64 too: exact below 2**53, far beyond any data set here.
    """
    xp = be.xp
    stacked = xp.stack([xp.astype(v, xp.float64) for v in values])
    return be.to_numpy(stacked).tolist()


def _validate(be, where, named, width=None, width_note=""):
    """Raise on the first bad entry of each ``(argname, _Labels)``; return K, the number
    of classes: at least ``width`` (the score columns), and above every label.

    One host sync covers every check: the largest label of each and a flag per rule.
    Labels must be below ``width``; width_note says where that width came from.
    """
    xp = be.xp
    flagged = [(argname, lab) for argname, lab in named if lab.bad is not None]
    host = _fetch(be, [xp.max(lab.values) for _, lab in named] + [xp.any(lab.bad) for _, lab in flagged])
    for (argname, lab), any_bad in zip(flagged, host[len(named) :]):
        if any_bad:
            i = first_true(xp, lab.bad)
            raise ValueError(f"{where}: {argname} {lab.rule}, found {lab.describe(i)}")
    largest = [int(v) for v in host[: len(named)]]
    if width is not None:
        for (argname, lab), top in zip(named, largest):
            if top >= width:
                i = first_true(xp, lab.values >= width)
                raise ValueError(
                    f"{where}: {argname} labels must be integers in [0, {width}){width_note}, "
                    f"found {python_scalar(lab.values[i])} at index {i}"
                )
    return max(max(largest) + 1, width or 0)


def _class_labels(where, y_true, y_pred):
    """(backend, true labels (n,), predicted labels (n,), K) from any accepted y_true/y_pred."""
    be, (y_true, y_pred) = common_backend(where, y_true=y_true, y_pred=y_pred)
    _check_lengths(where, y_true, y_pred)
    xp = be.xp
    t = _read_labels(xp, y_true, "y_true", where, is_pred=False)
    p = _read_labels(xp, y_pred, "y_pred", where, is_pred=True)
    if t.width and p.width and t.width != p.width:
        raise ValueError(f"{where}: {t.what} but {p.what}; they must agree on the number of classes")
    widest = max((lab for lab in (p, t) if lab.width), key=lambda lab: lab.width, default=None)
    width, note = (widest.width, f" ({widest.what})") if widest else (None, "")
    K = _validate(be, where, [("y_true", t), ("y_pred", p)], width, note)
    return be, t.values, p.values, K


# ---- classification ---------------------------------------------------------------------


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted class is the true class.

    y_true: labels (n,) or one-hot rows (n, C); y_pred: labels (n,), scores (n, C) or
    binary probabilities (n,). Example: y_true [0, 1, 2, 2], y_pred [0, 2, 2, 2] -> 3/4.
    """
    be, t, p, _ = _class_labels("accuracy", y_true, y_pred)
    xp = be.xp
    (hits,) = _fetch(be, [xp.sum(xp.astype(t == p, xp.int64))])
    return hits / t.shape[0]


def top_k_accuracy(y_true, y_pred, k: int = 5) -> float:
    """Fraction of samples whose true class is among the k highest scores.

    y_true: labels (n,) or one-hot rows (n, C); y_pred: scores (n, C).
    Ties count in the sample's favour (as Keras' in_top_k does): the true class is in the
    top k when fewer than k classes score strictly higher. k >= C gives 1.0.
    """
    where = "top_k_accuracy"
    k = positive_int(k, "k", where)
    be, (y_true, y_pred) = common_backend(where, y_true=y_true, y_pred=y_pred)
    _check_lengths(where, y_true, y_pred)
    xp = be.xp
    if y_pred.ndim != 2 or not xp.isdtype(y_pred.dtype, ("integral", "real floating")):
        raise ValueError(
            f"{where}: y_pred must be class scores of shape (n, C), "
            f"found shape {tuple(y_pred.shape)} and dtype {y_pred.dtype}"
        )
    n, C = y_pred.shape
    t = _read_labels(xp, y_true, "y_true", where, is_pred=False)
    p = _read_labels(xp, y_pred, "y_pred", where, is_pred=True)  # its bad rows: non-finite scores
    _validate(be, where, [("y_true", t), ("y_pred", p)], C, f" (y_pred has {C} columns)")
    # each sample's score for its true class: a gather from the flattened (n * C,) scores
    rows = xp.arange(n, dtype=xp.int64, device=be.device)
    true_score = xp.take(xp.reshape(y_pred, (-1,)), rows * C + t.values)
    higher = xp.sum(xp.astype(y_pred > true_score[:, None], xp.int64), axis=1)  # (n,)
    (hits,) = _fetch(be, [xp.sum(xp.astype(higher < k, xp.int64))])
    return hits / n


def _counts(where, y_true, y_pred):
    """Per class c (lists of K ints): true positives, times predicted (tp + fp) and
    support, times true (tp + fn); and K. One host transfer for all three."""
    be, t, p, K = _class_labels(where, y_true, y_pred)
    xp = be.xp
    # a correct prediction counts in its class's bin, a wrong one in the spare bin K
    hit_bin = xp.where(t == p, t, xp.full_like(t, K))
    stacked = xp.stack([bincount(be, hit_bin, K + 1)[:K], bincount(be, p, K), bincount(be, t, K)])
    tp, predicted, support = be.to_numpy(stacked).tolist()
    return tp, predicted, support, K


def _ratio(a, b):
    return a / b if b else 0.0  # 0/0 (a class never predicted, or never true) is 0


def _per_class(tp, predicted, support):
    """Lists of per-class precision, recall, F1 (0 where undefined)."""
    prec = [_ratio(a, b) for a, b in zip(tp, predicted)]
    rec = [_ratio(a, b) for a, b in zip(tp, support)]
    # F1 = harmonic mean of precision and recall = 2 tp / (2 tp + fp + fn)
    f = [_ratio(2 * a, b + c) for a, b, c in zip(tp, predicted, support)]
    return prec, rec, f


def _averaged(where, y_true, y_pred, average, pos_label):
    """(precision, recall, f1) under one averaging rule."""
    if average not in _AVERAGES:
        raise ValueError(f"{where}: average must be one of {_AVERAGES}, found {average!r}")
    tp, predicted, support, K = _counts(where, y_true, y_pred)
    if average == "auto":
        average = "binary" if K <= 2 else "macro"
    if average == "binary":
        if K > 2:
            raise ValueError(
                f"{where}: average='binary' needs two classes (labels 0 and 1), found "
                f"{K} classes; use average='macro', 'micro' or 'weighted'"
            )
        if not is_integer(pos_label) or pos_label not in (0, 1):
            raise ValueError(f"{where}: pos_label must be 0 or 1, found {pos_label!r}")
        tp, predicted, support = ([*v, 0][:2] for v in (tp, predicted, support))  # K may be 1
        return tuple(m[int(pos_label)] for m in _per_class(tp, predicted, support))
    if average == "micro":
        # every wrong prediction is one fp (for its predicted class) and one fn (for its
        # true class), so all three equal the accuracy here
        a, b, c = sum(tp), sum(predicted), sum(support)
        return _ratio(a, b), _ratio(a, c), _ratio(2 * a, b + c)
    scores = _per_class(tp, predicted, support)
    if average == "macro":
        present = [b + c > 0 for b, c in zip(predicted, support)]
        return tuple(sum(s for s, keep in zip(m, present) if keep) / sum(present) for m in scores)
    # weighted: each class counts in proportion to its support
    return tuple(sum(s * w for s, w in zip(m, support)) / sum(support) for m in scores)


_AVERAGE_DOC = """
    average:
      "binary": the score of class ``pos_label`` (0 or 1); needs a two-class problem.
      "macro": the unweighted mean over the classes present in y_true or y_pred.
      "micro": from the total counts over all classes (equals the accuracy for
         single-label problems).
      "weighted": the mean over classes weighted by their support (true count).
      "auto": "binary" for two classes, "macro" otherwise (what ``get_metric`` uses).
"""


def precision(y_true, y_pred, average: str = "binary", pos_label: int = 1) -> float:
    """Of the samples predicted as a class, the fraction that truly are: tp / (tp + fp).

    Example: y_true [0, 1, 1, 1], y_pred [0, 0, 1, 1] -> class 1 precision 2/2 = 1.0,
    class 0 precision 1/2; macro average 0.75.
    """
    return _averaged("precision", y_true, y_pred, average, pos_label)[0]


def recall(y_true, y_pred, average: str = "binary", pos_label: int = 1) -> float:
    """Of the samples truly in a class, the fraction predicted as it: tp / (tp + fn).

    Example: y_true [0, 1, 1, 1], y_pred [0, 0, 1, 1] -> class 1 recall 2/3.
    """
    return _averaged("recall", y_true, y_pred, average, pos_label)[1]


def f1(y_true, y_pred, average: str = "binary", pos_label: int = 1) -> float:
    """Harmonic mean of precision and recall: 2 tp / (2 tp + fp + fn).

    Example: y_true [0, 1, 1, 1], y_pred [0, 0, 1, 1] -> class 1 F1 4/5 = 0.8.
    """
    return _averaged("f1", y_true, y_pred, average, pos_label)[2]


for _fn in (precision, recall, f1):
    if _fn.__doc__:  # None under python -OO
        _fn.__doc__ += _AVERAGE_DOC


def confusion_matrix(y_true, y_pred, num_classes: int | None = None):
    """Counts (K, K) NumPy int64: entry [i, j] is how many samples of true class i were
    predicted as class j (rows true, columns predicted, as in scikit-learn).

    K is ``num_classes``, or the number of score columns, or the largest label + 1. Unlike
    scikit-learn, a class in 0 .. K-1 that never occurs keeps its (all-zero) row and column.
    Example: y_true [0, 1, 1], y_pred [0, 0, 1] -> [[1, 0], [1, 1]].
    """
    where = "confusion_matrix"
    num_classes = optional_positive_int(num_classes, "num_classes", where)
    be, t, p, K = _class_labels(where, y_true, y_pred)
    if num_classes is not None:
        if K > num_classes:
            raise ValueError(
                f"{where}: labels must be integers in [0, {num_classes}) for num_classes="
                f"{num_classes}, found label {K - 1}"
            )
        K = num_classes
    counts = bincount(be, t * K + p, K * K)  # the pair (i, j) as one index i * K + j
    return be.to_numpy(be.xp.reshape(counts, (K, K))).astype("int64", copy=True)


def classification_report(y_true, y_pred, target_names=None, digits: int = 2) -> str:
    """A text table of per-class precision, recall, F1 and support, laid out as
    scikit-learn's ``classification_report``, with the accuracy and the macro and
    weighted averages below.

    Rows are the classes present in y_true or y_pred. target_names: a name per class,
    indexed by label (so it needs at least K entries); default the label itself.
    """
    where = "classification_report"
    digits = non_negative_int(digits, "digits", where)
    tp, predicted, support, K = _counts(where, y_true, y_pred)
    if target_names is None:
        target_names = [str(c) for c in range(K)]
    elif len(target_names) < K:
        raise ValueError(f"{where}: target_names has {len(target_names)} names but there are {K} classes")
    present = [c for c in range(K) if predicted[c] + support[c] > 0]
    prec, rec, f = _per_class(tp, predicted, support)
    rows = [(str(target_names[c]), prec[c], rec[c], f[c], support[c]) for c in present]
    n = sum(support)
    macro = [sum(m[c] for c in present) / len(present) for m in (prec, rec, f)]
    weighted = [sum(m[c] * support[c] for c in present) / n for m in (prec, rec, f)]

    headers = ["precision", "recall", "f1-score", "support"]
    width = max(max(len(r[0]) for r in rows), len("weighted avg"), digits)
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    report = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
    for row in rows:
        report += row_fmt.format(*row, width=width, digits=digits)
    report += "\n"
    blank = " " + " " * 9
    report += ("{:>{width}s} " + blank * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", sum(tp) / n, n, width=width, digits=digits
    )
    report += row_fmt.format("macro avg", *macro, n, width=width, digits=digits)
    report += row_fmt.format("weighted avg", *weighted, n, width=width, digits=digits)
    return report


def _twice_rank_sum(xp, scores, positive):
    """Twice the sum of the ranks (1-based, ties averaged) of the positive samples.

    scores: (n,); positive: (n,) bool. In the sorted scores, ``below`` (searchsorted
    left) counts the scores smaller than each one and ``upto`` (right) those smaller or
    equal, so a run of tied scores holds ranks below+1 .. upto and its average rank is
    (below + upto + 1) / 2. Doubled, that stays an exact integer. (Searching for the
    sorted scores themselves, in order, is about 3x faster than for unsorted queries.)
    """
    order = xp.argsort(scores)
    ordered = xp.take(scores, order)
    below = xp.searchsorted(ordered, ordered, side="left")
    upto = xp.searchsorted(ordered, ordered, side="right")
    return xp.sum((below + upto + 1) * xp.astype(xp.take(positive, order), below.dtype))


def _auc_from_ranks(twice_rank_sum, n_pos, n):
    """The Mann-Whitney U statistic over n_pos * n_neg: the probability that a random
    positive scores above a random negative, ties counting one half."""
    n_neg = n - n_pos
    # U = (rank sum of positives) - n_pos (n_pos + 1) / 2, everything doubled to stay integral
    return (twice_rank_sum - n_pos * (n_pos + 1)) / (2 * n_pos * n_neg)


def roc_auc(y_true, y_score, average: str = "macro") -> float:
    """Area under the ROC curve: the probability that a random positive sample scores
    higher than a random negative one (ties count 1/2), via average ranks.

    Binary: y_true labels 0/1 (n,); y_score (n,) or (n, 1) scores of class 1, or (n, 2)
    scores (column 1 is used). Multi-class: y_score (n, C), C >= 3, one-vs-rest: the AUC
    of each class against the others, averaged ("macro", or "weighted" by each class's
    count in y_true) over the classes that have both positives and negatives in y_true
    (scikit-learn would raise when a class is missing). Any scores work: probabilities,
    logits; only their order matters.

    Example: y_true [0, 0, 1, 1], y_score [0.1, 0.4, 0.35, 0.8]: of the 4 (positive,
    negative) pairs, 3 are ordered right -> 0.75.

    Raises ValueError when y_true holds a single class (the AUC is undefined).
    """
    where = "roc_auc"
    if average not in ("macro", "weighted"):
        raise ValueError(f"{where}: average must be 'macro' or 'weighted', found {average!r}")
    be, (y_true, y_score) = common_backend(where, y_true=y_true, y_score=y_score)
    _check_lengths(where, y_true, y_score)
    xp = be.xp
    if xp.isdtype(y_score.dtype, "bool") or not xp.isdtype(y_score.dtype, ("integral", "real floating")):
        raise TypeError(f"{where}: y_score must hold real-valued scores, found dtype {y_score.dtype}")
    if y_score.ndim == 2 and y_score.shape[1] == 1:
        y_score = y_score[:, 0]
    if y_score.ndim == 2 and y_score.shape[1] == 2:
        y_score = y_score[:, 1]  # two softmax columns: the score of class 1 decides the order
    if y_score.ndim not in (1, 2):
        raise ValueError(f"{where}: y_score must be scores (n,) or (n, C), found shape {tuple(y_score.shape)}")
    binary = y_score.ndim == 1
    C = 2 if binary else y_score.shape[1]
    t = _read_labels(xp, y_true, "y_true", where, is_pred=False)
    note = " (a binary y_score)" if binary else f" (y_score has {C} columns)"
    _validate(be, where, [("y_true", t)], C, note)

    n = t.values.shape[0]
    classes = [1] if binary else range(C)
    columns = [y_score] if binary else [y_score[:, c] for c in classes]
    positives = [t.values == c for c in classes]
    checks = [_twice_rank_sum(xp, s, pos) for s, pos in zip(columns, positives)]
    checks += [xp.sum(xp.astype(pos, xp.int64)) for pos in positives]
    floating = xp.isdtype(y_score.dtype, "real floating")
    if floating:
        checks.append(xp.any(~xp.isfinite(y_score)))  # NaN has no place in an order, inf none in scores
    host = _fetch(be, checks)
    if floating and host[-1]:
        flat = xp.reshape(y_score, (-1,))
        i = first_true(xp, ~xp.isfinite(flat))
        raise ValueError(f"{where}: y_score {_NONFINITE_RULE}, found {python_scalar(flat[i])} at flat index {i}")
    rank_sums, n_pos = host[: len(classes)], [int(v) for v in host[len(classes) : 2 * len(classes)]]
    defined = [(r, p) for r, p in zip(rank_sums, n_pos) if 0 < p < n]
    if not defined:
        only = python_scalar(t.values[0])
        raise ValueError(
            f"{where}: y_true holds only class {only}; ROC AUC needs samples of at least "
            f"two classes (positives and negatives)"
        )
    aucs = [_auc_from_ranks(r, p, n) for r, p in defined]
    if binary or average == "macro":
        return sum(aucs) / len(aucs)
    weights = [p for _, p in defined]
    return sum(a * w for a, w in zip(aucs, weights)) / sum(weights)


# ---- regression -------------------------------------------------------------------------


def _regression_pair(where, y_true, y_pred):
    """(backend, y_true, y_pred) as floating (n, outputs) arrays of one shape and dtype."""
    be, (y_true, y_pred) = common_backend(where, y_true=y_true, y_pred=y_pred)
    _check_lengths(where, y_true, y_pred)
    xp = be.xp
    for argname, a in (("y_true", y_true), ("y_pred", y_pred)):
        if not xp.isdtype(a.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{where}: {argname} must hold real numbers, found dtype {a.dtype}")
        if a.ndim > 2:
            raise ValueError(f"{where}: {argname} must have shape (n,) or (n, outputs), found {tuple(a.shape)}")
    t = y_true[:, None] if y_true.ndim == 1 else y_true
    p = y_pred[:, None] if y_pred.ndim == 1 else y_pred
    if tuple(t.shape) != tuple(p.shape):
        raise ValueError(
            f"{where}: y_true has shape {tuple(y_true.shape)} but y_pred has shape "
            f"{tuple(y_pred.shape)}; they must be the same"
        )
    # compute in the floating dtype given (float32 stays float32); integers go to float64
    floats = [a.dtype for a in (p, t) if xp.isdtype(a.dtype, "real floating")]
    dtype = xp.result_type(*floats) if floats else xp.float64
    t, p = xp.astype(t, dtype), xp.astype(p, dtype)
    # one host sync: a NaN or inf would make the metric NaN or inf, and rank as such
    flags = _fetch(be, [xp.any(~xp.isfinite(t)), xp.any(~xp.isfinite(p))])
    for argname, a, flag in (("y_true", t, flags[0]), ("y_pred", p, flags[1])):
        if flag:
            flat = xp.reshape(a, (-1,))
            i = first_true(xp, ~xp.isfinite(flat))
            raise ValueError(f"{where}: {argname} {_NONFINITE_RULE}, found {python_scalar(flat[i])} at flat index {i}")
    return be, t, p


def mse(y_true, y_pred) -> float:
    """Mean squared error over every entry: mean((y_pred - y_true)**2).

    Example: y_true [1, 2, 3], y_pred [1, 2, 5] -> (0 + 0 + 4) / 3.
    """
    be, t, p = _regression_pair("mse", y_true, y_pred)
    return _fetch(be, [be.xp.mean((p - t) ** 2)])[0]


def mae(y_true, y_pred) -> float:
    """Mean absolute error over every entry: mean(|y_pred - y_true|).

    Example: y_true [1, 2, 3], y_pred [1, 2, 5] -> 2 / 3.
    """
    be, t, p = _regression_pair("mae", y_true, y_pred)
    return _fetch(be, [be.xp.mean(be.xp.abs(p - t))])[0]


def r2(y_true, y_pred) -> float:
    """Coefficient of determination: 1 - sum((y - y_pred)**2) / sum((y - mean(y))**2).

    1 is a perfect fit, 0 is as good as predicting the mean, below 0 worse. With several
    outputs (n, k) it is the plain mean of the k per-output scores. A constant y_true
    gives 1.0 for a perfect prediction and 0.0 otherwise (scikit-learn's convention).
    Example: y_true [1, 2, 3], y_pred [1, 2, 5] -> 1 - 4 / 2 = -1.
    """
    where = "r2"
    be, t, p = _regression_pair(where, y_true, y_pred)
    if t.shape[0] < 2:
        raise ValueError(f"{where}: R^2 needs at least 2 samples, found {t.shape[0]}")
    xp = be.xp
    residual = xp.sum((t - p) ** 2, axis=0)  # (k,)
    total = xp.sum((t - xp.mean(t, axis=0)) ** 2, axis=0)
    k = t.shape[1]
    res, tot = be.to_numpy(xp.stack([residual, total])).tolist()  # one transfer: (2, k)
    scores = []
    for r, s in zip(res, tot):
        if s == 0.0:
            scores.append(1.0 if r == 0.0 else 0.0)
        else:
            scores.append(1.0 - r / s)
    return sum(scores) / k


# ---- registry ---------------------------------------------------------------------------


def _by_name(name, fn, **fixed):
    """fn with some keyword arguments fixed, under a metric name."""

    def metric(y_true, y_pred):
        return fn(y_true, y_pred, **fixed)

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = f"{fn.__name__}(y_true, y_pred, " + ", ".join(f"{k}={v!r}" for k, v in fixed.items()) + ")"
    return metric


#: The metrics ``get_metric`` knows by name. precision, recall and f1 use average="auto":
#: the class-1 score for a two-class problem, the macro average for more classes.
METRICS = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "precision": _by_name("precision", precision, average="auto"),
    "recall": _by_name("recall", recall, average="auto"),
    "f1": _by_name("f1", f1, average="auto"),
    "roc_auc": roc_auc,
    "mse": mse,
    "mae": mae,
    "r2": r2,
}
_ALIASES = {"acc": "accuracy", "auc": "roc_auc"}

#: "max" where a larger value is better, "min" where smaller is (for EarlyStopping and
#: ModelCheckpoint's mode="auto"), for every name and alias.
METRIC_MODE = {name: ("min" if name in ("mse", "mae") else "max") for name in [*METRICS, *_ALIASES]}

for _name, _fn in METRICS.items():
    _fn.higher_is_better = METRIC_MODE[_name] == "max"
for _fn in (precision, recall, f1):
    _fn.higher_is_better = True  # type: ignore[attr-defined]  # a function attribute, read with getattr
del _name, _fn


def get_metric(name_or_callable):
    """The metric function for a name (case-insensitive; see ``METRICS``, plus the aliases
    "acc" and "auc"), or a callable ``metric(y_true, y_pred)`` returned as it is."""
    if callable(name_or_callable):
        return name_or_callable
    if not isinstance(name_or_callable, str):
        raise TypeError(
            f"metric must be a name or a callable metric(y_true, y_pred), found {type(name_or_callable).__name__}"
        )
    key = name_or_callable.lower()
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        names = ", ".join(sorted([*METRICS, *_ALIASES]))
        raise ValueError(f"unknown metric {name_or_callable!r}; known metrics: {names} (or pass a callable)")
    return METRICS[key]
