"""glibc's malloc and the large arrays of a training step.

glibc hands out a block larger than its mmap threshold as fresh pages from the kernel and
returns them when it is freed; smaller blocks come from its heap, whose free top is also
returned once it exceeds the trim threshold. The threshold adapts (a freed mmapped block
raises it to that block's size, and the trim threshold to twice that), but only up to 32
MiB. A convolutional training step allocates and frees large arrays every step (the
benchmark CNN's activations and their gradients, 6-13 MB each at batch 128, in a working
set larger than twice 32 MiB), so each step asked the kernel for its memory again:
~1100-1550 page faults a step on 2 cores, each first touch of a page zeroed by the
kernel, 8-16 ms of system time a step (measured with getrusage). With the thresholds below
the step reuses the heap's memory: 0-6 faults a step, and the step 10-15% faster.

The price: up to TRIM_THRESHOLD bytes of freed memory stay with the process instead of
going back to the system, as PyTorch's caching allocator keeps GPU memory. The NumPy
backend sets this when its first kernel runs on a large array (see
``NumpyBackend._workers``), never where the user set one of glibc's MALLOC_*_ tunables in
the environment, and not on other C libraries.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap (a batch-512 CNN's columns: 116 MB) ...
MMAP_THRESHOLD = 256 << 20
# ... and up to this much free memory at the heap's top stays there between steps.
TRIM_THRESHOLD = 512 << 20
# the environment variables through which a user tunes the same (glibc's names)
USER_TUNABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed large blocks for reuse; False where it was not done
    (another C library, or the user's own MALLOC_* settings, which stand)."""
    if any(name in os.environ for name in USER_TUNABLES) or "GLIBC_TUNABLES" in os.environ:
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mmap threshold first: setting either fixes both (glibc stops adapting them)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
