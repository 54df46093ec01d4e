"""What a GPU run needs, checked on the CPU (no GPU and no CuPy here):

- a training step makes no device->host sync: fit on a namespace that counts every
  read back to the host does as many reads with 6 batches an epoch as with 2;
- losses and optimizers never call ``clip`` (array-api-compat's CuPy clip reads a count
  back to the host);
- Embedding checks its ids once per fit/evaluate/predict, not in every forward;
- dropout masks cross to the device as booleans, with the same numbers as before;
- the CuPy backend creates arrays on its own GPU and ``backend_of`` finds an array's GPU
  (a fake ``cupy`` module stands in for the library);
- DataParallel on CuPy without NCCL says so, once, and every rank joins the bcast;
- the GPU probe of conftest reports unexpected failures and honours XPNN_REQUIRE_GPU;
- the GPU benchmark reports reserved and live memory alike for CuPy and torch.
"""

from __future__ import annotations

import ast
import collections
import json
import os
import subprocess
import sys
import types
import warnings

import array_api_compat
import array_api_compat.numpy
import array_api_strict
import numpy as np
import pytest

import xpnn
import xpnn.backends as backends_mod
from xpnn.backends import cupy as cupy_mod
from xpnn.layers import Dense, Dropout, Embedding, ReLU, SequencePool, Sigmoid, Softmax

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- a namespace that counts host transfers -----------------------------------------------------

COUNTS: collections.Counter = collections.Counter()  # what crossed the bus, and which functions ran


class _CountingArray(array_api_strict._array_object.Array):
    """array_api_strict's array, counting every read back to the host (a sync on a GPU)."""

    def __bool__(self):
        COUNTS["sync"] += 1
        return super().__bool__()

    def __float__(self):
        COUNTS["sync"] += 1
        return super().__float__()

    def __int__(self):
        COUNTS["sync"] += 1
        return super().__int__()

    def __index__(self):
        COUNTS["sync"] += 1
        return super().__index__()

    def __array__(self, *args, **kwargs):
        COUNTS["sync"] += 1
        return super().__array__(*args, **kwargs)

    def __dlpack__(self, *args, **kwargs):  # np.from_dlpack: Backend.to_numpy and to_float
        COUNTS["sync"] += 1
        return super().__dlpack__(*args, **kwargs)

    def __array_namespace__(self, api_version=None):
        return COUNTING


def _counting_namespace():
    """A module with array_api_strict's functions, returning _CountingArrays; it counts
    host->device copies (asarray of host data) and the name of every function called."""
    module = types.ModuleType("counting_strict")
    plain = array_api_strict._array_object.Array

    def wrap(value):
        if isinstance(value, plain) and not isinstance(value, _CountingArray):
            return _CountingArray._new(value._array, device=value.device)
        if isinstance(value, tuple):
            return tuple(wrap(v) for v in value)
        return value

    def __getattr__(attr):
        found = getattr(array_api_strict, attr)
        if not callable(found) or isinstance(found, type):
            return found

        def call(*args, **kwargs):
            COUNTS[f"call:{attr}"] += 1
            if attr == "asarray" and isinstance(args[0], (np.ndarray, np.generic)):
                COUNTS["to_device"] += 1
            return wrap(found(*args, **kwargs))

        return call

    module.__getattr__ = __getattr__
    return module


COUNTING = _counting_namespace()


def _fit_counts(model_fn, X, y, batch_size, epochs=3, **compile_args):
    """The counts of one fit (after the model is made and compiled)."""
    model = model_fn().compile(**compile_args)
    b = model.backend
    Xd, yd = b.asarray(X), b.asarray(y)
    COUNTS.clear()
    model.fit(Xd, yd, epochs=epochs, batch_size=batch_size, verbose=0)
    return collections.Counter(COUNTS)


def _mlp(last=()):
    return xpnn.Sequential([Dense(4, 16), ReLU(), Dropout(0.3), Dense(16, 3), *last], backend=COUNTING, seed=0)


def _embedder():
    return xpnn.Sequential([Embedding(10, 4), SequencePool("mean"), Dense(4, 3)], backend=COUNTING, seed=0)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "cross_entropy"])
