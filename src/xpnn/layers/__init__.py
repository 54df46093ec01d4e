"""Layers: one concept per file, forward and backward side by side.

Each layer class is registered once, by the ``@register_layer`` decorator in its own
file; this package's names, ``xpnn``'s, save/load and the ONNX exporter all read the
registry ``LAYERS``. Adding a layer: write its file and import the module below.
"""

from . import (
    activations,
    attention,
    conv,
    dense,
    dropout,
    embedding,
    flatten,  # noqa: F401 (registers them)
    normalization,
    pooling,
    recurrent,
    residual,
    sequence,
)
from .activations import ACTIVATIONS, get_activation
from .base import LAYERS, Layer, build_layer, layer_name, register_layer
from .container import Container

globals().update(LAYERS)  # xpnn.layers.Dense, ... straight from the registry

__all__ = [
    "LAYERS",
    "Layer",
    "Container",
    "register_layer",
    "layer_name",
    "build_layer",
    "ACTIVATIONS",
    "get_activation",
    *sorted(LAYERS),
]
