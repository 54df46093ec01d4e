"""What every lesson shares: its command line, the digits data, and saving its figure.

Each lesson runs as ``python examples/lessons/N_name.py [--backend numpy] [--out DIR]
[--quick] [--seed 0]``, prints what it finds, and writes its PNG into ``--out``
(examples/lessons/output/ by default, which git ignores).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import xpnn

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "output")


def parse_args(doc: str, argv=None, extra=None):
    """The lesson's arguments: --backend, --out, --quick (fewer epochs, for tests), --seed."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--backend", default="numpy", help="numpy, cupy or array_api_strict")
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNG (default examples/lessons/output/)")
    p.add_argument("--quick", action="store_true", help="a few epochs only: checks that the lesson runs")
    p.add_argument("--seed", type=int, default=0)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    args.started = time.perf_counter()
    return args


def digits(n_train=None, seed=0):
    """The bundled 8x8 digits, flattened: (X_train, y_train), (X_test, y_test); X in [0, 1].
    ``n_train`` keeps a stratified random subset of that many training images."""
    (X, y), (Xt, yt) = xpnn.load_digits(flatten=True)
    if n_train is not None and n_train < X.shape[0]:
        keep, _ = xpnn.train_test_split(np.arange(X.shape[0]), test_size=X.shape[0] - n_train, stratify=y, seed=seed)
        keep = np.sort(np.asarray(keep))
        X, y = X[keep], y[keep]
    return (X, y), (Xt, yt)


def save(fig, args, name: str) -> str:
    """Write ``fig`` as ``<out>/<name>.png`` at 90 dpi (small enough for the docs) and close it."""
    import matplotlib.pyplot as plt

    path = os.path.join(args.out, f"{name}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return path


def done(args) -> float:
    seconds = time.perf_counter() - args.started
    print(f"({seconds:.1f} s on backend {args.backend})")
    return seconds


class BatchLosses(xpnn.callbacks.Callback):
    """Record every batch loss (one host sync per batch: fine for a lesson on the CPU)."""

    needs_batch_loss = True

    def __init__(self):
        self.losses: list = []

    def on_batch_loss(self, epoch, batch, loss):
        self.losses.append(loss)
