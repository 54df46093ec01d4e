"""Shared fixtures: the ``backend`` fixture runs a test on every array backend.

CPU backends, always run: numpy, array_api_strict (on its non-default device "device1",
so a host array or an array created without the model's device raises, as it would on a
GPU), torch (CPU tensors) and jax (CPU). GPU backends, marked ``gpu`` and skipped unless
the library sees a device: cupy and torch-cuda. ``pytest --backend NAME[,NAME]`` or
XPNN_TEST_BACKEND=NAME runs the backend tests on those only.

XPNN_REQUIRE_ORACLES=1 (set by .ci/run) turns a skip for a missing comparison library
(PyTorch, scikit-learn, ...) or a missing CPU backend into a failure: in CI every oracle
test must run. XPNN_REQUIRE_GPU=1 (for runs on a GPU machine; or a list such as
``cupy,torch-cuda``) makes a GPU backend that cannot start an error, never a skip.

The GPU probe never deselects quietly: why each GPU backend cannot start is one line of
the summary, and a failure other than the expected ones (library not installed, no
device: the RuntimeError of ``Backend.create``) is flagged there as unexpected, with its
type and message.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

# XLA compiles each eager JAX operation once per shape and dtype, and on the CPU that
# compile, not the arithmetic, is most of a JAX test's time. These flags make XLA compile
# about twice as fast (no LLVM optimisation, the older elementwise emitters): less
# optimised machine code for the same operations, and the suite passes either way. Set
# before JAX starts its CPU client (it reads XLA_FLAGS then), and inherited by the
# subprocesses tests start. A user's own XLA_FLAGS, even empty, is left alone.
FAST_COMPILE_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
os.environ.setdefault("XLA_FLAGS", FAST_COMPILE_XLA_FLAGS)

import numpy as np
import pytest

import xpnn

try:  # the suite's arrays are small: one BLAS thread is faster than two fighting for 2 cores
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
except ImportError:  # threadpoolctl is in the test extra; without it the suite is only slower
    _BLAS_LIMIT = None

try:  # PyTorch's own thread pool likewise
    import torch

    torch.set_num_threads(1)
except ImportError:
    pass

# fixture id -> (registry name, device)
CPU_BACKENDS = {
    "numpy": ("numpy", None),
    "array_api_strict": ("array_api_strict", None),
    "torch": ("torch", "cpu"),
    "jax": ("jax", None),
}
GPU_BACKENDS = {"cupy": ("cupy", None), "torch-cuda": ("torch", "cuda")}
ALL_BACKENDS = {**CPU_BACKENDS, **GPU_BACKENDS}
REQUIRE_ORACLES = os.environ.get("XPNN_REQUIRE_ORACLES") == "1"
_UNAVAILABLE = "backend unavailable: "
TESTS = Path(__file__).resolve().parent
# this module as pytest loaded it: each area's conftest.py is also a top-level module named
# ``conftest``, so ``import conftest`` in a test may find another one (the root_conftest fixture)
_SELF = sys.modules[__name__]


def required_gpu_backends(value) -> tuple:
    """The GPU backends XPNN_REQUIRE_GPU names: "1" all of them, "" or "0" none, else a
    comma-separated list of GPU_BACKENDS ids."""
    value = (value or "").strip()
    if value in ("", "0"):
        return ()
    if value == "1":
        return tuple(GPU_BACKENDS)
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    for n in names:
        if n not in GPU_BACKENDS:
            raise pytest.UsageError(
                f"XPNN_REQUIRE_GPU must be 1, 0 or GPU backends among {tuple(GPU_BACKENDS)}, found {n!r}"
            )
    return names


def probe_gpu(start) -> tuple:
    """Call ``start()`` (which makes a GPU backend) and say how it went:
    ``(problem, unexpected, noted)``. problem: None if it started, else the exception's
    type and message. Expected failures are the RuntimeError that Backend.create raises
    when the library or the device is missing; anything else (a bug, a broken install, a
    warning an error filter turned into an exception) is unexpected: it must be shown,
    not folded into a quiet skip. noted: the warnings raised while probing (recorded,
    never raised, so that a warning cannot turn into a skip), or ""."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start()
            problem = None
        except Exception as exc:
            problem = exc
    noted = "; ".join(f"{w.category.__name__}: {w.message}" for w in caught)
    if problem is None:
        return None, False, noted
    unexpected = not isinstance(problem, RuntimeError) or isinstance(problem, Warning)
    return f"{type(problem).__name__}: {problem}", unexpected, noted


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        action="store",
        default=None,
        help=f"run backend-parametrized tests on these only (comma-separated: {', '.join(ALL_BACKENDS)})",
    )


