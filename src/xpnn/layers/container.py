"""Container: a layer made of layers, applied in order. The one mechanism behind
Sequential, Residual, TimeDistributed and the Transformer block.

Forward runs the children in sequence; backward runs their backwards in reverse, the
chain rule one layer at a time. A container has no params of its own: ``named_params()``
reaches the children's (named by path, "1.0.W"), so optimizers, save/load and ``to()``
see one tree. Keyword inputs such as an attention ``mask`` are routed to the children
that take them (``forward_inputs``), through any depth of nesting.
"""

from __future__ import annotations

from .base import Layer, build_layer, layer_name


class Container(Layer):
    """Children in ``self.layers``, bound like the container itself.

    ``Container(layers)``: Layer objects or saved specs ``{"class": ..., "config": ...}``.
    """

    def __init__(self, layers, where: str | None = None):
        super().__init__()
        where = where or type(self).__name__
        items = list(layers)
        if not items:
            raise ValueError(f"{where}: needs at least one layer, e.g. {where}([Dense(8, 8), ReLU()])")
        layers = [build_layer(item, f"{where}: layers[{i}]") for i, item in enumerate(items)]
        for i, layer in enumerate(layers):
            for j in range(i):
                if layers[j] is layer:  # it would keep one forward's activations for two positions
                    raise ValueError(
                        f"{where}: layers[{i}] is the same object as layers[{j}] ({layer!r}); "
                        f"use a new instance for each position"
                    )
        self.layers = layers

    def children(self) -> list:
        return self.layers

    def run(self, X, training: bool, inputs: dict):
        """The children in sequence: X -> f(X), each given the inputs it takes."""
        self.prepare(X)
        if not inputs:  # the common case, kept short: it runs for every batch
            for layer in self.layers:
                X = layer.forward(X, training=training)
            return X
        self.check_accepts(inputs, lambda name: f"{self._where()}: no layer in it takes the input {name!r}")
        for layer in self.layers:
            X = layer.forward(X, training=training, **route(layer, inputs))
        return X

    def run_backward(self, dY, need_dX: bool = True):
        """dL/df(X) -> dL/dX through the children, last first; the first child is told
        whether dX is needed at all."""
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            dY = self.layers[i].backward(dY, need_dX=need_dX if i == 0 else True)
        return dY

    def forward(self, X, training: bool = False, **inputs):
        """X -> the last child's output."""
        return self.run(X, training, inputs)

    def backward(self, dY, need_dX: bool = True):
        return self.run_backward(dY, need_dX)

    def layer_specs(self) -> list:
        return [{"class": layer_name(layer), "config": layer.config()} for layer in self.layers]

    def config(self) -> dict:
        return {"layers": self.layer_specs()}

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return tuple(shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(layer) for layer in self.layers)})"


def route(layer: Layer, inputs: dict) -> dict:
    """The keyword inputs ``layer`` takes (all of them for a container, which routes on)."""
    if not inputs:
        return inputs
    return {k: v for k, v in inputs.items() if layer.accepts(k)}
