"""Shared fixtures: the ``backend`` fixture runs a test on every array backend.

CPU backends, always run: numpy, array_api_strict (on its non-default device "device1",
so a host array or an array created without the model's device raises, as it would on a
GPU), torch (CPU tensors) and jax (CPU). GPU backends, marked ``gpu`` and skipped unless
the library sees a device: cupy and torch-cuda. ``pytest --backend NAME[,NAME]`` or
XPNN_TEST_BACKEND=NAME runs the backend tests on those only.

XPNN_REQUIRE_ORACLES=1 (set by .ci/run) turns a skip for a missing comparison library
(PyTorch, scikit-learn, ...) or a missing CPU backend into a failure: in CI every oracle
test must run.
"""

from __future__ import annotations

import os

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
CPU_BACKENDS = {"numpy": ("numpy", None), "array_api_strict": ("array_api_strict", None),
                "torch": ("torch", "cpu"), "jax": ("jax", None)}
GPU_BACKENDS = {"cupy": ("cupy", None), "torch-cuda": ("torch", "cuda")}
ALL_BACKENDS = {**CPU_BACKENDS, **GPU_BACKENDS}
REQUIRE_ORACLES = os.environ.get("XPNN_REQUIRE_ORACLES") == "1"
_UNAVAILABLE = "backend unavailable: "


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default=None,
                     help=f"run backend-parametrized tests on these only (comma-separated: {', '.join(ALL_BACKENDS)})")


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


def pytest_configure(config):
    """Find out once which GPU backends cannot start here (no CuPy, no CUDA device)."""
    if config.getoption("--backend") or os.environ.get("XPNN_TEST_BACKEND"):
        return  # asked for by name: each test reports its own skip
    for name, (registry_name, device) in GPU_BACKENDS.items():
        try:
            xpnn.get_backend(registry_name, device)
        except Exception as exc:
            _GPU_MISSING[name] = f"{type(exc).__name__}: {exc}"


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


def pytest_terminal_summary(terminalreporter):
    if _GPU_MISSING:
        reasons = "; ".join(f"{k}: {v}" for k, v in _GPU_MISSING.items())
        terminalreporter.write_line(f"GPU backends not run here (their tests were deselected): {reasons}")


@pytest.fixture
def backend(backend_name):
    """A Backend for each selected array library (skipped, with the reason, where the
    library or its device is missing)."""
    name, device = ALL_BACKENDS[backend_name]
    try:
        return xpnn.get_backend(name, device)
    except Exception as exc:  # any failure to start (import error, no device) is a visible skip
        pytest.skip(f"{_UNAVAILABLE}{backend_name}: {type(exc).__name__}: {exc}")


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
    fewer = (current is not None and spec is not None and spec.params.get("backend_name") == "jax"
             and current.max_examples > JAX_EXAMPLES)
    if fewer:  # hypothesis reads this attribute when the test runs
        from hypothesis import settings

        test._hypothesis_internal_use_settings = settings(current, max_examples=JAX_EXAMPLES)
    try:
        yield
    finally:
        if fewer:
            test._hypothesis_internal_use_settings = current


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under XPNN_REQUIRE_ORACLES=1, a skip for a missing library fails the test."""
    outcome = yield
    report = outcome.get_result()
    if not (REQUIRE_ORACLES and report.skipped and call.excinfo is not None):
        return
    reason = str(call.excinfo.value)
    missing_oracle = reason.startswith("could not import")  # pytest.importorskip
    missing_backend = reason.startswith(_UNAVAILABLE) and item.get_closest_marker("gpu") is None
    if missing_oracle or missing_backend:
        report.outcome = "failed"
        report.longrepr = f"XPNN_REQUIRE_ORACLES=1, but this test was skipped: {reason}"