def _selected(config):
    chosen = config.getoption("--backend") or os.environ.get("XPNN_TEST_BACKEND")
    if chosen is None:
        return tuple(ALL_BACKENDS)
    names = tuple(n.strip() for n in chosen.split(",") if n.strip())
    for n in names:
        if n not in ALL_BACKENDS:
            raise pytest.UsageError(f"--backend must be among {tuple(ALL_BACKENDS)}, found {n!r}")
    return names


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        params = []
        for name in _selected(metafunc.config):
            marks = [pytest.mark.gpu] if name in GPU_BACKENDS else []
            params.append(pytest.param(name, marks=marks, id=name))
        metafunc.parametrize("backend_name", params)


_GPU_MISSING: dict = {}  # GPU backend id -> why it cannot run here
_GPU_UNEXPECTED: set = set()  # GPU backend ids whose probe failed in an unexpected way
_GPU_NOTES: dict = {}  # GPU backend id -> warnings seen while it started
REQUIRED_GPU: tuple = ()


def pytest_configure(config):
    """Find out once which GPU backends cannot start here (no CuPy, no CUDA device)."""
    global REQUIRED_GPU
    REQUIRED_GPU = required_gpu_backends(os.environ.get("XPNN_REQUIRE_GPU"))
    if config.getoption("--backend") or os.environ.get("XPNN_TEST_BACKEND"):
        return  # asked for by name: each test reports its own skip (or failure, if required)
    for name, (registry_name, device) in GPU_BACKENDS.items():
        problem, unexpected, noted = probe_gpu(lambda r=registry_name, d=device: xpnn.get_backend(r, d))
        if noted:
            _GPU_NOTES[name] = noted
        if problem is not None:
            _GPU_MISSING[name] = problem
            if unexpected:
                _GPU_UNEXPECTED.add(name)
    missing = [n for n in REQUIRED_GPU if n in _GPU_MISSING]
    if missing:
        raise pytest.UsageError(
            "XPNN_REQUIRE_GPU is set, but these GPU backends cannot start here: "
            + "; ".join(f"{n}: {_GPU_MISSING[n]}" for n in missing)
        )


