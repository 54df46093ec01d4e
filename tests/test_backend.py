"""Backend: names and namespaces, the default (set_backend, use_backend, XPNN_BACKEND),
the CuPy-missing message, array ownership checks, the seeded Generator, scatter_add."""

from __future__ import annotations

import json
import sys
import threading

import array_api_compat
import array_api_compat.numpy
import array_api_strict
import numpy as np
import pytest

import xpnn
import xpnn.backend as backend_mod
from xpnn.backend import Backend, backend_of, get_backend, set_backend, use_backend


@pytest.fixture
def clean_default(monkeypatch):
    """No default chosen by set_backend/use_backend (restored afterwards), no XPNN_BACKEND."""
    monkeypatch.setattr(backend_mod, "_default_name", None)
    monkeypatch.setattr(backend_mod, "_state", threading.local())
    monkeypatch.delenv("XPNN_BACKEND", raising=False)


# ---- names and namespaces -----------------------------------------------------------------


def test_get_backend_numpy():
    b = get_backend("numpy")
    assert b.name == "numpy"
    assert b.xp is array_api_compat.numpy
    assert b.native is np
    assert b.device == "cpu"


def test_get_backend_array_api_strict_on_non_default_device():
    b = get_backend("array_api_strict")
    assert b.name == "array_api_strict"
    assert b.xp is array_api_strict
    assert b.device == array_api_strict.Device("device1")
    assert b.device != array_api_strict.Device("CPU_DEVICE")


@pytest.mark.parametrize("spelling, name", [
    ("NumPy", "numpy"), ("array-api-strict", "array_api_strict"), ("ARRAY_API_STRICT", "array_api_strict"),
])
def test_get_backend_normalizes_names(spelling, name):
    assert get_backend(spelling) is get_backend(name)


def test_get_backend_is_cached():
    assert get_backend("numpy") is get_backend("numpy")
    assert get_backend("array_api_strict") is get_backend("array_api_strict")


@pytest.mark.parametrize("module, name", [
    (np, "numpy"), (array_api_compat.numpy, "numpy"), (array_api_strict, "array_api_strict"),
])
def test_get_backend_from_namespace_module(module, name):
    assert get_backend(module) is get_backend(name)


def test_get_backend_passes_a_backend_through():
    b = get_backend("array_api_strict")
    assert get_backend(b) is b


@pytest.mark.parametrize("bad", ["tensorflow", "cpu", ""])
def test_get_backend_invalid_name(bad):
    with pytest.raises(ValueError) as err:
        get_backend(bad)
    msg = str(err.value)
    assert repr(bad) in msg
    for name in ("numpy", "cupy", "array_api_strict"):
        assert name in msg


def test_get_backend_wrong_type():
    with pytest.raises(TypeError, match="found int"):
        get_backend(3)


def test_backend_equality_and_hash():
    a, b = get_backend("numpy"), Backend("numpy", array_api_compat.numpy, "cpu", np)
    assert a == b and hash(a) == hash(b)
    assert a != get_backend("array_api_strict")
    assert "numpy" in repr(a)


# ---- the default: set_backend, use_backend, XPNN_BACKEND ---------------------------------


def test_default_is_numpy(clean_default):
    assert get_backend() is get_backend("numpy")


def test_set_backend(clean_default):
    returned = set_backend("array_api_strict")
    assert returned is get_backend("array_api_strict")
    assert get_backend() is returned
    set_backend("numpy")
    assert get_backend() is get_backend("numpy")


def test_set_backend_invalid_keeps_previous_default(clean_default):
    set_backend("array_api_strict")
    with pytest.raises(ValueError, match="'nope'"):
        set_backend("nope")
    assert get_backend() is get_backend("array_api_strict")


