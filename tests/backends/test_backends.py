"""Backends: the registry (names, devices, caching, backend_of), the default (set_backend,
use_backend, XPNN_BACKEND), missing libraries, array ownership and the mixing error, every
fast path against the generic reference, probed namespaces (trained correctly or refused),
the seeded Generator, scatter_add."""

from __future__ import annotations

import json
import sys
import threading
import types

import array_api_compat
import array_api_compat.numpy
import array_api_strict
import numpy as np
import pytest

import xpnn
import xpnn.backends as backends_mod
from xpnn.backends import Backend, backend_of, get_backend, set_backend, use_backend


@pytest.fixture
def clean_default(monkeypatch):
    """No default chosen by set_backend/use_backend (restored afterwards), no XPNN_BACKEND."""
    monkeypatch.setattr(backends_mod, "_default", None)
    monkeypatch.setattr(backends_mod, "_state", threading.local())
    monkeypatch.delenv("XPNN_BACKEND", raising=False)
    monkeypatch.delenv("XPNN_DEVICE", raising=False)


# ---- names, devices, caching --------------------------------------------------------------


def test_registry_names():
    # numpy, the default, registers first; the others as their modules are imported
    assert tuple(backends_mod.BACKENDS) == ("numpy", "cupy", "jax", "array_api_strict", "torch")
    for name, cls in backends_mod.BACKENDS.items():
        assert cls.name == name and issubclass(cls, Backend)


def test_get_backend_numpy():
    b = get_backend("numpy")
    assert b.name == "numpy" and b.xp is array_api_compat.numpy and b.native is np and b.device == "cpu"
    assert repr(b) == "Backend('numpy', device='cpu')" and str(b) == "numpy (cpu)"


def test_get_backend_array_api_strict_on_non_default_device():
    b = get_backend("array_api_strict")
    assert b.xp is array_api_strict
    assert b.device == array_api_strict.Device("device1") != array_api_strict.Device("CPU_DEVICE")
    assert get_backend("array_api_strict", "CPU_DEVICE").device == array_api_strict.Device("CPU_DEVICE")


def test_get_backend_torch_devices():
    torch = pytest.importorskip("torch")
    cpu = get_backend("torch")
    assert cpu.name == "torch" and cpu.device == torch.device("cpu") and cpu.device_name == "cpu"
    assert get_backend("torch", "cpu") is cpu is get_backend("torch", torch.device("cpu"))
    meta = get_backend("torch", "meta")  # a device is honoured, never ignored
    assert meta is not cpu and meta.device == torch.device("meta")
    assert meta.zeros((2,)).device == torch.device("meta")
    with pytest.raises(ValueError, match=r'backend "torch": device must be .*found \'toaster\''):
        get_backend("torch", "toaster")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match=r'backend "torch": device \'cuda:1\' is not available: PyTorch sees 0'):
            get_backend("torch", "cuda:1")


def test_get_backend_jax():
    jax = pytest.importorskip("jax")
    b = get_backend("jax")
    assert b.name == "jax" and b.device == jax.devices()[0] and b.device_name == "cpu:0"
    assert get_backend("jax", "cpu") is b is get_backend("jax", jax.devices("cpu")[0])
    assert backend_of(b.zeros((2,))) is b
    with pytest.raises(RuntimeError, match=r'backend "jax": device \'cpu:5\' does not exist'):
        get_backend("jax", "cpu:5")


@pytest.mark.parametrize(
    "spelling, name",
    [
        ("NumPy", "numpy"),
        ("array-api-strict", "array_api_strict"),
        ("ARRAY_API_STRICT", "array_api_strict"),
        (" torch ", "torch"),
    ],
)
def test_get_backend_normalizes_names(spelling, name):
    assert get_backend(spelling) is get_backend(name)


def test_get_backend_is_cached_per_library_and_device(backend):
    assert get_backend(backend.name, backend.device) is backend
    assert backend_of(backend.zeros((2,))) is backend  # the same object, so `layer.backend is backend` holds


def test_numpy_has_only_the_cpu():
    assert get_backend("numpy", "cpu") is get_backend("numpy")
    with pytest.raises(ValueError, match=r'backend "numpy" runs on the CPU only.*found \'cuda\''):
        get_backend("numpy", "cuda")


@pytest.mark.parametrize(
    "module_name, name",
    [
        ("numpy", "numpy"),
        ("array_api_compat.numpy", "numpy"),
        ("array_api_strict", "array_api_strict"),
        ("torch", "torch"),
        ("array_api_compat.torch", "torch"),
        ("jax.numpy", "jax"),
    ],
)
def test_get_backend_from_namespace_module(module_name, name):
    module = pytest.importorskip(module_name)
    assert get_backend(module) is get_backend(name)


def test_jax_numpy_is_never_mistaken_for_numpy():
    jnp = pytest.importorskip("jax.numpy")
    assert backend_of(jnp.zeros(2)).name == "jax"
    assert get_backend(jnp).name == "jax"


def test_get_backend_passes_a_backend_through():
    b = get_backend("array_api_strict")
    assert get_backend(b) is b
    assert get_backend(b, "CPU_DEVICE") is get_backend("array_api_strict", "CPU_DEVICE")


