"""Sequential and NeuralNetwork: a stack of layers with forward/backward/fit/evaluate/predict.

Training one batch is the whole of backprop:

    Y = model.forward(X, training=True)     # each layer keeps what its backward needs
    loss = loss_fn.forward(Y, y)            # a 0-d array on the device
    model.backward(loss_fn.backward())      # chain rule, last layer first; fills grads
    optimizer.step(model.parameters())      # new params stored back into the layers
"""

from __future__ import annotations

import math
import time

import array_api_compat

from . import callbacks as cb
from .backends import backend_of, get_backend
from .layers import get_activation
from .layers.base import Layer
from .layers.dense import Dense
from .losses import get_loss
from .metrics import get_metric
from .optimizers import get_optimizer
from .param import Param


class Sequential:
    """Layers applied in order.

    Args:
        layers: a list of Layer objects.
        backend: "numpy" (default), "cupy", "torch", "jax", "array_api_strict", a namespace
            module or a Backend.
        device: where the arrays live, for backends with several devices ("cuda:1" for
            torch, 1 for cupy); None is the library's default.
        seed: feeds the model's generator (init, dropout, shuffling): same seed, same run.
        dtype: parameter and compute dtype ("float32"; "float64" for checks).
    """

    def __init__(self, layers, backend=None, seed: int = 0, dtype="float32", device=None):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layers[{i}] must be a Layer, found {type(layer).__name__}")
            for j in range(i):
                if layers[j] is layer:  # it would keep one forward input for two positions
                    raise ValueError(f"Sequential: layers[{i}] is the same object as layers[{j}] ({layer!r}); "
                                     f"use a new instance for each position")
        self.layers = layers
        self.backend = get_backend(backend, device)
        self.dtype_name = str(dtype)
        self.dtype = self.backend.dtype(dtype)
        self.seed = seed
        self.generator = self.backend.rng(seed)
        for layer in self.layers:
            layer.bind(self.backend, self.generator, self.dtype)
        self.loss = self.optimizer = None
        self.metric_names: list = []
        self.stop_training = False
        self.epochs_trained = 0
        # Set by xpnn.distributed.DataParallel during its fit (None: one process). fit then
        # trains this rank on its share of each batch and sums gradients and logs over ranks.
        self.parallel = None

    # ---- backprop ------------------------------------------------------------------------

    def forward(self, X, training: bool = False):
        """X: (batch, ...) backend array -> the last layer's output."""
        self.backend.check(X, "X", f"{type(self).__name__}.forward")
        return self._forward(X, training)

    def _forward(self, X, training):
        """forward without the backend check: fit/evaluate/predict checked the data once."""
        for layer in self.layers:
            X = layer.forward(X, training=training)
        return X

    __call__ = forward

    def backward(self, dY, input_grad: bool = True):
        """dY: gradient of the loss w.r.t. the output -> gradient w.r.t. the input.

        With ``input_grad=False`` (what fit uses) the first layer may skip computing dX,
        which nothing needs there, and None may be returned.
        """
        if self.layers:
            self.layers[0].need_dX = input_grad
        for layer in reversed(self.layers):
            dY = layer.backward(dY)
        return dY

    def parameters(self) -> list:
        """Every trained array as a :class:`~xpnn.param.Param` handle, in layer order: it
        reads ``layer.params[name]`` and ``layer.grads[name]`` (None before the first
        backward) and stores a new value back into the layer. Unpacks as (value, grad)."""
        return [Param(layer.params, k, layer.grads) for layer in self.layers for k in layer.params]

    def named_handles(self) -> dict:
        """Every param and buffer as a Param handle, by a stable name ("0.W", "3.running_mean")."""
        out = {}
        for i, layer in enumerate(self.layers):
            for store in (layer.params, layer.buffers):
                for k in store:
                    out[f"{i}.{k}"] = Param(store, k)
        return out

    def named_arrays(self) -> dict:
        """Every param and buffer by a stable name ("0.W", "3.running_mean")."""
        return {name: h.value for name, h in self.named_handles().items()}

    def get_weights(self) -> list:
        """Copies of every param and buffer (on the device), in ``named_arrays`` order."""
        xp = self.backend.xp
        return [xp.asarray(a, copy=True) for a in self.named_arrays().values()]

    def set_weights(self, weights) -> None:
        """Store copies of ``weights`` (from get_weights, on any backend or NumPy) as the
        model's params and buffers, in ``named_arrays`` order."""
        handles = self.named_handles()
        weights = list(weights)
        if len(weights) != len(handles):
            raise ValueError(f"set_weights: expected {len(handles)} arrays, found {len(weights)}")
        for (name, h), w in zip(handles.items(), weights):
            if tuple(w.shape) != tuple(h.value.shape):
                raise ValueError(f"set_weights: weights for {name!r} have shape {tuple(w.shape)}, "
                                 f"expected {tuple(h.value.shape)}")
        b = self.backend
        for h, w in zip(handles.values(), weights):
            host = w if b.owns(w) else backend_of(w).to_numpy(w)  # another backend's arrays go via the host
            h.value = b.asarray(host, dtype=h.value.dtype, copy=True)  # a copy: the caller keeps theirs

    def count_params(self) -> int:
        return sum(math.prod(layer.params[k].shape) for layer in self.layers for k in layer.params)

    def to(self, backend, device=None) -> "Sequential":
        """Move params, buffers and optimizer state to another backend or device (returns self)."""
        new = get_backend(backend, device)
        old = self.backend
        for h in self.named_handles().values():
            h.value = new.asarray(old.to_numpy(h.value), copy=True)
        for layer in self.layers:
            layer.grads = {}
        state = self.generator.state
        self.generator = new.rng(self.seed)
        self.generator.set_state(state)
        self.backend = new
        self.dtype = new.dtype(self.dtype_name)
        for layer in self.layers:
            layer.bind(new, self.generator, self.dtype)
        if self.optimizer is not None:
            self.optimizer.to(new)
        return self

    # ---- training ------------------------------------------------------------------------

    def compile(self, loss="softmax_cross_entropy", optimizer="adam", metrics=()):
        """Choose the loss, optimizer and metrics (names or objects) for fit/evaluate."""
        self.loss = get_loss(loss)
        self.optimizer = get_optimizer(optimizer)
        if isinstance(metrics, str):
            metrics = [metrics]
        self.metric_names = [m if isinstance(m, str) else getattr(m, "__name__", "metric") for m in metrics]
        self.metric_fns = [get_metric(m) for m in metrics]
        return self

    def _require_compiled(self, where):
        if self.loss is None:
            raise RuntimeError(f"{where}: call model.compile(loss=..., optimizer=...) first")

    def _to_device(self, a, argname, where, target=False):
        """A host or backend array as a backend array; features in the model dtype; integer
        targets stay int64 labels for the cross-entropies, other targets become float."""
        b = self.backend
        if array_api_compat.is_numpy_array(a):  # host data: copied to the model's device
            a = b.asarray(a)
        elif array_api_compat.is_array_api_obj(a):  # another library's array or device: the mixing error
            b.check(a, argname, where)
        else:
            raise TypeError(f"{where}: {argname} must be an array, found {type(a).__name__}")
        xp = b.xp
        if target and xp.isdtype(a.dtype, "integral") and getattr(self.loss, "accepts_labels", False) and a.ndim == 1:
            return xp.astype(a, xp.int64)
        if not target and xp.isdtype(a.dtype, "integral") and getattr(self.layers[0], "takes_indices", False):
            return a  # token ids for a first Embedding layer stay integers
        a = a if a.dtype == self.dtype else xp.astype(a, self.dtype)
        if target and a.ndim == 1:
            a = xp.reshape(a, (a.shape[0], 1))
        return a

    def _check_lengths(self, X, y, where):
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: X has {X.shape[0]} samples but y has {y.shape[0]}")
        if X.shape[0] == 0:
            raise ValueError(f"{where}: X is empty")

    def fit(self, X, y, epochs: int = 1, batch_size: int | None = 32, shuffle: bool = True,
            validation_split: float = 0.0, validation_data=None, callbacks=(), initial_epoch: int = 0,
            verbose: int = 1):
        """Train for ``epochs - initial_epoch`` epochs; returns a History.

        X: (n, ...) NumPy or backend array; y: (n,) integer labels or (n, k) targets.
        batch_size=None trains on the whole set each step (gradient descent); 1 is SGD;
        anything between is mini-batch: the same loop.
        """
        where = "fit"
        self._require_compiled(where)
        for name, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"fit: {name} must be a non-negative integer, found {v!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"fit: batch_size must be a positive integer or None, found {batch_size!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), found {validation_split!r}")
        X = self._to_device(X, "X", where)
        y = self._to_device(y, "y", where, target=True)
        self._check_lengths(X, y, where)
        if validation_data is None and validation_split > 0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"fit: validation_split={validation_split} leaves no data on one side of {X.shape[0]} samples")
            cut = X.shape[0] - n_val  # the last samples, before shuffling (as Keras does)
            X, y, validation_data = X[:cut, ...], y[:cut, ...], (X[cut:, ...], y[cut:, ...])
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (X_val, y_val)")
            Xv = self._to_device(validation_data[0], "validation_data[0]", where)
            yv = self._to_device(validation_data[1], "validation_data[1]", where, target=True)
            self._check_lengths(Xv, yv, where)

        n = X.shape[0]
        bs = n if batch_size is None else min(batch_size, n)
        steps = -(-n // bs)
        history = cb.History()
        # History after the user's callbacks, so that what they add to the logs (the lr of
        # LearningRateScheduler and ReduceLROnPlateau) is recorded too.
        cbs = [*callbacks, history]
        if verbose:
            cbs.append(cb.ProgressBar(epochs, steps, verbose))
        loss_watchers = [c for c in cbs if c.needs_batch_loss]
        for c in cbs:
            c.model = self
        self.stop_training = False
        self.history = history
        for c in cbs:
            c.on_train_begin()

        xp = self.backend.xp
        par = self.parallel
        # integer labels are range-checked once for the whole set at the first batch (when
        # the number of classes is known), then the loss skips its per-batch check (a sync)
        labels_checked = not (getattr(self.loss, "accepts_labels", False) and y.ndim == 1)
        try:
            for epoch in range(initial_epoch, epochs):
                for c in cbs:
                    c.on_epoch_begin(epoch)
                start = time.perf_counter()
                order = self.generator.permutation(n) if shuffle else None
                total = xp.zeros((), dtype=self.dtype, device=self.backend.device)
                outputs, targets, seen = [], [], 0
                for step in range(steps):
                    lo, hi = step * bs, min(n, (step + 1) * bs)
                    if par is not None:  # this rank's part of the batch (None: fewer samples than ranks)
                        part = par.shard(lo, hi)
                        if part is None:
                            continue
                        lo, hi = part
                    if order is None:
                        Xb, yb = X[lo:hi, ...], y[lo:hi, ...]
                    else:
                        idx = order[lo:hi]
                        Xb, yb = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)
                    out = self._forward(Xb, training=True)
                    if not labels_checked:  # every label at once: one host sync per fit, not per batch
                        self.loss.check_labels(y, out.shape[-1])
                        if validation_data is not None and yv.ndim == 1:  # evaluate runs unchecked too
                            self.loss.check_labels(yv, out.shape[-1])
                        self.loss.label_check, labels_checked = False, True
                    loss = self.loss.forward(out, yb)
                    if loss_watchers:
                        value = self.backend.to_float(loss) if par is None else par.batch_loss(loss)
                        for c in loss_watchers:
                            c.on_batch_loss(epoch, step, value)
                        if self.stop_training:
                            break
                    self.backward(self.loss.backward(), input_grad=False)
                    pairs = self.parameters()
                    if par is not None:  # the gradient of the whole batch, summed over ranks
                        pairs = par.allreduce_grads(pairs)
                    self.optimizer.step(pairs)
                    total += loss * float(hi - lo)  # stays on the device: no sync per batch
                    seen += hi - lo
                    if self.metric_fns:
                        outputs.append(out)
                        targets.append(yb)
                    for c in cbs:
                        c.on_batch_end(step, lambda: {"loss": f"{self.backend.to_float(total) / max(seen, 1):.4f}"})
                if self.stop_training and seen == 0:
                    break
                loss_sum = self.backend.to_float(total)
                out = xp.concat(outputs, axis=0) if outputs else None
                tgt = xp.concat(targets, axis=0) if targets else None
                if par is not None:  # loss and outputs of every rank, so all ranks log the same
                    loss_sum, seen, out, tgt = par.reduce_epoch(loss_sum, seen, out, tgt)
                logs = {"loss": loss_sum / max(seen, 1)}
                if self.metric_fns and out is not None:
                    logs.update(self._metrics(out, tgt))
                if validation_data is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(Xv, yv, batch_size=max(bs, 256)).items()})
                logs["seconds"] = time.perf_counter() - start
                self.epochs_trained = epoch + 1
                for c in cbs:
                    c.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        finally:
            self.loss.label_check = True
        for c in cbs:
            c.on_train_end()
        return history

    def _metrics(self, out, y) -> dict:
        scores = self.loss.predict(out)
        return {name: float(fn(y, scores)) for name, fn in zip(self.metric_names, self.metric_fns)}

    def _batched_forward(self, X, batch_size, where):
        xp = self.backend.xp
        n = X.shape[0]
        if n == 0:
            raise ValueError(f"{where}: X is empty (0 samples)")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"{where}: batch_size must be a positive integer or None, found {batch_size!r}")
        bs = n if batch_size is None else batch_size
        # Stops clipped to n: array_api_strict (like the standard) rejects out-of-bounds slices.
        outs = [self._forward(X[i:min(i + bs, n), ...], False) for i in range(0, n, bs)]
        return outs[0] if len(outs) == 1 else xp.concat(outs, axis=0)

    def evaluate(self, X, y, batch_size: int | None = 1024) -> dict:
        """Loss and compiled metrics on (X, y) in inference mode: {"loss": ..., ...}."""
        where = "evaluate"
        self._require_compiled(where)
        X = self._to_device(X, "X", where)
        y = self._to_device(y, "y", where, target=True)
        self._check_lengths(X, y, where)
        out = self._batched_forward(X, batch_size, where)
        logs = {"loss": self.backend.to_float(self.loss.forward(out, y))}
        logs.update(self._metrics(out, y))
        return logs

    def predict(self, X, batch_size: int | None = 1024):
        """Outputs as a NumPy array: probabilities for a model trained with a softmax or
        sigmoid cross-entropy on logits, the raw output otherwise."""
        X = self._to_device(X, "X", "predict")
        out = self._batched_forward(X, batch_size, "predict")
        if self.loss is not None:
            out = self.loss.predict(out)
        return self.backend.to_numpy(out)

    def predict_classes(self, X, batch_size: int | None = 1024):
        """Class labels as a NumPy int64 array: argmax of the outputs, or output > 0.5 for
        a single output column."""
        probs = self.predict(X, batch_size)
        if probs.ndim == 2 and probs.shape[1] > 1:
            return probs.argmax(axis=1).astype("int64")
        return (probs.reshape(-1) > 0.5).astype("int64")

    # ---- description and persistence ----------------------------------------------------

    def summary(self, input_shape=None) -> str:
        """A table of layers, output shapes and parameter counts (also printed)."""
        shape = tuple(input_shape) if input_shape is not None else self._input_shape()
        rows = [("Layer", "Output shape", "Params")]
        for layer in self.layers:
            if shape is not None:
                try:
                    shape = layer.output_shape(shape)
                except Exception:
                    shape = None
            count = sum(math.prod(p.shape) for p in layer.params.values())
            rows.append((repr(layer), "?" if shape is None else str(("batch", *shape[1:])), f"{count:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        line = "-" * (sum(widths) + 4)
        out = [line]
        for j, r in enumerate(rows):
            out.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}")
            if j == 0:
                out.append(line)
        out += [line, f"Total params: {self.count_params():,}  (backend {self.backend.name}, {self.dtype_name})"]
        text = "\n".join(out)
        print(text)
        return text

    def _input_shape(self):
        first = self.layers[0] if self.layers else None
        if isinstance(first, Dense) and first.in_features is not None:
            return (None, first.in_features)
        return None

    def config(self) -> dict:
        from .layers import layer_name

        return {"class": type(self).__name__, "seed": self.seed, "dtype": self.dtype_name,
                "layers": [{"class": layer_name(layer), "config": layer.config()} for layer in self.layers]}

    def save(self, path, epoch=None) -> None:
        """Write weights, config, optimizer state and generator state to one .safetensors file."""
        from .io import save

        save(self, path, epoch=epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.layers)} layers, backend={self.backend.name!r})"


