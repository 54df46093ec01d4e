"""xpnn: neural networks from scratch on NumPy, CuPy, PyTorch, JAX or any array-API library.

Every layer, loss and optimizer is written once against the array API standard and gets
its array namespace from a Backend; forward and backward are written by hand side by side.
"""

from . import (architectures, backends, callbacks, datasets, init, layers, losses, metrics, model_selection,
               optimizers, plotting, preprocessing, schedules, training)
from .backends import Backend, available_backends, backend_of, get_backend, set_backend, use_backend
from .callbacks import (Callback, ClipGradNorm, CSVLogger, EarlyStopping, GradientMonitor, GradientWarning, History,
                        LearningRateScheduler, ModelCheckpoint, ProgressBar, ReduceLROnPlateau, TerminateOnNaN)
from .datasets import load_csv, load_digits, load_fashion_mnist, load_mnist, read_idx, write_idx
from .distributed import DataParallel
from .gradcheck import gradcheck
from .io import load
from .layers import *  # noqa: F403  every registered layer class, straight from the registry
from .losses import (MAE, MSE, BCEWithLogits, BinaryCrossEntropy, CrossEntropy, Huber, Loss, SoftmaxCrossEntropy,
                     get_loss)
from .architectures import NeuralNetwork
from .model import Sequential
from .model_selection import (BayesSearch, Choice, GridSearch, IntUniform, KFold, LogUniform, RandomSearch,
                              StratifiedKFold, Uniform, cross_validate)
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm, get_optimizer
from .param import Param
from .preprocessing import MinMaxScaler, StandardScaler, one_hot, train_test_split
from .training import Trainer

__version__ = "0.1.0"

__all__ = [
    # backend
    "Backend", "get_backend", "backend_of", "set_backend", "use_backend", "available_backends",
    # models, layers (every registered layer, from xpnn.layers) and training
    "Sequential", "NeuralNetwork", "load", "DataParallel", "Param", "Trainer",
    *layers.__all__,
    # losses and optimizers
    "Loss", "MSE", "MAE", "Huber", "BinaryCrossEntropy", "BCEWithLogits", "SoftmaxCrossEntropy", "CrossEntropy",
    "get_loss", "Optimizer", "SGD", "RMSprop", "Adagrad", "Adam", "AdamW", "get_optimizer", "clip_grad_norm",
    # callbacks
    "Callback", "ProgressBar", "GradientMonitor", "GradientWarning", "History", "EarlyStopping", "ModelCheckpoint",
    "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger", "TerminateOnNaN", "ClipGradNorm",
    # data
    "load_digits", "load_fashion_mnist", "load_mnist", "load_csv", "read_idx", "write_idx",
    "StandardScaler", "MinMaxScaler", "one_hot", "train_test_split",
    # model selection
    "KFold", "StratifiedKFold", "cross_validate", "GridSearch", "RandomSearch", "BayesSearch",
    "Choice", "Uniform", "LogUniform", "IntUniform",
    # checks and modules
    "gradcheck", "backends", "init", "layers", "losses", "optimizers", "schedules", "metrics", "preprocessing",
    "callbacks", "datasets", "model_selection", "plotting", "architectures", "training",
]
