"""scikit-learn estimators on xpnn networks: :class:`NNClassifier` and :class:`NNRegressor`.

Each wraps a :class:`~xpnn.NeuralNetwork` (input -> hidden layers -> output) trained with
``Sequential.fit``, behind scikit-learn's estimator API, so that ``clone``, ``Pipeline``,
``GridSearchCV``, ``cross_val_score`` and ``CalibratedClassifierCV`` take them:

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xpnn.sklearn import NNClassifier

    clf = make_pipeline(StandardScaler(), NNClassifier(hidden_sizes=(64,), epochs=30))
    clf.fit(X_train, y_train).score(X_test, y_test)

As scikit-learn requires, the constructor stores its arguments as given and checks none
of them; ``fit`` checks them (an error names the argument, what was expected and what was
found). Inputs are checked by scikit-learn's ``validate_data`` and trained on as float32.

The seed is called ``seed``, as everywhere else in xpnn (``NeuralNetwork(seed=...)``),
and plays the part of scikit-learn's ``random_state``: it fixes the initial weights, the
batch order and the validation split. An int (default 0) makes every ``fit`` the same;
None draws a new seed at each fit. scikit-learn's helpers that set ``random_state`` by
name (``BaggingClassifier`` seeding its copies) leave ``seed`` alone: set it yourself.

Needs scikit-learn >= 1.3 (``pip install "xpnn[sklearn]"``).
"""

from __future__ import annotations

