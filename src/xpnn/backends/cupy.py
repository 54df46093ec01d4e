"""CuPy on a CUDA GPU: NumPy's semantics (in-place updates, views), fused kernels for the
steps that are memory-bound on small networks, and GPU collectives for DataParallel.

No GPU has run this file yet (none was available to the project): what is here is kept
thin, mirrors NumPy, and everything else goes through the generic path in base.py, which
the CPU suite exercises on array_api_strict.
"""

from __future__ import annotations

import importlib
import os
import types
import warnings

import array_api_compat
import numpy as np

from .base import Backend, InPlaceBackend, import_library, register_backend

HELP = 'backend "cupy" needs CuPy: pip install "xpnn[cuda12]" (or "xpnn[cuda13]" for CUDA 13)'
NCCL_HELP = 'pip install nvidia-nccl-cu12 (nvidia-nccl-cu13 for CUDA 13), which "xpnn[cuda12]" / "xpnn[cuda13]" bring'

# the namespace functions that make a new array: CuPy puts it on the *current* device
CREATION = (
    "asarray",
    "zeros",
    "ones",
    "empty",
    "full",
    "arange",
    "eye",
    "linspace",
    "zeros_like",
    "ones_like",
    "empty_like",
    "full_like",
)


@register_backend
class CupyBackend(InPlaceBackend):
    name = "cupy"

    @classmethod
    def _library(cls):
        cupy = import_library("cupy", HELP)
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise RuntimeError(f'backend "cupy": CuPy is installed but no CUDA GPU is visible ({exc})') from None
        if count == 0:
            raise RuntimeError('backend "cupy": CuPy is installed but no CUDA GPU is visible')
        return cupy, count

    @classmethod
    def create(cls, device=None) -> "CupyBackend":
        cupy, count = cls._library()
        index = _device_index(device)
        if not 0 <= index < count:
            raise ValueError(
                f'backend "cupy": device {device!r} does not exist; this machine has {count} GPU(s), 0 to {count - 1}'
            )
        import array_api_compat.cupy as xp

        backend = cls(xp, cupy.cuda.Device(index), cupy)
        backend.xp = on_device_namespace(xp, backend.on_device)
        return backend

    @classmethod
    def is_array(cls, a) -> bool:
        return array_api_compat.is_cupy_array(a)

    @classmethod
    def devices(cls) -> list:
        _, count = cls._library()
        return [f"cuda:{i}" for i in range(count)]

    @property
    def device_name(self) -> str:
        return f"cuda:{self.device.id}"

    def on_device(self):
        """A context manager that makes this backend's GPU the current one: array-api-compat
        ignores ``device=`` for CuPy, and CuPy creates arrays on the current device. A new
        Device object each time: a shared one keeps its enter/exit stack across threads."""
        return self.native.cuda.Device(self.device.id)

    def asarray(self, x, dtype=None, copy=None):
        dtype = None if dtype is None else self.dtype(dtype)
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        return self.xp.asarray(x, dtype=dtype, copy=copy)  # on this device: see on_device_namespace

    def to_numpy(self, a) -> np.ndarray:
        return a.get() if self.is_array(a) else np.asarray(a)

    def stage(self, host: np.ndarray):
        """From pinned host memory on the prefetch thread's own stream, waited for there,
        so the copy overlaps the step running on the default stream."""
        cupy = self.native
        with self.on_device():
            stream = cupy.cuda.Stream(non_blocking=True)
            pinned = cupy.cuda.alloc_pinned_memory(host.nbytes)
            staged = np.frombuffer(pinned, host.dtype, host.size).reshape(host.shape)
            staged[...] = host
            out = cupy.empty(host.shape, host.dtype)
            out.set(staged, stream=stream)
            stream.synchronize()  # ready before the step sees it; the pinned buffer may go
        return out

    def scatter_add(self, target, indices, values):
        self.native.add.at(target, indices, values)
        return target

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        if not isinstance(step_size, float):  # 0-d arrays inside a captured step: the generic formula
            return super().adam_update(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch)
        from ._cupy_kernels import adam_update

        adam_update(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps)  # one fused kernel, in place
        return param, m, v

    def jit(self, fn):
        # a CUDA graph per input signature (graphs.py): the first call of each runs eagerly,
        # the second captures, later ones replay. No GPU has run this yet.
        from .graphs import GraphReplay

        cupy = self.native

        def capture(run, static):
            stream = cupy.cuda.Stream(non_blocking=True)
            with stream:
                stream.begin_capture()
                try:
                    outputs = run()
                finally:
                    graph = stream.end_capture()
            return _Launch(cupy, graph, stream), outputs

        return GraphReplay(fn, capture, lambda s, a: cupy.copyto(s, a), cupy.empty_like)

    def jit_scalar(self, x):
        # a 0-d device array the graph reads at replay (a Python number would be captured as
        # a constant); float32, as NumPy-style promotion would widen float32 params by a float64 one
        return self.xp.asarray(float(x), dtype=self.xp.float32)

    def for_local_rank(self, local_rank: int) -> Backend:  # the registry's "cupy" backend
        from . import get_backend

        index = local_rank % self.native.cuda.runtime.getDeviceCount()
        self.native.cuda.Device(index).use()  # NCCL and raw pointers use the current device
        return get_backend("cupy", device=index)

    def allreducer(self, comm, MPI):
        """NCCL if CuPy has it on every rank, else CUDA-aware MPI if XPNN_CUDA_AWARE_MPI=1
        says the MPI library is one, else host staging; a warning (once) says when NCCL
        is missing, what the fallback costs and what to install."""
        cupy = self.native
        nccl, missing = _load_nccl()
        uid = None
        if nccl is not None and comm.Get_rank() == 0:
            try:
                uid = nccl.get_unique_id()
            except Exception as exc:  # rank 0 must still reach the bcast, or the others wait forever
                missing = f"nccl.get_unique_id() failed: {type(exc).__name__}: {exc}"
        uid = comm.bcast(uid, root=0)  # every rank joins this bcast, whatever rank 0 found
        nccl_comm = None
        if uid is not None and nccl is not None:
            try:
                nccl_comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
            except Exception as exc:
                missing = f"NcclCommunicator failed: {type(exc).__name__}: {exc}"
        # all ranks must take the same path, or their collectives would never meet
        if comm.allreduce(int(nccl_comm is not None), op=MPI.MIN):

            def reduce(flat):
                kind = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}[str(flat.dtype)]
                nccl_comm.allReduce(
                    flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr
                )
                return flat

            return reduce, "nccl"

        if os.environ.get("XPNN_CUDA_AWARE_MPI") == "1":

            def reduce(flat):
                cupy.cuda.get_current_stream().synchronize()  # MPI reads device memory: kernels must be done
                comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
                return flat

            reducer = reduce, "cuda-aware-mpi"
            cost = (
                "through CUDA-aware MPI (XPNN_CUDA_AWARE_MPI=1), which waits for the GPU to finish "
                "every step before the sum starts"
            )
        else:
            reducer = super().allreducer(comm, MPI)
            cost = (
                "through host memory: every step waits for the GPU, copies all gradients to the host, "
                "sums them with MPI on the CPU and copies them back"
            )
        _warn_no_nccl(missing or "another rank has no NCCL", cost)
        return reducer


