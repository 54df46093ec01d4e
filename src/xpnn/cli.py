"""The ``xpnn`` command: train, evaluate, predict, info, and tune (in tune_cli.py).

Bad input gets one line on stderr and exit code 2, never a traceback (``run_command`` is
the one place that turns an exception into that line: every subcommand runs through
it); a failure that is not the input's (a bug) is one line too, exit code 1, and
``XPNN_DEBUG=1`` shows its traceback. Ctrl-C exits with 130. During ``xpnn train`` the
first Ctrl-C stops training after the current batch and the run is still saved; a second
one quits at once.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shlex
import signal
import sys
import threading
import time
import warnings

import numpy as np

from .callbacks import Callback
from .datasets.mnist import FASHION_MNIST_CLASSES

DATASETS = ("digits", "fashion-mnist", "mnist")
IMAGES_28 = ("fashion-mnist", "mnist")
CLASS_NAMES = {"fashion-mnist": FASHION_MNIST_CLASSES}  # on plots instead of the labels' numbers
# xpnn train's defaults where --hidden, --epochs, --batch-size are not given. For the 28x28
# sets, those of examples/fashion_mnist_mlp.py (784-128-10, 20 epochs of batch 128). On
# Fashion-MNIST (2026-11-29): test accuracy 0.8837 with the 10% validation hold-out, 0.8854
# (the example's, to the digit) with --validation-split 0; 0.8848 in batches of 32 (4x the steps).
TRAIN_DEFAULTS = {
    "28x28": {"hidden": [128], "epochs": 20, "batch_size": 128},
    "other": {"hidden": [256, 128], "epochs": 30, "batch_size": 32},
}
IMPUTE_CHOICES = ("none", "mean", "median", "most_frequent")
# --augment's largest shift in pixels: 2 on 28x28 images; 1 on the 8x8 digits, where 2
# pixels would be a quarter of the image
AUGMENT_SHIFT = {"digits": 1, "fashion-mnist": 2, "mnist": 2}
MIN_CSV_ROWS = 5  # 4 to train on (3 with the default 10% validation hold-out of at least one), 1 to test
MAX_CLASSES = 10_000  # a CSV label of 1e6 would otherwise build a million-output model
# What a run writes to its folder: --out refuses a folder holding any of them (--force replaces them)
PLOTS = ("curves.png", "confusion_matrix.png")
SAMPLES, N_SAMPLES = "samples.npy", 5  # a few test inputs, for the xpnn predict command train prints
RUN_FILES = ("model.safetensors", "metrics.json", "history.csv", SAMPLES, "model.onnx", *PLOTS)
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
MEMORY_HINTS = {
    "train": "try a smaller --batch-size, --hidden or data set",
    "predict": "try fewer inputs at a time",
    "evaluate": "try a smaller data set",
}


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def load_data(name, data_home=None, flatten=True, max_classes=None, missing=False, files=None):
    """((X_train, y_train), (X_test, y_test)) for a data set name, a CSV path or a data
    file (``files``: the parsed --labels, --x-key, --y-key); a CSV label that would make
    more than ``max_classes`` classes is an error naming its line. missing: a CSV's
    missing feature cells become NaN (else they are an error)."""
    from . import datasets
    from .data import files as data_files

    if data_files.is_data_file(name):
        return _load_file(name, files, flatten, max_classes, missing)

    if name == "digits":
        return datasets.load_digits(flatten=flatten)
    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(data_home=data_home, flatten=flatten)
    if name == "mnist":
        return datasets.load_mnist(data_home=data_home, flatten=flatten)
    if name.lower().endswith(".csv"):
        from .datasets.loaders import load_labelled_csv
        from .preprocessing import train_test_split

        X, y, lines = load_labelled_csv(name, missing=missing)
        if X.shape[0] < MIN_CSV_ROWS:
            raise UsageError(
                f"{name}: {X.shape[0]} data row{'s' if X.shape[0] != 1 else ''}; xpnn needs at least "
                f"{MIN_CSV_ROWS} (a 20% test split and a training split, which fit splits again for validation)"
            )
        too_big = np.flatnonzero(y >= max_classes) if max_classes is not None else []
        if len(too_big):
            i = int(too_big[0])
            raise UsageError(
                f"{name}, line {lines[i]}: label {y[i]} would make {y[i] + 1:,} classes; xpnn train "
                f"supports at most {max_classes:,} (labels 0 to {max_classes - 1:,})"
            )
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
        return (X_train, y_train), (X_test, y_test)
    raise UsageError(
        f"--data must be one of {', '.join(DATASETS)} or a path ending in .csv, .npy, .npz, .h5, .hdf5 "
        f"or .zarr, found {name!r}"
    )


def _load_file(name, files, flatten, max_classes, missing):
    """A data file's features (on disk, streamed in training) and labels, with the same
    random 20% test split (seed 0) that a CSV gets, as row views: nothing copied."""
    from .data import files as data_files

    if missing:
        raise UsageError(f"--impute fills the missing cells of CSV files; {name} is streamed from disk as it is")
    try:
        X, y = data_files.open_data(name, files.labels, files.x_key, files.y_key)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    if flatten and len(X.shape) != 2:
        raise UsageError(
            f"{name}: --model mlp needs one row of features per sample, (n, features); found shape "
            f"{tuple(X.shape)}: use --model cnn for (n, channels, height, width) images, or flatten the file"
        )
    if not flatten and len(X.shape) != 4:
        raise UsageError(f"{name}: --model cnn needs images (n, channels, height, width); found shape {tuple(X.shape)}")
    if max_classes is not None and y.size and y.max() >= max_classes:
        i = int(np.argmax(y >= max_classes))
        raise UsageError(
            f"{name}: label {y[i]} of sample {i} would make {y[i] + 1:,} classes; xpnn train supports at most "
            f"{max_classes:,} (labels 0 to {max_classes - 1:,})"
        )
    return data_files.split(X, y, test_size=0.2, seed=0)


def _build_model(args, sample_shape, n_classes):
    """The MLP (flat inputs) or the default CNN (images: (channels, height, width))."""
    from .architectures import NeuralNetwork, cnn

    if args.model == "cnn":
        if len(sample_shape) != 3:
            raise UsageError(
                f"--model cnn needs image data (digits, fashion-mnist, mnist), "
                f"found samples of shape {tuple(sample_shape)}; use --model mlp"
            )
        return cnn(tuple(sample_shape), n_classes, backend=args.backend, seed=args.seed)
    return NeuralNetwork(
        sample_shape[0],
        args.hidden,
        n_classes,
        activation=args.activation,
        init="he_uniform",
        backend=args.backend,
        seed=args.seed,
    )


def _resolve_defaults(args) -> None:
    """--hidden, --epochs and --batch-size not given: the data set's defaults (TRAIN_DEFAULTS)."""
    defaults = TRAIN_DEFAULTS["28x28" if args.data in IMAGES_28 else "other"]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, list(value) if isinstance(value, list) else value)


