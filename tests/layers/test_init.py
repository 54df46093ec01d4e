"""Initializers: every name, fans for Dense and conv layouts, draw statistics,
reproducibility across backends, callables and bad names."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import xpnn
from xpnn import init
from xpnn.backends import get_backend

# ---- fans ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((784, 128), (784, 128)),  # Dense W: (in, out)
        ((16, 3, 5, 5), (3 * 25, 16 * 25)),  # conv2d W: (out, in, kh, kw)
        ((8, 4, 3), (4 * 3, 8 * 3)),  # conv1d W: (out, in, k)
        ((2, 6, 3, 3, 3), (6 * 27, 2 * 27)),  # conv3d
        ((10,), (10, 10)),
    ],
)
def test_fans(shape, expected):
    assert init.fans(shape) == expected


def test_fans_need_an_axis():
    with pytest.raises(ValueError, match=r"at least one axis, found \(\)"):
        init.fans(())


# ---- every name ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_every_name_draws_the_right_shape_dtype_and_device(backend, name):
    fn = init.get(name)
    g = backend.rng(0)
    for dtype in ("float32", "float64"):
        W = fn(g, (6, 4), dtype)
        assert tuple(W.shape) == (6, 4)
        assert W.dtype == backend.dtype(dtype)
        assert backend.owns(W)
        assert np.all(np.isfinite(backend.to_numpy(W)))
    K = fn(g, (3, 2, 3, 3), backend.xp.float32)
    assert tuple(K.shape) == (3, 2, 3, 3)


def test_names_are_case_insensitive_and_aliases_agree():
    assert init.get("He_Normal") is init.he_normal
    assert init.get("kaiming_normal") is init.he_normal
    assert init.get("xavier_uniform") is init.glorot_uniform
    assert init.get("kaiming_uniform") is init.he_uniform
    assert init.get("xavier_normal") is init.glorot_normal


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_name_of_round_trips(name):
    fn = init.get(name)
    assert init.get(init.name_of(fn)) is fn


@pytest.mark.parametrize(
    "fn", [init.normal(0.05), init.normal(0.1, mean=2.0), init.uniform(0.3), init.normal()], ids=lambda f: f.__name__
)
def test_factory_names_load_back(fn):
    """A saved config names ``normal(0.05)`` as "normal(std=0.05)": get() must rebuild it."""
    again = init.get(init.name_of(fn))
    b = get_backend("numpy")
    np.testing.assert_array_equal(
        np.asarray(again(b.rng(0), (4, 3), "float64")), np.asarray(fn(b.rng(0), (4, 3), "float64"))
    )
    layer = xpnn.Dense(3, 2, init=fn)
    assert xpnn.Dense(**layer.config()).config() == layer.config()


@pytest.mark.parametrize("bad", ["normal(sd=1)", "uniform(0.1)", "normal(std=x)", "glorot(std=1)"])
def test_bad_factory_names(bad):
    with pytest.raises(ValueError, match=rf"found {re.escape(repr(bad))}"):
        init.get(bad)


def test_zeros_and_ones(backend):
    g = backend.rng(0)
    np.testing.assert_array_equal(backend.to_numpy(init.zeros(g, (3, 2), "float32")), np.zeros((3, 2)))
    np.testing.assert_array_equal(backend.to_numpy(init.ones(g, (3,), "float64")), np.ones(3))


# ---- statistics on large draws -------------------------------------------------------------

# (initializer, shape, "uniform" limit or "normal" std expected from the fans)
IN, OUT = 300, 500
CONV = (64, 32, 3, 3)  # fan_in 288, fan_out 576
STATS = [
    (init.glorot_uniform, (IN, OUT), "uniform", math.sqrt(6 / (IN + OUT))),
    (init.glorot_normal, (IN, OUT), "normal", math.sqrt(2 / (IN + OUT))),
    (init.he_uniform, (IN, OUT), "uniform", math.sqrt(6 / IN)),
    (init.he_normal, (IN, OUT), "normal", math.sqrt(2 / IN)),
    (init.lecun_normal, (IN, OUT), "normal", math.sqrt(1 / IN)),
    (init.glorot_uniform, CONV, "uniform", math.sqrt(6 / (288 + 576))),
    (init.glorot_normal, CONV, "normal", math.sqrt(2 / (288 + 576))),
    (init.he_uniform, CONV, "uniform", math.sqrt(6 / 288)),
    (init.he_normal, CONV, "normal", math.sqrt(2 / 288)),
    (init.lecun_normal, CONV, "normal", math.sqrt(1 / 288)),
    (init.normal(0.05), (IN, OUT), "normal", 0.05),
    (init.normal(), (IN, OUT), "normal", 0.01),
    (init.uniform(0.1), (IN, OUT), "uniform", 0.1),
    (init.uniform(), (IN, OUT), "uniform", 0.05),
]


@pytest.mark.parametrize(
    "fn, shape, kind, scale", STATS, ids=[f"{getattr(f, '__name__', f)}-{len(s)}d" for f, s, _, _ in STATS]
)
def test_draw_statistics(fn, shape, kind, scale):
    backend = get_backend("numpy")
    W = np.asarray(fn(backend.rng(0), shape, "float64"))
    n = W.size
    assert abs(W.mean()) < 4 * scale / math.sqrt(n)
    if kind == "uniform":  # U(-limit, limit): std limit / sqrt(3), edges reached
        assert np.abs(W).max() <= scale
        assert np.abs(W).max() > 0.99 * scale
        assert W.std() == pytest.approx(scale / math.sqrt(3), rel=0.02)
    else:
        assert W.std() == pytest.approx(scale, rel=0.02)
        assert np.abs(W).max() > 3 * scale  # a normal's tails, not a uniform's box


def test_normal_mean():
    W = np.asarray(init.normal(0.1, mean=2.0)(get_backend("numpy").rng(0), (100_000,), "float64"))
    assert W.mean() == pytest.approx(2.0, abs=0.005)


# ---- reproducibility -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_same_seed_same_weights_on_numpy_and_strict(name):
    fn = init.get(name)
    np_b, strict = get_backend("numpy"), get_backend("array_api_strict")
    for dtype in ("float32", "float64"):
        a = np_b.to_numpy(fn(np_b.rng(11), (7, 5), dtype))
        b = strict.to_numpy(fn(strict.rng(11), (7, 5), dtype))
        assert a.dtype == b.dtype == np.dtype(dtype)
        assert a.tobytes() == b.tobytes()  # bitwise equal


def test_dense_weights_same_on_every_backend(backend):
    ref = xpnn.Dense(6, 4).bind(get_backend("numpy"), get_backend("numpy").rng(3), "float32")
    got = xpnn.Dense(6, 4).bind(backend, backend.rng(3), "float32")
    assert backend.to_numpy(got.params["W"]).tobytes() == np.asarray(ref.params["W"]).tobytes()


def test_different_seeds_differ():
    b = get_backend("numpy")
    assert not np.array_equal(
        np.asarray(init.he_normal(b.rng(1), (5, 5), "float32")), np.asarray(init.he_normal(b.rng(2), (5, 5), "float32"))
    )


# ---- callables and bad names ---------------------------------------------------------------


def test_callable_init_is_accepted(backend):
    calls = []

    def constant(generator, shape, dtype):
        calls.append((shape, dtype))
        return generator.backend.xp.full(shape, 0.25, dtype=dtype, device=generator.backend.device)

    assert init.get(constant) is constant
    layer = xpnn.Dense(3, 2, init=constant).bind(backend, backend.rng(0), "float32")
    assert calls == [((3, 2), backend.xp.float32)]
    np.testing.assert_array_equal(backend.to_numpy(layer.params["W"]), np.full((3, 2), 0.25))
    assert init.name_of(constant) == "constant"
    assert layer.config()["init"] == "constant"


def test_init_factories_used_in_dense(backend):
    layer = xpnn.Dense(40, 30, init=init.uniform(0.01), bias_init="ones").bind(backend, backend.rng(0), "float64")
    W = backend.to_numpy(layer.params["W"])
    assert np.abs(W).max() <= 0.01
    np.testing.assert_array_equal(backend.to_numpy(layer.params["b"]), np.ones(30))


@pytest.mark.parametrize("bad", ["he", "glorot", "", 3, None])
def test_bad_name(bad):
    with pytest.raises(ValueError) as err:
        init.get(bad)
    msg = str(err.value)
    assert msg.startswith("init must be a callable or one of")
    assert "'he_normal'" in msg and "'glorot_uniform'" in msg
    assert f"found {bad!r}" in msg


def test_bad_name_in_dense_names_the_argument():
    with pytest.raises(ValueError, match=r"^init must be .* found 'he'"):
        xpnn.Dense(3, 2, init="he")
    with pytest.raises(ValueError, match=r"^bias_init must be .* found 'zero'"):
        xpnn.Dense(3, 2, bias_init="zero")