def test_fit_syncs_do_not_grow_with_the_number_of_batches_mlp_with_dropout(loss):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(48, 4)).astype(np.float32), rng.integers(0, 3, size=48)
    model = (lambda: _mlp([Softmax()])) if loss == "cross_entropy" else _mlp
    few = _fit_counts(model, X, y, batch_size=24, loss=loss, optimizer="adam", clip_norm=1.0)  # 2 batches an epoch
    many = _fit_counts(model, X, y, batch_size=8, loss=loss, optimizer="adam", clip_norm=1.0)  # 6 batches an epoch
    assert few["sync"] == many["sync"], (few["sync"], many["sync"])
    assert few["sync"] <= 12  # the data checks once, and one loss read per epoch
    # host->device: one dropout mask per batch (by design: drawn on the host), the rest per fit or epoch
    assert many["to_device"] - few["to_device"] == 3 * (6 - 2)
    assert few["call:clip"] == many["call:clip"] == 0


def test_fit_syncs_do_not_grow_with_the_number_of_batches_embedding():
    rng = np.random.default_rng(1)
    X, y = rng.integers(0, 10, size=(48, 5)), rng.integers(0, 3, size=48)
    few = _fit_counts(_embedder, X, y, batch_size=24, loss="softmax_cross_entropy", optimizer="sgd")
    many = _fit_counts(_embedder, X, y, batch_size=8, loss="softmax_cross_entropy", optimizer="sgd")
    assert few["sync"] == many["sync"], (few["sync"], many["sync"])
    assert many["to_device"] == few["to_device"]  # no dropout: nothing crosses per batch


def test_binary_losses_call_no_clip_and_no_sync_per_batch():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(48, 4)).astype(np.float32), rng.integers(0, 2, size=(48, 1)).astype(np.float32)

    def model():
        return xpnn.Sequential([Dense(4, 8), ReLU(), Dense(8, 1)], backend=COUNTING, seed=0)

    def probabilities():
        return xpnn.Sequential([Dense(4, 8), ReLU(), Dense(8, 1), Sigmoid()], backend=COUNTING, seed=0)

    for loss, make in (("bce_with_logits", model), ("bce", probabilities), ("mse", model)):
        few = _fit_counts(make, X, y, batch_size=24, loss=loss, optimizer="sgd", clip_norm=0.5)
        many = _fit_counts(make, X, y, batch_size=8, loss=loss, optimizer="sgd", clip_norm=0.5)
        assert few["sync"] == many["sync"], (loss, few["sync"], many["sync"])
        assert few["call:clip"] == many["call:clip"] == 0, loss


def test_losses_and_optimizers_never_call_clip():
    """array-api-compat's CuPy ``clip`` uses boolean-mask indexing: a count read back to
    the host, twice, per call. Every clamp in these files is maximum/minimum."""
    for name in ("losses.py", "optimizers.py"):
        path = os.path.join(ROOT, "src", "xpnn", name)
        with open(path) as f:
            tree = ast.parse(f.read())
        calls = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "clip"
        ]
        assert calls == [], f"{name} calls clip at lines {calls}"


# ---- Embedding: ids checked once per call of fit, evaluate, predict ------------------------------


def test_embedding_checks_ids_once_per_fit_not_per_forward():
    rng = np.random.default_rng(3)
    model = _embedder().compile("softmax_cross_entropy", "sgd")
    layer = model.layers[0]
    X, y = rng.integers(0, 10, size=(40, 5)), rng.integers(0, 3, size=40)
    calls = []
    original = layer._check_range
    layer._check_range = lambda *args: calls.append(args[1]) or original(*args)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert calls == [(40, 5)]  # the whole array, once; none of the 10 batches
    calls.clear()
    model.evaluate(X, y, batch_size=8)
    model.predict(X, batch_size=8)
    assert calls == [(40, 5), (40, 5)]


def test_fit_names_a_bad_id_with_its_sample():
    model = _embedder().compile("softmax_cross_entropy", "sgd")
    X = np.zeros((6, 5), dtype=np.int64)
    X[4, 2] = 10
    with pytest.raises(
        IndexError,
        match=r"^fit: X must hold ids in \[0, 10\) \(the ids of Embedding\(num_embeddings="
        r"10.*\), found 10 at index \(4, 2\)$",
    ):
        model.fit(X, np.zeros(6, dtype=np.int64), epochs=1, verbose=0)
    with pytest.raises(
        IndexError,
        match=r"^fit: validation_data\[0\] must hold ids in \[0, 10\).* found -1 at index "
        r"\(0, 0\)$",
    ):
        model.fit(
            np.zeros((6, 5), dtype=np.int64),
            np.zeros(6, dtype=np.int64),
            epochs=1,
            verbose=0,
            validation_data=(-np.ones((2, 5), dtype=np.int64), np.zeros(2, dtype=np.int64)),
        )
    with pytest.raises(IndexError, match=r"^predict: X must hold ids in \[0, 10\)"):
        model.predict(X)


