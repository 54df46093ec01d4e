"""Save and load models: one .safetensors file, no pickle (a model file cannot run code).

The file holds every param and buffer ("layer.0.W") and the optimizer state
("optimizer.m.0") as tensors, and in its string metadata one JSON document "xpnn" with
the architecture, dtype, seed, compile settings, optimizer step count, epochs trained and
the generator state. That is everything needed to resume training exactly.
Files are written to a temporary file beside the target and moved into place with
os.replace, so a crash mid-write never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np

FORMAT = "xpnn-2"  # "xpnn-1" files (before layers nested) load too


def _model_config(model) -> dict:
    from .layers import layer_name

    cfg = {"class": layer_name(model), "config": model.config(), "seed": model.seed, "dtype": model.dtype_name}
    cfg["backend"] = model.backend.name
    cfg["epochs_trained"] = model.epochs_trained
    cfg["generator"] = model.generator.state
    if model.loss is not None:
        cfg["compile"] = {
            "loss": {"name": model.loss.name, **model.loss.config()},
            "optimizer": model.optimizer.config(),
            "optimizer_iterations": model.optimizer.iterations,
            "metrics": list(model.metric_names),
            "clip_norm": model.clip_norm,
        }
    return cfg


def save(model, path, epoch=None) -> None:
    """Write ``model`` to ``path`` (.safetensors) atomically."""
    import inspect

    from safetensors.numpy import save as to_bytes

    config = model.config()
    try:  # a file that load could not rebuild must not be written
        inspect.signature(type(model)).bind(**config)
    except TypeError as exc:
        raise ValueError(f"{type(model).__name__}.config() returns {sorted(config)}, but its constructor cannot take "
                         f"them ({exc}); a model class with its own constructor must override config() to return "
                         f"its arguments") from None

    backend = model.backend
    tensors = {f"layer.{k}": np.ascontiguousarray(backend.to_numpy(v)) for k, v in model.named_arrays().items()}
    cfg = _model_config(model)
    if epoch is not None:
        cfg["epochs_trained"] = int(epoch)
    if model.optimizer is not None:
        for k, v in model.optimizer.state_arrays().items():
            tensors[f"optimizer.{k}"] = np.ascontiguousarray(backend.to_numpy(v))
    atomic_write(path, to_bytes(tensors, metadata={"format": FORMAT, "xpnn": json.dumps(cfg)}))


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, fsync it and move it into
    place with os.replace: readers see the old file or the new one, never half of one.
    open() gives the file the usual umask permissions (mkstemp would make it owner-only)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
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


def read(path):
    """(config dict, {name: numpy array}) from a model file, with clear errors."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    try:
        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise ValueError(f"{path}: not an xpnn model file (safetensors could not read it: {exc})") from None
    if meta.get("format") not in (FORMAT, "xpnn-1") or "xpnn" not in meta:
        raise ValueError(f"{path}: a safetensors file, but not an xpnn model (metadata format {meta.get('format')!r}, "
                         f"expected {FORMAT!r} or 'xpnn-1')")
    cfg = json.loads(meta["xpnn"])
    if meta["format"] == "xpnn-1":  # the architecture sat at the top level then
        cfg["config"] = cfg.pop("arch") if cfg["class"] == "NeuralNetwork" else {"layers": cfg.pop("layers")}
    return cfg, tensors


def load(path, backend=None, device=None):
    """Rebuild a model saved with ``model.save(path)`` on ``backend`` and ``device``
    (default: the current default backend), compiled and ready to predict or to resume
    training."""
    from .layers import LAYERS
    from .layers.base import build_layer

    cfg, tensors = read(path)
    cls = LAYERS.get(cfg["class"])
    if cls is None or not hasattr(cls, "compile"):
        raise ValueError(f"{path}: unknown model class {cfg['class']!r}")
    config = dict(cfg["config"])
    if "layers" in config:  # saved specs -> layers, with the file named in errors
        config["layers"] = [build_layer(spec, str(path)) for spec in config["layers"]]
    model = cls(**config, backend=backend, seed=cfg["seed"], dtype=cfg["dtype"], device=device)
    b = model.backend
    handles = model.named_handles()
    missing = sorted(f"layer.{k}" for k in handles if f"layer.{k}" not in tensors)
    if missing:  # they would silently keep their random initial values
        raise ValueError(f"{path}: the model file lacks tensors {missing}")
    for key, value in tensors.items():
        if not key.startswith("layer."):
            continue
        h = handles.get(key[len("layer."):])
        if h is None:
            raise ValueError(f"{path}: tensor {key!r} matches no param or buffer of the model")
        if tuple(h.value.shape) != tuple(value.shape):
            raise ValueError(f"{path}: tensor {key!r} has shape {value.shape}, the model expects {tuple(h.value.shape)}")
        h.value = b.asarray(value, copy=True)
    model.generator.set_state(cfg["generator"])
    model.epochs_trained = cfg.get("epochs_trained", 0)
    comp = cfg.get("compile")
    if comp:
        from .losses import get_loss
        from .optimizers import get_optimizer

        loss_cfg = dict(comp["loss"])
        model.compile(get_loss(loss_cfg.pop("name"), **loss_cfg), get_optimizer(comp["optimizer"]), comp["metrics"],
                      clip_norm=comp.get("clip_norm"))
        state = {k[len("optimizer."):]: b.asarray(v) for k, v in tensors.items() if k.startswith("optimizer.")}
        model.optimizer.load_state_arrays(state, comp["optimizer_iterations"])
    return model

