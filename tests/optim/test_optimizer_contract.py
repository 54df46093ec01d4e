"""The optimizer contract, for every registered optimizer on every backend.

Parametrized over ``xpnn.optimizers.OPTIMIZERS`` (a newly registered optimizer without a
case here fails ``test_every_registered_optimizer_has_a_case``):

- ``config()`` is JSON and rebuilds the same optimizer (``get_optimizer(config)``);
- training that stops, saves the model to a file, loads it and goes on ends with exactly
  the weights of training straight through: the state (moments, momentum), the step count
  (bias correction, schedules) and the hyperparameters all came back;
- params stay float32 and on the model's backend, and every step moves them.

The update formulas themselves are checked in tests/optim/test_optimizers.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.optimizers import OPTIMIZERS, get_optimizer
from xpnn.schedules import CosineDecay

# name -> the optimizer, with the options that give it state (momentum) and a schedule
# where the step count matters to the lr; large coefficients so a lost term shows
CASES = {
    "sgd": lambda: xpnn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "rmsprop": lambda: xpnn.RMSprop(lr=0.01, rho=0.8, momentum=0.5),
    "adagrad": lambda: xpnn.Adagrad(lr=0.1, eps=1e-3),
    "adam": lambda: xpnn.Adam(lr=CosineDecay(0.02, total_steps=20), beta1=0.8, beta2=0.9, weight_decay=0.01),
    "adamw": lambda: xpnn.AdamW(lr=0.01, beta1=0.7, weight_decay=0.1),
}
NAMES = sorted(CASES)


def test_every_registered_optimizer_has_a_case():
    assert set(CASES) == set(OPTIMIZERS), "add a case for each registered optimizer"
    for name in NAMES:
        assert type(CASES[name]()) is OPTIMIZERS[name]


def _data(n=24):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, (np.arange(n) % 3).astype(np.int64)


def _model(name, backend):
    model = xpnn.Sequential([xpnn.Dense(4, 6), xpnn.Tanh(), xpnn.Dense(6, 3)], backend=backend, seed=2)
    return model.compile("softmax_cross_entropy", CASES[name]())


def _weights(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


@pytest.mark.parametrize("name", NAMES)
def test_repr_of_one_whose_init_raised_names_the_class(name):
    """A traceback's or debugger's view of an optimizer whose constructor raised (here on a
    bad lr) shows it rather than raising AttributeError from __repr__."""
    cls = OPTIMIZERS[name]
    with pytest.raises(ValueError, match="lr") as raised:
        cls(lr=-1.0)
    half_made = raised.traceback[-1].frame.f_locals.get("self") or cls.__new__(cls)
    assert repr(half_made) == f"{cls.__name__}(<not constructed>)"
    assert repr(CASES[name]()).startswith(f"{cls.__name__}(lr=")


@pytest.mark.parametrize("name", NAMES)
def test_config_rebuilds_the_same_optimizer(name):
    optimizer = CASES[name]()
    rebuilt = get_optimizer(json.loads(json.dumps(optimizer.config())))
    assert type(rebuilt) is type(optimizer) and rebuilt.config() == optimizer.config()


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trips_through_a_model_file_and_resumes_exactly(backend, name, tmp_path):
    X, y = _data()
    fit = dict(batch_size=8, shuffle=False, verbose=0)  # 3 steps an epoch
    straight = _model(name, backend)
    straight.fit(X, y, epochs=4, **fit)

    first = _model(name, backend)
    first.fit(X, y, epochs=2, **fit)
    assert first.optimizer.state_arrays() or not first.optimizer.state_names
    first.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors", backend=backend)
    assert type(loaded.optimizer) is type(first.optimizer)
    assert loaded.optimizer.config() == first.optimizer.config() and loaded.optimizer.iterations == 6
    saved = {k: np.array(backend.to_numpy(v)) for k, v in first.optimizer.state_arrays().items()}
    found = {k: np.array(loaded.backend.to_numpy(v)) for k, v in loaded.optimizer.state_arrays().items()}
    assert saved.keys() == found.keys()
    for key in saved:
        np.testing.assert_array_equal(found[key], saved[key], err_msg=key)
    loaded.fit(X, y, epochs=4, initial_epoch=2, **fit)
    for a, b in zip(_weights(loaded), _weights(straight)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_every_step_moves_float32_params_on_the_backend(backend, name):
    X, y = _data()
    model = _model(name, backend)
    before = _weights(model)
    model.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for w, old in zip(model.get_weights(), before):
        assert model.backend.owns(w) and w.dtype == model.backend.dtype("float32")
        assert not np.array_equal(np.array(model.backend.to_numpy(w)), old)
    assert all(model.backend.owns(a) for a in model.optimizer.state_arrays().values())
