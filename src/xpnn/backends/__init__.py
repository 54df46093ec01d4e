"""The single door to arrays: every layer, loss and optimizer gets ``xp`` from a Backend.

One registry maps names to Backend classes, one per array library:

    "numpy"             NumPy on the CPU (the default)
    "cupy"              CuPy on a CUDA GPU (device 0, 1, "cuda:1")
    "torch"             PyTorch tensors (device "cpu", "cuda", "cuda:1", "mps")
    "jax"               JAX arrays (JAX's default device, or "cpu", "gpu:0", a jax Device)
    "array_api_strict"  the array API standard alone (the CPU suite's stand-in for a GPU)

Any other array-API namespace module can be passed directly (``get_backend(dask.array)``);
it is probed once and either trains correctly or is refused with the missing capability.

Backends are cached per (library, device): ``get_backend("torch", "cuda")`` and
``backend_of(a_cuda_tensor)`` are the same object. Choosing the default:
``set_backend(name)``, ``with use_backend(name): ...`` or the environment variables
``XPNN_BACKEND`` (and ``XPNN_DEVICE``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import ModuleType

import array_api_compat
import numpy as np

from . import numpy as _numpy_first  # noqa: F401  the default backend registers (and is listed) first
from .base import (
    BACKENDS,
    LOW_PRECISION,
    MODEL_DTYPES,
    Backend,
    InPlaceBackend,
    describe,
    dtype_name,
    output_hw,
    register_backend,
    window_output_size,
)
from .cupy import CupyBackend
from .generator import Generator
from .jax import JaxBackend
from .numpy import NumpyBackend
from .strict import StrictBackend
from .torch import TorchBackend

__all__ = [
    "Backend",
    "InPlaceBackend",
    "NumpyBackend",
    "CupyBackend",
    "TorchBackend",
    "JaxBackend",
    "StrictBackend",
    "Generator",
    "BACKENDS",
    "register_backend",
    "get_backend",
    "backend_of",
    "common_backend",
    "python_scalar",
    "set_backend",
    "use_backend",
    "available_backends",
    "describe",
    "dtype_name",
    "MODEL_DTYPES",
    "LOW_PRECISION",
    "window_output_size",
    "output_hw",
]

_cache: dict = {}
_library_of_type: dict = {}  # array type -> its Backend class (None for none of them)
_lock = threading.Lock()
_state = threading.local()
_default: Backend | None = None


# ---- lookup -----------------------------------------------------------------------------------


def get_backend(spec: "str | ModuleType | Backend | None" = None, device=None) -> Backend:
    """The Backend for a registry name, a namespace module or a Backend (returned as is),
    on ``device`` (None: the library's default). With no spec, the current default:
    ``use_backend``, ``set_backend``, ``XPNN_BACKEND`` / ``XPNN_DEVICE``, else "numpy"."""
    if isinstance(spec, Backend):
        if device is not None and str(device) != str(spec.device):
            return get_backend(spec.name if spec.name in BACKENDS else spec.native, device)
        return spec
    if spec is None:
        chosen = _current_default()
        if chosen is not None:
            return get_backend(chosen, device)
        env = os.environ.get("XPNN_BACKEND", "") or "numpy"
        try:
            return get_backend(env, device if device is not None else (os.environ.get("XPNN_DEVICE") or None))
        except ValueError as exc:  # say where the bad name came from
            raise ValueError(f"environment variable XPNN_BACKEND / XPNN_DEVICE: {exc}") from None
    if isinstance(spec, ModuleType):
        return _from_namespace(spec, device)
    if not isinstance(spec, str):
        raise TypeError(
            f"backend must be a name {tuple(BACKENDS)}, an array namespace module or a Backend, "
            f"found {type(spec).__name__}"
        )
    cls = BACKENDS.lookup(spec)
    if cls is None:
        raise ValueError(f"backend must be one of {tuple(BACKENDS)} or an array namespace module, found {spec!r}")
    return _cached(cls.name, device, lambda: cls.create(device))


def _cached(name: str, device, make) -> Backend:
    """The cached backend for (name, device), made once; aliases ("cuda" and "cuda:0",
    None and the default device) end up at the same object."""
    key = (name, None if device is None else str(device))
    with _lock:
        found = _cache.get(key)
        if found is None:
            made = make()
            found = _cache.setdefault((made.name, str(made.device)), made)
            _cache[key] = found
        return found


def backend_of(a) -> Backend:
    """The Backend an array belongs to: its library and its device (cached, so the same
    object as ``get_backend`` gives for them)."""
    # called every step (optimizers, losses): the array's type remembers its library
    library = _library_of_type.get(type(a), False)
    if library is False:
        library = next((cls for cls in BACKENDS.values() if cls.is_array(a)), None)
        _library_of_type[type(a)] = library
    if library is not None:
        device = library.array_device(a)
        found = _cache.get((library.name, str(device)))
        return found if found is not None else get_backend(library.name, device)
    try:
        ns = array_api_compat.array_namespace(a)
    except TypeError:
        raise TypeError(f"expected an array, found {type(a).__name__}") from None
    return _from_namespace(ns, array_api_compat.device(a))


def python_scalar(a):
    """A 0-d array (or a NumPy scalar) of any backend as a Python bool, int or float, for
    messages that quote a value: ``found 3``, not ``found tensor(3)``. One host sync."""
    xp = backend_of(a).xp
    if xp.isdtype(a.dtype, "bool"):
        return bool(a)
    return int(a) if xp.isdtype(a.dtype, "integral") else float(a)


def common_backend(where: str, **arrays) -> tuple[Backend, list]:
    """The backend that ``arrays`` share, and the arrays moved onto it, in the order given.

    For functions that take several arrays (metrics, train_test_split): a NumPy array or a
    list next to an array of another backend is copied there (labels often stay on the
    host while predictions come from a GPU); arrays of two different device backends are
    an error, as mixing them would be. ``where`` and the keyword names go into the errors:
    ``common_backend("accuracy", y_true=t, y_pred=p)`` -> ``(backend, [t, p])``.
    """
    numpy_backend = get_backend("numpy")
    found = {}
    for argname, a in arrays.items():
        if isinstance(a, (list, tuple)):
            a = numpy_backend.asarray(a)
        try:
            be = backend_of(a)
        except TypeError:
            raise TypeError(
                f"{where}: {argname} must be an array (NumPy or an xpnn backend's), found {type(a).__name__}"
            ) from None
        found[argname] = (a, be)
    devices = {be for _, be in found.values() if be.name != "numpy"}
    if len(devices) > 1:
        desc = ", ".join(f"{k} on {be!r}" for k, (_, be) in found.items())
        raise TypeError(
            f"{where}: the arrays live on different backends ({desc}); move them to one with backend.asarray(...)"
        )
    be = devices.pop() if devices else numpy_backend
    return be, [a if be.owns(a) else be.asarray(a) for a, _ in found.values()]


def _from_namespace(module: ModuleType, device) -> Backend:
    """A registered backend when the namespace is one of their libraries (numpy,
    array_api_compat.torch, jax.numpy, ...), else a probed NamespaceBackend."""
    make = getattr(module, "asarray", None)
    if make is None:
        raise TypeError(f"backend: module {module.__name__!r} is not an array namespace (it has no asarray)")
    probe = make([0.0])
    for name, cls in BACKENDS.items():
        if cls.is_array(probe):
            return get_backend(name, device)
    label = module.__name__.removeprefix("array_api_compat.")
    xp = array_api_compat.array_namespace(probe)
    dev = array_api_compat.device(probe) if device is None else device
    return _cached(label, dev, lambda: NamespaceBackend.probe(label, xp, dev, module))


class NamespaceBackend(Backend):
    """Any other array-API library, run on base.py's generic code after a probe."""

    @classmethod
    def probe(cls, label: str, xp, device, native) -> "NamespaceBackend":
        """Check once what training needs; refuse with the missing capability, never train
        silently wrong (an update that does not reach the model would leave it unchanged)."""
        backend = cls(xp, device, native, name=label)
        expected = np.array([1.0, 2.0, 3.0, 4.0])

        def fails(what, run, want):
            try:
                got = np.array(backend.to_numpy(run()), dtype=np.float64)
                if got.shape == want.shape and np.allclose(got, want):
                    return
                problem = f"it gave {got.tolist()} instead of {want.tolist()}"
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            raise RuntimeError(f"backend {label!r} cannot train xpnn models: {what} does not work ({problem})")

        def inplace_sub():
            a = backend.asarray(expected + 1.0, dtype="float32")
            a -= backend.asarray(np.ones(4), dtype="float32")
            return a

        def slice_set():
            return backend.set_at(backend.zeros((4,)), slice(0, 4), backend.asarray(expected, dtype="float32"))

        def slice_add():
            return backend.add_at(
                backend.asarray(expected - 1.0, dtype="float32"),
                slice(0, 4),
                backend.asarray(np.ones(4), dtype="float32"),
            )

        fails("copying an array to the host (DLPack or __array__)", lambda: backend.asarray(expected), expected)
        fails("an in-place update (a -= b)", inplace_sub, expected)
        fails("slice assignment (x[i:j] = v, or x.at[i:j].set(v))", slice_set, expected)
        fails("slice addition (x[i:j] += v)", slice_add, expected)
        fails("matrix product (a @ b)", lambda: backend.asarray(np.eye(4)) @ backend.asarray(expected), expected)
        return backend

    # per instance, not a classmethod: it needs the probed namespace (never in BACKENDS, never asked on the class)
    def is_array(self, a) -> bool:  # type: ignore[override]
        try:
            return array_api_compat.array_namespace(a) is self.xp
        except TypeError:
            return False


# ---- the default ------------------------------------------------------------------------------


def _current_default():
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else _default


def set_backend(spec, device=None) -> Backend:
    """Make ``spec`` (on ``device``) the default backend for new models; returns it."""
    global _default
    backend = get_backend(spec, device)  # validate before storing
    _default = backend
    return backend


@contextlib.contextmanager
def use_backend(spec, device=None):
    """``with use_backend("torch", "cuda"): ...`` makes it the default inside the block."""
    backend = get_backend(spec, device)
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(backend)
    try:
        yield backend
    finally:
        stack.pop()


def available_backends() -> dict:
    """Each registered backend name mapped to its devices here (a list of strings), or to
    the reason it cannot be used (a string)."""
    found: dict[str, list | str] = {}
    for name, cls in BACKENDS.items():
        try:
            found[name] = cls.devices()
        except Exception as exc:
            found[name] = str(exc)
    return found
