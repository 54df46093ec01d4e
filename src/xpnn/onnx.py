"""Export a trained model to ONNX, to run it where xpnn is not installed (onnxruntime,
TensorRT, a browser, ...).

    import xpnn
    xpnn.onnx.export(model, "model.onnx")                      # raw outputs (logits)
    xpnn.onnx.export(model, "model.onnx", probabilities=True)  # what model.predict returns

(``xpnn.onnx`` loads on first use: ``import xpnn`` does not import the onnx package.) The
input shape comes from the model when it knows it (see ``export``), else from
``input_shape=``.

Every xpnn layer maps onto one standard ONNX operator (or a few), in inference mode:

    Dense            Gemm (X @ W + b; W is (in, out), so transB = 0)
    ReLU ... Tanh    Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softmax (axis -1), Identity
    GELU             the tanh approximation written out: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                     (a single Gelu(approximate="tanh") node from opset 20 on)
    Dropout          Identity (dropout is off at inference)
    Flatten          Flatten (axis 1)
    Conv2D, Conv1D   Conv (xpnn's weight layout is PyTorch's (out, in, kh, kw), which is ONNX's)
    MaxPool2D        MaxPool (xpnn pads with -inf; ONNX MaxPool ignores padding: the same)
    AvgPool2D        AveragePool with count_include_pad=1 (xpnn divides by kh * kw everywhere)
    GlobalAvgPool2D  GlobalAveragePool, then Flatten: (N, C, H, W) -> (N, C) as in xpnn
    BatchNorm1D/2D   BatchNormalization with the running statistics (inference mode)
    LayerNorm        LayerNormalization (axis -1; the reason the minimum opset is 17)
    Residual         the inner layers, then Add(X, f(X))

Any other layer (attention, Embedding, ...) stops the export with an error that names
it and its position. The graph has one input "input" and one output "output", both
float32, with a dynamic batch axis named "batch"; the weights are stored as float32 (a
float64 model is converted). The graph is validated with ``onnx.checker.check_model``
before it is written.

Needs the ``onnx`` package: ``pip install "xpnn[onnx]"`` (and onnxruntime to run the file).
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks
from .layers import LAYERS

MIN_OPSET = 17  # LayerNormalization and the current Softmax (axis -1) semantics

__all__ = ["MIN_OPSET", "export"]

# The predict transform of each loss working on logits, as an ONNX op.
_PREDICT_OPS = {"softmax_cross_entropy": ("Softmax", {"axis": -1}), "bce_with_logits": ("Sigmoid", {})}


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(
            'xpnn.onnx.export needs the onnx package: pip install "xpnn[onnx]" (or pip install onnx)'
        ) from None
    return onnx


class _Graph:
    """Collects nodes and weights (initializers) with unique names."""

    def __init__(self, onnx, opset: int):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes: list = []  # onnx NodeProto
        self.initializers: list = []  # onnx TensorProto
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def weight(self, hint: str, array) -> str:
        """A float32 constant of the graph (a weight, a running statistic, a scalar)."""
        name = self.name(hint)
        host = np.asarray(array, dtype=np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(host, name=name))
        return name

    def op(self, op_type: str, inputs, hint: str | None = None, **attrs) -> str:
        """Add one node; returns the name of its (single) output."""
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def export(model, path, input_shape=None, opset: int = MIN_OPSET, probabilities: bool = False):
    """Write ``model`` (a Sequential) to ``path`` as an ONNX graph; returns the ModelProto.

    Args:
        model: a Sequential or NeuralNetwork whose layers are all exportable (see the
            module docstring for the list).
        path: the .onnx file to write (written to a temporary file, then moved into place).
        input_shape: the shape of ONE sample, without the batch axis: ``(784,)`` for an
            MLP, ``(1, 28, 28)`` for a CNN on MNIST. Optional when the model knows it: the
            sample shape it recorded when it first saw data (``model.input_shape_``, set
            by fit, evaluate or predict), else a first Dense's ``in_features``. A CNN that
            has seen no data needs it: a Conv2D knows its channels but not the image size.
        opset: the ONNX opset version, at least 17.
        probabilities: False exports the model's raw output (logits for a model trained
            with softmax_cross_entropy or bce_with_logits). True appends the loss's predict
            transform (Softmax for softmax_cross_entropy, Sigmoid for bce_with_logits), so
            the graph outputs what ``model.predict`` returns; it needs a compiled model.

    Shapes: input "input" (batch, *input_shape) float32 -> output "output" (batch, ...).
    """
    onnx = require_onnx()
    where = "xpnn.onnx.export"
    opset = _check_arguments(onnx, model, opset, probabilities, where)
    shape = _sample_shape(model, input_shape, where)
    out_shape = _probe(model, shape, where)  # also builds lazily-sized layers

    g = _Graph(onnx, opset)
    Y = "input"
    for i, layer in enumerate(model.layers):
        Y = _export_layer(g, layer, Y, f"layers[{i}]")
    if probabilities:
        Y = _predict_transform(g, model, Y, where)
    g.nodes.append(g.helper.make_node("Identity", [Y], ["output"], name="output"))

    proto = _model_proto(g, model, shape, out_shape)
    proto.doc_string = f"{model!r}; output: {'probabilities' if probabilities else 'raw model output'}"
    onnx.checker.check_model(proto, full_check=True)  # types and shapes inferred through every node
    _write(onnx, proto, path)
    return proto


def _check_arguments(onnx, model, opset, probabilities, where) -> int:
    """Refuse what cannot be exported, before anything is built; returns the opset as an int."""
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: model must be an xpnn Sequential, found {type(model).__name__}")
    if not model.layers:
        raise ValueError(f"{where}: the model has no layers")
    max_opset = onnx.defs.onnx_opset_version()
    if not _checks.is_integer(opset) or not MIN_OPSET <= opset <= max_opset:
        raise ValueError(
            f"{where}: opset must be an integer in [{MIN_OPSET}, {max_opset}] "
            f"(the onnx package installed supports up to {max_opset}), found {opset!r}"
        )
    if not isinstance(probabilities, bool):
        raise TypeError(f"{where}: probabilities must be True or False, found {probabilities!r}")
    for i, layer in enumerate(model.layers):
        _check_exportable(layer, f"layers[{i}]")
    return int(opset)


def _model_proto(g, model, shape, out_shape):
    """The ModelProto of the graph ``g`` built: float32 input (batch, *shape), output
    (batch, *out_shape)."""
    float32 = g.onnx.TensorProto.FLOAT
    graph = g.helper.make_graph(
        g.nodes,
        f"xpnn_{type(model).__name__}",
        inputs=[g.helper.make_tensor_value_info("input", float32, ["batch", *shape])],
        outputs=[g.helper.make_tensor_value_info("output", float32, ["batch", *out_shape])],
        initializer=g.initializers,
    )
    opsets = [g.helper.make_opsetid("", g.opset)]
    from . import __version__

    return g.helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="xpnn",
        producer_version=__version__,
        # the oldest IR version that holds this opset: older runtimes can load it
        ir_version=g.helper.find_min_ir_version_for(opsets),
    )


# ---- shapes -------------------------------------------------------------------------------


def _known_shape(model):
    """The sample shape the model knows without being told, or None: the one it recorded
    when it first saw data (``input_shape_``), else a first Dense's ``in_features``
    (built, or given when it was made). Other first layers fix only part of the shape
    (a Conv2D its channels, not the height and width), so they give nothing."""
    if model.input_shape_ is not None:
        return tuple(model.input_shape_)
    return model.first_leaf().input_sample_shape()


def _sample_shape(model, input_shape, where) -> tuple:
    """The shape of one sample as a tuple of positive ints: ``input_shape`` if given,
    else what the model knows (``_known_shape``)."""
    if input_shape is None:
        input_shape = _known_shape(model)
        if input_shape is None:
            first = model.first_leaf()
            raise ValueError(
                f"{where}: input_shape is needed for a model starting with {first!r}: it has seen "
                f"no data yet (fit, evaluate or predict record the sample shape as "
                f"model.input_shape_) and its first layer does not fix the shape of a sample; pass "
                f"the shape of one sample without the batch axis, e.g. input_shape=(1, 28, 28)"
            )
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = (input_shape,)
    if not shape or any(not _checks.is_integer(d) or d < 1 for d in shape):
        raise ValueError(
            f"{where}: input_shape must be the shape of one sample (positive integers, no batch "
            f"axis), e.g. (784,) or (1, 28, 28), found {input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def _probe(model, shape, where) -> tuple:
    """Run the model once on a zero sample (inference mode): checks that ``shape`` fits
    every layer, with the layers' own error messages, builds lazily-sized layers, and
    gives the output shape of one sample."""
    b = model.backend
    X = b.asarray(np.zeros((1, *shape), dtype=np.float32), dtype=model.dtype)
    try:
        Y = model.forward(X, training=False)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: input_shape {shape} does not fit the model: {exc}") from None
    return tuple(int(d) for d in Y.shape[1:])


# ---- layers -------------------------------------------------------------------------------
#
# One exporter per layer class: (graph, layer, X, where) -> the name of the output tensor.


def _export_layer(g: _Graph, layer, X: str, where: str) -> str:
    """Add the nodes computing ``layer`` on tensor ``X``; returns the output tensor's name."""
    return _exporter_for(layer, where)(g, layer, X, where)


