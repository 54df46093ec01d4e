"""The schedule and backend registries' contracts.

Schedules, parametrized over ``xpnn.schedules.SCHEDULES`` (a new one without a case fails
``test_every_registered_schedule_has_a_case``): ``config()`` is JSON and rebuilds the
same schedule (``get_schedule``) with the same values at every step, and an optimizer
using it saves into a model file and loads with the same lr at the same step.

Backends, over ``xpnn.backends.BACKENDS``: each registered backend either starts (arrays
go there and back, and it knows them as its own) or says what to install, and
``available_backends`` reports it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import xpnn
from xpnn.backends import BACKENDS, Backend, available_backends
from xpnn.schedules import SCHEDULES, CosineDecay, ExponentialDecay, LinearWarmup, StepDecay, get_schedule

CASES = {
    "step_decay": lambda: StepDecay(0.1, step_size=3, gamma=0.5),
    "exponential_decay": lambda: ExponentialDecay(0.1, gamma=0.9),
    "cosine_decay": lambda: CosineDecay(0.1, total_steps=10, min_lr=0.01),
    "linear_warmup": lambda: LinearWarmup(CosineDecay(0.1, total_steps=10), warmup_steps=4),
}
NAMES = sorted(CASES)


def test_every_registered_schedule_has_a_case():
    assert set(CASES) == set(SCHEDULES), "add a case for each registered schedule"
    for name in NAMES:
        assert type(CASES[name]()) is SCHEDULES[name]


@pytest.mark.parametrize("name", NAMES)
def test_config_rebuilds_the_same_schedule(name):
    schedule = CASES[name]()
    rebuilt = get_schedule(json.loads(json.dumps(schedule.config())))
    assert type(rebuilt) is type(schedule) and rebuilt.config() == schedule.config()
    values = [schedule(step) for step in range(15)]
    assert [rebuilt(step) for step in range(15)] == values
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in values)


@pytest.mark.parametrize("name", NAMES)
def test_round_trips_through_a_model_file(name, tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 3)).astype(np.float32), (np.arange(16) % 2).astype(np.int64)
    model = xpnn.Sequential([xpnn.Dense(3, 2)], seed=0).compile("softmax_cross_entropy", xpnn.SGD(lr=CASES[name]()))
    model.fit(X, y, epochs=1, batch_size=4, verbose=0)  # 4 steps: the lr of step 4 comes next
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors")
    assert type(loaded.optimizer.lr) is SCHEDULES[name]
    assert loaded.optimizer.get_lr() == model.optimizer.get_lr() == CASES[name]()(4)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_starts_or_says_what_to_install(name):
    cls = BACKENDS[name]
    assert issubclass(cls, Backend) and cls.name == name
    found = available_backends()[name]
    try:
        backend = xpnn.get_backend(name)
    except RuntimeError as exc:  # the library or its device is missing here
        assert isinstance(found, str) and str(exc), found
        return
    assert isinstance(found, list) and found
    a = backend.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert backend.owns(a) and xpnn.backend_of(a) is backend
    np.testing.assert_array_equal(backend.to_numpy(a), np.arange(6, dtype=np.float32).reshape(2, 3))
