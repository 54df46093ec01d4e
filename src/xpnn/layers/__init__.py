"""Layers: one concept per file, forward and backward side by side."""

from .activations import ELU, GELU, ACTIVATIONS, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten

__all__ = [
    "Layer", "Dense", "Dropout", "Flatten",
    "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax", "Identity",
    "ACTIVATIONS", "get_activation",
]