def _exporter_for(layer, where: str):
    # by registry name, for the registered class only: a subclass may compute something else
    name = type(layer).__name__
    exporter = _EXPORTERS.get(name) if LAYERS.get(name) is type(layer) else None
    if exporter is None:
        raise NotImplementedError(
            f"xpnn.onnx.export: {where} {layer!r} ({name}) cannot be exported to ONNX; "
            f"exportable layers: {', '.join(sorted(_EXPORTERS))}; not yet: "
            f"{', '.join(sorted(set(LAYERS) - set(_EXPORTERS))) or 'none'}"
        )
    return exporter


def _check_exportable(layer, where: str) -> None:
    """Raise the unsupported-layer error before anything runs (a layer the exporter does
    not know may not even accept the probe input)."""
    _exporter_for(layer, where)
    for j, child in enumerate(layer.children()):
        _check_exportable(child, _child_where(layer, j, where))


def _child_where(container, j, where) -> str:
    return f"{where} {type(container).__name__} -> layers[{j}]"


def _host(layer, key, store="params"):
    return layer.backend.to_numpy(getattr(layer, store)[key])


def _dense(g, layer, X, where):
    """Y = X @ W + b as one Gemm (X is (batch, in): Dense only takes 2-D input)."""
    inputs = [X, g.weight("W", _host(layer, "W"))]
    if layer.use_bias:
        inputs.append(g.weight("b", _host(layer, "b")))
    return g.op("Gemm", inputs, hint="dense")


