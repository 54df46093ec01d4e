"""Shared fixtures: the ``backend`` fixture runs a test on every array backend.

numpy and array_api_strict always run (array_api_strict on its non-default device
"device1", so a host array or an array created without the model's device raises, as it
would on a GPU); cupy is marked ``gpu`` and skipped unless CuPy imports and a device is
visible. ``pytest --backend NAME`` or XPNN_TEST_BACKEND=NAME runs on one backend only.
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

ALL_BACKENDS = ("numpy", "array_api_strict", "cupy")


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default=None,
                     help="run backend-parametrized tests on this backend only (numpy, array_api_strict, cupy)")


def _selected(config):
    chosen = config.getoption("--backend") or os.environ.get("XPNN_TEST_BACKEND")
    if chosen is None:
        return ALL_BACKENDS
    names = tuple(n.strip() for n in chosen.split(",") if n.strip())
    for n in names:
        if n not in ALL_BACKENDS:
            raise pytest.UsageError(f"--backend must be among {ALL_BACKENDS}, found {n!r}")
    return names


def _cupy_reason():
    try:
        xpnn.get_backend("cupy")
    except Exception as exc:
        return str(exc)
    return None


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        params = []
        for name in _selected(metafunc.config):
            marks = [pytest.mark.gpu] if name == "cupy" else []
            params.append(pytest.param(name, marks=marks, id=name))
        metafunc.parametrize("backend_name", params)


@pytest.fixture
def backend(backend_name):
    """A Backend for each selected array library."""
    if backend_name == "cupy":
        reason = _cupy_reason()
        if reason:
            pytest.skip(reason)
    return xpnn.get_backend(backend_name)


@pytest.fixture
def rng():
    """A NumPy generator for test data (host side)."""
    return np.random.default_rng(12345)