import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - only without scikit-learn
    raise ImportError('xpnn.sklearn needs scikit-learn: pip install "xpnn[sklearn]"') from exc

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6: the estimator's own method did the same (deprecated since)

    def validate_data(estimator, /, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


from . import _checks
from .architectures import NeuralNetwork
from .backends import get_backend
from .callbacks import EarlyStopping
from .losses import get_loss
from .optimizers import get_optimizer

__all__ = ["NNClassifier", "NNRegressor"]

REGRESSION_LOSSES = ("mse", "mae", "huber")


class _NNEstimator(BaseEstimator):
    """What the classifier and the regressor share: the hyperparameters' checks, building
    and training the network, and pickling it."""

    _loss_name: str  # the xpnn loss fit compiles with

    # ---- fit --------------------------------------------------------------------------

    def _train(self, X, targets, n_outputs: int, stratify=None):
        """Build a fresh network for ``X`` -> ``n_outputs`` and train it on (X, targets);
        sets ``model_``, ``history_`` and ``n_iter_``."""
        where = f"{type(self).__name__}.fit"
        epochs = _checks.non_negative_int(self.epochs, "epochs", where)
        batch_size = _checks.optional_positive_int(self.batch_size, "batch_size", where, "the whole set each step")
        split = _checks.number(self.validation_split, "validation_split", where, 0.0, 1.0, high_open=True)
        early = _checks.boolean(self.early_stopping, "early_stopping", where)
        patience = _checks.non_negative_int(self.patience, "patience", where)
        verbose = _checks.non_negative_int(self.verbose, "verbose", where)
        seed = self._seed(where)

        validation = None
        if split > 0:
            X, targets, validation = self._split(X, targets, split, seed, stratify, where)
        model = NeuralNetwork(
            X.shape[1],
            self.hidden_sizes,
            n_outputs,
            activation=self.activation,
            backend=self.backend,
            seed=seed,
            device=self.device,
        )
        model.compile(self._loss(), self._optimizer(where))
        callbacks = []
        if early:  # without held-out data, stop when the training loss stalls (as MLPClassifier does)
            monitor = "val_loss" if validation is not None else "loss"
            callbacks.append(EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
        with warnings.catch_warnings():
            # a diverged fit is the error below, said once: not also fit's warning
            warnings.filterwarnings("ignore", message="fit: the training loss is", category=RuntimeWarning)
            history = model.fit(
                X,
                targets,
                epochs=epochs,
                batch_size=batch_size,
                validation_data=validation,
                callbacks=callbacks,
                verbose=verbose,
            )
        self._check_finite(model, where)
        self.model_ = model
        self._twin: dict = {}  # predict's float64 copy of the model (see _wide_twin)
        # the History callback holds the model: keep its plain per-epoch lists (they pickle)
        self.history_ = {k: list(v) for k, v in history.history.items()}
        self.n_iter_ = len(history.epoch)
        return self

    def _check_finite(self, model, where: str) -> None:
        """Raise when training left non-finite weights (scikit-learn's MLP does the same):
        such a network predicts NaN for every input."""
        xp = model.backend.xp
        flags = [xp.all(xp.isfinite(w)) for w in model.get_weights()]
        if flags and not bool(model.backend.to_numpy(xp.all(xp.stack(flags)))):
            raise ValueError(
                f"{where}: training diverged: the network's weights are no longer finite (NaN or inf). The "
                f"learning rate may be too large (lr={self.lr!r}) or the inputs unscaled (put a StandardScaler "
                f"before the estimator, and scale the targets of a regressor); lower lr or scale the data"
            )

    def _seed(self, where: str) -> int:
        if self.seed is None:  # a new run each fit, as random_state=None does in scikit-learn
            return int(np.random.default_rng().integers(2**63))
        return _checks.non_negative_int(self.seed, "seed", where)

    @staticmethod
    def _split(X, targets, fraction, seed, stratify, where):
        """(X_train, targets_train, (X_val, targets_val)): a shuffled split, stratified by
        class where every class has enough samples (Sequential.fit's validation_split
        would hold out the last samples, all of one class when the data is sorted)."""
        n_val = round(X.shape[0] * fraction)
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(
                f"{where}: validation_split={fraction} leaves no data on one side of "
                f"{X.shape[0]} samples; use a larger fraction, more data or 0"
            )
        try:
            parts = train_test_split(X, targets, test_size=n_val, random_state=seed % 2**32, stratify=stratify)
        except ValueError:  # a class too small to be split both ways: an unstratified split
            parts = train_test_split(X, targets, test_size=n_val, random_state=seed % 2**32)
        X_train, X_val, t_train, t_val = parts
        return X_train, t_train, (X_val, t_val)

    def _loss(self):
        return get_loss(self._loss_name)

    def _optimizer(self, where: str):
        lr = _checks.positive_number(self.lr, "lr", where)
        spec = self.optimizer
        if isinstance(spec, str):
            return get_optimizer(spec, lr=lr)
        if isinstance(spec, dict):
            if "lr" in spec:  # two learning rates: lr= is the one GridSearchCV tunes
                raise ValueError(f"{where}: optimizer {spec!r} sets 'lr'; give the learning rate as lr= only")
            if "name" not in spec:
                raise ValueError(
                    f"{where}: an optimizer dict needs a 'name' (such as {{'name': 'sgd', "
                    f"'momentum': 0.9}}), found keys {sorted(spec)}"
                )
            return get_optimizer({**spec, "lr": lr})
        # an Optimizer instance would carry its state from one fit (and one clone) to the next
        raise TypeError(
            f"{where}: optimizer must be a name ('adam', 'sgd', 'adamw', 'rmsprop', 'adagrad') or a "
            f"dict such as {{'name': 'sgd', 'momentum': 0.9}}, found {type(spec).__name__}"
        )

    # ---- predict ----------------------------------------------------------------------

    def _outputs(self, X):
        """The network's outputs for X (probabilities for the classifier), float64.

        Computed in float64 by a float64 copy of the trained float32 network, on inputs
        rounded to float32 as in training: a float32 matrix product's rounding depends on
        how many rows it is given (BLAS blocks them differently), so a sample's prediction
        would change, by up to ~1e-6, with the other samples predicted beside it. In
        float64 that effect is ~1e-15, far below the float32 answer's own precision."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return np.asarray(self._wide_twin().predict(X.astype(np.float64)), dtype=np.float64)

    def _wide_twin(self):
        """The float64 copy of ``model_`` that predicts: made at the first predict and kept
        while ``model_`` and its weights stay the same (making it is half of a one-row
        predict's time). It is kept inside the dict ``fit`` made, so predict leaves the
        estimator's own attributes as they were (scikit-learn's rule)."""
        model = self.model_
        weights = model.get_weights()
        kept = self.__dict__.get("_twin", {})
        if kept.get("model") is model and _same_arrays(model.backend.xp, kept["weights"], weights):
            return kept["twin"]
        twin = NeuralNetwork(**model.config(), backend=model.backend, seed=model.seed, dtype=_wide_dtype(model))
        twin.set_weights([model.backend.xp.astype(w, twin.dtype) for w in weights])
        twin.compile(get_loss(model.loss.name, **model.loss.config()), "sgd")
        kept.update(model=model, weights=weights, twin=twin)
        return twin

    # ---- pickle -----------------------------------------------------------------------

    def __getstate__(self):
        # a network holds its backend's array module, which pickle cannot store: it
        # travels as NumPy weights and its config, and is rebuilt on unpickling
        state = dict(super().__getstate__())  # a copy: the estimator keeps its model
        state["_twin"] = {}  # predict's float64 copy: remade after unpickling
        if isinstance(state.get("model_"), NeuralNetwork):
            state["model_"] = _PortableModel(state["model_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), _PortableModel):
            state = dict(state)
            state["model_"] = state["model_"].rebuild(state.get("backend"), state.get("device"))
        super().__setstate__(state)


def _same_arrays(xp, kept: list, now: list) -> bool:
    """Whether two lists of arrays hold the same shapes and numbers."""
    return len(kept) == len(now) and all(a.shape == b.shape and bool(xp.all(a == b)) for a, b in zip(kept, now))


def _wide_dtype(model) -> str:
    """float64 where the model's backend and device have it (not on Apple's MPS, say)."""
    xp = model.backend.xp
    try:
        supported = xp.__array_namespace_info__().dtypes(device=model.backend.device, kind="real floating")
        return "float64" if "float64" in supported else model.dtype_name
    except (AttributeError, TypeError, ValueError):  # a library without the inspection API
        return "float64" if hasattr(xp, "float64") else model.dtype_name


class _PortableModel:
    """A fitted NeuralNetwork as plain data (config, NumPy weights, loss and optimizer
    settings), enough to predict after unpickling; the optimizer's state is not kept."""

    def __init__(self, model):
        self.config = model.config()
        self.seed, self.dtype = model.seed, model.dtype_name
        self.weights = [model.backend.to_numpy(w) for w in model.get_weights()]
        self.loss = {"name": model.loss.name, **model.loss.config()}
        self.optimizer = model.optimizer.config()
        self.epochs_trained = model.epochs_trained

    def rebuild(self, backend, device):
        model = NeuralNetwork(**self.config, backend=get_backend(backend, device), seed=self.seed, dtype=self.dtype)
        model.set_weights(self.weights)
        loss = dict(self.loss)
        model.compile(get_loss(loss.pop("name"), **loss), get_optimizer(self.optimizer))
        model.epochs_trained = self.epochs_trained
        return model


class NNClassifier(ClassifierMixin, _NNEstimator):
    """A fully connected network classifier (softmax cross-entropy), scikit-learn style.

    Args:
        hidden_sizes: units of each hidden layer, e.g. ``(100,)`` or ``(64, 32)``; ``()``
            is no hidden layer (multinomial logistic regression).
        activation: the hidden layers' activation: "relu", "tanh", "sigmoid", ... (any
            xpnn activation name).
        optimizer: "adam", "adamw", "sgd", "rmsprop" or "adagrad", or a dict of the
            optimizer's other settings, ``{"name": "sgd", "momentum": 0.9}``.
        lr: the learning rate.
        epochs: passes over the training data (fewer with early stopping).
        batch_size: samples per step; None trains on the whole set each step.
        validation_split: the fraction of the training data held out (shuffled,
            stratified by class) to report ``val_loss`` in ``history_`` and, with
            ``early_stopping``, to stop on; 0 holds out nothing.
        early_stopping: stop when ``val_loss`` (``loss`` when validation_split is 0) has not
            improved for ``patience`` epochs, and keep the best epoch's weights.
        patience: epochs without improvement before early stopping stops.
        backend: the xpnn backend ("numpy", "torch", "jax", "cupy", ...); None is the
            current default (``xpnn.use_backend``, ``XPNN_BACKEND``, else NumPy). A name
            rather than a Backend object keeps the estimator picklable.
        device: the backend's device ("cuda:1" for torch, 1 for cupy); None its default.
        seed: the random seed (scikit-learn's ``random_state``): initial weights, batch
            order, validation split. None: a new one at each fit.
        verbose: 0 silent, 1 a progress bar, 2 one line per epoch.

    Labels may be anything ``np.unique`` sorts (strings, non-contiguous integers): they are
    mapped to 0..K-1 in the order of ``classes_``, and back in ``predict``. Two classes
    get a two-output softmax, like any other number.

    Fitted attributes: ``classes_``, ``n_features_in_`` (and ``feature_names_in_`` when
    fit on a DataFrame with string column names), ``model_`` (the trained
    :class:`~xpnn.NeuralNetwork`), ``history_`` (per-epoch lists: "loss", "val_loss", ...)
    and ``n_iter_`` (epochs run).
    """

    _loss_name = "softmax_cross_entropy"

    def __init__(
        self,
        hidden_sizes=(100,),
        activation="relu",
        optimizer="adam",
        lr=1e-3,
        epochs=100,
        batch_size=32,
        validation_split=0.0,
        early_stopping=False,
        patience=10,
        backend=None,
        device=None,
        seed=0,
        verbose=0,
    ):
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.patience = patience
        self.backend = backend
        self.device = device
        self.seed = seed
        self.verbose = verbose

    def fit(self, X, y):
        """Train a new network on X (n_samples, n_features) and labels y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)  # continuous targets: "Unknown label type"
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__}.fit: y has one class only ({classes.tolist()[0]!r}); a classifier "
                f"needs at least 2 classes"
            )
        self.classes_ = classes
        labels = labels.reshape(-1).astype(np.int64)  # NumPy 2.0's return_inverse kept y's shape
        return self._train(X, labels, len(classes), stratify=labels)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        proba = self._outputs(X)
        return proba / proba.sum(axis=1, keepdims=True)  # float32 softmax rows, summing to 1 in float64

    def predict(self, X):
        """The most probable class of each sample, as labels of ``classes_``."""
        proba = self.predict_proba(X)  # first: unfitted, it raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]


class NNRegressor(RegressorMixin, _NNEstimator):
    """A fully connected network regressor, scikit-learn style.

    Takes the arguments of :class:`NNClassifier`, and ``loss``: "mse" (default), "mae" or
    "huber". y may be 1-D (n_samples,) or 2-D (n_samples, n_outputs); ``predict`` returns
    the same number of dimensions as the y given to ``fit``, as float64.

    The targets are used as given: a network learns best on targets of unit scale, so
    scale them too, e.g. ``TransformedTargetRegressor(NNRegressor(), transformer=
    StandardScaler())`` (as for scikit-learn's MLPRegressor).

    Fitted attributes: ``n_features_in_`` (and ``feature_names_in_``), ``n_outputs_``,
    ``model_``, ``history_`` and ``n_iter_``.
    """

    def __init__(
        self,
        hidden_sizes=(100,),
        activation="relu",
        optimizer="adam",
        lr=1e-3,
        epochs=100,
        batch_size=32,
        validation_split=0.0,
        early_stopping=False,
        patience=10,
        backend=None,
        device=None,
        seed=0,
        verbose=0,
        loss="mse",
    ):
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.patience = patience
        self.backend = backend
        self.device = device
        self.seed = seed
        self.verbose = verbose
        self.loss = loss

    def _loss(self):
        if not (isinstance(self.loss, str) and self.loss.lower() in REGRESSION_LOSSES):
            raise ValueError(
                f"{type(self).__name__}.fit: loss must be one of {list(REGRESSION_LOSSES)}, found {self.loss!r}"
            )
        return get_loss(self.loss.lower())

    def fit(self, X, y):
        """Train a new network on X (n_samples, n_features) and targets y (n_samples,) or
        (n_samples, n_outputs)."""
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True)
        self._y_1d = y.ndim == 1  # predict answers in the same shape
        targets = np.asarray(y, dtype=np.float32).reshape(y.shape[0], -1)
        self.n_outputs_ = targets.shape[1]
        return self._train(X, targets, self.n_outputs_)

    def predict(self, X):
        """Predicted targets: (n_samples,) if fit on a 1-D y, else (n_samples, n_outputs)."""
        out = self._outputs(X)
        return out.reshape(-1) if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6's spelling of the tag above
        return {"multioutput": True}