def _unary(op_type, **attrs):
    """An exporter for a parameter-free elementwise layer: one node."""
    return lambda g, layer, X, where: g.op(op_type, [X], **attrs)


def _gelu(g, layer, X, where):
    if g.opset >= 20:
        return g.op("Gelu", [X], approximate="tanh")
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), node by node
    x3 = g.op("Mul", [g.op("Mul", [X, X]), X], hint="x_cubed")
    inner = g.op("Add", [X, g.op("Mul", [x3, g.weight("c", 0.044715)])])
    t = g.op("Tanh", [g.op("Mul", [inner, g.weight("sqrt_2_over_pi", math.sqrt(2.0 / math.pi))])])
    half_x = g.op("Mul", [X, g.weight("half", 0.5)])
    return g.op("Mul", [half_x, g.op("Add", [t, g.weight("one", 1.0)])], hint="gelu")


def _batchnorm(g, layer, X, where):
    """Inference mode: (X - running_mean) / sqrt(running_var + eps) * gamma + beta."""
    inputs = [
        X,
        g.weight("gamma", _host(layer, "gamma")),
        g.weight("beta", _host(layer, "beta")),
        g.weight("running_mean", _host(layer, "running_mean", "buffers")),
        g.weight("running_var", _host(layer, "running_var", "buffers")),
    ]
    return g.op("BatchNormalization", inputs, hint="batchnorm", epsilon=layer.eps)


def _layernorm(g, layer, X, where):
    inputs = [X, g.weight("gamma", _host(layer, "gamma")), g.weight("beta", _host(layer, "beta"))]
    return g.op("LayerNormalization", inputs, hint="layernorm", axis=-1, epsilon=layer.eps)