def test_direct_forward_calls_check_ids_also_after_fit():
    """Only fit's and inference's loops skip the per-forward check; a direct forward,
    before or after them, still names a bad id."""
    layer = Embedding(5, 2)
    b = xpnn.get_backend("numpy")
    with pytest.raises(IndexError, match=r"Embedding.*\.forward: X must hold ids in \[0, 5\), found 5 at index \(1,\)"):
        layer.forward(b.asarray(np.array([0, 5])))
    model = _embedder().compile("softmax_cross_entropy", "sgd")
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 10, size=(8, 5)), rng.integers(0, 3, size=8), epochs=1, verbose=0)
    model.predict(rng.integers(0, 10, size=(8, 5)))
    assert model.layers[0].check_ids is True
    with pytest.raises(IndexError, match="found 10"):
        model.forward(model.backend.asarray(np.full((2, 5), 10)))


# ---- dropout masks: booleans over the bus, cast on the device --------------------------------------


def test_bernoulli_copies_booleans_and_casts_on_the_device(backend):
    seen = []
    original = type(backend).asarray

    class Spy(type(backend)):
        def asarray(self, x, dtype=None, copy=None):
            seen.append((getattr(x, "dtype", None), dtype))
            return original(self, x, dtype, copy)

    spy = Spy(backend.xp, backend.device, backend.native)
    mask = spy.rng(5).bernoulli((50, 7), 0.8, dtype="float32")
    assert seen == [(np.dtype(bool), None)]  # one byte per element crosses, not four
    assert mask.dtype == backend.dtype("float32")
    # the same numbers as drawing a float mask on the host (and so on every backend)
    expected = np.random.Generator(np.random.PCG64(5)).random(size=(50, 7), dtype=np.float32) < 0.8
    np.testing.assert_array_equal(backend.to_numpy(mask), expected.astype(np.float32))


# ---- CuPy, faked: device placement and backend_of ---------------------------------------------------


class _FakeDevice:
    """cupy.cuda.Device: a context manager that makes GPU ``id`` current."""

    current = 0

    def __init__(self, id=None):
        self.id = _FakeDevice.current if id is None else int(id)

    def __enter__(self):
        self._previous = _FakeDevice.current
        _FakeDevice.current = self.id
        return self

    def __exit__(self, *exc):
        _FakeDevice.current = self._previous

    def __eq__(self, other):
        return isinstance(other, _FakeDevice) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __str__(self):
        return f"<CUDA Device {self.id}>"


class _FakeArray:
    """A "cupy.ndarray": NumPy data and the GPU it was made on (not an ndarray subclass,
    which array-api-compat would take for a NumPy array)."""

    def __init__(self, data, gpu):
        self.data, self.gpu = np.asarray(data), gpu

    @property
    def device(self):
        return _FakeDevice(self.gpu)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype


@pytest.fixture
def fake_cupy(monkeypatch):
    """``cupy`` (2 GPUs) and ``array_api_compat.cupy`` faked on NumPy: every array a
    creation function makes is placed on the *current* fake device, as CuPy does."""
    _FakeDevice.current = 0
    cupy = types.ModuleType("cupy")
    cupy.ndarray = _FakeArray
    cupy.cuda = types.SimpleNamespace(Device=_FakeDevice, runtime=types.SimpleNamespace(getDeviceCount=lambda: 2))
    xp = types.ModuleType("array_api_compat.cupy")
    for name in ("zeros", "ones", "empty", "full", "arange", "asarray"):
        make = getattr(array_api_compat.numpy, name)
        setattr(xp, name, lambda *a, _make=make, device=None, **k: _FakeArray(_make(*a, **k), _FakeDevice.current))
    xp.astype = lambda x, dtype, copy=True: _FakeArray(x.data.astype(dtype), x.gpu)
    for name in ("float32", "int64", "isdtype", "reshape"):
        setattr(xp, name, getattr(array_api_compat.numpy, name))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", xp)
    monkeypatch.setattr(array_api_compat, "cupy", xp, raising=False)
    monkeypatch.setattr(backends_mod, "_cache", {})
    monkeypatch.setattr(backends_mod, "_library_of_type", {})
    return xp