def _impute(args, X_train, X_test, say=True):
    """(X_train, X_test, metrics): missing cells (NaN) filled by a SimpleImputer fitted on
    the training split only (the test split's own statistics must not reach the model),
    and what was done, printed (if ``say``) and returned for metrics.json."""
    from .preprocessing import SimpleImputer

    missing_train, missing_test = np.isnan(X_train), np.isnan(X_test)
    n_train, n_test = int(missing_train.sum()), int(missing_test.sum())
    done = {"impute": args.impute, "imputed_cells": {"train": n_train, "test": n_test}}
    if not n_train + n_test:
        if say:
            print(f"xpnn: --impute {args.impute}: {args.data} has no missing cells; nothing imputed")
        done["_fitted"] = SimpleImputer(strategy=args.impute).fit(X_train)  # for gaps in later inputs
        return X_train, X_test, done
    empty = np.flatnonzero(missing_train.all(axis=0))
    if empty.size:  # columns counted as in the file: from 1, the label being the last one
        raise UsageError(
            f"{args.data}: column {empty[0] + 1} has no value in any of the {X_train.shape[0]} samples "
            f"of the training split, so --impute {args.impute} has nothing to fill it from; "
            f"remove that column"
        )
    imputer = SimpleImputer(strategy=args.impute).fit(X_train)
    X_train, X_test = imputer.transform(X_train), imputer.transform(X_test)
    columns = np.flatnonzero(missing_train.any(axis=0) | missing_test.any(axis=0)) + 1
    shown = ", ".join(map(str, columns[:10])) + (f" and {columns.size - 10} more" if columns.size > 10 else "")
    what = {"mean": "mean", "median": "median", "most_frequent": "most frequent value"}[args.impute]
    if say:
        print(
            f"xpnn: {args.data}: imputed {n_train + n_test} missing cells ({n_train} in the training split, {n_test} "
            f"in the test split; column{'s' if columns.size > 1 else ''} {shown}) with each column's {what} "
            f"over the training split (--impute {args.impute})"
        )
    done["imputer"] = imputer.to_dict()  # the fill values, to prepare new inputs the same way
    done["_fitted"] = imputer
    return X_train, X_test, done


def _augmenter(args, X_train):
    """--augment: the Augment callback for these images (flat ones for the MLP)."""
    from .augmentation import Augment

    shape = None
    if X_train.ndim == 2:  # the MLP's flattened square images
        side = round(X_train.shape[1] ** 0.5)
        shape = (side, side)
    return Augment(shift=AUGMENT_SHIFT[args.data], seed=args.seed, image_shape=shape)


def _check_train_args(args) -> bool:
    """Check train's options before any work; True on the rank that prints and writes."""
    _resolve_defaults(args)
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{flag} must be a positive integer, found {value}")
    if args.augment and args.data not in AUGMENT_SHIFT:
        raise UsageError(f"--augment needs image data ({', '.join(DATASETS)}), found --data {args.data}")
    if args.export_onnx:  # fail before training, not after
        from .onnx import require_onnx

        try:
            require_onnx()
        except ImportError as exc:
            raise UsageError(str(exc)) from None
    root = True
    if args.distributed:  # one process per rank under mpiexec; rank 0 prints and writes
        try:
            from .distributed import rank_backend, require_mpi

            root = require_mpi().COMM_WORLD.Get_rank() == 0  # mpi4py present, MPI started
            args.backend = rank_backend(args.backend, device=args.device)  # on GPUs: one per rank of a node
        except ImportError as exc:
            raise UsageError(str(exc)) from None
    return root