_warned_no_nccl = False


def _load_nccl():
    """``(cupy.cuda.nccl, None)``, or ``(None, why it is unusable)``: the pip CuPy wheels do
    not bring NCCL itself."""
    try:
        nccl = importlib.import_module("cupy.cuda.nccl")
    except Exception as exc:
        return None, f"import cupy.cuda.nccl failed: {type(exc).__name__}: {exc}"
    if not getattr(nccl, "available", False):
        return None, "CuPy finds no NCCL library (cupy.cuda.nccl.available is False)"
    return nccl, None


def _warn_no_nccl(reason: str, cost: str) -> None:
    """Say once per process that DataParallel falls back from NCCL, what it costs and how to fix it."""
    global _warned_no_nccl
    if _warned_no_nccl:
        return
    _warned_no_nccl = True
    warnings.warn(
        f"DataParallel on CuPy: NCCL is not available ({reason}), so gradients are summed {cost}. "
        f"To use NCCL: {NCCL_HELP}",
        RuntimeWarning,
        stacklevel=3,
    )


def on_device_namespace(xp, on_device):
    """``xp`` with its array-creating functions (CREATION) run inside ``on_device()``, a
    context manager that makes the backend's GPU current: array-api-compat drops
    ``device=`` for CuPy, so without this a model on cuda:1 would create its arrays on
    the current GPU (usually 0). Everything else is ``xp``'s own function.

    Kernels, too, run on the current device: a process that uses a GPU other than the
    current one must make it current (``cupy.cuda.Device(i).use()``; DataParallel does,
    one GPU per rank).
    """
    ns = types.ModuleType(f"{xp.__name__}[on device]")

    def __getattr__(name):
        found = getattr(xp, name)
        if name in CREATION:
            make = found

            def found(*args, **kwargs):
                with on_device():
                    return make(*args, **kwargs)

            found.__name__ = found.__qualname__ = name
            found.__doc__ = make.__doc__
        setattr(ns, name, found)  # looked up once: later accesses read the module's dict
        return found

    ns.__getattr__ = __getattr__
    return ns


def _device_index(device) -> int:
    """A GPU index from None (0), an int, "cuda", "cuda:1", "1" or a cupy Device."""
    if device is None:
        return 0
    if hasattr(device, "id"):
        return int(device.id)
    text = str(device)
    if text in ("cuda", "gpu"):
        return 0
    for prefix in ("cuda:", "gpu:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if isinstance(device, bool) or not text.isdigit():
        raise ValueError(f'backend "cupy": device must be a GPU index, "cuda" or "cuda:<index>", found {device!r}')
    return int(text)


class _Launch:
    """A captured CUDA graph and its stream: ``launch()`` replays it after the work queued on
    the current stream (the input copies), and the current stream waits for it: ordered on
    the device, no host sync."""

    def __init__(self, cupy, graph, stream):
        self.cupy, self.graph, self.stream = cupy, graph, stream

    def launch(self) -> None:
        current = self.cupy.cuda.get_current_stream()
        self.stream.wait_event(current.record())
        self.graph.launch(self.stream)
        current.wait_event(self.stream.record())
