"""The ``xpnn`` command: train, evaluate, predict, info.

Bad input gets one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

DATASETS = ("digits", "fashion-mnist", "mnist")


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def _load_data(name, data_home=None, flatten=True):
    """((X_train, y_train), (X_test, y_test)) for a data set name or a CSV path."""
    from . import datasets

    if name == "digits":
        return datasets.load_digits(flatten=flatten)
    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(data_home=data_home, flatten=flatten)
    if name == "mnist":
        return datasets.load_mnist(data_home=data_home, flatten=flatten)
    if name.lower().endswith(".csv"):
        from .preprocessing import train_test_split

        X, y = datasets.load_csv(name)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
        return (X_train, y_train), (X_test, y_test)
    raise UsageError(f"--data must be one of {', '.join(DATASETS)} or a path ending in .csv, found {name!r}")


def _build_model(args, sample_shape, n_classes):
    """The MLP (flat inputs) or the default CNN (images: (channels, height, width))."""
    from .architectures import NeuralNetwork, cnn

    if args.model == "cnn":
        if len(sample_shape) != 3:
            raise UsageError(f"--model cnn needs image data (digits, fashion-mnist, mnist), "
                             f"found samples of shape {tuple(sample_shape)}; use --model mlp")
        return cnn(tuple(sample_shape), n_classes, backend=args.backend, seed=args.seed)
    return NeuralNetwork(sample_shape[0], args.hidden, n_classes, activation=args.activation,
                         init="he_uniform", backend=args.backend, seed=args.seed)


def cmd_train(args) -> int:
    from .callbacks import CSVLogger
    from .metrics import confusion_matrix

    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{flag} must be a positive integer, found {value}")
    if args.export_onnx:  # fail before training, not after
        from .onnx import require_onnx

        try:
            require_onnx()
        except ImportError as exc:
            raise UsageError(str(exc)) from None
    parallel, root = None, True
    if args.distributed:  # one process per rank under mpiexec; rank 0 prints and writes
        try:
            from .distributed import DataParallel, rank_backend, require_mpi

            require_mpi()  # mpi4py present, MPI started
            args.backend = rank_backend(args.backend, device=args.device)  # on GPUs: one per rank of a node
        except ImportError as exc:
            raise UsageError(str(exc)) from None
    (X_train, y_train), (X_test, y_test) = _load_data(args.data, args.data_home, flatten=args.model == "mlp")
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    model = _build_model(args, X_train.shape[1:], n_classes)
    model.compile("softmax_cross_entropy", _optimizer(args), metrics=["accuracy"])
    if args.distributed:
        parallel = DataParallel(model)
        root = parallel.is_root
        out = parallel.comm.bcast(out, root=0)  # the timestamp of rank 0
        args.verbose = args.verbose if root else 0
    if root:
        os.makedirs(out, exist_ok=True)
    if args.verbose:
        print(f"xpnn: {args.data}: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
              f"{n_classes} classes; {model.count_params():,} params on backend {model.backend}")
    start = time.perf_counter()
    history = (parallel or model).fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                                      validation_split=args.validation_split, verbose=args.verbose,
                                      callbacks=[CSVLogger(os.path.join(out, "history.csv"))])
    seconds = time.perf_counter() - start
    test = model.evaluate(X_test, y_test)
    if not root:  # every rank holds the same model: rank 0 writes it
        return 0
    model.save(os.path.join(out, "model.safetensors"))
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "epochs": model.epochs_trained,
               "seconds": round(seconds, 3), "backend": model.backend.name, "seed": args.seed,
               "data": args.data, "model": args.model, "hidden": args.hidden, "batch_size": args.batch_size,
               "optimizer": args.optimizer, "lr": args.lr, "params": model.count_params(),
               "world_size": parallel.world_size if parallel else 1}
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    written = ["model.safetensors", "history.csv", "metrics.json"]
    if args.export_onnx:  # outputs class probabilities, as xpnn predict does
        from .onnx import export

        export(model, os.path.join(out, "model.onnx"), input_shape=X_train.shape[1:], probabilities=True)
        written.append("model.onnx")
    try:
        from .plotting import plot_confusion_matrix, plot_history

        curves = plot_history(history, os.path.join(out, "curves.png"), title=args.data)
        cm = confusion_matrix(y_test, model.predict_classes(X_test))
        matrix = plot_confusion_matrix(cm, path=os.path.join(out, "confusion_matrix.png"),
                                       title=f"{args.data}: test set")
        import matplotlib.pyplot as plt  # present: the plots above needed it

        plt.close(curves)  # written to their files: free them
        plt.close(matrix)
        written += ["curves.png", "confusion_matrix.png"]
    except RuntimeError as exc:  # matplotlib missing: the run still counts
        print(f"xpnn: no plots ({exc})", file=sys.stderr)
    print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}, "
          f"{model.epochs_trained} epochs in {seconds:.1f} s on {model.backend}")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


def _optimizer(args):
    from .optimizers import get_optimizer

    return get_optimizer(args.optimizer, lr=args.lr) if args.lr is not None else get_optimizer(args.optimizer)


def cmd_evaluate(args) -> int:
    from .io import load

    model = load(args.model_path, backend=args.backend)
    if model.loss is None:
        raise UsageError(f"{args.model_path}: the model was saved before compile; nothing to evaluate with")
    flatten = not any(type(layer).__name__.startswith("Conv") for layer in model.layers)
    _, (X_test, y_test) = _load_data(args.data, args.data_home, flatten=flatten)
    result = model.evaluate(X_test, y_test)
    print(json.dumps({k: round(v, 6) for k, v in result.items()}))
    return 0


def _read_inputs(path):
    if path.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:  # an object array (pickled) or a damaged file
            raise UsageError(f"{path}: {exc}") from None
    elif path.endswith(".csv"):
        X = _read_feature_csv(path)
    else:
        raise UsageError(f"INPUT must be a .csv or .npy file, found {path!r}")
    return np.asarray(X, dtype=np.float32)


def _read_feature_csv(path):
    """Features only (no label column): float32 (n, columns). A first row with a
    non-numeric cell is a header; blank lines are skipped; a bad row is named by its line."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [(i, row) for i, row in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in row)]
    if rows and not all(_is_number(c) for c in rows[0][1]):
        rows = rows[1:]
    if not rows:
        raise UsageError(f"{path}: no data rows")
    width, first = len(rows[0][1]), rows[0][0]
    X = np.empty((len(rows), width), dtype=np.float32)
    for k, (lineno, row) in enumerate(rows):
        if len(row) != width:
            raise UsageError(f"{path}, line {lineno}: expected {width} comma-separated values (like line {first}), "
                             f"found {len(row)}")
        for col, cell in enumerate(row, start=1):
            if not _is_number(cell) or not np.isfinite(float(cell)):
                raise UsageError(f"{path}, line {lineno}, column {col}: expected a finite number, found {cell!r}")
        X[k] = [float(c) for c in row]
    return X