def _train_data(args, root: bool):
    """Load --data, impute it if asked; the splits, the imputation's report and its imputer."""
    from .datasets.loaders import MissingValueError

    try:
        (X_train, y_train), (X_test, y_test) = load_data(
            args.data,
            args.data_home,
            flatten=args.model == "mlp",
            max_classes=MAX_CLASSES,
            missing=args.impute != "none",
            files=args,
        )
    except MissingValueError as exc:
        if exc.column is not None and exc.column == exc.width:  # the label: never imputed
            raise
        raise UsageError(
            f"{exc}; pass --impute mean, median or most_frequent to fill missing feature cells from the training split"
        ) from None
    imputed: dict = {}
    if args.impute != "none":  # every rank imputes the same way; rank 0 says so
        X_train, X_test, imputed = _impute(args, X_train, X_test, say=root)
    imputer = imputed.pop("_fitted", None)
    present = np.unique(y_train)
    if present.size < 2:
        raise UsageError(
            f"{args.data}: every training sample has label {present[0]}; a classifier needs at least two classes"
        )
    return (X_train, y_train), (X_test, y_test), imputed, imputer


def _fit(args, model, parallel, X_train, y_train, out, callbacks):
    """Fit, stopping cleanly on Ctrl-C; the history, the seconds taken and whether it was interrupted."""
    from .callbacks import CSVLogger

    # Not under MPI: the ranks could stop at different batches and wait in mismatched
    # collectives. signal.signal works only in the main thread.
    stopper = None
    if not args.distributed and threading.current_thread() is threading.main_thread():
        stopper = _StopOnInterrupt(model)
    start = time.perf_counter()
    with stopper or contextlib.nullcontext():
        history = (parallel or model).fit(
            X_train,
            y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_split=args.validation_split,
            verbose=args.verbose,
            callbacks=[
                CSVLogger(os.path.join(out, "history.csv")),
                *callbacks,
                *([stopper] if stopper else []),
            ],
        )
    seconds = time.perf_counter() - start
    return history, seconds, bool(stopper and stopper.requested)


def _train_metrics(args, model, parallel, test, seconds, interrupted, augment, imputed) -> dict:
    """The contents of metrics.json."""
    return {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "epochs": model.epochs_trained,
        "seconds": round(seconds, 3),
        "backend": model.backend.name,
        "seed": args.seed,
        "data": args.data,
        "model": args.model,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "params": model.count_params(),
        "world_size": parallel.world_size if parallel else 1,
        "interrupted": interrupted,
        "augment": (
            {"shift": augment[0].shift, "flip": augment[0].flip, "noise": augment[0].noise} if augment else None
        ),
        **(imputed or {"impute": "none"}),
    }


def _plots(args, model, history, X_test, y_test, out) -> tuple:
    """Write curves.png and confusion_matrix.png: (their names, ""), or ([], how to get
    them) where matplotlib is missing."""
    from .metrics import confusion_matrix
    from .plotting import MatplotlibMissing

    try:
        from .plotting import plot_confusion_matrix, plot_history

        curves = plot_history(history, os.path.join(out, "curves.png"), title=args.data)
        cm = confusion_matrix(y_test, model.predict_classes(X_test))
        names = CLASS_NAMES.get(args.data)
        matrix = plot_confusion_matrix(
            cm,
            class_names=names if names is not None and len(names) == cm.shape[0] else None,
            path=os.path.join(out, "confusion_matrix.png"),
            title=f"{args.data}: test set",
        )
        import matplotlib.pyplot as plt  # present: the plots above needed it

        plt.close(curves)  # written to their files: free them
        plt.close(matrix)
        return list(PLOTS), ""
    except MatplotlibMissing as exc:  # the run still counts; its last lines say how to get the plots
        return [], str(exc)


def cmd_train(args) -> int:
    from .io import atomic_write, save

    root = _check_train_args(args)
    if root:
        _refuse_previous_run(args)  # before the work, not after
    (X_train, y_train), (X_test, y_test), imputed, imputer = _train_data(args, root)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = _build_model(args, X_train.shape[1:], n_classes)
    model.compile("softmax_cross_entropy", _optimizer(args), metrics=["accuracy"])
    if imputer is not None:  # saved with the model: evaluate and predict fill gaps the same way
        model.preprocessing = [imputer]
    out = _make_out(args) if root else None
    parallel = None
    if args.distributed:
        from .distributed import DataParallel

        parallel = DataParallel(model)
        out = parallel.comm.bcast(out, root=0)  # the folder rank 0 made
        args.verbose = args.verbose if root else 0
    assert out is not None  # made here on rank 0 (the only rank unless distributed), broadcast to the others
    if root:
        _warn_missing_classes(args.data, n_classes, y_train, y_test)
    if args.verbose:
        print(
            f"xpnn: {args.data}: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
            f"{n_classes} classes; {model.count_params():,} params on backend {model.backend}"
        )
    augment = [_augmenter(args, X_train)] if args.augment else []
    logged = _tensorboard(args, root)
    if augment and args.verbose:
        print(
            f"xpnn: augmenting the training images: random shifts of up to {augment[0].shift} "
            f"pixel{'s' if augment[0].shift > 1 else ''} (seed {args.seed})"
        )
    history, seconds, interrupted = _fit(args, model, parallel, X_train, y_train, out, [*augment, *logged])
    test = model.evaluate(X_test, y_test)
    if not root:  # every rank holds the same model: rank 0 writes it
        return 0
    save(model, os.path.join(out, "model.safetensors"), notes=_train_notes(args, X_train))
    metrics = _train_metrics(args, model, parallel, test, seconds, interrupted, augment, imputed)
    atomic_write(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2).encode())
    _write_samples(os.path.join(out, SAMPLES), X_test[:N_SAMPLES])
    written = ["model.safetensors", "history.csv", "metrics.json", SAMPLES]
    if args.export_onnx:  # outputs class probabilities, as xpnn predict does
        from .onnx import export

        export(model, os.path.join(out, "model.onnx"), input_shape=X_train.shape[1:], probabilities=True)
        written.append("model.onnx")
    plots, no_plots = _plots(args, model, history, X_test, y_test, out)
    _report_train(args, model, test, seconds, written + plots, out)
    _next_steps(args, out, y_test[:N_SAMPLES], no_plots)
    return _report_interrupted(args, model, out) if interrupted else 0


