"""xpnn: neural networks from scratch on NumPy, CuPy or any array-API library."""

from . import init
from .backend import Backend, available_backends, get_backend, set_backend, use_backend
from .gradcheck import gradcheck
from .layers import ELU, GELU, Dense, Dropout, Flatten, Layer, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

__version__ = "0.1.0"

__all__ = [
    "Backend", "get_backend", "set_backend", "use_backend", "available_backends",
    "gradcheck", "init",
    "Layer", "Dense", "Dropout", "Flatten",
    "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax",
]
