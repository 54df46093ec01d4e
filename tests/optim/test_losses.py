"""Losses: gradients (finite differences), values (NumPy formulas, and PyTorch when it is
installed), stability for +-1000 logits, dtype preservation, names and error messages."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.losses import (
    LOSSES,
    MAE,
    MSE,
    BCEWithLogits,
    BinaryCrossEntropy,
    CrossEntropy,
    Huber,
    Loss,
    SoftmaxCrossEntropy,
    get_loss,
)

# the backend fixture is stateless, so sharing it across hypothesis examples is safe
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

batches = st.integers(1, 6)
features = st.integers(1, 5)
seeds = st.integers(0, 2**32 - 1)


# ---- NumPy reference formulas (written the naive way, independently of the library) ------


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x):
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def np_rows(target, C, dtype=np.float64):
    """Labels (N,) -> one-hot rows (N, C); rows are returned as they are."""
    if target.ndim == 1:
        return np.eye(C, dtype=dtype)[target]
    return target.astype(dtype)


def reference(loss, p, t):
    """(value, gradient) of ``loss`` at pred p, target t, from textbook formulas in NumPy."""
    n = p.size
    if isinstance(loss, MSE):
        r = p - t
        return np.mean(r**2), 2 * r / n
    if isinstance(loss, MAE):
        r = p - t
        return np.mean(np.abs(r)), np.sign(r) / n
    if isinstance(loss, Huber):
        r, d = p - t, loss.delta
        small = np.abs(r) <= d
        value = np.mean(np.where(small, 0.5 * r**2, d * (np.abs(r) - 0.5 * d)))
        return value, np.where(small, r, d * np.sign(r)) / n
    if isinstance(loss, BinaryCrossEntropy):
        pc = np.clip(p, loss.eps, 1 - loss.eps)
        value = -np.mean(t * np.log(pc) + (1 - t) * np.log(1 - pc))
        return value, (p - t) / (pc * (1 - pc)) / n
    if isinstance(loss, BCEWithLogits):
        s = np_sigmoid(p)  # naive: fine for the moderate logits used here
        return -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s)), (s - t) / n
    N, C = p.shape
    T = np_rows(t, C)
    if isinstance(loss, SoftmaxCrossEntropy):
        ls = loss.label_smoothing
        T = (1 - ls) * T + ls / C
        s = np_softmax(p)
        return -np.sum(T * np.log(s)) / N, (s * T.sum(axis=1, keepdims=True) - T) / N
    if isinstance(loss, CrossEntropy):
        pc = np.maximum(p, loss.eps)
        return -np.sum(T * np.log(pc)) / N, -T / pc / N
    raise AssertionError(loss)


# ---- test data ---------------------------------------------------------------------------


def residuals(rng, shape, delta=1.0):
    """pred - target with |r| in [0.1, 0.4 delta] or [1.3 delta, 3 delta]: away from the
    MAE kink at 0 and the Huber kink at delta, so finite differences see a smooth function."""
    near = rng.uniform(0.1, 0.4 * delta, size=shape)
    far = rng.uniform(1.3 * delta, 3 * delta, size=shape)
    mag = np.where(rng.random(shape) < 0.5, near, far)
    return mag * rng.choice([-1.0, 1.0], size=shape)


def make_data(loss, rng, batch, feat, one_d=False, labels=False, normalized=True):
    """Host (pred, target) for ``loss``: float64 pred; target float64 rows or int64 labels."""
    shape = (batch,) if one_d else (batch, feat)
    if isinstance(loss, (MSE, MAE, Huber)):
        t = rng.standard_normal(shape)
        return t + residuals(rng, shape, getattr(loss, "delta", 1.0)), t
    if isinstance(loss, BinaryCrossEntropy):
        return rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape)
    if isinstance(loss, BCEWithLogits):
        return 3 * rng.standard_normal(shape), rng.uniform(0, 1, shape)
    shape = (batch, feat)
    if isinstance(loss, SoftmaxCrossEntropy):
        p = 3 * rng.standard_normal(shape)
    else:  # CrossEntropy: probabilities away from the clip (rows need not sum to 1 here)
        p = rng.uniform(0.05, 1.0, shape)
    if labels:
        return p, rng.integers(0, feat, size=batch)
    t = rng.uniform(0.0, 1.0, shape)
    return p, t / t.sum(axis=1, keepdims=True) if normalized else t


def on(backend, host, dtype=None):
    if dtype is None:
        dtype = "int64" if np.issubdtype(host.dtype, np.integer) else "float64"
    return backend.asarray(np.asarray(host), dtype)


ELEMENTWISE = [MSE(), MAE(), Huber(0.5), Huber(1.0), Huber(2.0), BinaryCrossEntropy(), BCEWithLogits()]
CLASSWISE = [SoftmaxCrossEntropy(), SoftmaxCrossEntropy(label_smoothing=0.1), CrossEntropy()]
ALL = ELEMENTWISE + CLASSWISE


# ---- gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ELEMENTWISE, ids=repr)
@SETTINGS
@given(batch=batches, feat=features, one_d=st.booleans(), seed=seeds)
def test_gradcheck_elementwise(backend, loss, batch, feat, one_d, seed):
    p, t = make_data(loss, np.random.default_rng(seed), batch, feat, one_d=one_d)
    assert xpnn.gradcheck(loss, on(backend, p), on(backend, t)) < 1e-6


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
@SETTINGS
@given(batch=batches, feat=features, labels=st.booleans(), normalized=st.booleans(), seed=seeds)
def test_gradcheck_classwise(backend, loss, batch, feat, labels, normalized, seed):
    # normalized=False: probability rows that do not sum to 1 still get the exact gradient
    if loss.name == "softmax_cross_entropy":
        feat = max(feat, 2)  # a softmax over one output is refused
    p, t = make_data(loss, np.random.default_rng(seed), batch, feat, labels=labels, normalized=normalized)
    assert xpnn.gradcheck(loss, on(backend, p), on(backend, t)) < 1e-6


# ---- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss, labels",
    [(loss, False) for loss in ALL] + [(loss, True) for loss in CLASSWISE],
    ids=lambda v: repr(v) if isinstance(v, Loss) else ("labels" if v else "rows"),
)
def test_values_and_gradients_match_numpy(backend, loss, labels, rng):
    p, t = make_data(loss, rng, 7, 4, labels=labels, normalized=False)
    value = loss.forward(on(backend, p), on(backend, t))
    # a 0-d array on the backend's device: no host sync inside forward
    assert backend.owns(value) and value.shape == ()
    grad = loss.backward()
    assert backend.owns(grad) and grad.shape == p.shape
    want_value, want_grad = reference(loss, p, t)
    np.testing.assert_allclose(backend.to_float(value), want_value, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(grad), want_grad, rtol=1e-10, atol=1e-15)


def test_hand_computed_values(backend):
    """A few values worked out by hand, so the NumPy references are checked too."""
    p, t = on(backend, np.array([1.0, 2.0, 4.0])), on(backend, np.array([1.0, 0.0, 0.5]))
    assert backend.to_float(MSE().forward(p, t)) == pytest.approx((0 + 4 + 12.25) / 3)
    assert backend.to_float(MAE().forward(p, t)) == pytest.approx((0 + 2 + 3.5) / 3)
    # |r| = 0, 2, 3.5 with delta 1: 0, 1 * (2 - 0.5), 1 * (3.5 - 0.5)
    assert backend.to_float(Huber().forward(p, t)) == pytest.approx((0 + 1.5 + 3.0) / 3)
    # labels [1, 0] on logits [[0, 0], [log 3, 0]]: -log(1/2) and -log(3/4)
    logits = on(backend, np.array([[0.0, 0.0], [np.log(3.0), 0.0]]))
    labels = on(backend, np.array([1, 0]))
    want = (np.log(2.0) - np.log(0.75)) / 2
    assert backend.to_float(SoftmaxCrossEntropy().forward(logits, labels)) == pytest.approx(want)
    # label smoothing 0.2 with C = 2: targets [0.1, 0.9] and [0.9, 0.1]
    want_ls = -(0.1 * np.log(0.5) + 0.9 * np.log(0.5) + 0.9 * np.log(0.75) + 0.1 * np.log(0.25)) / 2
    got_ls = SoftmaxCrossEntropy(label_smoothing=0.2).forward(logits, labels)
    assert backend.to_float(got_ls) == pytest.approx(want_ls)
    probs = on(backend, np.array([[0.25, 0.75], [0.5, 0.5]]))
    assert backend.to_float(CrossEntropy().forward(probs, labels)) == pytest.approx(-(np.log(0.75) + np.log(0.5)) / 2)


def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot(backend, rng):
    p = rng.standard_normal((5, 3))
    y = np.array([0, 2, 1, 1, 0])
    loss = SoftmaxCrossEntropy()
    loss.forward(on(backend, p), on(backend, y))
    want = (np_softmax(p) - np.eye(3)[y]) / 5
    np.testing.assert_allclose(backend.to_numpy(loss.backward()), want, rtol=1e-12, atol=1e-15)


def test_labels_and_onehot_rows_agree(backend, rng):
    p, y = rng.standard_normal((6, 4)), rng.integers(0, 4, size=6)
    for loss, pred in ((SoftmaxCrossEntropy(0.1), p), (CrossEntropy(), np_softmax(p))):
        a = loss.forward(on(backend, pred), on(backend, y))
        ga = backend.to_numpy(loss.backward())
        b = loss.forward(on(backend, pred), on(backend, np.eye(4)[y]))
        gb = backend.to_numpy(loss.backward())
        assert backend.to_float(a) == pytest.approx(backend.to_float(b), rel=1e-12)
        np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-15)


def test_gradient_beyond_the_clip_still_pushes_back(backend):
    """p = 0 with y = 1 is clipped in the forward, but backward keeps a finite push upward."""
    for loss in (BinaryCrossEntropy(), CrossEntropy()):
        if isinstance(loss, CrossEntropy):
            p, t = np.array([[0.0, 1.0]]), np.array([0])
        else:
            p, t = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
        value = backend.to_float(loss.forward(on(backend, p), on(backend, t)))
        grad = backend.to_numpy(loss.backward())
        wrong = 1 if isinstance(loss, CrossEntropy) else 2 / 4  # wrong examples / mean's n
        assert value == pytest.approx(-np.log(1e-7) * wrong, rel=1e-6)  # clipped: finite
        assert np.all(np.isfinite(grad))
        assert grad.reshape(-1)[0] < -1e5  # increase p where it should be 1
        if isinstance(loss, BinaryCrossEntropy):
            assert grad[1] > 1e5  # and decrease it where it should be 0
            np.testing.assert_array_equal(grad[2:], 0.0)  # already right: no push


def test_against_torch(backend, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n = rng.standard_normal
    cases = [
        (MSE(), n((5, 3)), n((5, 3)), F.mse_loss),
        (MAE(), n((5, 3)), n((5, 3)), F.l1_loss),
        (Huber(0.7), 2 * n((5, 3)), n((5, 3)), lambda x, y: F.huber_loss(x, y, delta=0.7)),
        (BinaryCrossEntropy(), rng.uniform(0.05, 0.95, (5, 3)), rng.uniform(0, 1, (5, 3)), F.binary_cross_entropy),
        (BCEWithLogits(), 5 * n((5, 3)), rng.uniform(0, 1, (5, 3)), F.binary_cross_entropy_with_logits),
        (SoftmaxCrossEntropy(), 3 * n((5, 4)), rng.integers(0, 4, 5), F.cross_entropy),
        (
            SoftmaxCrossEntropy(0.2),
            3 * n((5, 4)),
            rng.integers(0, 4, 5),
            lambda x, y: F.cross_entropy(x, y, label_smoothing=0.2),
        ),
        (
            SoftmaxCrossEntropy(0.2),
            3 * n((5, 4)),
            np_softmax(n((5, 4))),
            lambda x, y: F.cross_entropy(x, y, label_smoothing=0.2),
        ),
        (CrossEntropy(), np_softmax(n((5, 4))), rng.integers(0, 4, 5), lambda x, y: F.nll_loss(torch.log(x), y)),
    ]
    for loss, p, t, torch_fn in cases:
        value = backend.to_float(loss.forward(on(backend, p), on(backend, t)))
        grad = backend.to_numpy(loss.backward())
        tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        tt = torch.tensor(t)
        tv = torch_fn(tp, tt)
        tv.backward()
        assert value == pytest.approx(tv.item(), rel=1e-10), loss
        np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-8, atol=1e-14, err_msg=repr(loss))


# ---- stability and dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_of_1000_are_stable(backend, dtype):
    # BCEWithLogits per element: y=1 at +1000 -> 0, y=0 at -1000 -> 0, the wrong ones -> 1000
    x = on(backend, np.array([1000.0, -1000.0, 1000.0, -1000.0]), dtype)
    y = on(backend, np.array([1.0, 0.0, 0.0, 1.0]), dtype)
    loss = BCEWithLogits()
    assert backend.to_float(loss.forward(x, y)) == pytest.approx(500.0)
    np.testing.assert_allclose(backend.to_numpy(loss.backward()), [0.0, 0.0, 0.25, -0.25])
    np.testing.assert_allclose(backend.to_numpy(loss.predict(x)), [1.0, 0.0, 1.0, 0.0])

    # SoftmaxCrossEntropy: row 0 is wrong by 2000, row 1 is right
    logits = on(backend, np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]]), dtype)
    labels = on(backend, np.array([1, 1]))
    loss = SoftmaxCrossEntropy()
    assert backend.to_float(loss.forward(logits, labels)) == pytest.approx(1000.0)
    np.testing.assert_allclose(backend.to_numpy(loss.backward()), [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-30)
    np.testing.assert_allclose(backend.to_numpy(loss.predict(logits)), [[1, 0, 0], [0, 1, 0]], atol=1e-30)
    smoothed = SoftmaxCrossEntropy(label_smoothing=0.3)
    assert np.isfinite(backend.to_float(smoothed.forward(logits, labels)))
    assert np.all(np.isfinite(backend.to_numpy(smoothed.backward())))


@pytest.mark.parametrize("loss", ALL, ids=repr)
def test_float32_stays_float32(backend, loss, rng):
    # a float64 target (and int64 labels) must not upcast a float32 prediction
    for labels in [False, True] if loss in CLASSWISE else [False]:
        p, t = make_data(loss, rng, 4, 3, labels=labels)
        pred = on(backend, p, "float32")
        value = loss.forward(pred, on(backend, t))
        grad = loss.backward()
        assert value.dtype == backend.xp.float32
        assert grad.dtype == backend.xp.float32 and grad.shape == pred.shape
        assert loss.predict(pred).dtype == backend.xp.float32
        want_value, want_grad = reference(loss, p.astype(np.float32).astype(np.float64), t)
        assert backend.to_float(value) == pytest.approx(want_value, rel=1e-4)
        np.testing.assert_allclose(backend.to_numpy(grad), want_grad, rtol=1e-4, atol=1e-6)


def test_predict(backend, rng):
    p = rng.standard_normal((4, 3))
    pred = on(backend, p)
    np.testing.assert_allclose(backend.to_numpy(SoftmaxCrossEntropy().predict(pred)), np_softmax(p), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(BCEWithLogits().predict(pred)), np_sigmoid(p), rtol=1e-12)
    for loss in (MSE(), MAE(), Huber(), BinaryCrossEntropy(), CrossEntropy()):
        assert loss.predict(pred) is pred


# ---- names and config --------------------------------------------------------------------


@pytest.mark.parametrize("name, cls", sorted(LOSSES.items()))  # every registered loss
def test_get_loss_by_name(name, cls):
    loss = get_loss(name)
    assert type(loss) is cls and loss.name == name
    assert loss.accepts_labels == (cls in (SoftmaxCrossEntropy, CrossEntropy))  # model.fit reads it
    assert type(get_loss(name.upper())) is cls
    assert get_loss(loss) is loss
    assert type(get_loss(cls)) is cls


@pytest.mark.parametrize(
    "loss",
    [MSE(), Huber(2.5), BinaryCrossEntropy(1e-5), BCEWithLogits(), SoftmaxCrossEntropy(0.1), CrossEntropy(1e-6)],
    ids=repr,
)
def test_config_round_trip(loss):
    config = json.loads(json.dumps(loss.config()))
    rebuilt = get_loss(loss.name, **config)
    assert type(rebuilt) is type(loss) and rebuilt.config() == loss.config()
    assert repr(rebuilt) == repr(loss)
    assert isinstance(rebuilt, Loss)  # every registered loss: tests/optim/test_loss_contract.py


def test_get_loss_errors():
    with pytest.raises(
        ValueError,
        match=re.escape(f"loss must be one of {sorted(LOSSES)}") + ".*found 'hinge'",
    ):
        get_loss("hinge")
    with pytest.raises(ValueError, match="found 3"):
        get_loss(3)
    with pytest.raises(ValueError, match=r"arguments \['delta'\] given with a Loss instance"):
        get_loss(Huber(), delta=2.0)
    assert get_loss("huber", delta=2.0).delta == 2.0


# ---- errors ------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes(backend):
    pred, target = backend.zeros((4, 1), "float64"), backend.zeros((4,), "float64")
    for loss in ELEMENTWISE:
        with pytest.raises(ValueError, match=r"forward: pred has shape \(4, 1\) but target has shape \(4,\)"):
            loss.forward(pred, target)
    logits = backend.zeros((4, 3), "float64")
    for loss in CLASSWISE:
        with pytest.raises(
            ValueError,
            match=r"pred has shape \(4, 3\) but target has shape \(4, 2\); expected "
            r"integer labels of shape \(4,\) or probability rows of shape \(4, 3\)",
        ):
            loss.forward(logits, backend.zeros((4, 2), "float64"))
        with pytest.raises(
            ValueError,
            match=r"pred has shape \(4, 3\) but target has shape \(5,\); "
            r"labels need shape \(4,\)",
        ):
            loss.forward(logits, backend.zeros((5,), "int64"))
        with pytest.raises(ValueError, match=r"pred has shape \(4,\), expected \(batch, classes\)"):
            loss.forward(backend.zeros((4,), "float64"), backend.zeros((4,), "int64"))


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8"])
def test_labels_out_of_range(backend, loss, dtype):
    logits = backend.zeros((5, 3), "float64")
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\), found 3 at index 2"):
        loss.forward(logits, backend.asarray(np.array([0, 1, 3, 2, 7]), dtype))
    if dtype != "uint8":
        with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\), found -1 at index 1"):
            loss.forward(logits, backend.asarray(np.array([0, -1, 2, 3, 1]), dtype))
    # in range: no error, and the right value (uniform logits: log 3)
    ok = loss.forward(
        logits if isinstance(loss, SoftmaxCrossEntropy) else logits + 1 / 3,
        backend.asarray(np.array([0, 1, 2, 2, 1]), dtype),
    )
    assert backend.to_float(ok) == pytest.approx(np.log(3.0))


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
def test_float_labels_are_rejected(backend, loss):
    with pytest.raises(
        TypeError,
        match=r"1-D target holds class labels, which must be integers, found dtype "
        r".*float32.*pass rows of shape \(4, 3\)",
    ):
        loss.forward(backend.zeros((4, 3), "float64"), backend.zeros((4,), "float32"))


@pytest.mark.parametrize("loss", ALL, ids=repr)
def test_bad_pred_and_target(backend, loss):
    name = type(loss).__name__
    # a valid call first: forward skips checks it has already passed for arrays of the same
    # kind, and the errors below must come all the same
    loss.forward(backend.zeros((2, 3), "float64") + 0.5, backend.zeros((2, 3), "float64"))
    with pytest.raises(TypeError, match=rf"{name}.forward: pred must be a floating-point array, found dtype .*int64"):
        loss.forward(backend.asarray(np.zeros((2, 3), np.int64)), backend.zeros((2, 3), "float64"))
    with pytest.raises(ValueError, match=rf"{name}.forward: pred has shape \(0, 3\); a loss needs at least one"):
        loss.forward(backend.zeros((0, 3), "float64"), backend.zeros((0, 3), "float64"))
    with pytest.raises(TypeError, match=rf"{name}.forward: pred must be an array, found list"):
        loss.forward([[0.5, 0.5]], backend.zeros((1, 2), "float64"))
    # a target from another backend (host NumPy on a device backend, or the other way round)
    other = xpnn.get_backend("array_api_strict" if backend.name == "numpy" else "numpy")
    with pytest.raises(
        TypeError,
        match=rf"{name}.forward: target is an? .* but this model runs on backend "
        rf"'{backend.name}'",
    ):
        loss.forward(backend.zeros((2, 3), "float64"), other.zeros((2, 3), "float64"))


@pytest.mark.parametrize("loss", ALL, ids=repr)
def test_backward_before_forward(loss):
    fresh = type(loss)(**loss.config())
    with pytest.raises(RuntimeError, match=rf"{type(loss).__name__}.backward called before forward"):
        fresh.backward()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Huber(0.0), r"Huber: delta must be a number > 0, found 0.0"),
        (lambda: Huber(-1), r"Huber: delta must be a number > 0, found -1"),
        (lambda: Huber("1"), r"Huber: delta must be a number > 0, found '1'"),
        (lambda: Huber(True), r"Huber: delta must be a number .* found True"),
        (lambda: SoftmaxCrossEntropy(1.0), r"label_smoothing must be a number in \[0, 1\), found 1.0"),
        (lambda: SoftmaxCrossEntropy(-0.1), r"label_smoothing must be a number in \[0, 1\), found -0.1"),
        (lambda: BinaryCrossEntropy(0), r"BinaryCrossEntropy: eps must be a number in \(0, 0.5\), found 0"),
        (lambda: CrossEntropy(0.5), r"CrossEntropy: eps must be a number in \(0, 0.5\), found 0.5"),
    ],
)
def test_bad_constructor_arguments(make, message):
    """(NumPy scalars are numbers too: Huber(np.float32(2.0)) is accepted, see below.)"""
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_scalars_are_accepted():
    assert Huber(np.float32(2.0)).delta == 2.0 and type(Huber(np.float32(2.0)).delta) is float
    assert SoftmaxCrossEntropy(np.float64(0.1)).label_smoothing == pytest.approx(0.1)
    assert CrossEntropy(np.float32(1e-6)).eps == pytest.approx(1e-6)


# ---- a prediction at every position of a sequence (a language model) ----------------------


def np_sequence_reference(loss, p, t):
    """(value, gradient) for pred (N, T, C) from the 2-D reference on the flattened
    (N * T, C) rows: the mean over every position is the mean over those rows."""
    C = p.shape[-1]
    rows = t.reshape(-1) if t.ndim == p.ndim - 1 else t.reshape(-1, C)
    value, grad = reference(loss, p.reshape(-1, C), rows)
    return value, grad.reshape(p.shape)


def sequence_data(loss, rng, batch, seq, feat, labels):
    p, _ = make_data(loss, rng, batch * seq, feat)
    p = p.reshape(batch, seq, feat)
    if labels:
        return p, rng.integers(0, feat, size=(batch, seq))
    t = rng.uniform(0.0, 1.0, p.shape)
    return p, t / t.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
@SETTINGS
@given(batch=batches, seq=st.integers(1, 4), feat=features, labels=st.booleans(), seed=seeds)
def test_gradcheck_sequence(backend, loss, batch, seq, feat, labels, seed):
    if loss.name == "softmax_cross_entropy":
        feat = max(feat, 2)  # a softmax over one output is refused
    p, t = sequence_data(loss, np.random.default_rng(seed), batch, seq, feat, labels)
    assert xpnn.gradcheck(loss, on(backend, p), on(backend, t)) < 1e-6


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "rows"])
def test_sequence_is_the_mean_over_every_position(backend, loss, labels, rng):
    p, t = sequence_data(loss, rng, 3, 5, 4, labels)
    value = backend.to_float(loss.forward(on(backend, p), on(backend, t)))
    grad = backend.to_numpy(loss.backward())
    want_value, want_grad = np_sequence_reference(loss, p, t)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)


def test_sequence_against_torch(backend, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    N, T, C = 4, 6, 5
    p = 3 * rng.standard_normal((N, T, C))
    labels = rng.integers(0, C, (N, T))
    rows = np_softmax(rng.standard_normal((N * T, C))).reshape(N, T, C)
    # torch wants the class axis second: (N, C, T) logits, (N, T) labels, (N, C, T) rows
    for loss, t, ls in (
        (SoftmaxCrossEntropy(), labels, 0.0),
        (SoftmaxCrossEntropy(0.2), labels, 0.2),
        (SoftmaxCrossEntropy(0.1), rows, 0.1),
    ):
        value = backend.to_float(loss.forward(on(backend, p), on(backend, t)))
        grad = backend.to_numpy(loss.backward())
        tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        tt = torch.tensor(t) if t.ndim == 2 else torch.tensor(t).permute(0, 2, 1)
        tv = F.cross_entropy(tp.permute(0, 2, 1), tt, label_smoothing=ls)
        tv.backward()
        assert value == pytest.approx(tv.item(), rel=1e-10), loss
        np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-8, atol=1e-14, err_msg=repr(loss))


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
def test_sequence_labels_are_checked_at_every_position(backend, loss):
    logits = backend.zeros((2, 3, 4), "float64")
    bad = np.zeros((2, 3), np.int64)
    bad[1, 2] = 4  # the last position of the last sample
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\), found 4 at index \(1, 2\)"):
        loss.forward(logits, on(backend, bad))
    bad[0, 1] = -1
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\), found -1 at index \(0, 1\)"):
        loss.forward(logits, on(backend, bad))


@pytest.mark.parametrize("loss", CLASSWISE, ids=repr)
def test_sequence_shape_errors(backend, loss):
    logits = backend.zeros((2, 3, 4), "float64")
    with pytest.raises(
        ValueError, match=r"pred has shape \(2, 3, 4\) but target has shape \(2, 4\); labels need shape \(2, 3\)"
    ):
        loss.forward(logits, backend.zeros((2, 4), "int64"))
    with pytest.raises(
        ValueError,
        match=r"pred has shape \(2, 3, 4\) but target has shape \(2,\); expected integer labels of shape "
        r"\(2, 3\) or probability rows of shape \(2, 3, 4\)",
    ):
        loss.forward(logits, backend.zeros((2,), "int64"))
    with pytest.raises(TypeError, match=r"a 2-D target holds class labels, which must be integers, found dtype"):
        loss.forward(logits, backend.zeros((2, 3), "float64"))


def test_fit_takes_labels_per_position(rng):
    """A model whose output is (batch, seq, C) trains on integer labels (batch, seq): kept
    integers (no float copy), checked whole once (an out-of-range label names its sample
    and position), and the training loss falls."""
    V, T = 5, 6
    X = rng.integers(0, V, (64, T))
    y = (X + 1) % V  # predict the next id: learnable position by position
    model = xpnn.Sequential([xpnn.layers.Embedding(V, 8), xpnn.layers.TimeDistributed(xpnn.layers.Dense(8, V))], seed=0)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.05))
    before = model.evaluate(X, y)["loss"]
    model.fit(X, y, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(X, y)["loss"] < 0.5 * before
    bad = y.copy()
    bad[3, 4] = V
    with pytest.raises(ValueError, match=rf"labels must be integers in \[0, {V}\), found {V} at index \(3, 4\)"):
        model.fit(X, bad, epochs=1, verbose=0)


def test_fit_still_takes_integer_one_hot_rows(rng):
    """Integer (n, C) targets beside (n, C) outputs stay one-hot rows, as before labels per
    position existed: the same loss as from the labels, and a bad row is still refused."""
    X = rng.standard_normal((40, 4))
    labels = rng.integers(0, 3, 40)
    model = xpnn.Sequential([xpnn.layers.Dense(4, 3)], seed=0)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.01))
    model.fit(X, np.eye(3, dtype=np.int64)[labels], epochs=2, batch_size=8, verbose=0)
    rows = model.evaluate(X, np.eye(3, dtype=np.int64)[labels])["loss"]
    assert rows == pytest.approx(model.evaluate(X, labels)["loss"], rel=1e-6)
    with pytest.raises(ValueError, match=r"target rows \(one-hot or class probabilities\) must be in \[0, 1\]"):
        model.fit(X, 2 * np.eye(3, dtype=np.int64)[labels], epochs=1, verbose=0)