def _report_train(args, model, test, seconds, written, out) -> None:
    """Print the run's results and where they went."""
    print(
        f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}, "
        f"{model.epochs_trained} epochs in {seconds:.1f} s on {model.backend}"
    )
    print(f"wrote {', '.join(written)} to {out}")


def _report_interrupted(args, model, out) -> int:
    print(
        f"xpnn train: interrupted after {model.epochs_trained} of {args.epochs} epochs; "
        f"the model as it was is in {out}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def _train_notes(args, X_train) -> dict:
    """What the model file records about its data, for evaluate's and predict's errors."""
    return {"data": args.data, "data_flags": _data_flags(args), "input_shape": list(X_train.shape[1:])}


def _data_flags(args) -> list:
    """The flags that load this run's data, as evaluate takes them (defaults left out)."""
    flags = ["--data", args.data]
    for flag, value, default in (
        ("--data-home", args.data_home, None),
        ("--labels", args.labels, None),
        ("--x-key", args.x_key, "X"),
        ("--y-key", args.y_key, "y"),
    ):
        if value != default:
            flags += [flag, value]
    return flags


def _write_samples(path, X) -> None:
    """A few test inputs as .npy, atomically: what the predict command train prints reads."""
    from .io import atomic_write

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(X), allow_pickle=False)
    atomic_write(path, buffer.getvalue())


def _next_steps(args, out, labels, no_plots) -> None:
    """The commands to run next on the model just written, and how to get the plots if missing."""
    model = os.path.join(out, "model.safetensors")
    print("next:")
    print(f"  xpnn evaluate {shlex.join([model, *_data_flags(args)])}")
    shown = " ".join(str(int(label)) for label in labels)
    samples = os.path.join(out, SAMPLES)
    print(f"  xpnn predict {shlex.join([model, samples])}   # {len(labels)} test samples, labels {shown}")
    if no_plots:
        print(f"  no {' or '.join(PLOTS)}: {no_plots}; then train again")


def _tensorboard(args, root: bool) -> list:
    """--tensorboard DIR: the TensorBoard callback (rank 0 only), with the run's options as
    its hyperparameters; [] without the flag."""
    if not args.tensorboard or not root:
        return []
    from .tensorboard import TensorBoard

    try:
        options = ("data", "model", "hidden", "activation", "epochs", "batch_size", "optimizer", "lr", "seed")
        return [TensorBoard(args.tensorboard, hparams={k: getattr(args, k) for k in options})]
    except ImportError as exc:
        raise UsageError(f"--tensorboard: {exc}") from None


def _previous_run(folder) -> list:
    """The files of an earlier run in ``folder`` (none if it is missing or not a folder)."""
    if not os.path.isdir(folder):
        return []
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(folder, name))]


def _refuse_previous_run(args) -> None:
    """--out must not mix a new run with an old one (an old model beside a new history),
    and must be a folder (or not exist yet)."""
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder; choose a folder for the run's files")
    found = _previous_run(args.out) if args.out else []
    if found and not args.force:
        raise UsageError(
            f"--out {args.out} already holds a previous run ({', '.join(found)}); "
            f"choose another folder, or pass --force to replace that run"
        )


def _make_out(args) -> str:
    """The run's folder, made now: --out (emptied of an old run's files, with --force), or
    a new runs/<timestamp>."""
    if not args.out:
        return _new_run_folder("runs")
    _refuse_previous_run(args)
    os.makedirs(args.out, exist_ok=True)
    for name in _previous_run(args.out):  # --force: no file of the old run stays beside the new ones
        os.remove(os.path.join(args.out, name))
    return args.out