@pytest.mark.parametrize("bad", ["tensorflow", "cpu", ""])
def test_get_backend_invalid_name(bad):
    with pytest.raises(ValueError) as err:
        get_backend(bad)
    msg = str(err.value)
    assert repr(bad) in msg
    for name in ("numpy", "cupy", "torch", "jax", "array_api_strict"):
        assert name in msg


def test_get_backend_wrong_type():
    with pytest.raises(TypeError, match="found int"):
        get_backend(3)
    with pytest.raises(TypeError, match="module 'json' is not an array namespace"):
        get_backend(json)


def test_backend_equality_and_hash():
    a = get_backend("numpy")
    b = backends_mod.BACKENDS["numpy"].create()
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != get_backend("array_api_strict")


# ---- the default: set_backend, use_backend, XPNN_BACKEND ---------------------------------


def test_default_is_numpy(clean_default):
    assert get_backend() is get_backend("numpy")


def test_set_backend(clean_default):
    returned = set_backend("array_api_strict")
    assert returned is get_backend("array_api_strict")
    assert get_backend() is returned
    set_backend("numpy")
    assert get_backend() is get_backend("numpy")


def test_set_backend_with_a_device(clean_default):
    set_backend("array_api_strict", "CPU_DEVICE")
    assert get_backend() is get_backend("array_api_strict", "CPU_DEVICE")


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
    monkeypatch.setenv("XPNN_BACKEND", "array_api_strict")
    assert get_backend() is get_backend("array_api_strict")
    monkeypatch.setenv("XPNN_DEVICE", "CPU_DEVICE")
    assert get_backend() is get_backend("array_api_strict", "CPU_DEVICE")
    monkeypatch.setenv("XPNN_BACKEND", "numpy")
    monkeypatch.delenv("XPNN_DEVICE")
    assert get_backend() is get_backend("numpy")
    monkeypatch.setenv("XPNN_BACKEND", "")
    assert get_backend() is get_backend("numpy")