def test_cupy_backend_creates_arrays_on_its_own_gpu(fake_cupy):
    b1 = xpnn.get_backend("cupy", "cuda:1")
    assert b1.device_name == "cuda:1" and _FakeDevice.current == 0
    made = [
        b1.asarray(np.ones(3)),
        b1.zeros((2,)),
        b1.xp.zeros((2,), device=b1.device),
        b1.xp.ones((2,)),
        b1.xp.arange(3),
        b1.rng(0).normal((2, 2)),
        b1.rng(0).bernoulli((4,), 0.5),
        b1.rng(0).permutation(4),
    ]
    assert [a.device.id for a in made] == [1] * len(made)
    assert _FakeDevice.current == 0  # each creation restores the current device
    assert b1.xp.reshape is fake_cupy.reshape  # what creates nothing is the library's own function
    assert xpnn.get_backend("cupy").asarray(np.ones(3)).device.id == 0


def test_backend_of_a_cupy_array_is_the_backend_of_its_gpu(fake_cupy):
    b1, b0 = xpnn.get_backend("cupy", 1), xpnn.get_backend("cupy", 0)
    a = b1.zeros((3,))
    assert xpnn.backend_of(a) is b1 and b1.owns(a) and not b0.owns(a)
    assert xpnn.backend_of(b0.zeros((3,))) is b0


def test_cupy_device_index_resolution():
    assert [cupy_mod._device_index(d) for d in (None, 1, "1", "cuda", "cuda:1", "gpu:0", _FakeDevice(1))] == [
        0,
        1,
        1,
        0,
        1,
        0,
        1,
    ]
    for bad in ("cuda:x", True, -1, "tpu"):
        with pytest.raises(ValueError, match="device must be a GPU index"):
            cupy_mod._device_index(bad)


# ---- NCCL: a loud fallback, and no hang when rank 0 cannot make an id --------------------------------


class _FakeComm:
    """mpi4py's comm for one rank of ``size``: records the collectives it joined."""

    def __init__(self, rank=0, size=2, others_have_nccl=True):
        self.rank, self.size, self.others = rank, size, others_have_nccl
        self.calls = []

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def bcast(self, value, root=0):
        self.calls.append("bcast")
        return value

    def allreduce(self, value, op=None):
        self.calls.append("allreduce")
        return min(value, int(self.others))

    def Allreduce(self, *args, **kwargs):
        self.calls.append("Allreduce")


_MPI = types.SimpleNamespace(MIN="min", SUM="sum", IN_PLACE="in_place")


def _host_backend():
    """A CupyBackend object on NumPy arrays, for the allreducer's control flow only."""
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(Device=_FakeDevice))
    return cupy_mod.CupyBackend(array_api_compat.numpy, _FakeDevice(0), cupy)


@pytest.fixture
def fresh_nccl_warning(monkeypatch):
    monkeypatch.setattr(cupy_mod, "_warned_no_nccl", False)
    monkeypatch.delenv("XPNN_CUDA_AWARE_MPI", raising=False)


def test_missing_nccl_warns_once_with_the_package_to_install(monkeypatch, fresh_nccl_warning):
    monkeypatch.setattr(cupy_mod, "_load_nccl", lambda: (None, "import cupy.cuda.nccl failed: ImportError: x"))
    comm = _FakeComm()
    with pytest.warns(RuntimeWarning) as record:
        _, name = _host_backend().allreducer(comm, _MPI)
    assert name == "mpi-host-staging" and comm.calls == ["bcast", "allreduce"]
    text = str(record[0].message)
    assert "NCCL is not available (import cupy.cuda.nccl failed" in text
    assert "copies all gradients to the host" in text and "nvidia-nccl-cu12" in text and "nvidia-nccl-cu13" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second DataParallel in this process: no second warning
        _host_backend().allreducer(_FakeComm(), _MPI)