def _new_run_folder(parent, stamp=None) -> str:
    """``parent/<stamp>``, or ``<stamp>-2``, ``-3``, ... if taken: made with os.mkdir, which
    fails if the folder exists, so two runs started in the same second get one each."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(parent, exist_ok=True)
    n = 1
    while True:
        path = os.path.join(parent, stamp if n == 1 else f"{stamp}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            n += 1
            continue
        return path


def _warn_missing_classes(data, n_classes, *labels) -> None:
    """Classes no sample has still get an output: say so (labels 0, 1, 5 make 6 classes)."""
    missing = np.setdiff1d(np.arange(n_classes), np.concatenate(labels))
    if missing.size:
        shown = ", ".join(str(c) for c in missing[:5]) + (f" and {missing.size - 5} more" if missing.size > 5 else "")
        print(
            f"xpnn train: warning: {data}: no sample has label {shown}; the model has {n_classes} outputs "
            f"anyway (labels 0 to {n_classes - 1})",
            file=sys.stderr,
        )


class _StopOnInterrupt(Callback):
    """Around fit: the first Ctrl-C (SIGINT) asks training to stop after the current batch;
    a second one raises KeyboardInterrupt at once. The previous handler is restored after.

    Also fit's callback: fit sets ``model.stop_training = False`` as it starts, so a Ctrl-C
    that came before is applied again once training begins."""

    def __init__(self, model):
        self.model, self.requested = model, False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGINT, self.previous)

    def on_train_begin(self):
        if self.requested:
            self.model.stop_training = True

    def _handle(self, signum, frame):
        self.requested = True
        self.model.stop_training = True  # the Trainer checks it after every batch
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # stderr: the progress bar writes stdout, which this handler may have interrupted
        print(
            "xpnn train: stopping after this batch; the model will be saved (Ctrl-C again to quit now, saving nothing)",
            file=sys.stderr,
            flush=True,
        )


def _optimizer(args):
    from .optimizers import get_optimizer

    return get_optimizer(args.optimizer, lr=args.lr) if args.lr is not None else get_optimizer(args.optimizer)


def _load_model(args):
    from .datasets.loaders import check_regular_file
    from .io import load

    check_regular_file(args.model_path, "an xpnn model file (.safetensors)")
    return load(args.model_path, backend=args.backend)


def _prepare(model, X, source):
    """X through the preprocessing saved with the model (``xpnn train --impute``'s imputer),
    then checked: a gap the model has no imputer for is an error naming where it is."""
    for step in model.preprocessing or []:
        if X.ndim != 2 or X.shape[1] != step.n_features_in_:
            raise UsageError(
                f"{source}: samples of shape {tuple(X.shape[1:])}, but the model's {type(step).__name__} was "
                f"fitted on {step.n_features_in_} features"
            )
        X = np.asarray(step.transform(X), dtype=np.float32)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        raise UsageError(
            f"{source}: sample {bad[0][0]} (counting from 0) holds NaN or inf; expected finite numbers "
            f"(a model trained with xpnn train --impute fills missing cells itself)"
        )
    return X


def _has_imputer(model) -> bool:
    return any(type(step).__name__ == "SimpleImputer" for step in model.preprocessing or [])


def cmd_evaluate(args) -> int:
    model = _load_model(args)
    if model.loss is None:
        raise UsageError(f"{args.model_path}: the model was saved before compile; nothing to evaluate with")
    flatten = not any(type(layer).__name__.startswith("Conv") for layer in model.layers)
    imputer = _has_imputer(model)
    _, (X_test, y_test) = load_data(args.data, args.data_home, flatten=flatten, missing=imputer, files=args)
    _check_model_takes(args, model, X_test, f"--data {args.data}")
    if model.preprocessing:
        X_test = _prepare(model, np.asarray(X_test, dtype=np.float32), args.data)
    result = model.evaluate(X_test, y_test)
    print(json.dumps({k: round(v, 6) for k, v in result.items()}))
    return 0


def _trained_on(path) -> dict:
    """What xpnn train noted in the model file about its data ({} for a file without
    notes, or with notes this xpnn does not understand): data, data_flags, input_shape."""
    from .io import read_notes

    notes = read_notes(path)
    shape, flags = notes.get("input_shape"), notes.get("data_flags")
    well_formed = (
        isinstance(notes.get("data"), str)
        and isinstance(shape, list)
        and all(type(d) is int for d in shape)
        and isinstance(flags, list)
        and all(isinstance(f, str) for f in flags)
    )
    return notes if well_formed else {}


def _check_model_takes(args, model, X, given) -> None:
    """Samples the model cannot take (most likely another data set's): an error naming the
    data set it was trained on and the flags that load it where the model file says,
    else a hint. ``given``: where X came from, for the message."""
    notes = _trained_on(args.model_path)
    if notes and list(X.shape[1:]) != notes["input_shape"]:
        _refuse_sample_shape(args, notes, X, given)
    if not X.shape[0]:
        return
    try:  # one sample through the model: a shape it does not take fails here, by the layer's message
        model.predict(X[:1], allow_nonfinite=True)  # NaN and inf are checked, and reported, later
    except ValueError as exc:
        raise UsageError(f"{given}: {_one_line(exc)}; {_data_hint(args, notes)}") from None


def _refuse_sample_shape(args, notes, X, given) -> None:
    trained = f"{args.model_path} was trained on {notes['data']} (samples of shape {tuple(notes['input_shape'])})"
    found = f"{given} holds samples of shape {tuple(X.shape[1:])}"
    if args.command == "evaluate":
        raise UsageError(f"{trained}, but {found}; evaluate it on its data: {shlex.join(notes['data_flags'])}")
    raise UsageError(f"{trained}, but {found}; give it samples like those of {notes['data']}")


def _data_hint(args, notes) -> str:
    """What to pass instead, after a shape error that another data set than the model's causes."""
    if notes:
        trained = f"{args.model_path} was trained on {notes['data']}"
        if args.command == "evaluate":
            return f"{trained}: evaluate it on its data: {shlex.join(notes['data_flags'])}"
        return f"{trained}: give it samples like those of {notes['data']}"
    what = "the --data" if args.command == "evaluate" else "samples like those of the data set"
    return (
        f"{args.model_path} does not record the data it was trained on (files xpnn train writes now do): "
        f"give it {what} it was trained on ({', '.join(DATASETS)}, a .csv or a data file)"
    )


def _read_inputs(path, x_key="X", missing=False):
    """The features to predict: a CSV read whole, a data file opened on disk (predict
    streams it a batch at a time; NaN or inf is an error naming the sample). missing: a
    CSV's missing cells are kept as NaN (the model's imputer fills them)."""
    from .data import files as data_files
    from .datasets.loaders import check_regular_file

    if data_files.is_data_file(path):
        if not path.endswith(".zarr"):  # a zarr store is a folder
            check_regular_file(path, "a data file of inputs")
        try:
            X = data_files.open_features(path, x_key)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        if len(X.shape) == 0:
            raise UsageError(f"{path}: expected one sample per row, found a single value")
        return X
    if path.endswith(".csv"):
        check_regular_file(path, "a CSV file of inputs")
        return _read_feature_csv(path, missing)
    raise UsageError(f"INPUT must be a .csv, .npy, .npz, .h5, .hdf5 or .zarr file, found {path!r}")


def _read_feature_csv(path, missing=False):
    """Features only (no label column): float32 (n, columns), read as ``xpnn train`` reads
    a CSV (a first row without numbers is a header; errors name the line)."""
    from .datasets.loaders import check_float32, read_numeric_csv

    table, lines = read_numeric_csv(path, missing=missing)
    check_float32(table, path, lines)
    return table.astype(np.float32)


def _check_predict_out(args) -> None:
    """--out must not overwrite the input or the model, nor another file without --force."""
    out = args.out
    if not os.path.exists(out):
        return
    for what, path in (("INPUT", args.input), ("MODEL", args.model_path)):
        if os.path.exists(path) and os.path.samefile(out, path):
            raise UsageError(
                f"--out {out} is the {what} file {path}; writing the predictions there would "
                f"destroy it: choose another file"
            )
    if not args.force:
        raise UsageError(f"--out {out} already exists; choose another file, or pass --force to overwrite it")


def cmd_predict(args) -> int:
    from .io import atomic_write

    if args.out:
        _check_predict_out(args)  # before the work, not after
    model = _load_model(args)
    X = _read_inputs(args.input, args.x_key, missing=_has_imputer(model))
    _check_model_takes(args, model, X, args.input)
    if model.preprocessing:  # xpnn train --impute's imputer: gaps filled as in training
        X = _prepare(model, np.asarray(X, dtype=np.float32), args.input)
    outputs = model.predict(X)
    width = outputs.shape[1] if outputs.ndim == 2 else 1
    if is_classifier(model):
        labels = model.predict_classes(X)
        rows = [[int(label), *[f"{p:.6f}" for p in np.atleast_1d(row)]] for label, row in zip(labels, outputs)]
        header = ["label", *[f"p{i}" for i in range(width)]]
    else:  # a regressor's outputs are values: no labels, no probabilities
        rows = [[f"{v:.6g}" for v in np.atleast_1d(row)] for row in outputs.reshape(outputs.shape[0], -1)]
        header = [f"y{i}" for i in range(width)]
    if args.out:
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write(args.out, text.getvalue().encode("utf-8"))  # never half a file
        print(f"wrote {len(rows)} predictions to {args.out}")
    else:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
    return 0


def is_classifier(model) -> bool:
    """Whether the model's loss makes it a classifier (its outputs are class scores); an
    uncompiled model (no loss) is not one."""
    return model.loss is not None and model.loss.classifies


def cmd_info(args) -> int:
    from . import __version__
    from .backends import available_backends

    print(f"xpnn {__version__}")
    print(f"numpy {np.__version__}")
    for name, found in available_backends().items():
        if isinstance(found, str):
            print(f"backend {name}: unavailable ({found})")
        else:
            print(f"backend {name}: available, devices {', '.join(found)}")
    return 0


def _defaults_help(key) -> str:
    """The per-data-set default of a train option, for --help."""

    def show(v):
        return " ".join(map(str, v)) if isinstance(v, list) else str(v)

    return (
        f"default: {show(TRAIN_DEFAULTS['28x28'][key])} for {' and '.join(IMAGES_28)}, as "
        f"examples/fashion_mnist_mlp.py; {show(TRAIN_DEFAULTS['other'][key])} for digits and CSV files"
    )


def build_parser() -> argparse.ArgumentParser:
    """The `xpnn` command's parser: every subcommand with its flags, each with its help."""
    p = argparse.ArgumentParser(
        prog="xpnn", description="Neural networks from scratch on NumPy, CuPy or any array-API library"
    )
    sub = p.add_subparsers(dest="command", required=True)

    _train_parser(sub)
    _evaluate_parser(sub)
    _predict_parser(sub)

    i = sub.add_parser("info", help="version, and each backend with its devices or why it is unavailable")
    i.set_defaults(func=cmd_info)

    from .tune_cli import add_parser as add_tune_parser

    add_tune_parser(sub)  # xpnn tune: its own module
    for command in sub.choices.values():  # main reports a flag it does not know with this usage
        command.set_defaults(command_parser=command)
    return p


def _train_parser(sub) -> None:
    """xpnn train and its options."""
    t = sub.add_parser("train", help="train a network and write model, history, metrics and plots")
    _train_data_arguments(t)
    _train_run_arguments(t)
    t.set_defaults(func=cmd_train)


def _train_data_arguments(t) -> None:
    """xpnn train's data, model and preprocessing options."""
    _data_arguments(
        t,
        "digits (bundled), fashion-mnist, mnist, a PATH.csv (last column: label), or a file streamed "
        "from disk: X.npy (with --labels y.npy), .npz, .h5/.hdf5 or .zarr (arrays --x-key and --y-key)",
    )
    t.add_argument(
        "--model",
        default="mlp",
        choices=("mlp", "cnn"),
        help="mlp: dense layers on flattened samples (default); cnn: the default convolutional network, for images",
    )
    t.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help=f"hidden layer sizes of the MLP ({_defaults_help('hidden')})",
    )
    from .layers.activations import ACTIVATIONS

    t.add_argument(
        "--activation",
        default="relu",
        help=f"the hidden layers' activation of the MLP: {', '.join(sorted(ACTIVATIONS))} (default: relu)",
    )
    t.add_argument(
        "--epochs", type=int, default=None, help=f"passes over the training set ({_defaults_help('epochs')})"
    )
    t.add_argument("--batch-size", type=int, default=None, help=f"samples per step ({_defaults_help('batch_size')})")
    t.add_argument(
        "--impute",
        default="none",
        choices=IMPUTE_CHOICES,
        help="fill missing feature cells of a CSV file (empty, NA, nan) with the column's mean, median "
        "or most frequent value, learnt on the training split only (default: none: a missing "
        "cell is an error naming its line and column); a missing label is always an error",
    )
    t.add_argument(
        "--augment",
        action="store_true",
        help="shift each training image by a random 0 to 2 pixels (1 for the 8x8 digits) each way "
        "at every step, with --model mlp or cnn; no flips (digits must not be mirrored)",
    )


def _train_run_arguments(t) -> None:
    """xpnn train's optimizer, backend, output and run options."""
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    from .optimizers import OPTIMIZERS

    t.add_argument(
        "--optimizer", default="adam", help=f"{', '.join(OPTIMIZERS)} (default: adam, with --lr or its own rate)"
    )
    t.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="fraction of the training split held out for validation (default: 0.1; 0 trains on all "
        "of it, as the examples do)",
    )
    t.add_argument("--backend", default=None, help="numpy (default), cupy, torch, jax or array_api_strict")
    t.add_argument(
        "--device",
        default=None,
        help='the backend\'s device: "cuda", "cuda:1", "mps", "cpu" (default: the library\'s default)',
    )
    t.add_argument(
        "--seed", type=int, default=0, help="seeds the weights, the shuffling and the augmentation (default: 0)"
    )
    t.add_argument(
        "--out",
        default=None,
        help="output folder (default: a new runs/<timestamp>); one holding a previous run is refused without --force",
    )
    t.add_argument("--force", action="store_true", help="replace the previous run in --out (its files are deleted)")
    t.add_argument(
        "--verbose",
        type=int,
        default=1,
        help="0: results only; 1: a progress bar on a terminal, else a line per epoch (default); 2: a line per epoch",
    )
    t.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="also write TensorBoard logs (loss, metrics, lr per epoch; the run's options in the HParams "
        "view) to DIR: tensorboard --logdir DIR (needs tensorboardX)",
    )
    t.add_argument(
        "--export-onnx",
        action="store_true",
        help="also write model.onnx (outputs class probabilities; needs the onnx package)",
    )
    t.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training over MPI: mpiexec -n 2 xpnn train --distributed ... "
        "(--batch-size is the global batch, split over the ranks; needs mpi4py)",
    )