def test_xpnn_backend_env_var_torch(clean_default, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("XPNN_BACKEND", "torch")
    model = xpnn.NeuralNetwork(2, 3, 1)
    assert model.backend is get_backend("torch")


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
    assert msg.startswith("environment variable XPNN_BACKEND / XPNN_DEVICE: backend must be one of")
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


# ---- missing libraries ------------------------------------------------------------------------


@pytest.fixture
def no_cupy(monkeypatch):
    """``import cupy`` fails, and no cupy backend is cached from earlier."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    for key in [k for k in backends_mod._cache if k[0] == "cupy"]:
        monkeypatch.delitem(backends_mod._cache, key)


def test_cupy_missing_says_what_to_install(no_cupy):
    with pytest.raises(RuntimeError) as err:
        get_backend("cupy")
    msg = str(err.value)
    assert 'pip install "xpnn[cuda12]"' in msg and "cuda13" in msg


def test_torch_and_jax_missing_say_what_to_install(monkeypatch):
    for module, name, extra in (("torch", "torch", "xpnn[torch]"), ("jax", "jax", "xpnn[jax]")):
        monkeypatch.setitem(sys.modules, module, None)
        for key in [k for k in backends_mod._cache if k[0] == name]:
            monkeypatch.delitem(backends_mod._cache, key)
        with pytest.raises(RuntimeError, match=rf'backend "{name}" needs .*pip install "{extra}"'.replace("[", r"\[")):
            get_backend(name)
        assert f'pip install "{extra}"' in xpnn.available_backends()[name]


def test_available_backends_lists_devices_or_reasons(no_cupy):
    found = xpnn.available_backends()
    assert found["numpy"] == ["cpu"]
    assert found["array_api_strict"] == ["CPU_DEVICE", "device1", "device2"]
    assert 'pip install "xpnn[cuda12]"' in found["cupy"]
    if "torch" in sys.modules or _importable("torch"):
        assert "cpu" in found["torch"]
    if _importable("jax"):
        assert "cpu:0" in found["jax"]


def _importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def test_cupy_missing_through_set_and_use_backend(no_cupy, clean_default):
    with pytest.raises(RuntimeError, match=r"xpnn\[cuda12\]"):
        set_backend("cupy")
    with pytest.raises(RuntimeError, match=r"xpnn\[cuda12\]"):
        with use_backend("cupy"):
            pass  # pragma: no cover
    assert get_backend() is get_backend("numpy")


# ---- arrays: asarray, to_numpy, ownership and the mixing error -----------------------------


def test_asarray_places_on_device_and_casts(backend):
    a = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float32")
    assert backend.owns(a)
    assert a.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(a), np.arange(6.0).reshape(2, 3))
    b = backend.asarray([[1.0, 2.0], [3.0, 4.0]])
    assert backend.owns(b) and tuple(b.shape) == (2, 2)
    assert backend.asarray([1, 2]).dtype == backend.xp.int64
    assert backend.asarray(np.ones(2), dtype=np.float32).dtype == backend.xp.float32


def test_asarray_copy_does_not_alias(backend):
    host = np.ones(3)
    a = backend.asarray(host, copy=True)
    host[0] = 5.0
    assert backend.to_numpy(a)[0] == 1.0


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
    assert other is get_backend("array_api_strict", "CPU_DEVICE")
    assert other.owns(cpu) and not strict.owns(cpu)
    with pytest.raises(TypeError, match="expected an array, found list"):
        backend_of([1.0])


def test_check_accepts_own_arrays(backend):
    backend.check(backend.zeros((2,)), "X")


def test_check_numpy_array_on_strict_backend():
    strict = get_backend("array_api_strict")
    with pytest.raises(TypeError) as err:
        strict.check(np.ones((4, 3)), "X", "Dense(3, 2).forward")
    msg = str(err.value)
    assert msg.startswith("Dense(3, 2).forward: X is a numpy.ndarray (backend 'numpy', device 'cpu') of shape (4, 3)")
    assert "runs on backend 'array_api_strict' (device 'device1')" in msg
    assert "backend.asarray(X)" in msg


def test_check_strict_array_on_numpy_backend():
    strict = get_backend("array_api_strict")
    with pytest.raises(TypeError) as err:
        get_backend("numpy").check(strict.zeros((2,)), "y")
    msg = str(err.value)
    assert msg.startswith("y is an array_api_strict.Array (backend 'array_api_strict', device 'device1')")
    assert "runs on backend 'numpy'" in msg


def test_check_compares_devices_on_every_backend():
    strict = get_backend("array_api_strict")
    with pytest.raises(TypeError, match="device 'CPU_DEVICE'"):
        strict.check(array_api_strict.asarray([1.0]), "X")
    torch = pytest.importorskip("torch")
    meta = get_backend("torch", "meta")
    with pytest.raises(
        TypeError,
        match=r"X is a torch.Tensor \(backend 'torch', device 'cpu'\) of shape \(2,\), "
        r"but this model runs on backend 'torch' \(device 'meta'\)",
    ):
        meta.check(torch.zeros(2), "X")
    model = xpnn.NeuralNetwork(2, 3, 1, backend="torch", device="meta")
    with pytest.raises(TypeError, match=r"fit: X is a torch.Tensor \(backend 'torch', device 'cpu'\)"):
        model.compile("mse", "sgd").fit(torch.zeros(4, 2), torch.zeros(4, 1), verbose=0)


def test_check_torch_tensor_on_numpy_backend():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"X is a torch.Tensor \(backend 'torch', device 'cpu'\).*backend 'numpy'"):
        get_backend("numpy").check(torch.zeros(2), "X")


@pytest.mark.parametrize("thing, described", [([1.0, 2.0], "builtins.list"), (3.0, "builtins.float")])
def test_check_non_arrays(backend, thing, described):
    with pytest.raises(TypeError, match=described):
        backend.check(thing, "X")


# ---- every fast path against the generic reference ---------------------------------------------


GEOMETRIES = [  # kernel, stride, padding, dilation
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 3), (2, 1), (0, 2), (1, 2)),
    ((2, 2), (2, 2), (0, 0), (1, 1)),
    ((3, 2), (1, 2), (1, 0), (2, 1)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_window_primitives_match_the_generic_reference(backend, geometry):
    """Each library's im2col / col2im / window slices equal base.py's array-API version."""
    kernel, stride, padding, dilation = geometry
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.normal(size=(2, 3, 7, 6)), dtype="float64")
    generic = Backend  # the reference implementation, called on this backend's arrays
    for ones_row in (False, True):
        got = backend.im2col(X, kernel, stride, padding, dilation, ones_row=ones_row)
        want = generic.im2col(backend, X, kernel, stride, padding, dilation, ones_row=ones_row)
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    K1, M = want.shape  # the last im2col had the ones row
    cols = backend.asarray(rng.normal(size=(K1 - 1, M)), dtype="float64")
    got = backend.col2im(cols, tuple(X.shape), kernel, stride, padding, dilation)
    want = generic.col2im(backend, cols, tuple(X.shape), kernel, stride, padding, dilation)
    np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(want), rtol=1e-12, atol=1e-12)
    pieces = backend.window_slices(X, kernel, stride, padding, dilation)
    masks = [p > 0 for p in pieces]
    got = backend.add_window_slices(pieces, tuple(X.shape), kernel, stride, padding, dilation, masks=masks)
    want = generic.add_window_slices(backend, pieces, tuple(X.shape), kernel, stride, padding, dilation, masks=masks)
    np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(want), rtol=1e-12, atol=1e-12)


POOLS = [  # kernel, stride, padding (dilation 1)
    ((2, 2), (2, 2), (0, 0)),  # windows that tile the input (JAX: one reduction), the last row left out
    ((3, 3), (3, 3), (0, 0)),
    ((3, 3), (2, 2), (1, 1)),  # overlapping, padded
    ((2, 3), (2, 3), (1, 0)),  # tiling the padded input
    ((2, 2), (1, 1), (0, 0)),  # stride != kernel
]


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_window_max_in_both_dtypes_and_tiled_kernels_matches_the_generic_reference(backend, pool, dtype):
    """Each library's max-pool forward equals base.py's in float32 and float64, for 3x3 tiles
    and a stride different from the kernel too: the maxima, and masks that give every window
    exactly its first maximum (row-major), ties included; a NaN window marks no offset;
    without ``firsts`` no masks."""
    kernel, stride, padding = pool
    rng = np.random.default_rng(1)
    values = rng.integers(0, 3, size=(2, 3, 7, 6)).astype(dtype)  # small integers: many ties
    values[0, 0, :3, :3] = 1.0  # whole windows of equal values: the first offset wins
    values[1, 2, 0, 0] = np.nan
    X = backend.asarray(values, dtype=dtype)
    Y, firsts = backend.window_max(X, kernel, stride, padding, firsts=True)
    Y_want, firsts_want = Backend.window_max(backend, X, kernel, stride, padding, firsts=True)
    np.testing.assert_array_equal(backend.to_numpy(Y), backend.to_numpy(Y_want))
    assert Y.dtype == X.dtype
    assert len(firsts) == len(firsts_want) == kernel[0] * kernel[1]
    for got, want in zip(firsts, firsts_want):
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    marked = sum(backend.to_numpy(m).astype(int) for m in firsts)
    nan_windows = np.isnan(backend.to_numpy(Y))
    assert nan_windows.any() and not nan_windows.all()
    np.testing.assert_array_equal(marked, np.where(nan_windows, 0, 1))  # one offset per window, none where NaN
    Y_inference, none = backend.window_max(X, kernel, stride, padding)
    assert none is None
    np.testing.assert_array_equal(backend.to_numpy(Y_inference), backend.to_numpy(Y))


def test_window_max_of_jax_traces_under_jit():
    """The one-reduction max pool of JAX compiles (it runs inside compiled steps) and
    equals the generic masks there too."""
    jax = pytest.importorskip("jax")
    backend = get_backend("jax")
    values = np.random.default_rng(2).integers(0, 2, size=(2, 2, 6, 4)).astype("float32")
    X = backend.asarray(values)

    def both(X):
        Y, firsts = backend.window_max(X, (2, 2), (2, 2), (0, 0), firsts=True)
        return Y, firsts, Backend.window_max(backend, X, (2, 2), (2, 2), (0, 0), firsts=True)

    Y, firsts, (Y_want, firsts_want) = jax.jit(both)(X)
    np.testing.assert_array_equal(np.asarray(Y), np.asarray(Y_want))
    for got, want in zip(firsts, firsts_want):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("workers", [2, 3])
def test_numpy_kernels_split_over_threads_equal_one_pass(monkeypatch, geometry, workers):
    """NumPy's relu, im2col, col2im, add_window_slices, mask_multiply and match_layout run on
    parts of the array at once (as many as NumPy's BLAS may use threads): forced to split
    into 2 or 3 parts, even for small arrays, they give bit for bit the serial result, on
    an NCHW input and on one laid out in (C, H, W, N) memory (a Conv2D output)."""
    from xpnn.backends import numpy as numpy_backend

    kernel, stride, padding, dilation = geometry
    backend = xpnn.get_backend("numpy")
    rng = np.random.default_rng(2)
    serial = {}
    monkeypatch.setattr(numpy_backend, "PARALLEL_MIN", 0)  # split even these small arrays
    monkeypatch.setattr(numpy_backend.os, "cpu_count", lambda: 4)
    for split in (1, workers):
        # as if NumPy's BLAS had ``split`` threads
        monkeypatch.setattr(numpy_backend.NumpyBackend, "_blas", types.SimpleNamespace(num_threads=split))
        out = []
        for C in (1, 5):  # one channel: the image rows are split, not the channels
            nchw = rng.normal(size=(3, C, 8, 7)) if split == 1 else serial["inputs"][C][0]
            chwn = np.ascontiguousarray(nchw.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
            if split == 1:
                serial.setdefault("inputs", {})[C] = (nchw,)
            for X in (nchw, chwn):
                out.extend(backend.relu(X - 0.1, mask=True))
                cols = backend.im2col(X, kernel, stride, padding, dilation, ones_row=True)
                out.append(cols)
                out.append(backend.col2im(cols[:-1] * 0.5, X.shape, kernel, stride, padding, dilation))
                pieces = backend.window_slices(X, kernel, stride, padding, dilation)
                masks = [p > 0 for p in pieces]
                out.append(backend.add_window_slices(pieces, X.shape, kernel, stride, padding, dilation, masks=masks))
                out.append(backend.add_window_slices(pieces, X.shape, kernel, stride, padding, dilation))
                out.append(backend.mask_multiply(X, X > 0.1))
                out.append(backend.match_layout(nchw, chwn))
                out.append(backend.match_layout(chwn, nchw))
        if split == 1:
            serial["out"] = out
        else:
            for want, got in zip(serial["out"], out, strict=True):
                np.testing.assert_array_equal(got, want)
    generic = Backend.col2im(backend, cols[:-1] * 0.5, X.shape, kernel, stride, padding, dilation)
    np.testing.assert_allclose(out[-6], generic, rtol=1e-12, atol=1e-12)


POOL_GEOMETRIES = [  # kernel, stride, padding: tiled, overlapping, gapped, padded with odd sizes
    ((2, 2), (2, 2), (0, 0)),
    ((3, 3), (2, 2), (1, 1)),
    ((3, 2), (1, 2), (1, 0)),
    ((2, 3), (3, 3), (1, 1)),
]


def pool_input(N=3, C=5, H=7, W=6, seed=4):
    """(C, H, W, N) memory seen as (N, C, H, W), as a Conv2D output: few distinct values
    (ties), -0.0 next to 0.0, NaN, -inf (a tie with the -inf padding) and +inf."""
    rng = np.random.default_rng(seed)
    chwn = rng.integers(-2, 3, size=(C, H, W, N)).astype(np.float64)
    flat = chwn.reshape(-1)
    flat[::7] = -0.0
    flat[3::29] = np.nan
    flat[5::31] = -np.inf
    flat[11::37] = np.inf
    return chwn.transpose(3, 0, 1, 2)


def assert_same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8))


@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
def test_window_max_matches_the_generic_reference(backend, geometry):
    """Each library's window_max (max pooling's forward) gives the generic version's bits:
    maxima, and first-max masks on ties (the first offset in row-major order), NaN windows
    (NaN, no mask), -inf inputs tied with the -inf padding; then the masks route dY back."""
    kernel, stride, padding = geometry
    host = pool_input()
    for X in (backend.asarray(np.ascontiguousarray(host)), backend.asarray(host)):  # NCHW memory, (C, H, W, N) memory
        for firsts in (False, True):
            Y, masks = backend.window_max(X, kernel, stride, padding, firsts=firsts)
            Y0, masks0 = Backend.window_max(backend, X, kernel, stride, padding, firsts=firsts)
            assert_same_bits(backend.to_numpy(Y), backend.to_numpy(Y0))
            assert (masks is None) == (not firsts) and (masks0 is None) == (not firsts)
        for m, m0 in zip(masks, masks0, strict=True):
            assert_same_bits(backend.to_numpy(m), backend.to_numpy(m0))
        assert not np.isnan(backend.to_numpy(Y)).all()
        taken = sum(backend.to_numpy(m).astype(int) for m in masks)
        np.testing.assert_array_equal(taken, ~np.isnan(backend.to_numpy(Y)))  # one first max per window, none if NaN
        dY = backend.asarray(np.random.default_rng(5).normal(size=tuple(Y.shape)))
        shape, pieces = tuple(X.shape), [dY] * len(masks)
        got = backend.add_window_slices(pieces, shape, kernel, stride, padding, masks=masks)
        want = Backend.add_window_slices(backend, pieces, shape, kernel, stride, padding, masks=masks0)
        if backend.name == "numpy":
            assert_same_bits(backend.to_numpy(got), backend.to_numpy(want))
        else:  # JAX adds its pads where the reference assigns (a 0 may lose its sign), a kernel row at a time
            np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(want), rtol=1e-12, atol=0)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_numpy_pooling_kernels_in_blocks_and_parts_equal_the_generic_reference(monkeypatch, workers):
    """NumPy's window_max and add_window_slices walk the array in blocks (BLOCK_BYTES) split
    over threads: with blocks of one channel (or sample) and 1, 2 or 3 parts, even for small
    arrays, they give the generic version's bits on both memory layouts; the parts and the
    blocks really run."""
    from xpnn.backends import numpy as numpy_backend

    backend = xpnn.get_backend("numpy")
    monkeypatch.setattr(numpy_backend, "PARALLEL_MIN", 0)
    monkeypatch.setattr(numpy_backend, "BLOCK_BYTES", 1)  # one slice of the outer axis per block
    monkeypatch.setattr(numpy_backend, "THREADED_BLOCK_BYTES", 1)
    monkeypatch.setattr(numpy_backend.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(numpy_backend.NumpyBackend, "_blas", types.SimpleNamespace(num_threads=workers))
    parts, blocks = [], []
    run_part, first_maxima = numpy_backend._run_part, numpy_backend._first_maxima
    monkeypatch.setattr(numpy_backend, "_run_part", lambda part, lo, hi: (parts.append(lo), run_part(part, lo, hi)))
    monkeypatch.setattr(numpy_backend, "_first_maxima", lambda *a: (blocks.append(1), first_maxima(*a)))
    host = pool_input(N=4, C=5, H=9, W=7).astype(np.float32)
    for X in (np.ascontiguousarray(host), host):
        for kernel, stride, padding in POOL_GEOMETRIES:
            parts.clear(), blocks.clear()
            Y, masks = backend.window_max(X, kernel, stride, padding, firsts=True)
            # the parts after the first run on the pool's threads; one block per channel (or sample)
            assert len(parts) == (workers if workers > 1 else 0) and len(blocks) == (5 if X is host else 4)
            Y0, masks0 = Backend.window_max(backend, X, kernel, stride, padding, firsts=True)
            assert _axis_order(Y) == _axis_order(X) and _axis_order(masks[0]) == _axis_order(X)
            for got, want in zip([Y, *masks], [Y0, *masks0], strict=True):
                assert_same_bits(got, want)
            assert_same_bits(backend.window_max(X, kernel, stride, padding)[0], Y0)
            dY = np.random.default_rng(6).normal(size=Y.shape).astype(np.float32)
            for m in (masks, None):
                got = backend.add_window_slices([dY] * len(masks), X.shape, kernel, stride, padding, masks=m)
                want = Backend.add_window_slices(backend, [dY] * len(masks), X.shape, kernel, stride, padding, masks=m)
                assert_same_bits(got, want)


@pytest.mark.parametrize("workers", [1, 2])
def test_numpy_pooling_blocks_are_threaded_block_bytes_on_threads(monkeypatch, workers):
    """On threads the blocks hold THREADED_BLOCK_BYTES (here: all of a part), on one thread
    BLOCK_BYTES (here: one channel each)."""
    from xpnn.backends import numpy as numpy_backend

    backend = xpnn.get_backend("numpy")
    monkeypatch.setattr(numpy_backend, "PARALLEL_MIN", 0)
    monkeypatch.setattr(numpy_backend, "BLOCK_BYTES", 1)
    monkeypatch.setattr(numpy_backend, "THREADED_BLOCK_BYTES", 1 << 40)
    monkeypatch.setattr(numpy_backend.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(numpy_backend.NumpyBackend, "_blas", types.SimpleNamespace(num_threads=workers))
    blocks, first_maxima = [], numpy_backend._first_maxima
    monkeypatch.setattr(numpy_backend, "_first_maxima", lambda *a: (blocks.append(1), first_maxima(*a)))
    X = pool_input(N=4, C=6, H=8, W=8).astype(np.float32)  # (C, H, W, N) memory: blocks of channels
    backend.window_max(X, (2, 2), (2, 2), (0, 0), firsts=True)
    assert len(blocks) == (6 if workers == 1 else 2)


def test_relu_matches_the_generic_reference(backend):
    """Each library's relu (ReLU's forward) gives the generic version's bits, Y and mask, on
    NCHW memory and (C, H, W, N) memory (a Conv2D output), with -0.0, NaN and infinities;
    without ``mask`` no mask is made."""
    host = pool_input(N=4, C=5, H=6, W=3)
    for X in (backend.asarray(np.ascontiguousarray(host)), backend.asarray(host)):
        Y, mask = backend.relu(X, mask=True)
        Y0, mask0 = Backend.relu(backend, X, mask=True)
        assert_same_bits(backend.to_numpy(Y), backend.to_numpy(Y0))
        assert_same_bits(backend.to_numpy(mask), backend.to_numpy(mask0))
        np.testing.assert_array_equal(backend.to_numpy(mask), backend.to_numpy(X) > 0)
        Y1, none = backend.relu(X)
        assert none is None
        assert_same_bits(backend.to_numpy(Y1), backend.to_numpy(Y0))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_numpy_relu_in_parts_keeps_the_input_layout(monkeypatch, workers):
    """NumPy's relu split into 1, 2 or 3 parts, even for small arrays: the generic bits, Y
    and the mask in the input's memory order (NCHW, or a Conv2D output's (C, H, W, N)), and
    the parts really run."""
    from xpnn.backends import numpy as numpy_backend

    backend = xpnn.get_backend("numpy")
    monkeypatch.setattr(numpy_backend, "PARALLEL_MIN", 0)
    monkeypatch.setattr(numpy_backend.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(numpy_backend.NumpyBackend, "_blas", types.SimpleNamespace(num_threads=workers))
    parts = []
    run_part = numpy_backend._run_part
    monkeypatch.setattr(numpy_backend, "_run_part", lambda part, lo, hi: (parts.append(lo), run_part(part, lo, hi)))
    host = pool_input(N=4, C=5, H=6, W=3).astype(np.float32)
    for X in (np.ascontiguousarray(host), host):
        for mask in (True, False):
            parts.clear()
            Y, M = backend.relu(X, mask=mask)
            Y0, M0 = Backend.relu(backend, X, mask=mask)
            assert len(parts) == (workers if workers > 1 else 0)  # every part ran (the first on this thread)
            assert_same_bits(Y, Y0)
            assert _axis_order(Y) == _axis_order(X)
            if mask:
                assert_same_bits(M, M0)
                assert _axis_order(M) == _axis_order(X)
            else:
                assert M is None


def _axis_order(a):
    return sorted(range(a.ndim), key=lambda axis: a.strides[axis], reverse=True)


def test_elementwise_and_scatter_fast_paths_match_the_generic_reference(backend):
    rng = np.random.default_rng(1)
    a = backend.asarray(rng.normal(size=(4, 5)), dtype="float64")
    mask = a > 0.2
    np.testing.assert_array_equal(
        backend.to_numpy(backend.mask_multiply(a, mask)), backend.to_numpy(Backend.mask_multiply(backend, a, mask))
    )
    np.testing.assert_array_equal(backend.to_numpy(backend.match_layout(a, a)), backend.to_numpy(a))
    idx = backend.asarray([3, 0, 3, 1, 3], dtype="int64")
    values = backend.asarray(rng.normal(size=(5, 2)), dtype="float64")
    got = backend.scatter_add(backend.zeros((4, 2), "float64"), idx, values)
    want = Backend.scatter_add(backend, backend.zeros((4, 2), "float64"), idx, values)
    np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(want), rtol=1e-12)
    padded = backend.pad2d(backend.asarray(rng.normal(size=(1, 2, 3, 3))), (1, 2), value=-1.0)
    reference = Backend.pad2d(backend, backend.asarray(backend.to_numpy(padded)[:, :, 1:4, 2:5]), (1, 2), value=-1.0)
    np.testing.assert_array_equal(backend.to_numpy(padded), backend.to_numpy(reference))


def test_adam_fast_path_matches_the_generic_reference(backend):
    rng = np.random.default_rng(2)
    host = [rng.normal(size=(3, 4)) for _ in range(4)]  # param, grad, m, v (v >= 0)
    host[3] = np.abs(host[3])
    hyper = dict(step_size=0.01, beta1=0.9, beta2=0.999, bias2_sqrt=0.3, eps=1e-8)
    fast = backend.adam_update(*[backend.asarray(np.array(h), dtype="float64") for h in host], scratch={}, **hyper)
    slow = Backend.adam_update(backend, *[backend.asarray(np.array(h), dtype="float64") for h in host], **hyper)
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(backend.to_numpy(f), backend.to_numpy(s), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_constants_compute_what_python_numbers_compute(backend, dtype):
    """Backend.constants (0-d arrays on NumPy, the numbers elsewhere) gives every operation
    a layer, loss or optimizer does with it the bits and dtype of the Python number."""
    if dtype == "float16" and backend.name != "numpy":
        pytest.skip("float16 arithmetic is checked on NumPy, the backend with 0-d constants")
    rng = np.random.default_rng(3)
    a = backend.asarray(rng.normal(size=(3, 4)) * 3, dtype=dtype)
    xp = backend.xp
    values = (0.0, 1.0, 0.1, 1e-7, 1.0 - 1e-7, 4.0, 3, 1e-3)
    made = backend.constants(a.dtype, *values)
    assert len(made) == len(values)
    ops = [
        lambda x, c: x + c,
        lambda x, c: c - x,
        lambda x, c: c * x,
        lambda x, c: x / c if c >= 0.1 else x,  # no overflow (float16) nor division by 0
        xp.minimum,
        xp.maximum,
    ]
    for value, const in zip(values, made):
        for op in ops:
            want, got = op(a, value), op(a, const)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
        inplace = xp.asarray(a, copy=True)
        inplace *= const
        np.testing.assert_array_equal(backend.to_numpy(inplace), backend.to_numpy(a * value))
    assert backend.constants(a.dtype, 0.5) == backend.constants(a.dtype, 0.5)  # made once
    labels = backend.asarray([1, 2], dtype="int64")  # not a float dtype: the numbers as given
    assert backend.constants(labels.dtype, 1.0) == (1.0,)


def test_numpy_constants_are_read_only():
    b = get_backend("numpy")
    (one,) = b.constants(np.dtype(np.float32), 1.0)
    assert one.dtype == np.float32 and one.ndim == 0
    with pytest.raises(ValueError, match="read-only"):
        one += 1.0
    assert b.constants(np.dtype(np.float32), 1.0)[0] == 1.0


def test_set_at_and_add_at_write_back(backend):
    x = backend.zeros((2, 4), "float64")
    x = backend.set_at(x, (slice(None), slice(1, 3)), backend.asarray(np.ones((2, 2))))
    x = backend.add_at(x, (slice(None), slice(2, 4)), backend.asarray(np.full((2, 2), 2.0)))
    np.testing.assert_array_equal(backend.to_numpy(x), [[0, 1, 3, 2], [0, 1, 3, 2]])


# ---- namespaces given directly: probed, then trained correctly or refused ------------------------


class _RebindingArray(array_api_strict._array_object.Array):
    """An array whose in-place operators make a new array and leave the old one alone
    (as JAX and some lazy libraries behave): ``a -= b`` rebinds the name only."""

    def __iadd__(self, other):
        return self.__add__(other)

    def __isub__(self, other):
        return self.__sub__(other)

    def __imul__(self, other):
        return self.__mul__(other)

    def __itruediv__(self, other):
        return self.__truediv__(other)

    def __array_namespace__(self, api_version=None):
        return _REBINDING


def _wrapping_namespace(name, array_class):
    """A module with array_api_strict's functions, returning ``array_class`` arrays."""
    module = types.ModuleType(name)

    def wrap(value):
        if isinstance(value, array_api_strict._array_object.Array) and not isinstance(value, array_class):
            return array_class._new(value._array, device=value.device)
        if isinstance(value, tuple):
            return tuple(wrap(v) for v in value)
        return value

    def __getattr__(attr):
        found = getattr(array_api_strict, attr)
        if callable(found) and not isinstance(found, type):
            return lambda *args, **kwargs: wrap(found(*args, **kwargs))
        return found

    module.__getattr__ = __getattr__
    return module


