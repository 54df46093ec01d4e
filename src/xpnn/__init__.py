"""xpnn: neural networks from scratch on NumPy, CuPy, PyTorch, JAX or any array-API library.

Every layer, loss and optimizer is written once against the array API standard and gets
its array namespace from a Backend; forward and backward are written by hand side by side.

The submodules with optional dependencies (``xpnn.onnx``, ``xpnn.sklearn``,
``xpnn.augmentation``, ``xpnn.cli``) load on first use (PEP 562), so ``import xpnn`` stays
light (NumPy only) and ``xpnn.onnx.export(...)`` works without ``import xpnn.onnx``.
"""

from . import (
    architectures,
    backends,
    callbacks,
    datasets,
    init,
    layers,
    losses,
    metrics,
    model_selection,
    optimizers,
    plotting,
    preprocessing,
    schedules,
    training,
)
from .architectures import NeuralNetwork
from .backends import (
    Backend,
    available_backends,
    backend_of,
    get_backend,
    register_backend,
    set_backend,
    use_backend,
)
from .callbacks import (
    Callback,
    ClipGradNorm,
    CSVLogger,
    EarlyStopping,
    GradientMonitor,
    GradientWarning,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
    get_callback,
    register_callback,
)
from .datasets import load_csv, load_digits, load_fashion_mnist, load_mnist, read_idx, write_idx
from .distributed import DataParallel
from .gradcheck import gradcheck
from .io import load
from .layers import *  # noqa: F403  every layer class (xpnn.layers.__all__)
from .losses import (
    MAE,
    MSE,
    BCEWithLogits,
    BinaryCrossEntropy,
    CrossEntropy,
    Huber,
    Loss,
    SoftmaxCrossEntropy,
    get_loss,
    register_loss,
)
from .model import Sequential
from .model_selection import (
    BayesSearch,
    Choice,
    EvolutionSearch,
    GridSearch,
    IntUniform,
    KFold,
    LogUniform,
    RandomSearch,
    StratifiedKFold,
    Uniform,
    cross_validate,
)
from .optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    clip_grad_norm,
    get_optimizer,
    register_optimizer,
)
from .param import Param
from .preprocessing import (
    MinMaxScaler,
    OutlierClipper,
    RobustScaler,
    SimpleImputer,
    StandardScaler,
    one_hot,
    train_test_split,
)
from .schedules import register_schedule
from .training import Trainer
from .training.jit import JitFallbackWarning

__version__ = "0.1.0"

# Submodules imported on first attribute access (PEP 562), for their optional dependencies
# (onnx, scikit-learn) or their cost: ``import xpnn`` must not pull them in. (distributed,
# io and gradcheck are imported above; ``xpnn.gradcheck`` is the function.)
_LAZY_SUBMODULES = ("augmentation", "cli", "onnx", "sklearn")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # the module is there but needs a missing package
                raise
            raise AttributeError(
                f"module {__name__!r} has no attribute {name!r} (no module {__name__}.{name} in this install)"
            ) from None
        return module  # the import set it as an attribute too: __getattr__ is not asked again
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    # backend
    "Backend",
    "get_backend",
    "backend_of",
    "set_backend",
    "use_backend",
    "available_backends",
    "register_backend",
    # models, layers (every registered layer, from xpnn.layers) and training
    "Sequential",
    "NeuralNetwork",
    "load",
    "DataParallel",
    "Param",
    "Trainer",
    "JitFallbackWarning",
    *layers.__all__,
    # losses and optimizers
    "Loss",
    "MSE",
    "MAE",
    "Huber",
    "BinaryCrossEntropy",
    "BCEWithLogits",
    "SoftmaxCrossEntropy",
    "CrossEntropy",
    "get_loss",
    "register_loss",
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adam",
    "AdamW",
    "get_optimizer",
    "register_optimizer",
    "register_schedule",
    "clip_grad_norm",
    # callbacks
    "Callback",
    "ProgressBar",
    "GradientMonitor",
    "GradientWarning",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "TerminateOnNaN",
    "TensorBoard",
    "ClipGradNorm",
    "get_callback",
    "register_callback",
    # data
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_csv",
    "read_idx",
    "write_idx",
    "StandardScaler",
    "MinMaxScaler",
    "RobustScaler",
    "SimpleImputer",
    "OutlierClipper",
    "one_hot",
    "train_test_split",
    # model selection
    "KFold",
    "StratifiedKFold",
    "cross_validate",
    "GridSearch",
    "RandomSearch",
    "BayesSearch",
    "EvolutionSearch",
    "Choice",
    "Uniform",
    "LogUniform",
    "IntUniform",
    # checks and modules (the lazy ones, _LAZY_SUBMODULES, are left out: ``from xpnn import *``
    # would import them and their optional dependencies)
    "gradcheck",
    "backends",
    "init",
    "layers",
    "losses",
    "optimizers",
    "schedules",
    "metrics",
    "preprocessing",
    "callbacks",
    "datasets",
    "model_selection",
    "plotting",
    "architectures",
    "training",
]
