"""Lesson 4: gradient descent and its descendants on one problem.

The same 64-64-10 ReLU network (same initial weights) learns the 8x8 digits six ways:

- GD: the gradient of the whole training set, one step per epoch (batch_size=None);
- SGD: one sample per step (batch_size=1): many cheap, noisy steps;
- mini-batch SGD: 32 samples per step, the usual compromise;
- momentum: mini-batch SGD that keeps a running sum of past steps (velocity), which
  speeds it along directions the gradient keeps pointing to and damps zig-zags;
- RMSprop: divides each coordinate's step by a running RMS of its gradient;
- Adam: momentum and RMSprop together, with bias correction.

Left: the batch loss against the number of update steps (log x): SGD takes the most
steps for the same data. Right: the loss on the whole training set after each epoch
(one pass over the data each: the same number of gradient evaluations).

    python examples/lessons/4_optimizers.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BatchLosses, digits, done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn.plotting import plot_curves, pyplot  # noqa: E402

RUNS = {  # name: (batch_size, optimizer)
    "GD (full batch, lr 0.5)": (None, lambda: xpnn.SGD(lr=0.5)),
    "SGD (batch 1, lr 0.01)": (1, lambda: xpnn.SGD(lr=0.01)),
    "mini-batch SGD (32, lr 0.1)": (32, lambda: xpnn.SGD(lr=0.1)),
    "momentum 0.9 (32, lr 0.01)": (32, lambda: xpnn.SGD(lr=0.01, momentum=0.9)),
    "RMSprop (32, lr 1e-3)": (32, lambda: xpnn.RMSprop(lr=1e-3)),
    "Adam (32, lr 1e-3)": (32, lambda: xpnn.Adam(lr=1e-3)),
}


def main(argv=None):
    args = parse_args(__doc__, argv)
    (X, y), _ = digits()
    if args.quick:
        X, y = X[:300], y[:300]
    epochs = 2 if args.quick else 15
    results = {}
    for name, (batch_size, make_optimizer) in RUNS.items():
        model = xpnn.NeuralNetwork(64, 64, 10, init="he_uniform", backend=args.backend, seed=args.seed)
        model.compile("softmax_cross_entropy", make_optimizer(), metrics=["accuracy"])
        batch_losses = BatchLosses()
        # validation_data=(X, y): "val_loss" is then the loss on the whole training set after each epoch
        h = model.fit(
            X, y, epochs=epochs, batch_size=batch_size, validation_data=(X, y), callbacks=[batch_losses], verbose=0
        ).history
        results[name] = {
            "batch_losses": batch_losses.losses,
            "epoch_loss": h["val_loss"],
            "accuracy": h["val_accuracy"][-1],
            "steps": len(batch_losses.losses),
            "seconds": float(np.sum(h["seconds"])),
        }

    print(f"{len(X)} training digits, {epochs} epochs each (the same data, the same initial weights)\n")
    print(f"{'optimizer':<30} {'steps':>6} {'loss after 1 epoch':>18} {'final loss':>10} {'train acc':>9} {'time':>6}")
    for name, r in results.items():
        print(
            f"{name:<30} {r['steps']:6d} {r['epoch_loss'][0]:18.4f} {r['epoch_loss'][-1]:10.4f} "
            f"{r['accuracy']:9.3f} {r['seconds']:5.1f}s"
        )
    best = min(results, key=lambda k: results[k]["epoch_loss"][-1])
    worst = max(results, key=lambda k: results[k]["epoch_loss"][-1])
    print(
        f"\nlowest final training loss: {best}; highest: {worst} "
        f"({results[worst]['epoch_loss'][-1] / results[best]['epoch_loss'][-1]:.0f}x higher)."
    )

    plt = pyplot()
    fig, (ax_step, ax_epoch) = plt.subplots(1, 2, figsize=(13, 4.6))
    for i, (name, r) in enumerate(results.items()):
        v = np.asarray(r["batch_losses"])
        steps = np.arange(1, v.size + 1)
        # a trailing mean over the last 2% of the steps (fewer at the start): batch-1 losses are very noisy
        window = max(1, v.size // 50)
        c = np.cumsum(np.r_[0.0, v])
        smooth = (c[1:] - c[np.maximum(steps - window, 0)]) / np.minimum(steps, window)
        ax_step.plot(steps, smooth, color=f"C{i}", lw=1.6, label=name, marker="o" if v.size < 50 else None, ms=3)
    ax_step.set_xscale("log")
    ax_step.set_yscale("log")
    ax_step.set_xlabel("update step (log scale)")
    ax_step.set_ylabel("batch loss (running mean)")
    ax_step.set_title("Loss vs update steps")
    ax_step.grid(alpha=0.3, which="both")
    ax_step.legend(fontsize=8)
    plot_curves(
        {name: r["epoch_loss"] for name, r in results.items()},
        ax=ax_epoch,
        logy=True,
        title="Loss on the whole training set vs epochs (data passes)",
        xlabel="epoch",
        ylabel="training-set loss",
    )
    fig.tight_layout()
    save(fig, args, "4_optimizers")
    findings = {name: {k: v for k, v in r.items() if k != "batch_losses"} for name, r in results.items()}
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