def test_use_backend_nests_and_restores(clean_default):
    set_backend("numpy")
    with use_backend("array_api_strict") as outer:
        assert outer is get_backend("array_api_strict")
        assert get_backend() is outer
        with use_backend("numpy") as inner:
            assert get_backend() is inner is get_backend("numpy")
            with use_backend(array_api_strict):
                assert get_backend() is outer
            assert get_backend() is inner
        assert get_backend() is outer
    assert get_backend() is get_backend("numpy")


def test_use_backend_restores_after_an_exception(clean_default):
    with pytest.raises(RuntimeError, match="boom"):
        with use_backend("array_api_strict"):
            raise RuntimeError("boom")
    assert get_backend() is get_backend("numpy")


def test_use_backend_invalid_name_leaves_default(clean_default):
    with pytest.raises(ValueError):
        with use_backend("nope"):
            pass  # pragma: no cover
    assert get_backend() is get_backend("numpy")


def test_use_backend_beats_set_backend(clean_default):
    set_backend("array_api_strict")
    with use_backend("numpy"):
        assert get_backend() is get_backend("numpy")
    assert get_backend() is get_backend("array_api_strict")


def test_xpnn_backend_env_var(clean_default, monkeypatch):
    # Backends are cached per name, but the env var is read on every get_backend(None):
    # switching it switches the default (both names may already be cached by other tests).
    get_backend("numpy"), get_backend("array_api_strict")
    monkeypatch.setenv("XPNN_BACKEND", "array_api_strict")
    assert get_backend() is get_backend("array_api_strict")
    monkeypatch.setenv("XPNN_BACKEND", "numpy")
    assert get_backend() is get_backend("numpy")
    monkeypatch.setenv("XPNN_BACKEND", "")
    assert get_backend() is get_backend("numpy")


def test_xpnn_backend_env_var_is_overridden(clean_default, monkeypatch):
    monkeypatch.setenv("XPNN_BACKEND", "array_api_strict")
    with use_backend("numpy"):
        assert get_backend() is get_backend("numpy")
    set_backend("numpy")
    assert get_backend() is get_backend("numpy")


def test_xpnn_backend_env_var_invalid(clean_default, monkeypatch):
    monkeypatch.setenv("XPNN_BACKEND", "jax_on_a_toaster")
    with pytest.raises(ValueError) as err:
        get_backend()
    msg = str(err.value)
    assert msg.startswith("environment variable XPNN_BACKEND: backend must be one of")
    assert "'jax_on_a_toaster'" in msg