def test_rank0_whose_unique_id_fails_still_joins_the_bcast(monkeypatch, fresh_nccl_warning):
    def fail():
        raise RuntimeError("NCCL error: unhandled system error")

    nccl = types.SimpleNamespace(available=True, get_unique_id=fail)
    monkeypatch.setattr(cupy_mod, "_load_nccl", lambda: (nccl, None))
    comm = _FakeComm(rank=0)
    with pytest.warns(RuntimeWarning, match=r"nccl.get_unique_id\(\) failed: RuntimeError: NCCL error"):
        _, name = _host_backend().allreducer(comm, _MPI)
    assert comm.calls == ["bcast", "allreduce"] and name == "mpi-host-staging"


def test_nccl_on_every_rank_is_used_without_a_warning(monkeypatch, fresh_nccl_warning):
    made = []
    nccl = types.SimpleNamespace(
        available=True, get_unique_id=lambda: b"id", NcclCommunicator=lambda *args: made.append(args) or object()
    )
    monkeypatch.setattr(cupy_mod, "_load_nccl", lambda: (nccl, None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, name = _host_backend().allreducer(_FakeComm(rank=0), _MPI)
    assert name == "nccl" and made == [(2, b"id", 0)]
    # a rank with NCCL whose peer lacks it follows the others to host staging, and says why
    with pytest.warns(RuntimeWarning, match="another rank has no NCCL"):
        _, name = _host_backend().allreducer(_FakeComm(rank=1, others_have_nccl=False), _MPI)
    assert name == "mpi-host-staging"


def test_load_nccl_reports_why_not(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", None)
    module, why = cupy_mod._load_nccl()
    assert module is None and why.startswith("import cupy.cuda.nccl failed")
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", types.SimpleNamespace(available=False))
    assert cupy_mod._load_nccl() == (None, "CuPy finds no NCCL library (cupy.cuda.nccl.available is False)")


def test_cuda_extras_bring_nccl():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert any(d.startswith("nvidia-nccl-cu12") for d in extras["cuda12"])
    assert any(d.startswith("nvidia-nccl-cu13") for d in extras["cuda13"])


# ---- the GPU probe of conftest ------------------------------------------------------------------


@pytest.fixture
def conftest(root_conftest):
    return root_conftest


def test_probe_expected_failures_are_quiet_and_others_are_flagged(conftest):

    def missing():
        raise RuntimeError('backend "cupy" needs CuPy: pip install "xpnn[cuda12]"')

    def broken():
        raise AttributeError("module 'cupy' has no attribute 'cuda'")

    def warns_then_works():
        warnings.warn("CUDA path could not be detected", UserWarning, stacklevel=2)

    def raises_a_warning():
        raise DeprecationWarning("turned into an error by filterwarnings")

    assert conftest.probe_gpu(lambda: None) == (None, False, "")
    assert conftest.probe_gpu(missing) == (
        'RuntimeError: backend "cupy" needs CuPy: pip install "xpnn[cuda12]"',
        False,
        "",
    )
    assert conftest.probe_gpu(broken) == ("AttributeError: module 'cupy' has no attribute 'cuda'", True, "")
    assert conftest.probe_gpu(raises_a_warning) == (
        "DeprecationWarning: turned into an error by filterwarnings",
        True,
        "",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as the suite's filterwarnings: the probe must not turn it into a skip
        assert conftest.probe_gpu(warns_then_works) == (None, False, "UserWarning: CUDA path could not be detected")


def test_probe_summary_flags_unexpected_failures(conftest, monkeypatch):

    monkeypatch.setattr(conftest, "_GPU_MISSING", {"cupy": "RuntimeError: no CuPy", "torch-cuda": "TypeError: bad"})
    monkeypatch.setattr(conftest, "_GPU_UNEXPECTED", {"torch-cuda"})
    monkeypatch.setattr(conftest, "_GPU_NOTES", {})
    lines = conftest.gpu_summary_lines()
    assert lines[0] == ("GPU backends not run here (their tests were deselected): cupy: RuntimeError: no CuPy", False)
    assert lines[1][1] is True and "torch-cuda" in lines[1][0] and "FAILED UNEXPECTEDLY" in lines[1][0]
    assert "TypeError: bad" in lines[1][0]


def test_require_gpu_values(conftest):

    assert conftest.required_gpu_backends(None) == conftest.required_gpu_backends("0") == ()
    assert conftest.required_gpu_backends("1") == ("cupy", "torch-cuda")
    assert conftest.required_gpu_backends("cupy") == ("cupy",)
    with pytest.raises(pytest.UsageError, match="XPNN_REQUIRE_GPU must be 1, 0 or GPU backends"):
        conftest.required_gpu_backends("tpu")


def test_require_gpu_makes_a_missing_gpu_an_error(tmp_path):
    """A child pytest run with XPNN_REQUIRE_GPU=cupy on this machine (no CuPy) stops with
    the reason instead of deselecting the GPU tests."""
    if _cupy_starts():
        pytest.skip("CuPy starts here: nothing to refuse")
    env = dict(os.environ, XPNN_REQUIRE_GPU="cupy")
    env.pop("XPNN_TEST_BACKEND", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--co",
            os.path.abspath(__file__),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "XPNN_REQUIRE_GPU is set, but these GPU backends cannot start here: cupy: RuntimeError" in proc.stderr


def _cupy_starts() -> bool:
    try:
        xpnn.get_backend("cupy")
        return True
    except Exception:
        return False


# ---- the GPU benchmark's memory columns ------------------------------------------------------------


@pytest.fixture
def harness(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import harness

    return harness


def test_benchmark_reports_reserved_and_live_for_torch(harness, monkeypatch):
    cuda = types.SimpleNamespace(
        reset_peak_memory_stats=lambda: None,
        memory_allocated=lambda: 2**20,
        max_memory_reserved=lambda: 64 * 2**20,
        max_memory_allocated=lambda: 40 * 2**20,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    gpu = harness.GpuMemory("torch-cuda")
    gpu.reset()
    with gpu.live_tracking():
        pass
    got = gpu.read()
    assert got["gpu_reserved_peak_mib"] == 64 and got["gpu_live_peak_mib"] == 40 and got["gpu_live_extra_mib"] == 39


def test_benchmark_reports_reserved_and_live_for_cupy(harness, monkeypatch):
    class Hook:  # cupy.cuda.MemoryHook: registered while the with block runs
        active = []

        def __enter__(self):
            Hook.active.append(self)
            return self

        def __exit__(self, *exc):
            Hook.active.remove(self)

    pool = types.SimpleNamespace(free_all_blocks=lambda: None, used_bytes=lambda: 2**20, total_bytes=lambda: 96 * 2**20)
    cupy = types.SimpleNamespace(get_default_memory_pool=lambda: pool, cuda=types.SimpleNamespace(MemoryHook=Hook))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    gpu = harness.GpuMemory("cupy")
    gpu.reset()
    with gpu.live_tracking():  # the warm-up: 10 MiB, then 30 MiB live, then the 10 freed
        (hook,) = Hook.active
        for size in (10, 30):
            hook.malloc_postprocess(device_id=0, size=size * 2**20, mem_size=size * 2**20, mem_ptr=1, pmem_id=1)
        hook.free_postprocess(device_id=0, mem_size=10 * 2**20, mem_ptr=1, pmem_id=1)
        hook.malloc_postprocess(device_id=0, size=5, mem_size=512, mem_ptr=0, pmem_id=0)  # failed: not counted
    assert Hook.active == []
    got = gpu.read()
    assert got["gpu_reserved_peak_mib"] == 96 and got["gpu_live_peak_mib"] == 41 and got["gpu_live_extra_mib"] == 40
    assert got["gpu_live_peak_covers"] == "warm-up run (memory hook)"


def test_benchmark_report_shows_both_gpu_memory_columns(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import report

    with open(os.path.join(ROOT, "benchmarks", "results", "cpu-2core-2026-11-29.json")) as f:
        data = json.load(f)  # a real record, its one xpnn row moved to a GPU
    row = next(r for r in data["results"] if r["impl"] == "xpnn" and r["status"] == "ok" and r["case"] == "mlp-b128")
    row = dict(
        row,
        device="gpu",
        backend="cupy",
        label="xpnn (cupy)",
        memory={"extra_rss_mib": 10.0, "gpu_reserved_peak_mib": 96.0, "gpu_live_peak_mib": 41.0},
    )
    text = report.render(dict(data, results=[row], gemm_peak=[]))
    header = next(line for line in text.splitlines() if line.startswith("| case |"))
    assert header.endswith("| extra RSS MiB | GPU reserved MiB | GPU live MiB |")
    line = next(line for line in text.splitlines() if line.startswith("| mlp-b128 |"))
    assert line.endswith("| 10 | 96 | 41 |")
    assert "GPU reserved = the most device memory the allocator held" in text
