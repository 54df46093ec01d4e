"""The NumPy backend lets glibc's malloc keep freed large blocks (backends/malloc.py) once
its first kernel runs on a large array, so that a step's big arrays reuse memory instead of
page-faulting it in again; a user's MALLOC_* settings stand. Each case runs in a fresh
interpreter: malloc's settings are per process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from xpnn.backends import malloc

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import xpnn
    import xpnn.backends.numpy as nb

    nb.KEEP_FREED_MEMORY = sys.argv[1] == "on"
    backend = xpnn.get_backend("numpy")
    x = np.linspace(-1.0, 1.0, 1 << 20, dtype=np.float32)
    y = backend.mask_multiply(x, x > 0)  # a kernel on a large array
    a = np.ones(10 << 20, dtype=np.float32)  # 40 MB: over glibc's largest adaptive threshold
    del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        a = np.ones(10 << 20, dtype=np.float32)
        del a
    print(json.dumps({
        "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
        "ok": bool(np.array_equal(y, x * (x > 0))),
    }))
    """
)


def _faults(switch: str, **user_env) -> int:
    env = {k: v for k, v in os.environ.items() if k not in malloc.USER_TUNABLES and k != "GLIBC_TUNABLES"}
    env.update(user_env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, switch], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["ok"]
    return found["faults"]


def test_after_a_large_kernel_freed_large_blocks_are_reused():
    # 5 x 40 MB filled afresh would fault in thousands of pages (one per 4 KiB, or per 2 MiB
    # where the kernel backs them with huge pages); reused memory faults in none
    assert _faults("on") < 10


def test_switched_off_malloc_returns_them_to_the_system():
    assert _faults("off") >= 5 * 10


def test_the_users_malloc_settings_stand():
    assert _faults("on", MALLOC_TOP_PAD_="0") >= 5 * 10