_REBINDING = _wrapping_namespace("rebinding_strict", _RebindingArray)


class _LostWriteArray(_RebindingArray):
    """An array whose slice assignment silently does nothing: a library that cannot train."""

    def __setitem__(self, key, value):
        pass

    def __array_namespace__(self, api_version=None):
        return _LOST_WRITE


_LOST_WRITE = _wrapping_namespace("lost_write_strict", _LostWriteArray)


def _train(backend_spec, X, y, epochs=3):
    model = xpnn.Sequential(
        [xpnn.Dense(4, 8), xpnn.BatchNorm1D(8), xpnn.ReLU(), xpnn.Dense(8, 3)], backend=backend_spec, seed=1
    )
    model.compile("softmax_cross_entropy", xpnn.SGD(lr=0.1, momentum=0.9), metrics=["accuracy"])
    b = model.backend
    model.fit(b.asarray(X), b.asarray(y), epochs=epochs, batch_size=16, verbose=0)
    return model, [np.array(b.to_numpy(a)) for a in model.get_weights()]


def test_a_namespace_whose_updates_rebind_trains_correctly():
    """Never a silent no-op: with -= that does not write through, the weights still change,
    and exactly as on NumPy (params, BatchNorm running statistics, momentum buffers)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, size=64)
    backend = get_backend(_REBINDING)
    assert backend.name == "rebinding_strict" and get_backend(_REBINDING) is backend
    model, weights = _train(_REBINDING, X, y)
    assert all(type(a) is _RebindingArray for a in model.named_arrays().values())
    _, reference = _train("numpy", X, y)
    _, initial = _train("numpy", X, y, epochs=0)
    for w, r, i in zip(weights, reference, initial):
        assert not np.array_equal(w, i)  # trained
        np.testing.assert_allclose(w, r, rtol=1e-5, atol=1e-6)


def test_a_namespace_that_loses_writes_is_refused():
    with pytest.raises(
        RuntimeError,
        match=r"backend 'lost_write_strict' cannot train xpnn models: slice assignment "
        r"\(x\[i:j\] = v, or x.at\[i:j\].set\(v\)\) does not work \(it gave",
    ):
        get_backend(_LOST_WRITE)


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
    assert expected[0, 0] == 1.0 + 0.0 + 4.0 + 6.0  # the repeats really were summed


def test_scatter_add_1d_float32(backend):
    target = backend.zeros((4,))
    out = backend.scatter_add(
        target, backend.asarray([3, 3, 1], dtype="int64"), backend.asarray([1.0, 2.0, 5.0], dtype="float32")
    )
    assert out.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(out), [0.0, 5.0, 0.0, 3.0])


def test_scatter_add_3d_values(backend):
    values = np.random.default_rng(0).normal(size=(5, 2, 3))
    idx = np.array([1, 1, 0, 1, 0])
    expected = np.zeros((3, 2, 3))
    np.add.at(expected, idx, values)
    out = backend.scatter_add(
        backend.zeros((3, 2, 3), "float64"),
        backend.asarray(idx, dtype="int64"),
        backend.asarray(values, dtype="float64"),
    )
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-12)


# ---- same seed, same weights, on every backend ----------------------------------------------


def _weights_after(backend_name, build, X, y, **fit):
    model = build(backend_name)
    model.fit(X, y, verbose=0, **fit)
    return [np.array(model.backend.to_numpy(a)) for a in model.get_weights()]


def _assert_same_weights(build, X, y, atol, **fit):
    """Every CPU backend (the test fails where one is missing under XPNN_REQUIRE_ORACLES)
    ends with NumPy's weights, to float32 rounding."""
    reference = _weights_after("numpy", build, X, y, **fit)
    for name in ("array_api_strict", "torch", "jax"):
        try:
            get_backend(name)
        except RuntimeError as exc:
            pytest.skip(f"could not import {name}: {exc}")
        got = _weights_after(name, build, X, y, **fit)
        assert len(got) == len(reference)
        for g, r in zip(got, reference):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=atol, err_msg=name)