def dist_named(args) -> bool:
    """Whether these command-line arguments choose pytest-xdist's ``--dist`` mode."""
    return any(a == "--dist" or a.startswith("--dist=") for a in args)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n N`` without ``--dist``: whole files to a worker (``--dist loadfile``), not tests
    one by one. JAX compiles each operation once per shape in each process, and the
    tests of one file run the same shapes on every backend: kept in one worker they
    compile them once, not once per worker. ``--dist`` on the command line (or in
    PYTEST_ADDOPTS) is left to pytest-xdist."""
    args = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if config.getvalue("dist") != "load" or dist_named(args):
        return None
    from xdist.scheduler import LoadFileScheduling

    return LoadFileScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Tests on a GPU backend that cannot start here are left out of a default run, and
    the summary says so in one line (rather than one skip per test and backend)."""
    if not _GPU_MISSING:
        return
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        (drop if spec is not None and spec.params.get("backend_name") in _GPU_MISSING else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def gpu_summary_lines() -> list:
    """What the terminal summary says about the GPU backends: (text, is it a problem)."""
    lines = []
    expected = {k: v for k, v in _GPU_MISSING.items() if k not in _GPU_UNEXPECTED}
    if expected:
        reasons = "; ".join(f"{k}: {v}" for k, v in expected.items())
        lines.append((f"GPU backends not run here (their tests were deselected): {reasons}", False))
    for k in sorted(_GPU_UNEXPECTED):
        text = (
            f"GPU backend {k}: its probe FAILED UNEXPECTEDLY, so its tests were deselected: "
            f"{_GPU_MISSING[k]} (not a missing library or device: look at this)"
        )
        lines.append((text, True))
    for k, v in _GPU_NOTES.items():
        lines.append((f"GPU backend {k}: warnings while it started: {v}", True))
    return lines


def pytest_terminal_summary(terminalreporter):
    for text, problem in gpu_summary_lines():
        terminalreporter.write_line(text, red=problem, bold=problem)


@pytest.fixture
def backend(backend_name):
    """A Backend for each selected array library (skipped, with the reason, where the
    library or its device is missing)."""
    name, device = ALL_BACKENDS[backend_name]
    try:
        return xpnn.get_backend(name, device)
    except Exception as exc:  # any failure to start (import error, no device) is a visible skip
        reason = f"{_UNAVAILABLE}{backend_name}: {type(exc).__name__}: {exc}"
        if backend_name in REQUIRED_GPU:
            pytest.fail(f"XPNN_REQUIRE_GPU is set, but {reason}")
        pytest.skip(reason)


@pytest.fixture
def host_check_layer():
    """A layer class that reads an array value on the host in forward (``bool(xp.any(...))``),
    so that it cannot be traced: what the compiled-step tests expect to fall back on."""

    class HostCheck(xpnn.layers.Layer):
        def forward(self, X, training=False):
            self.prepare(X)
            if bool(self.xp.any(X < -1e6)):
                raise ValueError("HostCheck: huge negative input")
            self.saved = () if training else None
            return X

        def backward(self, dY, need_dX=True):
            self.take_saved()
            return dY

    return HostCheck


@pytest.fixture
def rng():
    """A NumPy generator for test data (host side)."""
    return np.random.default_rng(12345)


# JAX compiles every operation for every new shape (about 25 ms each on this machine's
# CPU), and hypothesis draws a new shape per example: on jax a property test draws
# JAX_EXAMPLES examples instead of its usual number. One example already runs every line
# of the code path on JAX; the other backends keep the full search over shapes.
JAX_EXAMPLES = 3


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    test = getattr(item, "obj", None)
    spec = getattr(item, "callspec", None)
    current = getattr(test, "_hypothesis_internal_use_settings", None)
    fewer = (
        current is not None
        and spec is not None
        and spec.params.get("backend_name") == "jax"
        and current.max_examples > JAX_EXAMPLES
    )
    if fewer:  # hypothesis reads this attribute when the test runs
        from hypothesis import settings

        test._hypothesis_internal_use_settings = settings(current, max_examples=JAX_EXAMPLES)
    try:
        yield
    finally:
        if fewer:
            test._hypothesis_internal_use_settings = current


def skip_location(longrepr, item) -> tuple:
    """Where ``-rs`` reports a skip: ``(path, line, reason)``, moved to the test itself when
    the skip was located anywhere else (pytest's or a plugin's own files, a helper module),
    with that place named in the reason. pytest already names the test for a skip from a
    fixture or ``importorskip``; this keeps it so for every version and plugin."""
    path, line, reason = longrepr
    test_path, test_line = item.reportinfo()[:2]
    if Path(path).resolve() == Path(test_path).resolve():
        return longrepr
    where = Path(path).resolve()
    where = where.relative_to(TESTS.parent) if TESTS.parent in where.parents else Path(*where.parts[-2:])
    return str(test_path), (test_line or 0) + 1, f"{reason} (skipped in {where.as_posix()}:{line})"


@pytest.fixture
def root_conftest():
    """tests/conftest.py, the module (for the tests of its own helpers)."""
    return _SELF


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip names the test (skip_location); under XPNN_REQUIRE_ORACLES=1, a skip for a
    missing library fails the test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        report.longrepr = skip_location(report.longrepr, item)
    if not (REQUIRE_ORACLES and report.skipped and call.excinfo is not None):
        return
    reason = str(call.excinfo.value)
    missing_oracle = reason.startswith("could not import")  # pytest.importorskip
    missing_backend = reason.startswith(_UNAVAILABLE) and item.get_closest_marker("gpu") is None
    if missing_oracle or missing_backend:
        report.outcome = "failed"
        report.longrepr = f"XPNN_REQUIRE_ORACLES=1, but this test was skipped: {reason}"


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a PostgreSQL server for the shared-study tests: XPNN_TEST_POSTGRES_URL
    (bash .ci/run starts a throw-away one and sets it). Missing or unreachable: the test
    skips, or fails under CI=true or XPNN_REQUIRE_ORACLES=1."""
    url = os.environ.get("XPNN_TEST_POSTGRES_URL")
    problem = None
    if not url:
        problem = "XPNN_TEST_POSTGRES_URL is not set (bash .ci/run starts a server and sets it)"
    else:
        try:
            import sqlalchemy

            engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT 1"))
        except Exception as exc:  # any reason it cannot be reached; the message may hold the URL
            from xpnn.model_selection.storage import mask_url

            problem = f"cannot reach {mask_url(url)}: {type(exc).__name__}"
    if problem:
        if REQUIRE_ORACLES or os.environ.get("CI") == "true":
            pytest.fail(f"these tests need PostgreSQL (the postgres_url fixture): {problem}")
        pytest.skip(f"needs PostgreSQL (the postgres_url fixture): {problem}")
    return url