def _is_number(cell) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def cmd_predict(args) -> int:
    from .io import load

    model = load(args.model_path, backend=args.backend)
    X = _read_inputs(args.input)
    probs = model.predict(X)
    labels = model.predict_classes(X)
    rows = [[int(label), *[f"{p:.6f}" for p in np.atleast_1d(row)]] for label, row in zip(labels, probs)]
    header = ["label", *[f"p{i}" for i in range(probs.shape[1] if probs.ndim == 2 else 1)]]
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {len(rows)} predictions to {args.out}")
    else:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
    return 0


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


def _parser():
    p = argparse.ArgumentParser(prog="xpnn", description="Neural networks from scratch on NumPy, CuPy or any array-API library")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network and write model, history, metrics and plots")
    t.add_argument("--data", default="digits", help="digits (bundled), fashion-mnist, mnist or a PATH.csv (last column: label)")
    t.add_argument("--data-home", default=None, help="folder holding the IDX files of fashion-mnist/mnist")
    t.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    t.add_argument("--hidden", type=int, nargs="+", default=[256, 128], help="hidden layer sizes of the MLP")
    t.add_argument("--activation", default="relu")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    t.add_argument("--optimizer", default="adam")
    t.add_argument("--validation-split", type=float, default=0.1)
    t.add_argument("--backend", default=None, help="numpy (default), cupy, torch, jax or array_api_strict")
    t.add_argument("--device", default=None, help='the backend\'s device: "cuda", "cuda:1", "mps", "cpu" '
                                                  "(default: the library's default)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="output folder (default runs/<timestamp>)")
    t.add_argument("--verbose", type=int, default=1)
    t.add_argument("--export-onnx", action="store_true",
                   help="also write model.onnx (outputs class probabilities; needs the onnx package)")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: mpiexec -n 2 xpnn train --distributed ... "
                        "(--batch-size is the global batch, split over the ranks; needs mpi4py)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and metrics of a saved model on a data set's test split")
    e.add_argument("model_path")
    e.add_argument("--data", default="digits")
    e.add_argument("--data-home", default=None)
    e.add_argument("--backend", default=None)
    e.add_argument("--device", default=None)
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="class probabilities and labels for inputs in a .csv or .npy file")
    r.add_argument("model_path")
    r.add_argument("input")
    r.add_argument("--out", default=None, help="write predictions to this CSV (default: stdout)")
    r.add_argument("--backend", default=None)
    r.add_argument("--device", default=None)
    r.set_defaults(func=cmd_predict)

    i = sub.add_parser("info", help="version, and each backend with its devices or why it is unavailable")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if hasattr(args, "backend") and not getattr(args, "distributed", False):
            from .backends import get_backend

            args.backend = get_backend(args.backend, args.device)  # a bad name or device fails before any work
        return args.func(args)
    except (UsageError, ValueError, TypeError, OSError, RuntimeError, KeyError) as exc:
        print(f"xpnn {args.command}: error: {exc}", file=sys.stderr)
        if getattr(args, "distributed", False):
            _abort_other_ranks(2)
        return 2


def _abort_other_ranks(code: int) -> None:
    """End every rank of an MPI job: the others may wait in a collective for this one forever."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized() and mpi.COMM_WORLD.Get_size() > 1:
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    sys.exit(main())
