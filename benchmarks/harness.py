"""What every benchmark shares: the cases, the data, timing, memory and the machine record.

A *case* is one training workload (an architecture, a batch size, how much data one timed
run covers). An *implementation* (xpnn or a peer, see ``peers/``) turns a case into a
*runner*: an object with

    runner.run(n)        train over n batches (n steps for XOR) and return
    runner.sync()        wait for queued device work (a no-op on the CPU)
    runner.loss()        the last training loss as a Python float (a sanity check)
    runner.timer         how a run is timed: "cupy" or "torch-cuda" (CUDA events), else
                         "cpu" (the wall clock after runner.sync(), which is also how JAX
                         is timed, on either device)

Nothing here imports xpnn, torch or scikit-learn: workers import only what they run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import time

FASHION_TRAIN = 60_000  # samples in one Fashion-MNIST training epoch


# ---- the cases ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One workload. ``n_batches=None`` is a full epoch; a number is a subset of batches
    whose time is scaled to a per-epoch estimate (``epoch_samples / samples_per_run``)."""

    name: str
    suite: str
    kind: str  # "mlp", "cnn" or "xor"
    description: str
    sizes: tuple = ()  # MLP layer widths, input first
    batch_size: int = 128
    n_batches: int | None = None  # per timed run on the CPU (None: a full epoch)
    gpu_batches: int | None = None  # per timed run on a GPU (None: a full epoch)
    warmup_batches: int = 20
    quick_batches: int = 5
    repeats: int = 5
    steps: int = 0  # XOR: full-batch steps per timed run
    quick_steps: int = 0


CASES = [
    Case(
        "mlp-b128",
        "mlp",
        "mlp",
        "MLP 784-128-10 ReLU, Adam, batch 128, one Fashion-MNIST epoch",
        sizes=(784, 128, 10),
        batch_size=128,
    ),
    Case(
        "mlp-b1024",
        "mlp",
        "mlp",
        "MLP 784-128-10 ReLU, Adam, batch 1024, one Fashion-MNIST epoch",
        sizes=(784, 128, 10),
        batch_size=1024,
        warmup_batches=5,
        quick_batches=2,
    ),
    Case(
        "mlp-wide",
        "mlp-wide",
        "mlp",
        "MLP 784-4096-4096-10 ReLU, Adam, batch 1024",
        sizes=(784, 4096, 4096, 10),
        batch_size=1024,
        n_batches=8,
        warmup_batches=1,
        quick_batches=1,
        repeats=3,
    ),
    Case(
        "cnn",
        "cnn",
        "cnn",
        "CNN conv32-pool-conv64-pool-128-10, Adam, batch 128",
        batch_size=128,
        n_batches=50,
        warmup_batches=2,
        quick_batches=2,
        repeats=3,
    ),
    Case(
        "xor",
        "xor",
        "xor",
        "XOR 2-4-1 sigmoid, BCE, SGD lr 0.1, full batch of 4",
        steps=10_000,
        quick_steps=500,
        repeats=5,
    ),
]
SUITES = sorted({c.suite for c in CASES}, key=[c.suite for c in CASES].index)


def cases_for(suites) -> list:
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise SystemExit(f"--suite: unknown suite(s) {unknown}; choose from {SUITES}")
    return [c for c in CASES if c.suite in suites]


# ---- backends and devices --------------------------------------------------------------------

# xpnn backend -> the device forms --backend accepts after a colon ("torch:cuda:1").
# A bare name runs on the CPU, except cupy, which is GPU only (its device 0).
BACKEND_DEVICES = {
    "numpy": r"cpu",
    "torch": r"cpu|cuda(:\d+)?|mps",
    "jax": r"cpu|gpu(:\d+)?|cuda(:\d+)?",
    "cupy": r"\d+|cuda(:\d+)?",
}


DTYPES = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16")  # xpnn's model dtype, after "@"


def uses_jit(spec: str) -> bool:
    """Whether an xpnn backend spec asks for compiled steps: 'jax+jit', 'torch:cuda+jit@mixed_bfloat16'."""
    return "+jit" in spec


def split_backend(spec: str) -> tuple:
    """'torch:cuda:1' -> ('torch', 'cuda:1'); 'jax' -> ('jax', 'cpu'); 'cupy' -> ('cupy', None).
    A model dtype after "@" ('torch@mixed_bfloat16') is not part of it: see split_dtype; nor
    is a "+jit" (compiled steps: uses_jit)."""
    name, _, device = spec.replace("+jit", "").partition("@")[0].partition(":")
    return name, device or (None if name == "cupy" else "cpu")


def split_dtype(spec: str) -> str:
    """'torch:cuda@mixed_bfloat16' -> 'mixed_bfloat16'; no "@": 'float32'."""
    return spec.replace("+jit", "").partition("@")[2] or "float32"


