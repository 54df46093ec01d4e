"""CuPy on a CUDA GPU: NumPy's semantics (in-place updates, views), fused kernels for the
steps that are memory-bound on small networks, and GPU collectives for DataParallel.

No GPU has run this file yet (none was available to the project): what is here is kept
thin, mirrors NumPy, and everything else goes through the generic path in base.py, which
the CPU suite exercises on array_api_strict.
"""

from __future__ import annotations

import os

import array_api_compat
import numpy as np

from .base import InPlaceBackend, import_library

HELP = 'backend "cupy" needs CuPy: pip install "xpnn[cuda12]" (or "xpnn[cuda13]" for CUDA 13)'


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
            raise ValueError(f'backend "cupy": device {device!r} does not exist; this machine has {count} GPU(s), '
                             f'0 to {count - 1}')
        import array_api_compat.cupy as xp

        return cls(xp, cupy.cuda.Device(index), cupy)

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

    def asarray(self, x, dtype=None, copy=None):
        dtype = None if dtype is None else self.dtype(dtype)
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        with self.device:  # CuPy places new arrays on the current device
            return self.xp.asarray(x, dtype=dtype, copy=copy)

    def to_numpy(self, a) -> np.ndarray:
        return a.get() if self.is_array(a) else np.asarray(a)

    def scatter_add(self, target, indices, values):
        self.native.add.at(target, indices, values)
        return target

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        from ._cupy_kernels import adam_update

        adam_update(param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps)  # one fused kernel, in place
        return param, m, v

    def for_local_rank(self, local_rank: int) -> "CupyBackend":
        from . import get_backend

        index = local_rank % self.native.cuda.runtime.getDeviceCount()
        self.native.cuda.Device(index).use()  # NCCL and raw pointers use the current device
        return get_backend("cupy", device=index)

    def allreducer(self, comm, MPI):
        """NCCL if CuPy has it on every rank, else CUDA-aware MPI if XPNN_CUDA_AWARE_MPI=1
        says the MPI library is one, else host staging."""
        cupy = self.native
        nccl_comm = None
        try:
            from cupy.cuda import nccl

            uid = nccl.get_unique_id() if comm.Get_rank() == 0 and getattr(nccl, "available", False) else None
        except Exception:  # no NCCL in this CuPy
            uid = None
        uid = comm.bcast(uid, root=0)  # every rank joins this bcast, whatever rank 0 found
        if uid is not None:
            try:
                nccl_comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
            except Exception:
                nccl_comm = None
        # all ranks must take the same path, or their collectives would never meet
        if comm.allreduce(int(nccl_comm is not None), op=MPI.MIN):
            def reduce(flat):
                kind = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}[str(flat.dtype)]
                nccl_comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM,
                                    cupy.cuda.get_current_stream().ptr)
                return flat
            return reduce, "nccl"

        if os.environ.get("XPNN_CUDA_AWARE_MPI") == "1":
            def reduce(flat):
                cupy.cuda.get_current_stream().synchronize()  # MPI reads device memory: kernels must be done
                comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
                return flat
            return reduce, "cuda-aware-mpi"
        return super().allreducer(comm, MPI)


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
            text = text[len(prefix):]
    if isinstance(device, bool) or not text.isdigit():
        raise ValueError(f'backend "cupy": device must be a GPU index, "cuda" or "cuda:<index>", found {device!r}')
    return int(text)
