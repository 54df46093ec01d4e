"""Lesson 2: vanishing gradients in a 10-layer network, and two cures.

Three 10-layer networks (nine hidden layers of 64 units) learn the 8x8 digits with the
same optimizer (SGD with momentum) while a GradientMonitor records every layer's gradient:

- sigmoid, weights N(0, 0.1^2): each layer multiplies the backward signal by sigmoid'
  (at most 0.25) times a small weight matrix, so the first layer's gradient is many
  orders of magnitude below the last layer's; the early layers barely learn;
- ReLU with He init: slope 1 for active units, and weights scaled by sqrt(2 / fan_in) keep
  the signal's size from layer to layer: gradients of the same order everywhere;
- sigmoid with BatchNorm1D before each sigmoid: the same small init, but every layer's
  input is re-standardized, so the gradient no longer shrinks with depth.

    python examples/lessons/2_vanishing_gradients.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits, done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn import Dense, ReLU, Sequential, Sigmoid, init  # noqa: E402
from xpnn.callbacks import GradientMonitor, GradientWarning  # noqa: E402
from xpnn.layers import BatchNorm1D  # noqa: E402
from xpnn.plotting import pyplot  # noqa: E402

DEPTH, WIDTH = 10, 64
LR = 0.01


def network(kind, backend, seed):
    """A 10-Dense-layer classifier 64 -> 64 x 9 -> 10 of one of the three kinds."""
    layers, fan_in = [], 64
    for _ in range(DEPTH - 1):
        if kind == "sigmoid":
            layers += [Dense(fan_in, WIDTH, init=init.normal(0.1)), Sigmoid()]
        elif kind == "relu_he":
            layers += [Dense(fan_in, WIDTH, init="he_normal"), ReLU()]
        else:  # sigmoid + BatchNorm1D (the Dense bias is redundant before a BatchNorm)
            layers += [Dense(fan_in, WIDTH, init=init.normal(0.1), bias=False), BatchNorm1D(WIDTH), Sigmoid()]
        fan_in = WIDTH
    layers.append(Dense(fan_in, 10, init=init.normal(0.1) if kind != "relu_he" else "he_normal"))
    return Sequential(layers, backend=backend, seed=seed)


LABELS = {"sigmoid": "sigmoid, N(0, 0.1²) init", "relu_he": "ReLU, He init", "sigmoid_bn": "sigmoid + BatchNorm1D"}


def main(argv=None):
    args = parse_args(__doc__, argv)
    (X, y), (Xv, yv) = digits()
    epochs = 2 if args.quick else 20
    results = {}
    for kind in LABELS:
        model = network(kind, args.backend, args.seed)
        model.compile("softmax_cross_entropy", xpnn.SGD(lr=LR, momentum=0.9), metrics=["accuracy"])
        monitor = GradientMonitor(every=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradientWarning)
            history = model.fit(
                X, y, epochs=epochs, batch_size=32, validation_data=(Xv, yv), callbacks=[monitor], verbose=0
            )
        names = [n for n in monitor.history["grad_norm"] if ":Dense" in n]
        steps_epoch1 = [i for i, e in enumerate(monitor.history["epoch"]) if e == 0]
        # the mean gradient norm of each Dense layer over the first epoch
        per_layer = [float(np.mean([monitor.history["grad_norm"][n][i] for i in steps_epoch1])) for n in names]
        results[kind] = {
            "monitor": monitor,
            "history": history.history,
            "per_layer": per_layer,
            "ratio": per_layer[0] / per_layer[-1],
            "warnings": [str(w.message) for w in caught],
            "val_accuracy": history.history["val_accuracy"][-1],
        }

    print(f"{'network':<24} {'first/last layer grad':>22} {'val acc':>8}  warnings")
    for kind, r in results.items():
        print(f"{LABELS[kind]:<24} {r['ratio']:22.1e} {r['val_accuracy']:8.3f}  {len(r['warnings'])}")
    print("\nmean gradient norm per Dense layer over epoch 1 (first layer left):")
    for kind, r in results.items():
        print(f"  {LABELS[kind]:<24} " + " ".join(f"{g:8.1e}" for g in r["per_layer"]))
    sig = results["sigmoid"]
    if sig["warnings"]:
        print(
            f"\nthe GradientMonitor warned {len(sig['warnings'])} times for the sigmoid net, e.g.:\n  "
            + sig["warnings"][0]
        )

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    for i, (kind, r) in enumerate(results.items()):
        ax.plot(range(1, DEPTH + 1), r["per_layer"], marker="o", color=f"C{i}", label=LABELS[kind])
    ax.set_yscale("log")
    ax.set_xticks(range(1, DEPTH + 1))
    ax.set_xlabel("Dense layer (1 = first, next to the input)")
    ax.set_ylabel("gradient norm ||dL/dW|| (epoch-1 mean)")
    ax.set_title("Gradient size by depth")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    for ax, key, title in ((axes[1], "loss", "Training loss"), (axes[2], "val_accuracy", "Validation accuracy")):
        for i, (kind, r) in enumerate(results.items()):
            values = r["history"][key]
            ax.plot(range(1, len(values) + 1), values, color=f"C{i}", label=LABELS[kind])
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("val_", "validation ").replace("_", " "))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    fig.suptitle(f"10-layer networks on the 8x8 digits, SGD with momentum 0.9 (lr {LR})")
    fig.tight_layout()
    save(fig, args, "2_vanishing_gradients")
    fig = sig["monitor"].plot(title="Sigmoid net, N(0, 0.1²) init: gradient norms")
    save(fig, args, "2_vanishing_gradients_monitor")

    findings = {
        kind: {k: v for k, v in r.items() if k in ("per_layer", "ratio", "val_accuracy", "warnings")}
        for kind, r in results.items()
    }
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