def test_same_seed_same_weights_digits_mlp():
    (X, y), _ = xpnn.load_digits()
    X = X.reshape(len(X), -1)

    def build(name):
        model = xpnn.NeuralNetwork(64, [32], 10, backend=name, seed=3)
        return model.compile("softmax_cross_entropy", "adam")

    _assert_same_weights(build, X, y, atol=1e-5, epochs=3, batch_size=32)


def test_same_seed_same_weights_cnn_with_batchnorm_and_dropout():
    from xpnn.architectures import cnn

    (X, y), _ = xpnn.load_digits()
    X, y = X[:96], y[:96]

    def build(name):
        return cnn((1, 8, 8), 10, backend=name, seed=3).compile("softmax_cross_entropy", xpnn.SGD(0.05, momentum=0.9))

    _assert_same_weights(build, X, y, atol=1e-5, epochs=1, batch_size=32)


def test_python_scalar_reads_a_value_as_python_does(backend):
    """The value an error message quotes: ``found 3`` or ``found 0.5``, not ``tensor(3)``."""
    from xpnn.backends import python_scalar

    ints = backend.asarray(np.array([3, -1], dtype=np.int64))
    floats = backend.asarray(np.array([0.5, 2.0], dtype=np.float32))
    flags = backend.asarray(np.array([False, True]))
    values = [python_scalar(ints[0]), python_scalar(floats[0]), python_scalar(flags[1])]
    assert values == [3, 0.5, True]
    assert [type(v) for v in values] == [int, float, bool]
