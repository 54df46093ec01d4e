"""Layers: one concept per file, forward and backward side by side."""

from .activations import ELU, GELU, ACTIVATIONS, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .conv import Conv1D, Conv2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .attention import MultiHeadSelfAttention, PositionalEncoding
from .embedding import Embedding
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .sequence import SequencePool
from .residual import Residual, TimeDistributed, TransformerEncoderBlock

LAYERS = {cls.__name__: cls for cls in (
    Dense, Dropout, Flatten, ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softmax, Identity,
    BatchNorm1D, BatchNorm2D, LayerNorm, Embedding, MultiHeadSelfAttention, PositionalEncoding,
    Residual, TimeDistributed, TransformerEncoderBlock,
    Conv1D, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, SequencePool,
)}


def register_layer(cls):
    """Make a Layer subclass known to save/load by its class name (usable as a decorator)."""
    LAYERS[cls.__name__] = cls
    return cls


def layer_name(layer) -> str:
    name = type(layer).__name__
    if LAYERS.get(name) is not type(layer):
        raise ValueError(f"layer {layer!r} is not registered for saving: decorate its class with xpnn.layers.register_layer")
    return name


__all__ = ["LAYERS", "register_layer", "layer_name",
    "Layer", "Dense", "Dropout", "Flatten",
    "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax", "Identity",
    "ACTIVATIONS", "get_activation",
    "BatchNorm1D", "BatchNorm2D", "LayerNorm", "Embedding", "MultiHeadSelfAttention", "PositionalEncoding",
    "Residual", "TimeDistributed", "TransformerEncoderBlock",
    "Conv1D", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "SequencePool",
]