def _evaluate_parser(sub) -> None:
    """xpnn evaluate and its options."""
    e = sub.add_parser("evaluate", help="loss and metrics of a saved model on a data set's test split")
    e.add_argument("model_path", metavar="MODEL", help="a model file written by xpnn train (model.safetensors)")
    _data_arguments(
        e,
        "the data set the model was trained on, as xpnn train's --data (default: digits); evaluates "
        "the same test split (20%% of a CSV or data file, seed 0) train reported",
    )
    _backend_arguments(e)
    e.set_defaults(func=cmd_evaluate)


def _predict_parser(sub) -> None:
    """xpnn predict and its options."""
    r = sub.add_parser(
        "predict", help="class probabilities and labels for inputs in a .csv, .npy, .npz, .h5/.hdf5 or .zarr file"
    )
    r.add_argument("model_path", metavar="MODEL", help="a model file written by xpnn train (model.safetensors)")
    r.add_argument(
        "input",
        metavar="INPUT",
        help="the samples, one per row, without labels: a .csv (a first row without numbers is a header), "
        ".npy, .npz, .h5/.hdf5 or .zarr file (its array --x-key)",
    )
    r.add_argument(
        "--out",
        default=None,
        help="write predictions to this CSV (default: stdout); an existing file is refused without --force",
    )
    r.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    r.add_argument("--x-key", default="X", help="the features' array in an .npz, .h5/.hdf5 or .zarr INPUT (default X)")
    _backend_arguments(r)
    r.set_defaults(func=cmd_predict)


