"""The NumPy backend shortens OpenBLAS's idle spin when its kernels first run in parts
(backends/openblas.py), keeps the user's OPENBLAS_THREAD_TIMEOUT, and leaves the
environment as it was. Each case runs in a fresh interpreter: the setting is per process."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from xpnn.backends import openblas

PROBE = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import xpnn
    import xpnn.backends.numpy as nb
    from xpnn.backends import openblas
    from threadpoolctl import ThreadpoolController, threadpool_limits

    nb.SHORT_BLAS_SPIN = sys.argv[1] == "on"
    backend = xpnn.get_backend("numpy")
    numpy_libs = os.path.dirname(np.__file__) + ".libs"
    found = ThreadpoolController().select(internal_api="openblas").lib_controllers
    lib = next((c for c in found if c.filepath.startswith(numpy_libs)), None)
    if lib is None or openblas.spin_timeout(lib.filepath) is None:
        print(json.dumps(None))
        sys.exit()
    before = openblas.spin_timeout(lib.filepath)
    x = np.linspace(-1.0, 1.0, 1 << 20, dtype=np.float32).reshape(1024, 1024)
    with threadpool_limits(2, user_api="blas"):  # two parts even on a one-core machine
        y = backend.mask_multiply(x, x > 0)
        product = x @ x  # the restarted threads still compute products
    print(json.dumps({
        "before": before,
        "after": openblas.spin_timeout(lib.filepath),
        "env": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "ok": bool(np.array_equal(y, x * (x > 0))) and bool(np.allclose(product, x.astype(np.float64) @ x, atol=1e-2)),
    }))
    """
)


def _probe(switch: str, env_value: str | None):
    env = {k: v for k, v in os.environ.items() if k != openblas.ENV}
    if env_value is not None:
        env[openblas.ENV] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PROBE, switch], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    if found is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS with openblas_thread_timeout")
    return found


def test_the_first_kernel_in_parts_shortens_the_spin_and_restores_the_environment():
    found = _probe("on", None)
    assert found == {"before": 0, "after": int(openblas.SHORT), "env": None, "ok": True}


def test_switched_off_the_spin_stays_openblas_default():
    assert _probe("off", None) == {"before": 0, "after": 0, "env": None, "ok": True}


def test_the_users_thread_timeout_stands():
    assert _probe("on", "12") == {"before": 12, "after": 12, "env": "12", "ok": True}


def test_a_library_without_openblas_entry_points_is_left_alone(monkeypatch):
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library to stand in for another BLAS")
    monkeypatch.delenv(openblas.ENV, raising=False)
    assert openblas.shorten_spin(libc) is False
    assert openblas.spin_timeout(libc) is None
    assert openblas.ENV not in os.environ
