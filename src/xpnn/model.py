"""Sequential: layers in order, as a Layer (models nest) and as a model with compile / fit /
evaluate / predict / save.

Training one batch is the whole of backprop:

    Y = model.run(X, True, {})              # forward without the input checks (fit checks X once);
                                            # each layer keeps what its backward needs
    loss = loss_fn.forward(Y, y)            # a 0-d array on the device
    model.backward(loss_fn.backward())      # chain rule, last layer first; fills grads
    optimizer.step(model.parameters())      # new params stored back into the layers

``fit`` is that loop plus batching, shuffling, validation, metrics and callbacks: a
:class:`~xpnn.training.Trainer` runs it.
"""

from __future__ import annotations

from .backends import Backend, Generator, backend_of, get_backend
from .layers.base import register_layer
from .layers.container import Container
from .precision import LossScale, MasterParam, Policy
from .training import INFERENCE_BATCH, Trainer, compile_model, inference


@register_layer
class Sequential(Container):
    """Layers applied in order; itself a Layer, so a Sequential can sit inside a Residual
    inside another Sequential.

    Args:
        layers: Layer objects (or saved specs ``{"class": ..., "config": ...}``).
        backend: "numpy" (default), "cupy", "torch", "jax", "array_api_strict", a namespace
            module or a Backend.
        seed: feeds the model's generator (init, dropout, shuffling): same seed, same run.
        dtype: parameter and compute dtype: "float32" (the default), "float64" (for
            checks), "float16" or "bfloat16" where the backend has them; or a
            mixed-precision policy, "mixed_bfloat16" or "mixed_float16": compute in the
            low precision, keep float32 master weights (see ``xpnn.precision``). Anything
            else is refused, naming what the backend accepts.
        device: where the arrays live, for backends with several devices ("cuda:1" for
            torch, 1 for cupy); None is the library's default.

    A Sequential nested in another keeps the weights it was built with (from its own seed)
    and is bound to its parent's backend, generator and dtype. For building blocks whose
    initial weights come from the outer model's seed, use ``xpnn.Container([...])``: it
    builds nothing until the model that holds it is made.
    """

    # never None on a model, unlike a fresh Layer: __init__ binds it and ``to`` rebinds it
    backend: Backend
    generator: Generator

    jit_step = None
    """The compiled training step kept between fits (xpnn.training.jit.CompiledStep),
    None until a fit with ``jit`` makes one; ``compile`` drops it."""

    jit_forward = None
    """The compiled inference forward (xpnn.training.jit.CompiledForward), None until an
    inference with ``jit`` makes one; ``compile`` drops it."""

    preprocessing: list | None = None
    """The fitted input preprocessing the model was trained behind (a SimpleImputer, a
    scaler: ``xpnn train --impute`` sets it), saved in the model file and applied by
    ``xpnn evaluate`` and ``xpnn predict``; None for none."""

    jit: bool | str = False
    """Whether fit, evaluate and predict run compiled functions: True, "auto" or False, as
    ``compile(jit=...)`` set it (xpnn.training.jit reads it); False until compile says otherwise."""

    loss_scale: LossScale | None = None
    """The dynamic loss scale of a mixed_float16 model (xpnn.precision.LossScale), which
    backward multiplies dY by and a compiled step carries with the optimizer state
    (xpnn.training.jit); None under every other dtype."""

    input_shape_: tuple | None = None
    """The shape of one sample (no batch axis) of the first data fit, evaluate or predict
    were given (recorded by xpnn.training.data); what ``xpnn.onnx.export`` uses when it is
    not told ``input_shape``. None until the model has seen data."""

    def __init__(self, layers, backend=None, seed: int = 0, dtype="float32", device=None):
        super().__init__(layers, type(self).__name__)
        where = type(self).__name__
        seen: dict[int, str] = {}
        for path, layer in self.named_layers():  # one object at two places would share one saved activation
            if id(layer) in seen:
                raise ValueError(
                    f"{where}: the layer at {path} ({layer!r}) is the same object as the one at "
                    f"{seen[id(layer)]}; use a new instance for each position"
                )
            seen[id(layer)] = path
        backend = get_backend(backend, device)
        self.seed = seed
        self.masters: dict = {}  # mixed precision: param path -> float32 master copy
        self.bind(backend, backend.rng(seed), dtype)
        self.loss = self.optimizer = None
        self.metric_names: list = []
        self.metric_fns: list = []
        self.clip_norm = None
        self.stop_training = False
        self.epochs_trained = 0
        self.history = None

    # ---- the layer: forward and backward --------------------------------------------------

    def forward(self, X, training: bool = False, **inputs):
        """X: (batch, ...) array of the model's backend -> the last layer's output.
        ``inputs``: per-sample keyword inputs (``mask=``), routed to the layers that take them."""
        where = f"{type(self).__name__}.forward"
        self.backend.check(X, "X", where)
        self.check_accepts(inputs, lambda name: f"{where}: no layer of this model takes the input {name!r}")
        for name, a in inputs.items():
            self.backend.check(a, name, where)
        return self.run(X, training, inputs)

    def run(self, X, training: bool, inputs: dict):
        """Container.run; under a mixed-precision policy, X is cast to the compute dtype
        and the output to float32 (so the loss and metrics compute in float32)."""
        if not self.policy.mixed:
            return super().run(X, training, inputs)
        xp = self.backend.xp
        if xp.isdtype(X.dtype, "real floating") and X.dtype != self.dtype:
            X = xp.astype(X, self.dtype)
        Y = super().run(X, training, inputs)
        return xp.astype(Y, xp.float32)

    def backward(self, dY, need_dX: bool = True):
        """Container.backward; under a mixed-precision policy dY is cast to the compute
        dtype (times the loss scale, for mixed_float16) and dX comes back in float32."""
        if not self.policy.mixed:
            return self.run_backward(dY, need_dX)
        xp = self.backend.xp
        if self.loss_scale is None:
            dX = self.run_backward(xp.astype(dY, self.dtype), need_dX)
        else:  # an overflow here is what loss scaling expects now and then: the step is skipped
            with self.backend.overflow_allowed():
                dX = self.run_backward(xp.astype(dY * self.loss_scale.scale, self.dtype), need_dX)
        if dX is None or not xp.isdtype(dX.dtype, "real floating"):
            return dX
        dX = xp.astype(dX, xp.float32)
        return dX if self.loss_scale is None else dX * self.loss_scale.inverse

    def bind(self, backend, generator, dtype) -> "Sequential":
        """Layer.bind in the compute dtype, after checking ``dtype`` on ``backend``
        (``Backend.check_dtype``); the dtype's name is kept for config, summary and ``to``
        (a nested model takes its parent's compute dtype). Master weights and the loss
        scale of a mixed-precision model move along; bound to a plain dtype for a while
        (gradcheck's float64), a model keeps its masters for when the policy comes back."""
        name = backend.check_dtype(dtype, type(self).__name__)
        policy = Policy(name)
        super().bind(backend, generator, policy.compute)
        self.dtype_name, self.policy = name, policy
        if policy.mixed:  # the masters made so far, on the new backend (made lazily: see named_params)
            for k, m in self.masters.items():  # the same dict: handles made before a bind still reach it
                self.masters[k] = _moved(backend, m, policy.variable)
            self.named_params()  # masters of the params built so far (those of lazy layers: at their first use)
        old_scale = self.loss_scale
        if not policy.loss_scaling:
            self.loss_scale = None
        elif old_scale is None:
            self.loss_scale = LossScale(backend)
        elif old_scale.backend != backend:
            self.loss_scale = old_scale.to(backend)
        return self

    # ---- params, buffers, devices -----------------------------------------------------------

    def named_params(self, prefix: str = "") -> dict:
        """Layer.named_params; under a mixed-precision policy, MasterParam handles: the
        float32 master copies (made from the layers' params the first time) carrying the
        layers' gradients in float32, what the optimizer updates."""
        handles = super().named_params(prefix)
        if not self.policy.mixed or prefix:
            return handles
        xp = self.backend.xp
        out = {}
        for path, h in handles.items():
            if path not in self.masters or tuple(self.masters[path].shape) != tuple(h.value.shape):
                self.masters[path] = xp.astype(h.value, xp.float32)
            out[path] = MasterParam(self.masters, path, h, self.loss_scale)
        return out

    def named_handles(self, prefix: str = "") -> dict:
        """Layer.named_handles, with the params as ``named_params`` gives them (the float32
        masters of a mixed-precision model: what is saved, moved and set)."""
        handles = super().named_handles(prefix)
        if self.policy.mixed and not prefix:
            handles.update(self.named_params())
        return handles

    def named_arrays(self) -> dict:
        """Every param and buffer by a stable path ("0.W", "3.running_mean", "1.0.W")."""
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
                raise ValueError(
                    f"set_weights: weights for {name!r} have shape {tuple(w.shape)}, expected {tuple(h.value.shape)}"
                )
        b = self.backend
        for h, w in zip(handles.values(), weights):
            host = w if b.owns(w) else backend_of(w).to_numpy(w)  # another backend's arrays go via the host
            h.value = b.asarray(host, dtype=h.value.dtype, copy=True)  # a copy: the caller keeps theirs

    def to(self, backend, device=None) -> "Sequential":
        """Move params, buffers and optimizer state to another backend or device (returns self)."""
        new = get_backend(backend, device)
        generator = new.rng(self.seed)
        generator.set_state(self.generator.state)
        self.bind(new, generator, self.dtype_name)  # moves every layer's arrays (Layer.bind)
        if self.optimizer is not None:
            self.optimizer.to(new)
        return self

    # ---- training --------------------------------------------------------------------------

    def compile(self, loss="softmax_cross_entropy", optimizer="adam", metrics=(), clip_norm=None, jit=False):
        """Choose the loss, optimizer and metrics (names or objects) for fit/evaluate.

        clip_norm: scale each step's gradients so that their global L2 norm is at most
        this (``clip_grad_norm``), inside fit; None: no clipping.
        jit: compile each training step (forward, loss, backward, update) and each
        inference batch into one function: ``jax.jit`` on JAX, ``torch.compile`` on
        PyTorch. "auto" compiles where the backend can; True also warns where it cannot
        (NumPy and array_api_strict run eagerly). See the training guide's "Compiled steps".
        """
        return compile_model(self, loss, optimizer, metrics, clip_norm, jit)

    def fit(
        self,
        X,
        y=None,
        *,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle=True,
        validation_split: float = 0.0,
        validation_data=None,
        callbacks=(),
        initial_epoch: int = 0,
        verbose: int = 1,
        check_labels: bool = True,
        drop_last: bool = False,
        allow_nonfinite: bool = False,
        steps_per_epoch: int | None = None,
        prefetch: int = 2,
        workers: int = 0,
        **inputs,
    ):
        """Train for ``epochs - initial_epoch`` epochs; returns a History.

        X: (n, ...) NumPy or backend array; y: (n,) integer labels or (n, k) targets.
        Data that does not fit in memory streams a batch at a time: X, y array-likes on
        disk (``np.load(path, mmap_mode="r")``, h5py, zarr), an ``xpnn.data.Dataset``, or
        an iterable of ``(X, y)`` batches (a generator, a PyTorch DataLoader) with y=None.
        batch_size=None trains on the whole set each step (gradient descent); 1 is SGD;
        anything between is mini-batch: the same loop. ``inputs``: per-sample keyword
        inputs of forward such as ``mask=M`` (n, seq), batched and shuffled with X.
        shuffle: True, False, or "blocks" (contiguous runs of batch_size samples in a
            random order: fast reads from chunked stores).
        validation_data: (X_val, y_val), (X_val, y_val, {"mask": M_val}), a Dataset or an
            iterable of batches.
        check_labels: check the targets once, on the device, before training (labels in
            [0, classes), binary targets in [0, 1]; one host sync per fit rather than one
            per batch); streamed targets too large to hold are checked batch by batch;
            False skips it.
        drop_last: skip each epoch's last batch when it is smaller than batch_size (a
            last batch of one sample cannot train BatchNorm).
        allow_nonfinite: accept NaN and inf in X and y; by default the first one is an
            error (it would turn every weight into NaN without a word).
        steps_per_epoch: batches per epoch; needed for an iterable without a length.
        prefetch: streamed batches read and moved to the device ahead of the step by a
            background thread (0: read in the training thread); workers: threads reading.
        """
        trainer = Trainer(self, callbacks, check_labels=check_labels, verbose=verbose)
        return trainer.fit(
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            validation_split=validation_split,
            validation_data=validation_data,
            initial_epoch=initial_epoch,
            inputs=inputs,
            drop_last=drop_last,
            allow_nonfinite=allow_nonfinite,
            steps_per_epoch=steps_per_epoch,
            prefetch=prefetch,
            workers=workers,
        )

    def infer(self, X, batch_size: int | None = INFERENCE_BATCH, allow_nonfinite: bool = False, **inputs):
        """The raw outputs for X on the model's device, in inference mode (in batches,
        keeping nothing): what predict and evaluate start from."""
        return inference.infer(self, X, batch_size, inputs, allow_nonfinite)

    def evaluate(
        self, X, y=None, batch_size: int | None = INFERENCE_BATCH, allow_nonfinite: bool = False, **inputs
    ) -> dict:
        """Loss and compiled metrics on (X, y) in inference mode: {"loss": ..., ...}.
        X, y may stream as in fit (y=None for a Dataset or an iterable of batches).
        NaN or inf in the data is an error unless ``allow_nonfinite``."""
        return inference.evaluate(self, X, y, batch_size, inputs, allow_nonfinite)

    def predict(self, X, batch_size: int | None = INFERENCE_BATCH, allow_nonfinite: bool = False, **inputs):
        """Outputs as a NumPy array: probabilities for a model trained with a softmax or
        sigmoid cross-entropy on logits, the raw output otherwise. X may stream as in fit
        (an iterable yields X batches or (X, ...) tuples). NaN or inf in X is an error
        unless ``allow_nonfinite``."""
        return inference.predict(self, X, batch_size, inputs, allow_nonfinite)

    def predict_classes(self, X, batch_size: int | None = INFERENCE_BATCH, allow_nonfinite: bool = False, **inputs):
        """Class labels as a NumPy int64 array: argmax of the outputs, or output > 0.5 for
        a single output column. Only for a classifier: a model compiled with a regression
        loss (mse, mae, huber) has values, not classes."""
        if self.loss is not None and not self.loss.classifies:
            raise TypeError(
                f"predict_classes: the model is compiled with the {self.loss.name} loss, a regressor: its outputs "
                f"are values, not class scores; use predict"
            )
        probs = self.predict(X, batch_size, allow_nonfinite, **inputs)
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
            rows.append(
                (repr(layer), "?" if shape is None else str(("batch", *shape[1:])), f"{layer.count_params():,}")
            )
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        line = "-" * (sum(widths) + 4)
        out = [line]
        for j, r in enumerate(rows):
            out.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}")
            if j == 0:
                out.append(line)
        out += [line, f"Total params: {self.count_params():,}  (backend {self.backend}, {self.dtype_name})"]
        text = "\n".join(out)
        print(text)
        return text

    def _input_shape(self):
        sample = self.layers[0].input_sample_shape()  # a first Dense of known size
        return None if sample is None else (None, *sample)

    def save(self, path, epoch=None) -> None:
        """Write weights, config, optimizer state and generator state to one .safetensors file."""
        from .io import save

        save(self, path, epoch=epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.layers)} layers, backend={self.backend.name!r})"


def _moved(backend, a, dtype: str):
    """``a`` (any backend) on ``backend`` in ``dtype``."""
    if not backend.owns(a):
        a = backend.asarray(backend_of(a).to_numpy(a), copy=True)
    return a if a.dtype == backend.dtype(dtype) else backend.xp.astype(a, backend.dtype(dtype))


__all__ = ["Sequential"]