def test_use_backend_is_per_thread(clean_default):
    seen = {}

    def other():
        seen["other"] = get_backend()

    with use_backend("array_api_strict"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["other"] is get_backend("numpy")


# ---- CuPy missing -------------------------------------------------------------------------


@pytest.fixture
def no_cupy(monkeypatch):
    """``import cupy`` fails, and no cupy backend is cached from earlier."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    for key in [k for k in backend_mod._cache if k[0] == "cupy"]:
        monkeypatch.delitem(backend_mod._cache, key)


def test_cupy_missing_says_what_to_install(no_cupy):
    with pytest.raises(RuntimeError) as err:
        get_backend("cupy")
    msg = str(err.value)
    assert 'pip install "xpnn[cuda12]"' in msg
    assert "cuda13" in msg
    assert "cupy" in msg.lower()


def test_cupy_missing_in_available_backends(no_cupy):
    found = xpnn.available_backends()
    assert found["numpy"] is True
    assert found["array_api_strict"] is True
    assert 'pip install "xpnn[cuda12]"' in found["cupy"]


def test_cupy_missing_through_set_and_use_backend(no_cupy, clean_default):
    with pytest.raises(RuntimeError, match=r"xpnn\[cuda12\]"):
        set_backend("cupy")
    with pytest.raises(RuntimeError, match=r"xpnn\[cuda12\]"):
        with use_backend("cupy"):
            pass  # pragma: no cover
    assert get_backend() is get_backend("numpy")


# ---- arrays: asarray, to_numpy, ownership and check ----------------------------------------


def test_asarray_places_on_device_and_casts(backend):
    a = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float32")
    assert backend.owns(a)
    assert a.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(a), np.arange(6.0).reshape(2, 3))
    b = backend.asarray([[1.0, 2.0], [3.0, 4.0]])
    assert backend.owns(b) and tuple(b.shape) == (2, 2)
    assert backend.asarray([1, 2]).dtype == backend.xp.int64
    assert backend.asarray(np.ones(2), dtype=np.float32).dtype == backend.xp.float32


def test_zeros_and_to_float(backend):
    z = backend.zeros((3, 2))
    assert backend.owns(z) and z.dtype == backend.xp.float32
    assert backend.to_float(backend.xp.sum(backend.asarray([1.5, 2.0]))) == 3.5
    assert isinstance(backend.to_float(backend.xp.sum(z)), float)


def test_dtype_lookup(backend):
    xp = backend.xp
    assert backend.dtype("float64") == xp.float64
    assert backend.dtype(np.float32) == xp.float32
    assert backend.dtype(np.dtype("int64")) == xp.int64
    assert backend.dtype(xp.float32) == xp.float32


def test_dtype_not_available():
    with pytest.raises(ValueError, match="float16.*array_api_strict"):
        get_backend("array_api_strict").dtype("float16")


def test_backend_of():
    assert backend_of(np.ones(2)) is get_backend("numpy")
    strict = get_backend("array_api_strict")
    assert backend_of(strict.asarray([1.0])) is strict
    cpu = array_api_strict.asarray([1.0])  # default device, not the backend's device1
    other = backend_of(cpu)
    assert other.name == "array_api_strict" and other.device == cpu.device
    assert other.owns(cpu) and not strict.owns(cpu)


def test_check_accepts_own_arrays(backend):
    backend.check(backend.zeros((2,)), "X")


def test_check_numpy_array_on_strict_backend():
    strict = get_backend("array_api_strict")
    with pytest.raises(TypeError) as err:
        strict.check(np.ones((4, 3)), "X", "Dense(3, 2).forward")
    msg = str(err.value)
    assert msg.startswith("Dense(3, 2).forward: X is a numpy.ndarray")
    assert "(4, 3)" in msg
    assert "'array_api_strict'" in msg and "device1" in msg
    assert "backend.asarray(X)" in msg


def test_check_strict_array_on_numpy_backend():
    strict = get_backend("array_api_strict")
    with pytest.raises(TypeError) as err:
        get_backend("numpy").check(strict.zeros((2,)), "y")
    msg = str(err.value)
    assert msg.startswith("y is an array_api_strict.Array")
    assert "device1" in msg
    assert "runs on backend 'numpy'" in msg


def test_check_strict_array_on_another_device():
    strict = get_backend("array_api_strict")
    with pytest.raises(TypeError, match="CPU_DEVICE"):
        strict.check(array_api_strict.asarray([1.0]), "X")


@pytest.mark.parametrize("thing, described", [([1.0, 2.0], "builtins.list"), (3.0, "builtins.float")])
def test_check_non_arrays(backend, thing, described):
    with pytest.raises(TypeError, match=described):
        backend.check(thing, "X")


# ---- Generator -----------------------------------------------------------------------------


def _draws(g):
    return [
        g.normal((3, 4), std=2.0, mean=1.0),
        g.uniform((5,), -1.0, 1.0),
        g.bernoulli((4, 4), 0.5),
        g.permutation(7),
        g.integers(0, 10, (6,)),
    ]


def test_generator_reproducible_from_seed(backend):
    a = [backend.to_numpy(x) for x in _draws(backend.rng(42))]
    b = [backend.to_numpy(x) for x in _draws(backend.rng(42))]
    c = [backend.to_numpy(x) for x in _draws(backend.rng(43))]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_generator_same_numbers_on_every_backend(backend):
    ref = [np.asarray(x) for x in _draws(get_backend("numpy").rng(7))]
    got = [backend.to_numpy(x) for x in _draws(backend.rng(7))]
    for x, y in zip(ref, got):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_generator_dtypes_and_placement(backend):
    g = backend.rng(0)
    xp = backend.xp
    for a in (g.normal((2,)), g.uniform((2,)), g.bernoulli((2,), 0.5)):
        assert a.dtype == xp.float32 and backend.owns(a)
    for dtype in ("float64", np.float64, np.dtype("float64"), xp.float64):
        assert g.normal((2,), dtype=dtype).dtype == xp.float64
        assert g.bernoulli((2,), 0.5, dtype=dtype).dtype == xp.float64
    assert g.permutation(3).dtype == xp.int64
    assert g.integers(0, 3, (2,)).dtype == xp.int64


def test_generator_distributions():
    g = get_backend("numpy").rng(1)
    n = np.asarray(g.normal((200_000,), std=3.0, mean=-2.0))
    assert abs(n.mean() + 2.0) < 0.05 and abs(n.std() - 3.0) < 0.05
    u = np.asarray(g.uniform((200_000,), 2.0, 5.0))
    assert u.min() >= 2.0 and u.max() < 5.0 and abs(u.mean() - 3.5) < 0.02
    m = np.asarray(g.bernoulli((200_000,), 0.3))
    assert set(np.unique(m)) == {0.0, 1.0} and abs(m.mean() - 0.3) < 0.01
    assert sorted(np.asarray(g.permutation(50))) == list(range(50))
    i = np.asarray(g.integers(3, 6, (1000,)))
    assert set(np.unique(i)) == {3, 4, 5}


def test_generator_state_round_trip(backend):
    g = backend.rng(5)
    g.normal((3,))  # move away from the seed's start
    state = json.loads(json.dumps(g.state))  # checkpoints store it as JSON
    first = [backend.to_numpy(x) for x in _draws(g)]
    g.normal((10,))
    g.set_state(state)
    again = [backend.to_numpy(x) for x in _draws(g)]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    # a fresh generator with another seed continues the same stream from the state
    h = backend.rng(999)
    h.set_state(state)
    assert h.seed == 5
    np.testing.assert_array_equal(backend.to_numpy(h.normal((3, 4), std=2.0, mean=1.0)), first[0])


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_generator_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        get_backend("numpy").rng(seed)


def test_generator_accepts_numpy_integer_seed():
    g = get_backend("numpy").rng(np.int64(3))
    assert g.seed == 3 and type(g.seed) is int


# ---- scatter_add ---------------------------------------------------------------------------


def test_scatter_add_sums_repeated_indices(backend):
    idx = [0, 2, 0, 0, 4, 2]
    values = np.arange(12.0).reshape(6, 2)
    target0 = np.ones((5, 2))
    expected = target0.copy()
    np.add.at(expected, np.asarray(idx), values)

    target = backend.asarray(np.array(target0), dtype="float64")
    out = backend.scatter_add(target, backend.asarray(idx, dtype="int64"), backend.asarray(values, dtype="float64"))
    np.testing.assert_allclose(backend.to_numpy(out), expected)
    np.testing.assert_allclose(backend.to_numpy(target), expected)  # in place
    assert expected[0, 0] == 1.0 + 0.0 + 4.0 + 6.0  # the repeats really were summed


def test_scatter_add_1d_float32(backend):
    target = backend.zeros((4,))
    out = backend.scatter_add(target, backend.asarray([3, 3, 1], dtype="int64"),
                              backend.asarray([1.0, 2.0, 5.0], dtype="float32"))
    assert out.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(out), [0.0, 5.0, 0.0, 3.0])


def test_scatter_add_3d_values(backend):
    values = np.random.default_rng(0).normal(size=(5, 2, 3))
    idx = np.array([1, 1, 0, 1, 0])
    expected = np.zeros((3, 2, 3))
    np.add.at(expected, idx, values)
    out = backend.scatter_add(backend.zeros((3, 2, 3), "float64"), backend.asarray(idx, dtype="int64"),
                              backend.asarray(values, dtype="float64"))
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-12)
