"""Learning-rate schedules: values against their formulas, config round trips, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnn.schedules import (
    CosineDecay,
    ExponentialDecay,
    LinearWarmup,
    Schedule,
    StepDecay,
    get_schedule,
)


def test_step_decay_values():
    s = StepDecay(0.1, step_size=3, gamma=0.5)
    assert [s(t) for t in range(8)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert StepDecay(1.0, 10)(25) == pytest.approx(0.01)  # default gamma 0.1


def test_exponential_decay_values():
    s = ExponentialDecay(0.2, gamma=0.9)
    assert [s(t) for t in range(4)] == pytest.approx([0.2, 0.18, 0.162, 0.1458])


def test_cosine_decay_values():
    s = CosineDecay(1.0, total_steps=4, min_lr=0.2)
    # 0.2 + 0.8 * (1 + cos(pi * t / 4)) / 2
    assert [s(t) for t in range(6)] == pytest.approx(
        [1.0, 0.2 + 0.4 * (1 + math.sqrt(0.5)), 0.6, 0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.2, 0.2]
    )
    assert CosineDecay(0.5, 10)(10) == 0.0


def test_linear_warmup_values():
    s = LinearWarmup(0.4, warmup_steps=4)
    assert [s(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    # a wrapped schedule starts after the warmup
    w = LinearWarmup(StepDecay(1.0, step_size=2, gamma=0.5), warmup_steps=2)
    assert [w(t) for t in range(7)] == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25])


@settings(max_examples=15, deadline=None)
@given(step=st.integers(0, 10_000), lr=st.floats(1e-5, 1.0), total=st.integers(1, 500))
def test_values_are_floats_in_range(step, lr, total):
    for s in [
        StepDecay(lr, 7, 0.5),
        ExponentialDecay(lr, 0.99),
        CosineDecay(lr, total, lr / 10),
        LinearWarmup(CosineDecay(lr, total), 5),
    ]:
        value = s(step)
        assert type(value) is float
        assert 0.0 <= value <= lr * (1 + 1e-12)
    # monotone decay and warmup ramp
    c = CosineDecay(lr, total)
    assert c(step + 1) <= c(step)
    ramp = LinearWarmup(lr, total)
    assert ramp(min(step, total - 1)) == pytest.approx(lr * (min(step, total - 1) + 1) / total)


def test_numpy_integer_steps_are_accepted():
    assert StepDecay(1.0, 2)(np.int64(2)) == pytest.approx(0.1)


def test_numpy_scalar_arguments_are_accepted_as_python_numbers():
    s = StepDecay(np.float32(0.5), step_size=np.int64(3), gamma=np.float64(0.5))
    assert s.config() == StepDecay(0.5, 3, 0.5).config()
    assert type(s.lr) is float and type(s.step_size) is int and type(s.gamma) is float
    json.dumps(s.config())  # plain Python numbers: the config is JSON-able
    assert CosineDecay(np.float64(0.1), np.int32(10), min_lr=np.float32(0.0)).config() == CosineDecay(0.1, 10).config()
    assert ExponentialDecay(np.float64(0.2), np.float64(0.9))(np.uint8(1)) == pytest.approx(0.18)
    warm = LinearWarmup(np.float64(0.4), warmup_steps=np.int16(4))
    assert warm.config() == LinearWarmup(0.4, 4).config() and type(warm.schedule) is float


@pytest.mark.parametrize(
    "schedule",
    [
        StepDecay(0.1, 5, 0.3),
        ExponentialDecay(0.01, 0.95),
        CosineDecay(0.1, 100, 0.001),
        LinearWarmup(0.01, 10),
        LinearWarmup(CosineDecay(0.1, 50), 5),
        LinearWarmup(LinearWarmup(ExponentialDecay(0.1, 0.9), 2), 3),
    ],
)
def test_config_round_trip(schedule):
    cfg = schedule.config()
    again = get_schedule(json.loads(json.dumps(cfg)))
    assert type(again) is type(schedule)
    assert again.config() == cfg
    assert [again(t) for t in range(0, 120, 7)] == [schedule(t) for t in range(0, 120, 7)]
    assert get_schedule(schedule) is schedule
    assert type(schedule).__name__ in repr(schedule)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: StepDecay(0, 5), r"StepDecay: lr must be a number > 0, found 0"),
        (lambda: StepDecay(True, 5), r"StepDecay: lr must be a number > 0, found True"),
        (lambda: StepDecay(0.1, 0), r"StepDecay: step_size must be a positive integer, found 0"),
        (lambda: StepDecay(0.1, 2.5), r"StepDecay: step_size must be a positive integer, found 2.5"),
        (lambda: StepDecay(0.1, True), r"StepDecay: step_size must be a positive integer, found True"),
        (lambda: StepDecay(0.1, 2, gamma=-1), r"StepDecay: gamma must be a number > 0, found -1"),
        (lambda: ExponentialDecay(0.1, 0), r"ExponentialDecay: gamma must be a number > 0, found 0"),
        (lambda: ExponentialDecay(float("inf"), 0.9), r"ExponentialDecay: lr must be a number > 0, found inf"),
        (lambda: CosineDecay(0.1, 0), r"CosineDecay: total_steps must be a positive integer, found 0"),
        (lambda: CosineDecay(0.1, 10, min_lr=0.2), r"CosineDecay: min_lr must be a number in \[0, 0.1\], found 0.2"),
        (lambda: CosineDecay(0.1, 10, min_lr=-0.1), r"CosineDecay: min_lr must be a number in \[0, 0.1\], found -0.1"),
        (lambda: LinearWarmup(0.1, 0), r"LinearWarmup: warmup_steps must be a positive integer, found 0"),
        (lambda: LinearWarmup(0.1, np.float64(2.0)), r"LinearWarmup: warmup_steps must be a positive integer, found"),
        (
            lambda: LinearWarmup("x", 3),
            r"LinearWarmup: schedule_or_lr \(a Schedule or an lr\) must be a number > 0, found 'x'",
        ),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_steps_and_configs():
    s = StepDecay(0.1, 2)
    with pytest.raises(ValueError, match=r"StepDecay: step must be a non-negative integer, found -1"):
        s(-1)
    with pytest.raises(ValueError, match=r"StepDecay: step must be a non-negative integer, found 1.5"):
        s(1.5)
    with pytest.raises(ValueError, match=r"StepDecay: step must be a non-negative integer, found True"):
        s(True)
    with pytest.raises(
        ValueError,
        match=r"'name' one of \['cosine_decay', 'exponential_decay', 'linear_warmup', 'step_decay'\], found 'poly'",
    ):
        get_schedule({"name": "poly"})
    with pytest.raises(ValueError, match="found 0.1"):
        get_schedule(0.1)
    with pytest.raises(ValueError, match="get_schedule: bad arguments for 'step_decay'"):
        get_schedule({"name": "step_decay", "lr": 0.1})
    with pytest.raises(NotImplementedError):
        Schedule()(0)