def _backend_arguments(parser) -> None:
    """--backend and --device of evaluate and predict."""
    parser.add_argument("--backend", default=None, help="numpy (default), cupy, torch, jax or array_api_strict")
    parser.add_argument(
        "--device",
        default=None,
        help='the backend\'s device: "cuda", "cuda:1", "mps", "cpu" (default: the library\'s default)',
    )


def _data_arguments(parser, data_help: str) -> None:
    """--data (described by ``data_help``), --data-home, and where a data file's features and
    labels are: --labels, --x-key, --y-key."""
    parser.add_argument("--data", default="digits", help=data_help)
    parser.add_argument("--data-home", default=None, help="folder holding the IDX files of fashion-mnist/mnist")
    parser.add_argument("--labels", default=None, help="with --data X.npy: the labels' .npy (memory-mapped too)")
    parser.add_argument("--x-key", default="X", help="the features' array in an .npz, .h5/.hdf5 or .zarr (default X)")
    parser.add_argument("--y-key", default="y", help="the labels' array in an .npz, .h5/.hdf5 or .zarr (default y)")


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would print the top-level usage: show the subcommand's, whose flags these are not
        given = sys.argv[1:] if argv is None else list(argv)
        before = given[: given.index(args.command)] if args.command in given else []
        (parser if set(unknown) & set(before) else args.command_parser).error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    return run_command(args, args.func)