class NeuralNetwork(Sequential):
    """The classic fully connected network: input -> hidden layers -> output.

    ``NeuralNetwork(2, 4, 1, activation="sigmoid", output_activation="sigmoid")`` is the
    XOR network; ``hidden_sizes`` is an int or a list of ints.
    """

    def __init__(self, input_size: int, hidden_sizes, output_size: int, activation="relu",
                 output_activation=None, init="glorot_uniform", backend=None, seed: int = 0, dtype="float32",
                 device=None):
        for name, value in (("input_size", input_size), ("output_size", output_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"NeuralNetwork: {name} must be a positive integer, found {value!r}")
        if isinstance(hidden_sizes, int):
            hidden = [hidden_sizes]
        else:
            try:
                hidden = list(hidden_sizes)
            except TypeError:
                raise TypeError(f"NeuralNetwork: hidden_sizes must be an int or a list of ints, "
                                f"found {hidden_sizes!r}") from None
        for i, h in enumerate(hidden):
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise ValueError(f"NeuralNetwork: hidden_sizes must be positive integers, found {h!r} at position {i}")
        make_act, act_spec = _activation_maker(activation, "activation")
        layers, fan_in = [], input_size
        for h in hidden:
            layers += [Dense(fan_in, h, init=init), make_act()]
            fan_in = h
        layers.append(Dense(fan_in, output_size, init=init))
        out_spec = None
        if output_activation is not None:
            make_out, out_spec = _activation_maker(output_activation, "output_activation")
            layers.append(make_out())
        super().__init__(layers, backend=backend, seed=seed, dtype=dtype, device=device)
        self.arch = {"input_size": input_size, "hidden_sizes": hidden, "output_size": output_size,
                     "activation": act_spec, "output_activation": out_spec,
                     "init": init if isinstance(init, str) else "glorot_uniform"}

    def config(self) -> dict:
        return {**super().config(), "arch": self.arch}


def _activation_maker(spec, argname):
    """(a function making a fresh activation layer, its JSON-able spec for ``arch``).

    ``spec`` is a name ("relu"), a Layer instance, or ``{"class": ..., "config": ...}`` (how
    ``arch`` saves an instance). Each hidden layer gets its own copy: an activation keeps its
    forward input for backward, so one instance shared by two positions would backpropagate
    through the wrong input.
    """
    from .layers import LAYERS

    if isinstance(spec, dict):
        cls = LAYERS.get(spec.get("class"))
        if cls is None:
            raise ValueError(f"NeuralNetwork: {argname} class {spec.get('class')!r} is not a registered layer")
        config = dict(spec.get("config", {}))
        return (lambda: cls(**config)), {"class": spec["class"], "config": config}
    if isinstance(spec, Layer):
        cls, config = type(spec), spec.config()
        return (lambda: cls(**config)), {"class": cls.__name__, "config": config}
    get_activation(spec, argname)  # a clear error for an unknown name, now
    return (lambda: get_activation(spec, argname)), spec


__all__ = ["Sequential", "NeuralNetwork", "backend_of"]
