"""OpenBLAS's idle worker threads, and the NumPy kernels that run beside them.

After every threaded matrix product OpenBLAS keeps its worker threads spinning, ready
for the next product, for OPENBLAS_THREAD_TIMEOUT's 2**28 cycles by default (~0.1 s;
measured on 2 cores: ~97 ms of CPU burnt in a 0.2 s sleep after one product). A step
made only of products (an MLP) gains from that: its next product starts at once. But the
NumPy backend's own kernels (im2col's copies, pooling, ReLU's backward) run their parts
on the same cores, each part then sharing its core with a spinning thread: in a CNN
training step on 2 cores, a shorter spin made the step ~20% faster (OPENBLAS_THREAD_TIMEOUT
4 vs the default, same run), while it made the MLP's step ~10% slower.

So the NumPy backend shortens the spin only when its first kernel runs in parts (see
``NumpyBackend._in_parts``), and never where the user set OPENBLAS_THREAD_TIMEOUT. OpenBLAS
reads that setting when it starts its threads, so it is put in the environment, read with
``openblas_read_env`` and the threads restarted (``blas_thread_shutdown_``: they start again,
the same number, at the next threaded product); the environment is then as it was.
"""

from __future__ import annotations

import ctypes
import os

ENV = "OPENBLAS_THREAD_TIMEOUT"
# 2**4 cycles, OpenBLAS's smallest: a worker goes to sleep as soon as it has no work
SHORT = "4"


def shorten_spin(filepath: str) -> bool:
    """Make the OpenBLAS library at ``filepath`` (already loaded) put its idle threads to
    sleep at once; False where the user set OPENBLAS_THREAD_TIMEOUT or the library lacks
    the entry points (another BLAS, another build)."""
    if ENV in os.environ:
        return False  # the user's choice stands
    try:
        lib = ctypes.CDLL(filepath)
        read_env, restart = lib.openblas_read_env, lib.blas_thread_shutdown_
    except (OSError, AttributeError):
        return False
    os.environ[ENV] = SHORT
    try:
        read_env()
    finally:
        del os.environ[ENV]  # subprocesses inherit the user's environment, not ours
    restart()
    return True


def spin_timeout(filepath: str) -> int | None:
    """The library's current OPENBLAS_THREAD_TIMEOUT setting (0: its default), or None."""
    try:
        return int(ctypes.CDLL(filepath).openblas_thread_timeout())
    except (OSError, AttributeError):
        return None
