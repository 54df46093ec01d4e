"""Metrics: hand-worked values, scikit-learn cross-checks, edge cases and error messages.

Inputs are made on the ``backend`` fixture's device (array_api_strict runs on a
non-default device, so any host array slipped into the computation would raise).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnn import metrics as M
from xpnn.metrics import (
    METRIC_MODE,
    METRICS,
    accuracy,
    classification_report,
    confusion_matrix,
    f1,
    get_metric,
    mae,
    mse,
    precision,
    r2,
    recall,
    roc_auc,
    top_k_accuracy,
)

# the backend fixture is stateless, so sharing it across hypothesis examples is safe
hyp = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def on(backend, *arrays):
    return [backend.asarray(np.asarray(a)) for a in arrays]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---- accuracy -----------------------------------------------------------------------------


def test_accuracy_by_hand(backend):
    # 3 of 4 right (the second sample is wrong)
    t, p = on(backend, [0, 1, 2, 2], [0, 2, 2, 2])
    value = accuracy(t, p)
    assert value == 0.75 and type(value) is float


def test_accuracy_reads_scores_probabilities_and_one_hot(backend):
    y_true = np.array([0, 1, 2, 1])
    # argmax of the rows: 0, 1, 1, 1 -> 3 of 4 right
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.1, 0.5, 0.2], [-1.0, 0.0, -2.0]], dtype=np.float32)
    assert accuracy(*on(backend, y_true, scores)) == 0.75
    # one-hot y_true gives the same
    assert accuracy(*on(backend, np.eye(3, dtype=np.float32)[y_true], scores)) == 0.75
    # binary probabilities of class 1, threshold 0.5 (0.5 itself is class 0, as argmax([0.5, 0.5])):
    # predictions 0, 1, 0, 1 against 0, 1, 1, 1 -> 3/4
    probs = np.array([0.2, 0.7, 0.5, 0.9], dtype=np.float32)
    y_bin = np.array([0, 1, 1, 1])
    assert accuracy(*on(backend, y_bin, probs)) == 0.75
    # (n, 1) columns and float 0/1 targets, as a sigmoid model with BCE has them
    assert accuracy(*on(backend, y_bin[:, None].astype(np.float32), probs[:, None])) == 0.75


def test_accuracy_accepts_a_host_array_next_to_a_device_array(backend):
    (p,) = on(backend, [0, 1, 1])
    assert accuracy(np.array([0, 1, 0]), p) == pytest.approx(2 / 3)
    assert accuracy([0, 1, 0], p) == pytest.approx(2 / 3)


# ---- precision, recall, F1 ----------------------------------------------------------------

# y_true [0, 1, 1, 1], y_pred [0, 0, 1, 1]:
#   class 1: tp 2, fp 0, fn 1 -> precision 1, recall 2/3, F1 4/5
#   class 0: tp 1, fp 1, fn 0 -> precision 1/2, recall 1, F1 2/3
#   macro: precision 3/4, recall 5/6, F1 (2/3 + 4/5) / 2 = 11/15
#   micro: 3 right of 4 -> 3/4 for all three
#   weighted (supports 1 and 3): precision (1/2 + 3) / 4, recall (1 + 2) / 4, F1 (2/3 + 12/5) / 4
PRF_CASES = [
    ("binary", 1.0, 2 / 3, 0.8),
    ("macro", 0.75, 5 / 6, 11 / 15),
    ("micro", 0.75, 0.75, 0.75),
    ("weighted", 3.5 / 4, 0.75, (2 / 3 + 12 / 5) / 4),
]


@pytest.mark.parametrize("average,p,r,f", PRF_CASES)
def test_precision_recall_f1_by_hand(backend, average, p, r, f):
    t, y = on(backend, [0, 1, 1, 1], [0, 0, 1, 1])
    assert precision(t, y, average=average) == pytest.approx(p, abs=1e-15)
    assert recall(t, y, average=average) == pytest.approx(r, abs=1e-15)
    assert f1(t, y, average=average) == pytest.approx(f, abs=1e-15)


def test_binary_pos_label_zero(backend):
    t, y = on(backend, [0, 1, 1, 1], [0, 0, 1, 1])
    assert precision(t, y, pos_label=0) == 0.5
    assert recall(t, y, pos_label=0) == 1.0
    assert f1(t, y, pos_label=0) == pytest.approx(2 / 3)


def test_a_class_never_predicted_has_precision_zero_without_warning(backend):
    # y_true [0, 1, 2, 2], y_pred [0, 0, 0, 2]: class 1 is never predicted (0/0 -> 0),
    # class 0 precision 1/3, class 2 precision 1 -> macro (1/3 + 0 + 1) / 3 = 4/9.
    # (pytest turns warnings into errors, so a 0/0 warning would fail here.)
    t, y = on(backend, [0, 1, 2, 2], [0, 0, 0, 2])
    assert precision(t, y, average="macro") == pytest.approx(4 / 9)
    # recall: class 0 1/1, class 1 0/1, class 2 1/2 -> 1/2
    assert recall(t, y, average="macro") == pytest.approx(0.5)
    # binary-style metrics with no positive predictions at all: 0, not NaN
    t, y = on(backend, [0, 1, 1], [0, 0, 0])
    assert precision(t, y) == 0.0 and f1(t, y) == 0.0
    # and a problem with only class 0 everywhere
    t, y = on(backend, [0, 0], [0, 0])
    assert precision(t, y) == 0.0 and recall(t, y) == 0.0


def test_macro_average_skips_classes_absent_everywhere(backend):
    # labels 0 and 2 only: class 1 is in neither y_true nor y_pred and does not dilute the
    # average (as in scikit-learn): precision class 0 = 1/2, class 2 = 1/1 -> 3/4
    t, y = on(backend, [0, 2, 2], [0, 2, 0])
    assert precision(t, y, average="macro") == pytest.approx(0.75)


def test_auto_average_is_binary_for_two_classes_and_macro_beyond(backend):
    t, y = on(backend, [0, 1, 1, 1], [0, 0, 1, 1])
    assert get_metric("precision")(t, y) == 1.0  # class 1
    assert get_metric("recall")(t, y) == pytest.approx(2 / 3)
    assert get_metric("f1")(t, y) == pytest.approx(0.8)
    t, y = on(backend, [0, 1, 2, 2], [0, 0, 0, 2])
    assert get_metric("precision")(t, y) == pytest.approx(4 / 9)  # macro, as above
    # three score columns make it a three-class problem even when only 0 and 1 occur
    t, s = on(backend, [0, 1, 1, 1], np.eye(3, dtype=np.float32)[[0, 0, 1, 1]])
    assert get_metric("precision")(t, s) == pytest.approx(0.75)  # macro of 1/2 and 1


# ---- top-k --------------------------------------------------------------------------------


def test_top_k_accuracy_by_hand(backend):
    scores = np.array(
        [
            [0.5, 0.3, 0.2],  # true 1: one higher score -> in top 2, not top 1
            [0.1, 0.2, 0.7],  # true 0: two higher -> in top 3 only
            [0.3, 0.3, 0.4],
        ],  # true 1: tied with class 0, only 2 strictly higher... 1
        dtype=np.float32,
    )
    t, s = on(backend, [1, 0, 1], scores)
    assert top_k_accuracy(t, s, k=1) == 0.0
    # row 3: one class (2) scores strictly higher; the tie with class 0 counts in its favour
    assert top_k_accuracy(t, s, k=2) == pytest.approx(2 / 3)
    assert top_k_accuracy(t, s, k=3) == 1.0
    assert top_k_accuracy(t, s, k=5) == 1.0  # k >= C
    # the default k is 5
    assert get_metric("top_k_accuracy")(t, s) == 1.0


# ---- ROC AUC ------------------------------------------------------------------------------


def test_roc_auc_by_hand(backend):
    # positives score 0.35 and 0.8, negatives 0.1 and 0.4: of the 4 (pos, neg) pairs, only
    # (0.35, 0.4) is ordered wrong -> 3/4
    t, s = on(backend, [0, 0, 1, 1], np.array([0.1, 0.4, 0.35, 0.8], dtype=np.float32))
    assert roc_auc(t, s) == 0.75


def test_roc_auc_counts_ties_as_one_half(backend):
    # positives {0.5, 0.9}, negatives {0.5, 0.2}: pairs 0.5/0.5 tie (1/2), the rest right
    # -> 3.5 / 4
    t, s = on(backend, [0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])
    assert roc_auc(t, s) == 0.875
    # all scores equal: no information -> 1/2
    t, s = on(backend, [0, 1, 0, 1, 1], np.zeros(5))
    assert roc_auc(t, s) == 0.5


def test_roc_auc_reads_two_columns_and_one_vs_rest(backend):
    t, s = on(backend, [0, 0, 1, 1], np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]))
    assert roc_auc(t, s) == 0.75  # column 1 is the score of class 1
    # three classes, perfectly separated by their own column -> 1 for each
    y = np.array([0, 1, 2, 0, 1, 2])
    t, s = on(backend, y, np.eye(3)[y] + 0.1)
    assert roc_auc(t, s) == 1.0
    # class 2 reversed: its own column ranks it lowest -> (1 + 1 + 0) / 3
    scores = np.eye(3)[y]
    scores[:, 2] = 1.0 - scores[:, 2]
    t, s = on(backend, y, scores)
    assert roc_auc(t, s) == pytest.approx(2 / 3)


def test_roc_auc_is_exact_for_many_samples(backend, rng):
    # 20,000 samples with scores in 4 tied values: the rank sums stay exact integers
    n = 20_000
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 4, n).astype(np.float32) + y  # shifted up for positives
    t, sd = on(backend, y, s)
    # the Mann-Whitney count directly: P(pos > neg) + P(pos == neg) / 2
    pos, neg = s[y == 1], s[y == 0]
    values, pos_counts = np.unique(pos, return_counts=True)
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, values, side="left")
    equal = np.searchsorted(neg_sorted, values, side="right") - below
    expected = float((pos_counts * (below + equal / 2)).sum()) / (len(pos) * len(neg))
    assert roc_auc(t, sd) == pytest.approx(expected, rel=1e-12)


# ---- confusion matrix and report -----------------------------------------------------------


def test_confusion_matrix_by_hand(backend):
    t, p = on(backend, [0, 1, 1], [0, 0, 1])
    cm = confusion_matrix(t, p)
    # true 0 -> predicted 0 once; true 1 -> predicted 0 once and 1 once
    assert isinstance(cm, np.ndarray) and cm.dtype == np.int64
    assert cm.tolist() == [[1, 0], [1, 1]]
    cm[0, 0] = 7  # a writable host copy
    padded = confusion_matrix(t, p, num_classes=3)
    assert padded.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_confusion_matrix_from_scores_keeps_every_column(backend):
    # 4 score columns but only classes 0 and 1 occur: still 4 x 4
    scores = np.eye(4, dtype=np.float32)[[0, 1, 1]]
    t, s = on(backend, [0, 1, 0], scores)
    cm = confusion_matrix(t, s)
    assert cm.shape == (4, 4)
    assert cm[:2, :2].tolist() == [[1, 1], [0, 1]] and cm.sum() == 3


def test_classification_report_by_hand(backend):
    t, p = on(backend, [0, 1, 1, 1], [0, 0, 1, 1])
    report = classification_report(t, p, target_names=["cat", "dog"])
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["cat", "0.50", "1.00", "0.67", "1"]
    assert lines[3].split() == ["dog", "1.00", "0.67", "0.80", "3"]
    assert lines[5].split() == ["accuracy", "0.75", "4"]
    assert lines[6].split() == ["macro", "avg", "0.75", "0.83", "0.73", "4"]
    assert lines[7].split() == ["weighted", "avg", "0.88", "0.75", "0.77", "4"]


# ---- regression -----------------------------------------------------------------------------


def test_regression_metrics_by_hand(backend):
    # errors 0, 0, 2: mse 4/3, mae 2/3; y_true has mean 2 and total sum of squares 2,
    # so r2 = 1 - 4/2 = -1
    t, p = on(backend, np.array([1.0, 2.0, 3.0], dtype=np.float32), np.array([1.0, 2.0, 5.0], dtype=np.float32))
    assert mse(t, p) == pytest.approx(4 / 3) and type(mse(t, p)) is float
    assert mae(t, p) == pytest.approx(2 / 3)
    assert r2(t, p) == pytest.approx(-1.0)
    assert r2(t, t) == 1.0
    # (n,) and (n, 1) are the same shape to these metrics
    t2, p2 = on(backend, np.array([[1.0], [2.0], [3.0]]), np.array([1, 2, 5]))
    assert mse(t2, p2) == pytest.approx(4 / 3)


def test_r2_of_a_constant_target(backend):
    t, p, q = on(backend, [2.0, 2.0, 2.0], [2.0, 2.0, 2.0], [2.0, 2.0, 3.0])
    assert r2(t, p) == 1.0  # perfect
    assert r2(t, q) == 0.0  # not NaN, not -inf


def test_r2_averages_outputs(backend):
    # output 0 perfect (1), output 1 as above (-1) -> 0
    t, p = on(backend, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 5.0]])
    assert r2(t, p) == pytest.approx(0.0)
    assert mse(t, p) == pytest.approx(4 / 6)


# ---- cross-checks with scikit-learn -----------------------------------------------------------


@hyp
@given(n=st.integers(1, 60), C=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_classification_matches_sklearn(backend, n, C, seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, C, n)
    scores = rng.normal(size=(n, C)).astype(np.float32)
    y_pred = scores.argmax(axis=1)
    t, s = on(backend, y_true, scores)
    assert accuracy(t, s) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    labels = list(range(C))
    assert confusion_matrix(t, s).tolist() == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    for average in ("macro", "micro", "weighted"):
        for ours, theirs in ((precision, skm.precision_score), (recall, skm.recall_score), (f1, skm.f1_score)):
            # zero_division=0 is our convention; sklearn's default would warn
            expected = theirs(y_true, y_pred, average=average, zero_division=0)
            assert ours(t, s, average=average) == pytest.approx(expected, abs=1e-12), (ours.__name__, average)
    if C == 2:
        for ours, theirs in ((precision, skm.precision_score), (recall, skm.recall_score), (f1, skm.f1_score)):
            assert ours(t, s) == pytest.approx(theirs(y_true, y_pred, zero_division=0), abs=1e-12)
    for k in (1, 2, 3):
        if k >= C:
            expected = 1.0
        elif C == 2:  # sklearn reads (n, 2) scores as binary; top-1 is the accuracy
            expected = skm.accuracy_score(y_true, y_pred)
        else:
            expected = skm.top_k_accuracy_score(y_true, scores, k=k, labels=labels)
        assert top_k_accuracy(t, s, k=k) == pytest.approx(expected, abs=1e-12)


@hyp
@given(n=st.integers(2, 60), digits=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_classification_report_matches_sklearn(backend, n, digits, seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 4, n), rng.integers(0, 4, n)
    # one right answer at least: with none, sklearn 1.9 prints the supports as floats ("1.0")
    y_pred[0] = y_true[0]
    t, p = on(backend, y_true, y_pred)
    expected = skm.classification_report(y_true, y_pred, digits=digits, zero_division=0)
    assert classification_report(t, p, digits=digits) == expected
    present = sorted(set(y_true) | set(y_pred))
    names = ["airplane", "bird", "cat", "deer"]
    expected = skm.classification_report(y_true, y_pred, target_names=[names[c] for c in present], zero_division=0)
    assert classification_report(t, p, target_names=names) == expected


@hyp
@given(n=st.integers(2, 80), levels=st.sampled_from([3, 10, 1000]), seed=st.integers(0, 2**16))
def test_binary_roc_auc_matches_sklearn(backend, n, levels, seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both classes present
    # few levels -> many ties
    s = (rng.integers(0, levels, n) / levels + 0.3 * y).astype(np.float32)
    t, sd = on(backend, y, s)
    assert roc_auc(t, sd) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


@hyp
@given(n=st.integers(6, 80), C=st.integers(3, 6), seed=st.integers(0, 2**16))
def test_multiclass_roc_auc_matches_sklearn(backend, n, C, seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    y[:C] = np.arange(C)  # every class present (sklearn requires it)
    probs = softmax(rng.normal(size=(n, C)) + 2.0 * np.eye(C)[y])
    t, p = on(backend, y, probs)
    for average in ("macro", "weighted"):
        expected = skm.roc_auc_score(y, probs, multi_class="ovr", average=average)
        assert roc_auc(t, p, average=average) == pytest.approx(expected, abs=1e-12)


@hyp
@given(n=st.integers(2, 50), k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_regression_matches_sklearn(backend, n, k, seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, k)).astype(np.float32)
    p = (y + rng.normal(scale=0.5, size=(n, k))).astype(np.float32)
    t, pd = on(backend, y, p)
    assert mse(t, pd) == pytest.approx(skm.mean_squared_error(y, p), rel=1e-5)
    assert mae(t, pd) == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-5)
    assert r2(t, pd) == pytest.approx(skm.r2_score(y, p), rel=1e-4, abs=1e-5)


# ---- registry -----------------------------------------------------------------------------


def test_get_metric_names_aliases_and_callables():
    assert get_metric("accuracy") is accuracy
    assert get_metric("acc") is accuracy and get_metric("ACC") is accuracy
    assert get_metric("auc") is roc_auc and get_metric("roc_auc") is roc_auc
    for name in ("mse", "mae", "r2", "top_k_accuracy"):
        assert get_metric(name) is getattr(M, name)
    for name in ("precision", "recall", "f1"):
        assert get_metric(name).__name__ == name

    def custom(y_true, y_pred):
        return 0.0

    assert get_metric(custom) is custom


def test_metric_modes():
    for name in ("accuracy", "acc", "top_k_accuracy", "precision", "recall", "f1", "roc_auc", "auc", "r2"):
        assert METRIC_MODE[name] == "max", name
        assert get_metric(name).higher_is_better is True, name
    for name in ("mse", "mae"):
        assert METRIC_MODE[name] == "min"
        assert get_metric(name).higher_is_better is False
    assert set(METRICS) <= set(METRIC_MODE)
    assert precision.higher_is_better and recall.higher_is_better and f1.higher_is_better


def test_get_metric_errors():
    with pytest.raises(ValueError, match=r"unknown metric 'accuracy_score'; known metrics: acc, accuracy, auc, f1"):
        get_metric("accuracy_score")
    with pytest.raises(TypeError, match="metric must be a name or a callable.*found int"):
        get_metric(3)


# ---- errors ---------------------------------------------------------------------------------


def test_label_errors_name_the_value_and_index(backend):
    t, s = on(backend, [0, 2, 3, 1], np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"accuracy: y_true labels must be integers in \[0, 3\) "
        r"\(y_pred has 3 columns\), found 3 at index 2",
    ):
        accuracy(t, s)
    t, p = on(backend, [0, -1, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"y_true holds class labels, which must be >= 0, found -1 at index 1"):
        precision(t, p, average="macro")
    t, p = on(backend, [0.0, 1.0, 0.5], [0, 1, 1])
    with pytest.raises(ValueError, match=r"whole numbers >= 0, found 0.5 at index 2"):
        accuracy(t, p)
    t, p = on(backend, [0, 1, 1], np.array([0.2, 1.5, 0.7], dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"y_pred is 1-D floats, read as probabilities of class 1, which must lie "
        r"in \[0, 1\] \(pass class labels as integers\), found 1.5 at index 1",
    ):
        accuracy(t, p)
    t, p = on(backend, [0, 1, 1], np.array([0.2, np.nan, 0.7]))
    with pytest.raises(ValueError, match="found nan at index 1"):
        accuracy(t, p)
    t, p = on(backend, [0, 2, 1], np.array([0.2, 0.1, 0.7], dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"y_true labels must be integers in \[0, 2\) \(y_pred holds probabilities "
        r"of class 1\), found 2 at index 1",
    ):
        accuracy(t, p)
    t, p = on(backend, np.eye(3)[[0, 1]], np.eye(4)[[0, 1]])
    with pytest.raises(ValueError, match="y_true has 3 columns but y_pred has 4 columns"):
        accuracy(t, p)


def test_shape_and_type_errors(backend):
    t, p = on(backend, [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="accuracy: y_true has 3 samples but y_pred has 2"):
        accuracy(t, p)
    t, p = on(backend, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        f1(t, p)
    (p,) = on(backend, [0, 1])
    with pytest.raises(TypeError, match="recall: y_true must be an array .*found int"):
        recall(3, p)
    t, p = on(backend, np.zeros((2, 2, 2)), [0, 1])
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 2, 2\); expected labels"):
        accuracy(t, p)
    t, p = on(backend, [1.0, 2.0], [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"mse: y_true has shape \(2,\) but y_pred has shape \(2, 2\)"):
        mse(t, p)
    t, p = on(backend, [1.0], [1.0])
    with pytest.raises(ValueError, match="r2: R\\^2 needs at least 2 samples, found 1"):
        r2(t, p)


def test_average_errors(backend):
    t, p = on(backend, [0, 1, 2], [0, 1, 2])
    with pytest.raises(
        ValueError,
        match=r"precision: average='binary' needs two classes.*found 3 classes; "
        r"use average='macro'",
    ):
        precision(t, p)
    with pytest.raises(
        ValueError,
        match=r"f1: average must be one of \('binary', 'macro', 'micro', 'weighted', "
        r"'auto'\), found 'samples'",
    ):
        f1(t, p, average="samples")
    t, p = on(backend, [0, 1], [0, 1])
    with pytest.raises(ValueError, match="pos_label must be 0 or 1, found 2"):
        recall(t, p, pos_label=2)


def test_top_k_errors(backend):
    t, s = on(backend, [0, 1], np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="k must be a positive integer, found 0"):
        top_k_accuracy(t, s, k=0)
    with pytest.raises(ValueError, match=r"y_pred must be class scores of shape \(n, C\), found shape \(2,\)"):
        top_k_accuracy(t, s[:, 0])
    t, s = on(backend, [0, 3], np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\).*found 3 at index 1"):
        top_k_accuracy(t, s)


def test_roc_auc_errors(backend):
    t, s = on(backend, [1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="roc_auc: y_true holds only class 1; ROC AUC needs samples of at least two"):
        roc_auc(t, s)
    t, s = on(backend, [2, 2], softmax(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="y_true holds only class 2"):
        roc_auc(t, s)
    t, s = on(backend, [0, 1, 1], [0.2, np.nan, 0.9])
    with pytest.raises(ValueError, match="y_score must be finite .*found nan at flat index 1"):
        roc_auc(t, s)
    t, s = on(backend, [0, 1, 2], [0.2, 0.3, 0.9])
    with pytest.raises(ValueError, match=r"y_true labels must be integers in \[0, 2\) \(a binary y_score\), found 2"):
        roc_auc(t, s)
    t, s = on(backend, [0, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="average must be 'macro' or 'weighted', found 'micro'"):
        roc_auc(t, s, average="micro")


def test_confusion_matrix_and_report_errors(backend):
    t, p = on(backend, [0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\) for num_classes=2, found label 2"):
        confusion_matrix(t, p, num_classes=2)
    with pytest.raises(ValueError, match="num_classes must be a positive integer or None, found 0"):
        confusion_matrix(t, p, num_classes=0)
    with pytest.raises(ValueError, match="target_names has 2 names but there are 3 classes"):
        classification_report(t, p, target_names=["a", "b"])


def test_multiclass_roc_auc_skips_classes_missing_from_y_true(backend):
    # class 2 never occurs in y_true: its one-vs-rest AUC is undefined and left out;
    # classes 0 and 1 are perfectly ranked by their columns -> 1
    y = np.array([0, 1, 0, 1])
    t, s = on(backend, y, np.eye(3)[y] * 0.8 + 0.1)
    assert roc_auc(t, s) == 1.0


def test_arrays_on_two_devices_are_refused():
    xp = pytest.importorskip("array_api_strict")
    a = xp.asarray([0, 1], device=xp.Device("device1"))
    b = xp.asarray([0, 1], device=xp.Device("device2"))
    with pytest.raises(TypeError, match="accuracy: the arrays live on different backends"):
        accuracy(a, b)


def test_float32_scores_give_python_floats(backend):
    t, s = on(backend, [0, 1, 1, 0], np.array([0.1, 0.8, 0.7, 0.3], dtype=np.float32))
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        value = get_metric(name)(t, s)
        assert type(value) is float and math.isfinite(value), name


# ---- NumPy scalars as arguments; the shared helpers --------------------------------------------


def test_numpy_integer_arguments_are_accepted_and_bool_is_refused():
    t, s = [0, 1, 2], softmax(np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 2.0, 1.0]]))
    assert top_k_accuracy(t, s, k=np.int64(2)) == top_k_accuracy(t, s, k=2) == 2 / 3
    np.testing.assert_array_equal(
        confusion_matrix([0, 1], [0, 1], num_classes=np.int32(3)), confusion_matrix([0, 1], [0, 1], num_classes=3)
    )
    assert classification_report(t, [0, 1, 1], digits=np.int64(3)) == classification_report(t, [0, 1, 1], digits=3)
    assert precision([0, 1, 1], [0, 0, 1], pos_label=np.int64(0)) == precision([0, 1, 1], [0, 0, 1], pos_label=0)
    for call, message in [
        (lambda: top_k_accuracy(t, s, k=True), "top_k_accuracy: k must be a positive integer, found True"),
        (lambda: top_k_accuracy(t, s, k=2.0), "top_k_accuracy: k must be a positive integer, found 2.0"),
        (
            lambda: confusion_matrix(t, t, num_classes=True),
            "confusion_matrix: num_classes must be a positive integer or None, found True",
        ),
        (
            lambda: classification_report(t, t, digits=False),
            "classification_report: digits must be a non-negative integer, found False",
        ),
        (
            lambda: classification_report(t, t, digits=-1),
            "classification_report: digits must be a non-negative integer, found -1",
        ),
        (lambda: recall([0, 1], [0, 1], pos_label=True), "recall: pos_label must be 0 or 1, found True"),
        (lambda: recall([0, 1], [0, 1], pos_label=1.0), "recall: pos_label must be 0 or 1, found 1.0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()


def test_common_backend_and_bincount(backend):
    from xpnn.backends import common_backend
    from xpnn.functional import bincount

    device_array = backend.asarray(np.array([3, 0, 3, 1]))
    be, (a, b, c) = common_backend("here", x=device_array, y=np.array([1, 2]), z=[5])
    assert be is backend and all(backend.owns(v) for v in (a, b, c))  # host arrays and lists moved over
    counts = bincount(be, backend.xp.astype(a, backend.xp.int64), 5)
    assert backend.owns(counts)
    np.testing.assert_array_equal(backend.to_numpy(counts), [1, 1, 0, 2, 0])
    assert common_backend("here", x=np.zeros(2))[0].name == "numpy"  # only host arrays: NumPy
    with pytest.raises(TypeError, match="here: y must be an array .*found str"):
        common_backend("here", x=device_array, y="labels")