def backend_error(spec: str) -> str | None:
    """Why ``spec`` is not a backend --backend accepts, or None."""
    name, device = split_backend(spec)
    if name not in BACKEND_DEVICES:
        return f"unknown backend {name!r}"
    if device is not None and not re.fullmatch(BACKEND_DEVICES[name], device):
        return f"backend {name!r} takes no device {device!r} (accepted: {BACKEND_DEVICES[name]})"
    if split_dtype(spec) not in DTYPES:
        return f"unknown model dtype {split_dtype(spec)!r} after '@' (accepted: {', '.join(DTYPES)})"
    return None


def device_class(spec: str) -> str:
    """'cpu' or 'gpu': the peers an xpnn backend is compared with run on the same class."""
    return "cpu" if split_backend(spec)[1] == "cpu" else "gpu"


def plan(case: Case, device: str, quick: bool) -> dict:
    """How much one timed run covers for this case on this device class ("cpu" or "gpu")."""
    if case.kind == "xor":
        steps = case.quick_steps if quick else case.steps
        return {
            "n": steps,
            "warmup": max(steps // 10, 1),
            "samples_per_run": 4 * steps,
            "unit": "10k steps",
            "unit_scale": 10_000 / steps,
        }
    n_full = FASHION_TRAIN // case.batch_size + (FASHION_TRAIN % case.batch_size > 0)
    if quick:
        n = case.quick_batches
    else:
        n = case.gpu_batches if device == "gpu" else case.n_batches
    n = n_full if n is None else min(n, n_full)
    samples = FASHION_TRAIN if n == n_full else n * case.batch_size
    return {
        "n": n,
        "warmup": min(case.warmup_batches, n),
        "samples_per_run": samples,
        "unit": "epoch",
        "unit_scale": FASHION_TRAIN / samples,
    }


def cnn_layers():
    """The CNN as (kind, args) rows, shared by xpnn and torch so both build the same net."""
    return [
        ("conv", 1, 32),
        ("relu",),
        ("pool",),
        ("conv", 32, 64),
        ("relu",),
        ("pool",),
        ("flatten",),
        ("dense", 64 * 7 * 7, 128),
        ("relu",),
        ("dense", 128, 10),
    ]


def train_flops_per_sample(case: Case) -> int | None:
    """Approximate training FLOPs per sample: 3 x the forward multiply-adds x 2.

    Forward is 2 FLOPs per weight use (a multiply and an add); backward is two products of
    the same size (dX and dW), so forward + backward is about 6 x MACs. Biases, activations,
    the loss and the optimizer are left out (small next to the matrix products here).
    For an MLP: 6 * (number of weights); for a conv layer: 6 * Cout * Cin * k * k * OH * OW.
    """
    if case.kind == "mlp":
        return 6 * sum(a * b for a, b in zip(case.sizes[:-1], case.sizes[1:]))
    if case.kind == "cnn":
        macs = 28 * 28 * 32 * 1 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 128 * 10
        return 6 * macs
    return None


# ---- data -----------------------------------------------------------------------------------


def load_data(synthetic: bool, n_samples: int, seed: int = 0):
    """(X, y): X float32 (n, 784) in [0, 1], y int64 (n,) in [0, 10).

    Fashion-MNIST's training set, or random data of the same shape with ``synthetic``
    (timings do not depend on the values; the test suite uses it).
    """
    import numpy as np

    if synthetic:
        rng = np.random.default_rng(seed)
        return rng.random((n_samples, 784), dtype=np.float32), rng.integers(0, 10, n_samples, dtype=np.int64)
    try:
        import xpnn

        (X, y), _ = xpnn.load_fashion_mnist(flatten=True, download=False)
    except FileNotFoundError as exc:
        raise SystemExit(
            f"Fashion-MNIST not found ({exc}).\nInstall it (Debian: apt-get install dataset-fashion-mnist), "
            f"set XPNN_DATA, or run with --synthetic for random data of the same shape."
        ) from None
    return np.ascontiguousarray(X[:n_samples], dtype=np.float32), np.asarray(y[:n_samples], dtype=np.int64)


# ---- timing ---------------------------------------------------------------------------------


def time_once(runner, n: int) -> dict:
    """Time ``runner.run(n)``: wall clock after a sync on the CPU, CUDA events on a GPU.

    On a GPU the work is queued asynchronously, so the events bracket it on the stream and
    the end event is waited for; the wall clock (taken after that wait) is kept too.
    """
    runner.sync()
    if runner.timer == "cupy":
        import cupy

        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        t0 = time.perf_counter()
        start.record()
        runner.run(n)
        end.record()
        end.synchronize()
        wall = time.perf_counter() - t0
        return {"seconds": cupy.cuda.get_elapsed_time(start, end) / 1e3, "wall_seconds": wall}
    if runner.timer == "torch-cuda":
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        runner.run(n)
        end.record()
        end.synchronize()
        wall = time.perf_counter() - t0
        return {"seconds": start.elapsed_time(end) / 1e3, "wall_seconds": wall}
    t0 = time.perf_counter()
    runner.run(n)
    runner.sync()
    wall = time.perf_counter() - t0
    return {"seconds": wall, "wall_seconds": wall}


def summarize(times: list) -> dict:
    return {"min_s": min(times), "median_s": statistics.median(times), "max_s": max(times)}


# ---- memory ---------------------------------------------------------------------------------


def _proc_status(field: str) -> int | None:
    """A /proc/self/status field in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_now() -> int | None:
    return _proc_status("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next reading covers only what follows.

    Writing 5 to /proc/self/clear_refs does it (Linux >= 4.0); returns False where it cannot.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak resident set size in bytes: VmHWM, else getrusage's ru_maxrss (whole process)."""
    hwm = _proc_status("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


class GpuMemory:
    """Peak device memory of one library's allocator, the same two numbers for each:

    - reserved: what the allocator holds from the device (CuPy's pool ``total_bytes``,
      torch's ``max_memory_reserved``): what another process could not use.
    - live: the most bytes held by arrays at one time (torch's ``max_memory_allocated``;
      for CuPy, which keeps no such mark, a memory hook that counts the pool's mallocs
      and frees). The hook is a Python call per allocation, so it runs only during the
      warm-up (``live_tracking``), never during a timed run: same steps, same peak.

    CuPy's pool keeps every block it has handed out until ``free_all_blocks``, so its
    ``total_bytes()`` after a run is the most it reserved since the reset.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.base = 0
        self._hook = None

    def reset(self):
        if self.kind == "cupy":
            import cupy

            pool = cupy.get_default_memory_pool()
            pool.free_all_blocks()
            self.base = pool.used_bytes()
        elif self.kind == "torch-cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()

    def live_tracking(self):
        """A context manager for the warm-up: counts CuPy's live bytes (a no-op elsewhere)."""
        if self.kind != "cupy":
            return contextlib.nullcontext()
        import cupy

        self._hook = _live_peak_hook(cupy.cuda.MemoryHook, cupy.get_default_memory_pool().used_bytes())
        return self._hook

    def read(self) -> dict:
        if self.kind == "cupy":
            import cupy

            reserved = cupy.get_default_memory_pool().total_bytes()
            live = None if self._hook is None else self._hook.peak
            allocator = "cupy memory pool"
            live_covers = "warm-up run (memory hook)"
        elif self.kind == "torch-cuda":
            import torch

            reserved, live = torch.cuda.max_memory_reserved(), torch.cuda.max_memory_allocated()
            allocator = "torch caching allocator"
            live_covers = "warm-up and timed runs"
        else:
            return {}
        mib = lambda b: None if b is None else b / 2**20
        return {
            "gpu_reserved_peak_mib": mib(reserved),
            "gpu_live_peak_mib": mib(live),
            "gpu_live_extra_mib": mib(None if live is None else live - self.base),
            "gpu_live_peak_covers": live_covers,
            "gpu_allocator": allocator,
        }


def _live_peak_hook(base, start: int):
    """A CuPy MemoryHook (``base`` is cupy.cuda.MemoryHook) whose ``peak`` is the most bytes
    live at once, starting from ``start`` bytes already in use."""

    class LivePeak(base):
        name = "xpnn_benchmark_live_peak"

        def __init__(self):
            self.live = self.peak = start

        def malloc_postprocess(self, **kw):
            if kw.get("mem_ptr"):  # 0: the allocation failed
                self.live += kw["mem_size"]
                self.peak = max(self.peak, self.live)

        def free_postprocess(self, **kw):
            self.live -= kw["mem_size"]

    return LivePeak()


# ---- the machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def thread_info() -> dict:
    """Thread pools of the libraries loaded in this process (threadpoolctl), and torch's."""
    info: dict = {"os_cpu_count": os.cpu_count()}
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {
                k: p.get(k)
                for k in (
                    "user_api",
                    "internal_api",
                    "num_threads",
                    "version",
                    "threading_layer",
                    "architecture",
                    "filepath",
                )
            }
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_num_threads"] = torch.get_num_threads()
        info["torch_num_interop_threads"] = torch.get_num_interop_threads()
    return info


def limit_threads(threads: int):
    """Give every BLAS/OpenMP pool (and torch) the same thread count; returns the limiter."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads)


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def gpu_name() -> str | None:
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    return None


def loadavg() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(load_torch: bool) -> dict:
    """CPU, cores, memory, BLAS and threads, GPU, library versions and the date.

    numpy (and torch and scikit-learn, when they are peers) are imported here so that
    threadpoolctl can see their thread pools.
    """
    import numpy  # noqa: F401  (loads its BLAS for threadpoolctl)

    for mod in (["torch"] if load_torch else []) + ["scipy.linalg"]:
        try:
            __import__(mod)
        except ImportError:
            pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    libs = [
        "xpnn",
        "numpy",
        "array-api-compat",
        "torch",
        "jax",
        "jaxlib",
        "scikit-learn",
        "scipy",
        "cupy",
        "cupy-cuda12x",
        "cupy-cuda13x",
        "threadpoolctl",
    ]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_gib": None if mem is None else round(mem / 2**30, 1),
        "gpu": gpu_name(),
        "threads": thread_info(),
        "versions": {name: v for name in libs if (v := _version(name)) is not None},
    }


def dumps(obj) -> str:
    """JSON with NaN/inf written as null (strict JSON readers reject NaN)."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), indent=1)