def _conv(g, layer, X, where):
    W = _host(layer, "W")  # (out, in, kh, kw), or (out, in, k) for Conv1D
    if W.ndim == 3:  # Conv1D: xpnn keeps a height-1 2-D geometry, ONNX has a 1-D Conv
        attrs = {
            "kernel_shape": [layer.kernel_size[1]],
            "strides": [layer.stride[1]],
            "pads": [layer.padding[1]] * 2,
            "dilations": [layer.dilation[1]],
        }
    else:
        ph, pw = layer.padding
        attrs = {
            "kernel_shape": list(layer.kernel_size),
            "strides": list(layer.stride),
            "pads": [ph, pw, ph, pw],
            "dilations": list(layer.dilation),
        }
    inputs = [X, g.weight("W", W)]
    if layer.use_bias:
        inputs.append(g.weight("b", _host(layer, "b")))
    return g.op("Conv", inputs, hint="conv", **attrs)


def _pool_attrs(layer) -> dict:
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    # ONNX pads are (begin of each axis..., end of each axis...)
    return {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [ph, pw, ph, pw]}


def _maxpool(g, layer, X, where):
    # xpnn pads with -inf, so padding never wins; ONNX MaxPool ignores the padding: the same
    return g.op("MaxPool", [X], hint="maxpool", **_pool_attrs(layer))


def _avgpool(g, layer, X, where):
    # xpnn counts padding as zeros and divides by kh * kw everywhere
    return g.op("AveragePool", [X], hint="avgpool", count_include_pad=1, **_pool_attrs(layer))


def _global_avgpool(g, layer, X, where):
    # GlobalAveragePool keeps (N, C, 1, 1); xpnn's layer gives (N, C)
    return g.op("Flatten", [g.op("GlobalAveragePool", [X])], axis=1)


def _sequence(g, layer, X, where):
    """The children in order (a Sequential nested in the model)."""
    for j, child in enumerate(layer.children()):
        X = _export_layer(g, child, X, _child_where(layer, j, where))
    return X


def _residual(g, layer, X, where):
    """Y = X + f(X), f being the inner layers in sequence."""
    return g.op("Add", [X, _sequence(g, layer, X, where)], hint="residual")


# exporters by the layer registry's names; a registered layer missing here is named in the error
_EXPORTERS = {
    "Dense": _dense,
    "ReLU": _unary("Relu"),
    "LeakyReLU": lambda g, layer, X, where: g.op("LeakyRelu", [X], alpha=layer.alpha),
    "ELU": lambda g, layer, X, where: g.op("Elu", [X], alpha=layer.alpha),
    "GELU": _gelu,
    "Sigmoid": _unary("Sigmoid"),
    "Tanh": _unary("Tanh"),
    "Softmax": _unary("Softmax", axis=-1),
    "Identity": _unary("Identity"),
    "Dropout": _unary("Identity"),  # dropout is off at inference
    "Flatten": _unary("Flatten", axis=1),
    "Conv2D": _conv,
    "Conv1D": _conv,
    "MaxPool2D": _maxpool,
    "AvgPool2D": _avgpool,
    "GlobalAvgPool2D": _global_avgpool,
    "BatchNorm1D": _batchnorm,
    "BatchNorm2D": _batchnorm,
    "LayerNorm": _layernorm,
    "Residual": _residual,
    "Sequential": _sequence,
    "NeuralNetwork": _sequence,
}


def _predict_transform(g, model, Y, where) -> str:
    """Append what ``model.predict`` applies to the raw output (the loss's predict)."""
    from .losses import Loss

    loss = model.loss
    if loss is None:
        raise ValueError(
            f"{where}: probabilities=True needs a compiled model (its loss says whether to append "
            f"a Softmax or a Sigmoid); call model.compile(...) or pass probabilities=False"
        )
    if loss.name in _PREDICT_OPS:
        op, attrs = _PREDICT_OPS[loss.name]
        return g.op(op, [Y], hint="probabilities", **attrs)
    if type(loss).predict is Loss.predict:  # predict returns the output unchanged
        return Y
    raise NotImplementedError(
        f"{where}: probabilities=True does not know the predict transform of loss "
        f"{loss.name!r}; export with probabilities=False and apply it yourself"
    )


def _write(onnx, proto, path) -> None:
    """Serialize and write atomically (temporary file beside ``path``, then os.replace)."""
    from .io import atomic_write

    atomic_write(path, proto.SerializeToString())
