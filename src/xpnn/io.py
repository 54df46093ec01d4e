"""Save and load models: one .safetensors file, no pickle (a model file cannot run code).

The file holds every param and buffer ("layer.0.W") and the optimizer state, keyed by
buffer and param path ("optimizer.m.0.W": Adam's m for layer 0's W), as tensors, and in
its string metadata:

    format        "xpnn-<N>": the format version N (1 before layers nested, 2 before the
                  optimizer state was keyed by param path, "optimizer.m.0" by position
                  in the params list; both still load; 3 now)
    xpnn          one JSON document: architecture, dtype, seed, compile settings,
                  optimizer step count, epochs trained and generator state, and the
                  fitted input preprocessing the model was trained behind, if any
                  (``model.preprocessing``: a SimpleImputer's fill values, a scaler's
                  statistics; ``to_dict`` of each)
    xpnn_version  the xpnn that wrote it (named in errors that may mean a newer file)
    notes         optional: a JSON object of the caller's own (``save(..., notes=)``; xpnn
                  train records the data set the model was trained on), read back by
                  ``read_notes``; loading never depends on it
    sha256        SHA-256 of the rest of the metadata and of every tensor (_digest)

Files written before xpnn_version and sha256 existed have neither, and load unchecked by
a digest (as does a file whose tensors or config were edited and the digest dropped).

That is everything needed to resume training exactly. Files are written to a temporary
file beside the target and moved into place with os.replace, so a crash mid-write never
leaves a half-written model.

A file is untrusted input. ``load`` checks it completely before building anything, and a
file that is damaged or crafted gives one ValueError naming the file and what is wrong:

1. safetensors checks its header: tensor offsets inside the file and covering it exactly,
   shapes matching their byte ranges. So the tensors hold no more than the file's size.
2. The format version, then every tensor's dtype (floating point only).
3. The digest, when the file has one: a changed byte anywhere is reported as damage,
   not as whatever it happens to break (or, in a weight, as nothing at all).
4. The JSON: every key present with the right type, unknown keys refused (a key this
   xpnn does not know is a setting it cannot honour: ignoring it could load a model
   that behaves differently from the one saved), every layer class and argument known.
5. The model is built on a shape-only backend (arrays that take no memory) to learn the
   param shapes its config implies, and these must equal the stored tensors' shapes.
   Only then is the real model built: a config asking for 10^12 params in a 1 KB file
   is refused before anything of that size is allocated.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import uuid

import numpy as np

from .backends import LOW_PRECISION, MODEL_DTYPES, NumpyBackend, get_backend, use_backend
from .backends.generator import Generator
from .precision import LossScale, Policy

FORMAT_VERSION = 3  # the N of "xpnn-N" this code writes; it reads 1..N
STATE_BY_PATH = 3  # the first version whose optimizer state is keyed by param path
FORMAT = f"xpnn-{FORMAT_VERSION}"
FLOAT_DTYPES = {"float16": "F16", "float32": "F32", "float64": "F64"}  # numpy dtype -> safetensors dtype
# Params are stored in the dtype a model keeps them in (a mixed-precision policy's float32
# masters), bfloat16 widened to float32 (exact; NumPy has no bfloat16), and read back into
# the model's own dtype. Optimizer state of float16/bfloat16 params is float32.
MODEL_DTYPE_NAMES = (*MODEL_DTYPES, *(f"mixed_{name}" for name in LOW_PRECISION))


def _stored(dtype: str) -> tuple[str, str]:
    """(params' and buffers' safetensors dtype, optimizer state's) for a model dtype name."""
    variable = Policy(dtype).variable
    params = FLOAT_DTYPES.get(variable, "F32")
    return params, "F32" if variable in LOW_PRECISION else params


MAX_NESTING = 64  # layers inside layers: far beyond any real model, well within Python's recursion limit


def _model_config(model) -> dict:
    from .layers import layer_name
    from .losses import LOSSES
    from .optimizers import OPTIMIZERS
    from .schedules import SCHEDULES, Schedule

    cfg = {"class": layer_name(model), "config": model.config(), "seed": model.seed, "dtype": model.dtype_name}
    cfg["backend"] = model.backend.name
    cfg["epochs_trained"] = model.epochs_trained
    cfg["generator"] = model.generator.state
    if model.loss_scale is not None:  # mixed_float16: resume with the scale reached
        cfg["loss_scale"] = model.loss_scale.state()
    if model.loss is not None:
        # names load reads back: a class that is not registered is refused now, not when loading
        where = f"{type(model).__name__}.save"
        loss_name = LOSSES.name_of(model.loss, where)
        OPTIMIZERS.name_of(model.optimizer, where)
        if isinstance(model.optimizer.lr, Schedule):
            SCHEDULES.name_of(model.optimizer.lr, where)
        cfg["compile"] = {
            "loss": {"name": loss_name, **model.loss.config()},
            "optimizer": model.optimizer.config(),
            "optimizer_iterations": model.optimizer.iterations,
            "metrics": list(model.metric_names),
            "clip_norm": model.clip_norm,
            "jit": model.jit,
        }
    steps = model.preprocessing
    if steps:
        cfg["preprocessing"] = [step.to_dict() for step in steps]
    return cfg


def save(model, path, epoch=None, notes=None) -> None:
    """Write ``model`` to ``path`` (.safetensors) atomically. ``notes``: a dict of JSON
    values kept beside the model (what it was trained on, ...), for ``read_notes``."""
    from safetensors.numpy import save as to_bytes

    from . import __version__

    config = model.config()
    try:  # a file that load could not rebuild must not be written
        inspect.signature(type(model)).bind(**config)
    except TypeError as exc:
        raise ValueError(
            f"{type(model).__name__}.config() returns {sorted(config)}, but its constructor cannot take "
            f"them ({exc}); a model class with its own constructor must override config() to return "
            f"its arguments"
        ) from None

    backend = model.backend
    xp = backend.xp
    stored = backend.dtype(Policy(model.dtype_name).variable.replace("bfloat16", "float32"))
    tensors = {
        f"layer.{k}": np.ascontiguousarray(backend.to_numpy(v if v.dtype == stored else xp.astype(v, stored)))
        for k, v in model.named_arrays().items()
    }
    cfg = _model_config(model)
    if epoch is not None:
        cfg["epochs_trained"] = int(epoch)
    if model.optimizer is not None:
        for k, v in model.optimizer.state_arrays(paths=list(model.named_params())).items():
            tensors[f"optimizer.{k}"] = np.ascontiguousarray(backend.to_numpy(v))
    meta = {"format": FORMAT, "xpnn": json.dumps(cfg), "xpnn_version": __version__}
    if notes is not None:
        if not isinstance(notes, dict):
            raise TypeError(f"save: notes must be a dict of JSON values, found {type(notes).__name__}")
        meta["notes"] = json.dumps(notes)  # a TypeError names a value JSON cannot hold
    meta["sha256"] = _digest(meta, tensors)
    atomic_write(path, to_bytes(tensors, metadata=meta))


def _digest(meta: dict, tensors: dict) -> str:
    """SHA-256 of the metadata (all but the digest) and of every tensor's name, dtype,
    shape and bytes (little-endian), in name order."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=tensors[name].dtype.newbyteorder("<"))
        h.update(f"\n{name} {a.dtype.str} {list(a.shape)}\n".encode())
        h.update(a.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # a buffer; NumPy's stubs say so for 3.12+ only
    return h.hexdigest()


# ---- writing atomically -----------------------------------------------------------------------------


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, fsync it and move it into
    place with os.replace: readers see the old file or the new one, never half of one.
    open() gives the file the usual umask permissions (mkstemp would make it owner-only).
    Temporaries of ``path`` left by writers that were killed are removed first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temporaries(path) -> list:
    """Remove the temporaries atomic_write left beside ``path`` in processes that died
    mid-write (``.{name}.{pid}.{32 hex}.tmp`` whose pid runs no process); returns their
    paths. A temporary of a live process is another writer's, in use: it stays. So does
    one whose pid was reused since (kept, never wrongly removed). POSIX only: os.kill(pid,
    0) asks without signalling there, but would terminate the process on Windows."""
    if os.name != "posix":
        return []
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.") + r"([0-9]{1,10})\.[0-9a-f]{32}\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            os.remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
        except OSError:  # removed by another writer meanwhile, or not ours to remove: not this save's business
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negatives address process groups, not a process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (PermissionError), or no pid we can ask about
        return True
    return True


# ---- reading ----------------------------------------------------------------------------------------


def read(path):
    """(config dict, {name: NumPy array}) from a model file, checked as far as the file
    alone allows (format, dtypes, digest, the config's keys and types); a ValueError
    naming the file otherwise."""
    cfg, tensors, _, _ = _read(os.fspath(path))
    return cfg, tensors


def read_notes(path) -> dict:
    """The ``notes`` a model file was saved with (``save(..., notes=)``), or {} for a
    file saved without them. Reads the header only; a ValueError naming the file if the
    notes are not a JSON object (the digest, checked by ``load``, covers them too)."""
    from safetensors import safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="numpy") as fh:
            text = (fh.metadata() or {}).get("notes")
    except Exception as exc:
        raise ValueError(f"{path}: not an xpnn model file (safetensors could not read it: {exc})") from None
    if text is None:
        return {}
    try:
        notes = json.loads(text)
    except (ValueError, RecursionError):
        notes = None
    if not isinstance(notes, dict):
        raise ValueError(f"{path}: its 'notes' metadata is not a JSON object: {_short(text)}")
    return notes


def _read(path):
    """read(), plus a few words on the file's version for errors that may mean it is newer,
    and the format version."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    try:  # safetensors checks the header against the file's length here: a bad one ends here
        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata() or {}
            stored = {k: (fh.get_slice(k).get_dtype(), tuple(fh.get_slice(k).get_shape())) for k in fh.keys()}
    except Exception as exc:
        raise ValueError(f"{path}: not an xpnn model file (safetensors could not read it: {exc})") from None
    version, about = _version(path, meta)

    for name, (dtype, _) in stored.items():  # before reading: NumPy cannot even hold some (bfloat16)
        if dtype not in FLOAT_DTYPES.values():
            raise ValueError(
                f"{path}: tensor {_short(name)} has dtype {dtype}, expected a floating-point dtype "
                f"({', '.join(FLOAT_DTYPES.values())}); params and optimizer state are floats"
            )
    try:
        with safe_open(path, framework="numpy") as fh:  # at most the file's size, checked above
            tensors = {k: fh.get_tensor(k) for k in stored}
    except Exception as exc:
        raise ValueError(f"{path}: its tensors could not be read ({exc})") from None
    if "sha256" in meta and _digest(meta, tensors) != meta["sha256"]:
        raise ValueError(
            f"{path}: damaged: its contents do not match the SHA-256 digest saved with them "
            f"(a changed byte in the config or the weights); use another copy of the file"
        )

    try:
        cfg = json.loads(meta["xpnn"])
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; too deep a nesting recurses
        raise ValueError(f"{path}: the model config is not valid JSON ({type(exc).__name__}: {exc})") from None
    cfg = _check_config(path, cfg, version, about)
    _check_stored_dtypes(path, stored, cfg["dtype"])
    return cfg, tensors, about, version


def _version(path, meta: dict) -> tuple:
    """(format version, a few words on it and the xpnn that wrote it) from a model file's
    metadata; a ValueError for a file that is no xpnn model or is newer than this xpnn."""
    fmt = meta.get("format")
    match = re.fullmatch(r"xpnn-([1-9][0-9]{0,8})", fmt) if isinstance(fmt, str) else None
    if match is None or "xpnn" not in meta:
        raise ValueError(
            f"{path}: a safetensors file, but not an xpnn model (metadata format {_short(fmt)}, "
            f"expected 'xpnn-1' to {FORMAT!r})"
        )
    version = int(match.group(1))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: was written by a newer xpnn (format version {version}; this xpnn reads up to "
            f"{FORMAT_VERSION}); upgrade xpnn"
        )
    writer = meta.get("xpnn_version")
    if writer is not None and not re.fullmatch(r"[\w.+!-]{1,40}", writer):
        writer = _short(writer)  # not a version number: shown as the odd string it is
    about = f"format version {version}, written by xpnn {writer}" if writer else f"format version {version}"
    return version, about


def _check_stored_dtypes(path, stored: dict, model_dtype: str) -> None:
    """Every tensor (name -> (safetensors dtype, shape)) in the dtype a model of
    ``model_dtype`` stores, else a ValueError naming the first that is not."""
    want_params, want_state = _stored(model_dtype)
    for name, (dtype, _) in stored.items():
        # optimizer state of a float16 model written before it was kept in float32: F16
        want = (want_state, want_params) if name.startswith("optimizer.") else (want_params,)
        if dtype not in want:
            raise ValueError(
                f"{path}: tensor {_short(name)} has dtype {dtype}, but the model's dtype is "
                f"{model_dtype} ({' or '.join(want)}); the file is inconsistent"
            )


def _short(value, limit: int = 80) -> str:
    """repr(value), cut to ``limit`` characters: file contents in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- the config's shape: keys, types, layer specs -------------------------------------------------


def _kind(value) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a JSON object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _expect(path, where, value, kind):
    """``value`` (at ``where`` in the config) if it is of ``kind``, else a ValueError."""
    ok = {
        "object": isinstance(value, dict),
        "string": isinstance(value, str),
        "list": isinstance(value, list),
        "count": type(value) is int and value >= 0,
    }[kind]
    if not ok:
        wanted = {"object": "a JSON object", "string": "a string", "list": "a list", "count": "a non-negative integer"}[
            kind
        ]
        raise ValueError(f"{path}: the model config's {where} must be {wanted}, found {_kind(value)} {_short(value)}")
    return value


def _check_keys(path, where, found: dict, required: tuple, optional: tuple, about: str) -> None:
    missing = [k for k in required if k not in found]
    if missing:
        raise ValueError(f"{path}: the model config's {where} lacks {missing}")
    unknown = sorted(k for k in found if k not in required and k not in optional)
    if unknown:
        raise ValueError(
            f"{path}: the model config's {where} has unknown keys {_short(unknown)} (the file: "
            f"{about}; this xpnn reads up to format version {FORMAT_VERSION}): the file may come "
            f"from a newer xpnn, or be damaged"
        )


def _check_config(path, cfg, version: int, about: str) -> dict:
    """The JSON config, its keys and types checked (and an xpnn-1 layout moved to today's)."""
    _expect(path, "top level", cfg, "object")
    if version == 1:  # the architecture sat at the top level then
        inner = "arch" if cfg.get("class") == "NeuralNetwork" else "layers"
        if inner not in cfg:
            raise ValueError(f"{path}: the model config lacks {inner!r} (a format version 1 file)")
        cfg["config"] = cfg.pop("arch") if inner == "arch" else {"layers": cfg.pop("layers")}
    _check_keys(
        path,
        "top level",
        cfg,
        ("class", "config", "seed", "dtype", "generator"),
        ("backend", "epochs_trained", "compile", "loss_scale", "preprocessing"),
        about,
    )
    _expect(path, "'class'", cfg["class"], "string")
    _expect(path, "'config'", cfg["config"], "object")
    _expect(path, "'seed'", cfg["seed"], "count")
    _expect(path, "'backend'", cfg.get("backend", ""), "string")  # where it was saved: informative only
    _expect(path, "'epochs_trained'", cfg.get("epochs_trained", 0), "count")
    if not isinstance(cfg["dtype"], str) or cfg["dtype"] not in MODEL_DTYPE_NAMES:
        raise ValueError(
            f"{path}: the model config's 'dtype' must be one of {list(MODEL_DTYPE_NAMES)}, found {_short(cfg['dtype'])}"
        )
    if "loss_scale" in cfg:
        scale = _expect(path, "'loss_scale'", cfg["loss_scale"], "object")
        _check_keys(path, "'loss_scale'", scale, ("scale", "good_steps"), (), about)
        _expect(path, "'loss_scale.good_steps'", scale["good_steps"], "count")
        value = scale["scale"]
        if type(value) not in (int, float) or not 0 < value < float("inf"):
            raise ValueError(
                f"{path}: the model config's 'loss_scale.scale' must be a positive number, found {_short(value)}"
            )
    gen = _expect(path, "'generator'", cfg["generator"], "object")
    _check_keys(path, "'generator'", gen, ("seed", "bit_generator"), (), about)
    _expect(path, "'generator.seed'", gen["seed"], "count")
    _expect(path, "'generator.bit_generator'", gen["bit_generator"], "object")
    comp = cfg.get("compile")
    if comp is not None:
        _expect(path, "'compile'", comp, "object")
        _check_keys(
            path,
            "'compile'",
            comp,
            ("loss", "optimizer", "optimizer_iterations", "metrics"),
            ("clip_norm", "jit"),
            about,
        )
        for key in ("loss", "optimizer"):
            _expect(
                path,
                f"'compile.{key}.name'",
                _expect(path, f"'compile.{key}'", comp[key], "object").get("name"),
                "string",
            )
        _expect(path, "'compile.optimizer_iterations'", comp["optimizer_iterations"], "count")
        for i, name in enumerate(_expect(path, "'compile.metrics'", comp["metrics"], "list")):
            _expect(path, f"'compile.metrics[{i}]'", name, "string")
    return cfg


def _preprocessing(path, steps, backend) -> list:
    """The fitted transformers of the config's 'preprocessing' list, each checked: a known
    class, fitted, and finite statistics of one value per feature."""
    import math

    from . import preprocessing as pre

    known = {cls.__name__: cls for cls in (pre.SimpleImputer, pre.StandardScaler, pre.MinMaxScaler, pre.RobustScaler)}
    out = []
    for i, d in enumerate(_expect(path, "'preprocessing'", steps, "list")):
        where = f"'preprocessing[{i}]'"
        name = _expect(path, f"{where}.class", _expect(path, where, d, "object").get("class"), "string")
        cls = known.get(name)
        if cls is None:
            raise ValueError(
                f"{path}: the model config's {where} is of unknown class {_short(name)} (known: {sorted(known)})"
            )
        try:
            step = cls.from_dict(d, backend=backend)
            n = step.n_features_in_
            for stat in cls._stats:
                values = backend.to_numpy(getattr(step, stat)).tolist()
                if len(values) != n or not all(math.isfinite(v) for v in values):
                    raise ValueError(f"{stat} must be {n} finite numbers")
        except Exception as exc:  # whatever a malformed dict breaks
            raise ValueError(f"{path}: the model config's {where} is not a fitted {name}: {exc}") from None
        out.append(step)
    return out


def _check_specs(path, config: dict, where: str, about: str, depth: int = 0) -> None:
    """Every layer spec ``{"class": ..., "config": {...}}`` inside ``config`` names a known
    layer and only arguments its constructor takes: said here, before anything is built,
    as what it most likely means (a layer or an argument from a newer xpnn)."""
    from .layers import LAYERS

    for key, value in config.items():
        items = value if isinstance(value, list) else [value]
        for i, spec in enumerate(items):
            if not (isinstance(spec, dict) and "class" in spec):
                continue
            at = f"{where}.{key}" + (f"[{i}]" if isinstance(value, list) else "")
            if depth >= MAX_NESTING:
                raise ValueError(
                    f"{path}: layers nested more than {MAX_NESTING} deep (at {at}); "
                    f"no real model is, the file is damaged"
                )
            _check_keys(path, at, spec, ("class",), ("config",), about)
            name, layer_config = spec["class"], spec.get("config", {})
            _expect(path, f"{at}.class", name, "string")
            _expect(path, f"{at}.config", layer_config, "object")
            cls = LAYERS.get(name)
            if cls is None:
                raise ValueError(
                    f"{path}: unknown layer class {_short(name)} at {at} (the file: {about}; known: "
                    f"{sorted(LAYERS)}): the file may come from a newer xpnn, or one with more layers "
                    f"registered"
                )
            _check_arguments(path, cls, layer_config, f"the layer at {at} ({name})", about)
            _check_specs(path, layer_config, f"{at}.config", about, depth + 1)


def _check_arguments(path, cls, config: dict, what: str, about: str, exclude=()) -> None:
    from .layers.base import arguments, missing_arguments, unknown_arguments

    unknown = unknown_arguments(cls, config) + [k for k in config if k in exclude]
    if unknown:
        takes = [a for a in arguments(cls) if a not in exclude]
        raise ValueError(
            f"{path}: {what} has an argument {_short(unknown[0])} that {cls.__name__} does not take "
            f"in this xpnn (it takes {takes}); the file ({about}) may come from a newer xpnn version"
        )
    missing = missing_arguments(cls, config)
    if missing:
        raise ValueError(f"{path}: {what} lacks the required arguments {missing}")


# ---- building: shapes first, then the model -----------------------------------------------------


class _NoMemory:
    """The NumPy namespace, but every array it creates is a read-only broadcast view of a
    single zero: the shape and dtype asked for, and no memory whatever the size."""

    def __init__(self, xp):
        self._xp = xp

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def zeros(self, shape, dtype=None, device=None):
        return _view(shape, dtype)

    def ones(self, shape, dtype=None, device=None):
        return _view(shape, dtype)

    def empty(self, shape, dtype=None, device=None):
        return _view(shape, dtype)

    def full(self, shape, fill_value, dtype=None, device=None):
        return _view(shape, dtype)

    def astype(self, x, dtype, copy=True, device=None):  # a nested model's params cast to its parent's dtype
        return _view(x.shape, dtype)


def _view(shape, dtype=None):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    try:
        return np.broadcast_to(np.zeros((), dtype=dtype or np.float32), shape)
    except ValueError:  # more elements than an array can index, or a negative size
        raise ValueError(f"a param of shape {shape} cannot exist") from None


class _NoMemoryGenerator(Generator):
    """Random draws of the shape asked for, without drawing (or allocating) anything."""

    def normal(self, shape, std=1.0, mean=0.0, dtype=None):
        return _view(shape, self._dtype(dtype))

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        return _view(shape, self._dtype(dtype))

    def bernoulli(self, shape, p, dtype=None):
        return _view(shape, self._dtype(dtype))


class _ShapeOnly(NumpyBackend):
    """A backend on which building a model costs nothing: its params are _view()s. Built
    on it, a model from a file's config tells the param shapes that config implies."""

    name = "shape-only"

    def __init__(self):
        import array_api_compat.numpy as xp

        super().__init__(_NoMemory(xp), "cpu", np)

    def rng(self, seed: int = 0) -> Generator:
        return _NoMemoryGenerator(self, seed)


def _build(cls, cfg, backend, dtype=None):
    """The model ``cfg`` describes, uncompiled, on ``backend`` (in ``dtype``, default the
    config's); models nested in it (a Sequential inside) are made on it too, as they take
    the default backend."""
    with use_backend(backend):
        return cls(**cfg["config"], backend=backend, seed=cfg["seed"], dtype=dtype or cfg["dtype"])


def _compile(model, comp) -> None:
    from .losses import LOSSES, get_loss
    from .optimizers import OPTIMIZERS, get_optimizer

    for key, registry in (("loss", LOSSES), ("optimizer", OPTIMIZERS)):
        name = comp[key]["name"]
        if registry.lookup(name) is None:  # a user's own class, whose module is not imported
            raise ValueError(
                f"the model was compiled with the {registry.kind} {_short(name)}, which is not registered "
                f"(known: {sorted(registry)}); import the module that defines it (its class decorated "
                f"with @{registry.decorator}) before loading"
            )
    loss_cfg = dict(comp["loss"])
    model.compile(
        get_loss(loss_cfg.pop("name"), **loss_cfg),
        get_optimizer(comp["optimizer"]),
        comp["metrics"],
        clip_norm=comp.get("clip_norm"),
        jit=comp.get("jit", False),
    )


def _expected_tensors(model, comp) -> dict:
    """{tensor name: shape} the file must hold for ``model`` (built and compiled on
    _ShapeOnly): its params and buffers, and the optimizer state once it has stepped."""
    expected = {f"layer.{k}": tuple(h.value.shape) for k, h in model.named_handles().items()}
    opt = model.optimizer
    if opt is not None and comp["optimizer_iterations"] > 0:  # state is made at the first step
        shapes = {path: tuple(h.value.shape) for path, h in model.named_params().items()}
        expected.update({f"optimizer.{s}.{path}": shape for s in opt.state_names for path, shape in shapes.items()})
    return expected


def _state_by_path(model, tensors: dict) -> dict:
    """``tensors`` of a file written before the optimizer state was keyed by param path
    (format version 2 or 1: "optimizer.m.0", the position in the params list), with the
    state renamed to today's names ("optimizer.m.0.W"); names that are not a position of
    ``model``'s params are kept as they are (``_compare`` then names them)."""
    opt, paths = model.optimizer, list(model.named_params())
    renamed = {}
    for name, a in tensors.items():
        key = max((k for k in opt.state_names if name.startswith(f"optimizer.{k}.")), key=len, default=None)
        index = name[len(f"optimizer.{key}.") :] if key is not None else ""
        if index.isdigit() and int(index) < len(paths):
            name = f"optimizer.{key}.{paths[int(index)]}"
        renamed[name] = a
    return renamed


def _compare(path, expected: dict, tensors: dict) -> None:
    def names(keys):
        keys = sorted(keys)
        return str(keys) if len(keys) <= 8 else f"{keys[:8]} and {len(keys) - 8} more"

    for key, shape in expected.items():
        if key in tensors and tuple(tensors[key].shape) != shape:
            raise ValueError(f"{path}: tensor {key!r} has shape {tuple(tensors[key].shape)}, the model expects {shape}")
    missing = [k for k in expected if k not in tensors]
    if missing:  # they would silently keep their random initial values
        raise ValueError(f"{path}: the model file lacks tensors {names(missing)}")
    extra = [k for k in tensors if k not in expected]
    if extra:
        key = min(extra)
        what = "nothing in the optimizer's state" if key.startswith("optimizer.") else "no param or buffer"
        raise ValueError(
            f"{path}: tensor {_short(key)} matches {what} of the model its config describes"
            + (f" ({len(extra)} such tensors)" if len(extra) > 1 else "")
        )


def load(path, backend=None, device=None):
    """Rebuild a model saved with ``model.save(path)`` on ``backend`` and ``device``
    (default: the current default backend), compiled and ready to predict or to resume
    training. A damaged or crafted file gives a ValueError naming it (see the module
    docstring); nothing is allocated before the file's contents have been checked."""
    from .layers import LAYERS
    from .model import Sequential

    b = get_backend(backend, device)  # the caller's arguments: their errors are not the file's
    path = os.fspath(path)
    cfg, tensors, about, version = _read(path)
    cls = LAYERS.lookup(cfg["class"])
    if cls is None or not issubclass(cls, Sequential):
        raise ValueError(
            f"{path}: unknown model class {_short(cfg['class'])} (the file: {about}; known: "
            f"{sorted(k for k, c in LAYERS.items() if issubclass(c, Sequential))})"
        )
    _check_arguments(
        path, cls, cfg["config"], f"the model ({cfg['class']})", about, exclude=("backend", "seed", "dtype", "device")
    )
    _check_specs(path, cfg["config"], "config", about)
    comp = cfg.get("compile")
    b.check_dtype(cfg["dtype"], path)  # a bfloat16 model loaded on NumPy: refused by name

    shape_only = _ShapeOnly()  # shapes do not depend on the dtype: NumPy's stand-in for one it lacks
    probe_dtype = cfg["dtype"] if cfg["dtype"] in shape_only.model_dtypes() else "float32"
    try:  # the model on _ShapeOnly: any failure here is the config's
        probe = _build(cls, cfg, shape_only, probe_dtype)
        if comp:
            _compile(probe, comp)
    except RecursionError:
        raise ValueError(f"{path}: the model config nests layers too deeply to build") from None
    except Exception as exc:  # whatever a constructor raises for a value it cannot take
        raise ValueError(f"{path}: the model config cannot be built: {exc}") from exc
    try:
        probe.generator.set_state(cfg["generator"])
    except Exception as exc:  # NumPy checks the bit generator's state
        raise ValueError(f"{path}: the model config's 'generator' is not a valid generator state: {exc}") from exc
    if comp and version < STATE_BY_PATH:
        tensors = _state_by_path(probe, tensors)
    _compare(path, _expected_tensors(probe, comp), tensors)

    model = _build(cls, cfg, b)  # the sizes are the tensors' now: at most the file's size
    for key, h in model.named_handles().items():
        h.value = b.asarray(tensors.pop(f"layer.{key}"), dtype=h.value.dtype, copy=True)
    model.generator.set_state(cfg["generator"])
    if "loss_scale" in cfg and model.loss_scale is not None:
        model.loss_scale = LossScale(b, cfg["loss_scale"]["scale"], good_steps=cfg["loss_scale"]["good_steps"])
    model.epochs_trained = cfg.get("epochs_trained", 0)
    if "preprocessing" in cfg:
        model.preprocessing = _preprocessing(path, cfg["preprocessing"], b)
    if comp:
        _compile(model, comp)
        state_dtype = "float32" if Policy(cfg["dtype"]).variable in LOW_PRECISION else None
        state = {k[len("optimizer.") :]: b.asarray(v, dtype=state_dtype, copy=True) for k, v in tensors.items()}
        model.optimizer.load_state_arrays(state, comp["optimizer_iterations"], paths=list(model.named_params()))
    return model
