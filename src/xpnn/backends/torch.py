"""PyTorch tensors as plain arrays: xpnn's own forward and backward, no autograd.

Tensors are made without ``requires_grad``, so PyTorch records nothing: every operation
is one eager kernel call through array-api-compat's namespace. In-place operators and
slice assignment write into the tensor, as on NumPy. Devices: "cpu", "cuda", "cuda:1",
"mps" (Apple GPUs) and "meta" (shapes only, no data).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import types
import warnings

import array_api_compat
import numpy as np

from .base import Backend, InPlaceBackend, import_library, register_backend

HELP = 'backend "torch" needs PyTorch: pip install "xpnn[torch]"'


def _torch():
    return import_library("torch", HELP)


@register_backend
class TorchBackend(InPlaceBackend):
    name = "torch"

    @classmethod
    def create(cls, device=None) -> "TorchBackend":
        torch = _torch()
        import array_api_compat.torch as xp

        return cls(_number_bounds(xp, torch), _resolve_device(torch, device), torch)

    @classmethod
    def is_array(cls, a) -> bool:
        return array_api_compat.is_torch_array(a)

    @classmethod
    def array_device(cls, a):
        # the tensor's own attribute: array_api_compat.device goes through functools.lru_cache'd
        # type checks, which torch.compile's tracer warns about, and a compiled step that calls
        # backend_of (mixed precision's master params, gradient clipping) would fall back
        return a.device

    @classmethod
    def devices(cls) -> list:
        torch = _torch()
        found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            found.append("mps")
        return found

    def device_of(self, a):
        return a.device

    def to_numpy(self, a) -> np.ndarray:
        if not self.is_array(a):
            return np.asarray(a)
        if a.dtype == self.native.bfloat16:  # NumPy has no bfloat16: float32 holds it exactly
            a = a.float()
        return a.detach().cpu().numpy()  # a view of CPU tensors, a copy from other devices

    def to_float(self, a) -> float:
        return float(a.item())

    def stage(self, host: np.ndarray):
        """On CUDA a non_blocking copy from pinned memory (the caching host allocator keeps
        the buffer until the copy is done); elsewhere a plain copy."""
        host = np.require(host, requirements=["C", "W"])  # tensors refuse read-only memory (a memmap's rows)
        if getattr(self.device, "type", "cpu") != "cuda":
            return self.asarray(host)
        tensor = self.native.from_numpy(host)
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def scatter_add(self, target, indices, values):
        return target.index_add_(0, indices, values)

    def mask_multiply(self, a, mask):
        return a * mask  # PyTorch multiplies by booleans directly

    def adam_update(self, param, grad, m, v, step_size, beta1, beta2, bias2_sqrt, eps, scratch=None):
        # the generic formula with PyTorch's fused in-place ops: two temporaries, not six
        m.lerp_(grad, 1.0 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        tiny = self.native.finfo(m.dtype).tiny  # subnormal m and v become 0: see base.flush_subnormal
        m.masked_fill_(m.abs() < tiny, 0.0)
        v.masked_fill_(v < tiny, 0.0)
        denom = v.sqrt().mul_(1.0 / bias2_sqrt).add_(eps)
        if isinstance(step_size, float):
            param.addcdiv_(m, denom, value=-step_size)
        else:  # a 0-d tensor inside a compiled step (addcdiv_ takes only a number)
            param.sub_(m / denom * step_size)
        return param, m, v

    def jit(self, fn):
        # torch.compile; inductor needs a C++ compiler on the CPU, XPNN_TORCH_COMPILE names
        # another torch.compile backend ("aot_eager" compiles in seconds, without one).
        # fullgraph: a graph break (a host sync in a layer) is an error, and the step then
        # falls back to eager with a warning naming the layer, as on JAX
        backend = os.environ.get("XPNN_TORCH_COMPILE", "inductor")
        if backend == "inductor":
            _import_quietly("torch.utils.mkldnn")
        return self.native.compile(_own_code(fn), backend=backend, fullgraph=True, dynamic=False)

    def jit_scalar(self, x):
        # a 0-d float64 tensor: traced, and a 0-d tensor does not promote float32 tensors
        return self.native.tensor(float(x), dtype=self.native.float64, device=self.device)

    def allreducer(self, comm, MPI):
        if self.device.type != "cpu":
            return Backend.allreducer(self, comm, MPI)

        def reduce(flat):  # a CPU tensor's numpy() shares its memory: MPI sums into it
            comm.Allreduce(MPI.IN_PLACE, flat.numpy(), op=MPI.SUM)
            return flat

        return reduce, "mpi"

    def for_local_rank(self, local_rank: int) -> Backend:  # the registry's "torch" backend
        if self.device.type != "cuda":
            return self
        from . import get_backend

        return get_backend("torch", device=f"cuda:{local_rank % self.native.cuda.device_count()}")


def _number_bounds(xp, torch):
    """array-api-compat's torch namespace, with ``minimum`` and ``maximum`` of a float
    tensor and a Python number as ``torch.clamp`` (one kernel, the tensor's dtype, NaN
    kept). array-api-compat first turns the number into a tensor of the result dtype that
    ``torch.result_type`` gives, which torch.compile cannot trace (the step fell back to
    eager on any model with a Sigmoid or a BCE loss) and which costs microseconds eagerly."""
    ns = types.ModuleType(xp.__name__, xp.__doc__)
    ns.__dict__.update({k: v for k, v in vars(xp).items() if k not in ("__name__", "__doc__")})
    Tensor = torch.Tensor

    def bound(compat, clamp):
        def f(x1, x2, /):
            if type(x2) in (float, int) and isinstance(x1, Tensor) and x1.is_floating_point():
                return clamp(x1, x2)
            return compat(x1, x2)

        f.__name__ = f.__qualname__ = compat.__name__
        f.__doc__ = compat.__doc__
        return f

    ns.minimum = bound(xp.minimum, torch.clamp_max)
    ns.maximum = bound(xp.maximum, torch.clamp_min)
    return ns


def _own_code(fn):
    """``fn`` (a function or a bound method) with a copy of its code object. torch.compile
    keeps the versions it compiled on the code object, at most
    ``torch._dynamo.config.recompile_limit`` (8) of them: every model's step is the same
    method, so the ninth model (or batch shape) in a process would fail to compile."""
    method = getattr(fn, "__func__", None)
    func = method if method is not None else fn
    copy = types.FunctionType(
        func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__, copy.__qualname__, copy.__doc__ = func.__kwdefaults__, func.__qualname__, func.__doc__
    return copy if method is None else types.MethodType(copy, fn.__self__)


def _import_quietly(module: str) -> None:
    """Import ``module`` now, without its import-time DeprecationWarning about
    torch.jit.script_method. Inductor imports torch.utils.mkldnn at a step's first compile;
    its classes still use script_method, a warning from inside PyTorch that under
    ``-W error`` (or pytest's filterwarnings = error) made every compile fail."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script_method` is deprecated", category=DeprecationWarning
        )
        with contextlib.suppress(ImportError):  # gone from a later PyTorch: nothing to silence
            importlib.import_module(module)


def _resolve_device(torch, device):
    """A torch.device with an explicit index for CUDA, checked to exist here."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f'backend "torch": device must be "cpu", "cuda", "cuda:<index>", "mps" or "meta", found {device!r}'
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = torch.cuda.current_device() if dev.index is None and count else (dev.index or 0)
        if not 0 <= index < count:
            raise RuntimeError(
                f'backend "torch": device {device!r} is not available: PyTorch sees {count} CUDA '
                f"device(s) (torch {torch.__version__}, CUDA build: {torch.version.cuda is not None})"
            )
        return torch.device("cuda", index)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f'backend "torch": device {device!r} is not available (no Apple GPU on this machine)')
    if dev.type not in ("cpu", "cuda", "mps", "meta"):
        raise ValueError(
            f'backend "torch": device type {dev.type!r} is not supported; use "cpu", "cuda", '
            f'"cuda:<index>", "mps" or "meta"'
        )
    return dev
