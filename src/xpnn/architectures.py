"""Ready-made networks: NeuralNetwork (the classic fully connected network) and the
default CNN of ``xpnn train --model cnn``."""

from __future__ import annotations

from . import _checks
from .layers import get_activation

# the layer classes from their modules: xpnn.layers adds them at run time, where mypy cannot see them
from .layers.activations import ReLU
from .layers.base import Layer, build_layer, register_layer
from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.flatten import Flatten
from .layers.normalization import BatchNorm2D
from .layers.pooling import MaxPool2D
from .model import Sequential


@register_layer
class NeuralNetwork(Sequential):
    """The classic fully connected network: input -> hidden layers -> output.

    ``NeuralNetwork(2, 4, 1, activation="sigmoid", output_activation="sigmoid")`` is the
    XOR network; ``hidden_sizes`` is an int or a list of ints.
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes,
        output_size: int,
        activation="relu",
        output_activation=None,
        init="glorot_uniform",
        backend=None,
        seed: int = 0,
        dtype="float32",
        device=None,
    ):
        where = "NeuralNetwork"
        input_size = _checks.positive_int(input_size, "input_size", where)
        output_size = _checks.positive_int(output_size, "output_size", where)
        if _checks.is_integer(hidden_sizes):
            hidden = [hidden_sizes]
        else:
            try:
                hidden = list(hidden_sizes)
            except TypeError:
                raise TypeError(
                    f"{where}: hidden_sizes must be an int or a list of ints, found {hidden_sizes!r}"
                ) from None
        hidden = [_checks.positive_int(h, f"hidden_sizes[{i}]", where) for i, h in enumerate(hidden)]
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
        self.arch = {
            "input_size": input_size,
            "hidden_sizes": hidden,
            "output_size": output_size,
            "activation": act_spec,
            "output_activation": out_spec,
            "init": init if isinstance(init, str) else "glorot_uniform",
        }

    def config(self) -> dict:
        return dict(self.arch)


def _activation_maker(spec, argname):
    """(a function making a fresh activation layer, its JSON-able spec for ``arch``).

    ``spec`` is a name ("relu"), a Layer instance, or ``{"class": ..., "config": ...}`` (how
    ``arch`` saves an instance). Each hidden layer gets its own copy: an activation keeps its
    forward input for backward, so one instance shared by two positions would backpropagate
    through the wrong input.
    """
    if isinstance(spec, dict):
        layer = build_layer(spec, f"NeuralNetwork: {argname}")
        cls, config = type(layer), layer.config()
        return (lambda: cls(**config)), {"class": spec["class"], "config": config}
    if isinstance(spec, Layer):
        cls, config = type(spec), spec.config()
        return (lambda: cls(**config)), {"class": cls.__name__, "config": config}
    get_activation(spec, argname)  # a clear error for an unknown name, now
    return (lambda: get_activation(spec, argname)), spec


def cnn(input_shape=(1, 28, 28), num_classes=10, backend=None, seed=0, dtype="float32") -> Sequential:
    """Two conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool), dropout and a dense head.

    input_shape: (channels, height, width) of one image, e.g. (1, 28, 28) or (1, 8, 8).
    For 28x28 inputs: 32 and 64 channels, dense 128 (about 420K params). For small images
    (under 16 pixels a side, the 8x8 digits) the blocks are 16 and 32 channels and only
    the second block pools, so the 8x8 map is not shrunk to nothing.
    """
    if len(input_shape) != 3 or any(not _checks.is_integer(d) or d < 1 for d in input_shape):
        raise ValueError(f"cnn: input_shape must be (channels, height, width), found {input_shape!r}")
    channels, height, width = input_shape
    small = min(height, width) < 16
    c1, c2, dense = (16, 32, 64) if small else (32, 64, 128)
    layers = [Conv2D(channels, c1, 3, padding=1), BatchNorm2D(c1), ReLU()]
    if not small:
        layers.append(MaxPool2D(2))
        height, width = height // 2, width // 2
    layers += [Conv2D(c1, c2, 3, padding=1), BatchNorm2D(c2), ReLU(), MaxPool2D(2)]
    height, width = height // 2, width // 2
    layers += [
        Flatten(),
        Dropout(0.25),
        Dense(c2 * height * width, dense),
        ReLU(),
        Dropout(0.25),
        Dense(dense, num_classes),
    ]
    return Sequential(layers, backend=backend, seed=seed, dtype=dtype)
