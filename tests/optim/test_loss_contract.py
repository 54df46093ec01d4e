"""The loss contract, for every registered loss on every backend.

Parametrized over ``xpnn.losses.LOSSES`` (a newly registered loss without a case here fails
``test_every_registered_loss_has_a_case``):

- float64 central-difference gradient check of ``backward()`` against ``forward``, on
  target rows and, for losses that take labels, on integer labels;
- ``forward`` returns a 0-d array on pred's backend and device; float32 stays float32;
- ``config()`` is JSON and rebuilds the same loss by name (``get_loss(name, **config)``),
  and a model compiled with it saves and loads with the same loss.

The formulas themselves are checked against NumPy and PyTorch in tests/optim/test_losses.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.losses import LOSSES, get_loss


def _regression(rng, shape=(4, 3)):
    """pred - target with |r| in [0.2, 0.4] or [1.5, 3]: away from MAE's kink at 0 and
    Huber's at delta = 1, so finite differences see a smooth function."""
    t = rng.standard_normal(shape)
    mag = np.where(rng.random(shape) < 0.5, rng.uniform(0.2, 0.4, shape), rng.uniform(1.5, 3.0, shape))
    return t + mag * rng.choice([-1.0, 1.0], size=shape), t


def _probabilities(rng, shape=(4, 3)):
    return rng.uniform(0.05, 0.95, shape), rng.uniform(0.0, 1.0, shape)


def _logits(rng, shape=(4, 3)):
    return 3 * rng.standard_normal(shape), rng.uniform(0.0, 1.0, shape)


def _class_rows(pred):
    def make(rng, shape=(4, 3)):
        t = rng.uniform(0.0, 1.0, shape)
        return pred(rng, shape), t / t.sum(axis=1, keepdims=True)

    return make


# name -> (the loss, made with non-default arguments where it has any; (pred, target) maker)
CASES = {
    "mse": (lambda: xpnn.MSE(), _regression),
    "mae": (lambda: xpnn.MAE(), _regression),
    "huber": (lambda: xpnn.Huber(delta=1.0), _regression),
    "bce": (lambda: xpnn.BinaryCrossEntropy(eps=1e-6), _probabilities),
    "bce_with_logits": (lambda: xpnn.BCEWithLogits(), _logits),
    "softmax_cross_entropy": (
        lambda: xpnn.SoftmaxCrossEntropy(label_smoothing=0.1),
        _class_rows(lambda rng, shape: 3 * rng.standard_normal(shape)),
    ),
    "cross_entropy": (lambda: xpnn.CrossEntropy(eps=1e-6), _class_rows(lambda rng, s: rng.uniform(0.05, 1.0, s))),
}
NAMES = sorted(CASES)


def _data(name, backend, dtype="float64", labels=False, seed=0):
    rng = np.random.default_rng(seed)
    pred, target = CASES[name][1](rng)
    if labels:
        target = rng.integers(0, pred.shape[1], size=pred.shape[0])
        return backend.asarray(pred, dtype=dtype), backend.asarray(target)
    return backend.asarray(pred, dtype=dtype), backend.asarray(target, dtype=dtype)


def test_every_registered_loss_has_a_case():
    assert set(CASES) == set(LOSSES), "add a case for each registered loss"
    for name in NAMES:
        assert type(CASES[name][0]()) is LOSSES[name]


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(backend, name):
    loss = CASES[name][0]()
    for labels in (False, True) if loss.accepts_labels else (False,):
        for seed in (0, 1):
            pred, target = _data(name, backend, labels=labels, seed=seed)
            assert xpnn.gradcheck(loss, pred, target) < 1e-6, (labels, seed)


@pytest.mark.parametrize("name", NAMES)
def test_a_0d_value_on_the_backend_and_float32_stays_float32(backend, name):
    loss = CASES[name][0]()
    pred, target = _data(name, backend, dtype="float32")
    value = loss.forward(pred, target)
    assert backend.owns(value) and value.ndim == 0 and value.dtype == pred.dtype
    grad = loss.backward()
    assert backend.owns(grad) and tuple(grad.shape) == tuple(pred.shape) and grad.dtype == pred.dtype


@pytest.mark.parametrize("name", NAMES)
def test_config_rebuilds_the_same_loss_by_name(backend, name):
    loss = CASES[name][0]()
    config = json.loads(json.dumps(loss.config()))
    rebuilt = get_loss(name, **config)
    assert type(rebuilt) is type(loss) and rebuilt.config() == loss.config()
    pred, target = _data(name, backend)
    assert backend.to_float(rebuilt.forward(pred, target)) == backend.to_float(loss.forward(pred, target))


@pytest.mark.parametrize("name", NAMES)
def test_round_trips_through_a_model_file(name, tmp_path):
    loss = CASES[name][0]()
    model = xpnn.Sequential([xpnn.Dense(3, 3)], seed=0).compile(loss, "sgd")
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors")
    assert type(loaded.loss) is type(loss) and loaded.loss.config() == loss.config()
