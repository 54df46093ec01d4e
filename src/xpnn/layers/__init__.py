"""Layers: one concept per file, forward and backward side by side.

Each layer class is registered once, by the ``@register_layer`` decorator in its own
file; save/load and the ONNX exporter read the registry ``LAYERS``. The imports below
name every layer so that IDEs and type checkers see them; ``__all__`` lists them and
tests/layers/test_layers_init.py checks that it holds exactly the registered layers. Adding a
layer: write its file, import the class below and add its name to ``__all__``.
"""

from .activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    get_activation,
)
from .attention import MultiHeadSelfAttention, PositionalEncoding
from .base import LAYERS, Layer, build_layer, layer_name, register_layer
from .container import Container
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .flatten import Flatten
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .recurrent import GRU, LSTM, SimpleRNN
from .residual import Residual, TimeDistributed, TransformerEncoderBlock
from .sequence import SequencePool

__all__ = [
    "LAYERS",
    "Layer",
    "Container",
    "register_layer",
    "layer_name",
    "build_layer",
    "ACTIVATIONS",
    "get_activation",
    # the registered layers (Sequential and NeuralNetwork, also registered, are in xpnn)
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GELU",
    "GRU",
    "GlobalAvgPool2D",
    "Identity",
    "LSTM",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool2D",
    "MultiHeadSelfAttention",
    "PositionalEncoding",
    "ReLU",
    "Residual",
    "SequencePool",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Tanh",
    "TimeDistributed",
    "TransformerEncoderBlock",
]