# What bad input raises (files, arguments, data): one line, exit code 2. ArithmeticError:
# an overflow in a conversion; csv.Error: a malformed CSV; UnicodeError is a ValueError.
INPUT_ERRORS = (UsageError, ValueError, TypeError, OSError, RuntimeError, KeyError, ArithmeticError, csv.Error)
EXIT_BAD_INPUT, EXIT_BUG = 2, 1


def run_command(args, func) -> int:
    """Run ``func(args)`` (a subcommand) and return its exit code; every exception becomes
    one line on stderr: bad input (INPUT_ERRORS) exit 2, out of memory exit 2 with a
    hint, Ctrl-C 130, anything else (a bug) exit 1, with the traceback only under
    XPNN_DEBUG=1. ``args.command`` names the subcommand in the message; ``args.backend``
    and ``args.device`` are resolved first, so a bad name or device fails before any work."""
    try:
        if hasattr(args, "backend") and not getattr(args, "distributed", False):
            args.backend = _resolve_backend(args.backend, getattr(args, "device", None))
        with warnings.catch_warnings():
            # NumPy's overflow warnings print source lines: the errors that follow say it in one
            warnings.filterwarnings("ignore", category=RuntimeWarning, module="numpy")
            return func(args)
    except INPUT_ERRORS as exc:
        return _fail(args, _one_line(exc), EXIT_BAD_INPUT)
    except MemoryError as exc:  # NumPy's says how much it tried to allocate
        detail = f" ({exc})" if str(exc) else ""
        return _fail(
            args, f"out of memory{detail}; {MEMORY_HINTS.get(args.command, 'try a smaller input')}", EXIT_BAD_INPUT
        )
    except KeyboardInterrupt:  # a second Ctrl-C in train, or any in the other commands
        return _fail(args, "interrupted (Ctrl-C)", EXIT_INTERRUPTED, "")
    except Exception as exc:
        if os.environ.get("XPNN_DEBUG") == "1":
            raise
        return _fail(
            args,
            f"{type(exc).__name__}: {_one_line(exc)} (an xpnn bug, not your input: please report it; "
            f"XPNN_DEBUG=1 shows the traceback)",
            EXIT_BUG,
            "internal error: ",
        )


def _one_line(exc) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[1:-1] if isinstance(exc, KeyError) and text.startswith("'") else text


def _resolve_backend(name, device):
    """The Backend for --backend and --device; --device alone applies to the default
    backend, and an error says which that is."""
    from .backends import get_backend

    if device is None or name is not None:
        return get_backend(name, device)
    default = get_backend(None)
    try:
        return get_backend(default.name, device)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(
            f"--device {device} applies to the backend of --backend, which is not given, so to the default "
            f"backend {default.name!r} ({exc}); pass --backend too, e.g. --backend torch --device {device}"
        ) from None


def _fail(args, message: str, code: int, kind: str = "error: ") -> int:
    """One line on stderr, and the exit code; under MPI, end the other ranks too."""
    print(f"xpnn {args.command}: {kind}{message}", file=sys.stderr)
    if getattr(args, "distributed", False):
        _abort_other_ranks(code)
    return code


def _abort_other_ranks(code: int) -> None:
    """End every rank of an MPI job: the others may wait in a collective for this one forever."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized() and mpi.COMM_WORLD.Get_size() > 1:
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    # python -m xpnn.cli: run the importable module, not this __main__ copy, so that the
    # commands in other modules (xpnn tune) raise the UsageError that main catches
    from xpnn.cli import main as _main

    sys.exit(_main())
