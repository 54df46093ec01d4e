"""Lesson 6: the learning rate: too small, about right, too large, and how to find it.

The same 64-64-10 ReLU network learns the 8x8 digits with plain mini-batch SGD at three
learning rates, a GradientMonitor watching each:

- too small (0.001): every step is safe but tiny; after all the epochs the loss has hardly
  moved;
- about right (0.1): fast, steady progress;
- too large (3.0): the first steps overshoot so far that the ReLUs die (their inputs are
  pushed below zero for every sample) and the network is stuck predicting one class, with
  the loss at ln(10) = 2.30, the loss of a uniform guess.

Then a learning-rate range test (Smith, 2017): one short run whose lr grows exponentially
every step, from 1e-4 to 10. The loss falls faster as lr grows, then blows up; a good lr is
somewhat below (here: a tenth of) the lr with the lowest loss.

    python examples/lessons/6_learning_rate.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BatchLosses, digits, done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn.callbacks import GradientMonitor, GradientWarning  # noqa: E402
from xpnn.plotting import pyplot  # noqa: E402

RATES = {"too small": 0.001, "about right": 0.1, "too large": 3.0}


def network(backend, seed):
    return xpnn.NeuralNetwork(64, 64, 10, init="he_uniform", backend=backend, seed=seed)


class StopWhenExploding(xpnn.callbacks.Callback):
    """End the range test once the batch loss is 4x the best so far (or not finite)."""

    needs_batch_loss = True

    def __init__(self):
        self.best = math.inf

    def on_batch_loss(self, epoch, batch, loss):
        self.best = min(self.best, loss)
        if not math.isfinite(loss) or loss > 4 * self.best:
            self.model.stop_training = True


def range_test(X, y, backend, seed, steps, lr_min=1e-4, lr_max=10.0):
    """lr grows by the same factor each step, lr_min -> lr_max over ``steps`` steps;
    returns (lrs, batch losses) up to where the loss blew up."""
    model = network(backend, seed)
    growth = (lr_max / lr_min) ** (1.0 / (steps - 1))
    # a schedule is any callable step -> lr (xpnn.schedules has named ones)
    model.compile("softmax_cross_entropy", xpnn.SGD(lr=lambda step: lr_min * growth**step))
    losses, stopper = BatchLosses(), StopWhenExploding()
    epochs = -(-steps * 32 // X.shape[0])
    model.fit(X, y, epochs=epochs, batch_size=32, callbacks=[stopper, losses], verbose=0)
    # the stopper ends training before the update of the batch that blew up: that loss is recorded too
    v = np.asarray(losses.losses[:steps])
    return lr_min * growth ** np.arange(v.size), v


def main(argv=None):
    args = parse_args(__doc__, argv)
    (X, y), (Xv, yv) = digits()
    epochs = 2 if args.quick else 20
    results = {}
    for name, lr in RATES.items():
        model = network(args.backend, args.seed)
        model.compile("softmax_cross_entropy", xpnn.SGD(lr=lr), metrics=["accuracy"])
        monitor = GradientMonitor(every=5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradientWarning)
            h = model.fit(
                X, y, epochs=epochs, batch_size=32, validation_data=(Xv, yv), callbacks=[monitor], verbose=0
            ).history
        dead = {k: v[-1] for k, v in monitor.history["dead_relu"].items()}
        results[name] = {
            "lr": lr,
            "history": h,
            "loss": h["loss"][-1],
            "val_accuracy": h["val_accuracy"][-1],
            "dead_relu": dead,
            "warnings": [str(w.message) for w in caught],
        }

    print(f"mini-batch SGD (32), {epochs} epochs, 64-64-10 ReLU network on the digits\n")
    print(f"{'':<12} {'lr':>6} {'loss epoch 1':>12} {'final loss':>10} {'val acc':>8} {'dead ReLUs':>10}  warnings")
    for name, r in results.items():
        dead = max(r["dead_relu"].values())
        print(
            f"{name:<12} {r['lr']:6g} {r['history']['loss'][0]:12.4f} {r['loss']:10.4f} {r['val_accuracy']:8.3f} "
            f"{dead:10.0%}  {len(r['warnings'])}"
        )
    for w in results["too large"]["warnings"][:2]:
        print("  too large:", w)

    steps = 60 if args.quick else 300
    lrs, losses = range_test(X, y, args.backend, args.seed, steps)
    window = 10  # a trailing mean over the last 10 batches (fewer at the start)
    c = np.cumsum(np.r_[0.0, losses])
    n = np.arange(1, losses.size + 1)
    smooth = (c[1:] - c[np.maximum(n - window, 0)]) / np.minimum(n, window)
    lowest = int(np.argmin(smooth))
    suggestion = float(lrs[lowest] / 10)
    print(
        f"\nrange test: {losses.size} steps, lr from {lrs[0]:.0e} to {lrs[-1]:.2g}; the smoothed loss is lowest "
        f"({smooth[lowest]:.3f}) at lr {lrs[lowest]:.2g}; a tenth of that, {suggestion:.2g}, is a good lr "
        f"(the 'about right' run used 0.1)."
    )

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc, ax_range) = plt.subplots(1, 3, figsize=(16, 4.4))
    for i, (name, r) in enumerate(results.items()):
        h = r["history"]
        ep = np.arange(1, len(h["loss"]) + 1)
        label = f"{name} (lr {r['lr']:g})"
        ax_loss.plot(ep, h["loss"], color=f"C{i}", marker="o", ms=3, label=label)
        ax_acc.plot(ep, h["val_accuracy"], color=f"C{i}", marker="o", ms=3, label=label)
    ax_loss.axhline(math.log(10), color="grey", ls=":", lw=1, label="ln 10 = 2.30: a uniform guess")
    ax_loss.set_yscale("log")
    ax_loss.set_title("Training loss")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.set_title("Validation accuracy")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax_range.plot(lrs, losses, color="C7", alpha=0.4, lw=1, label="batch loss")
    ax_range.plot(lrs, smooth, color="C0", lw=1.8, label=f"running mean of {window}")
    ax_range.axvline(lrs[lowest], color="C3", ls="--", lw=1, label=f"lowest loss: lr {lrs[lowest]:.2g}")
    ax_range.axvline(suggestion, color="C2", ls="--", lw=1, label=f"suggested: lr {suggestion:.2g}")
    ax_range.set_xscale("log")
    ax_range.set_ylim(0, min(float(losses.max()), 3 * float(losses[0])) * 1.05)
    ax_range.set_xlabel("learning rate (grows every step, log scale)")
    ax_range.set_ylabel("batch loss")
    ax_range.set_title("Learning-rate range test")
    ax_range.grid(alpha=0.3, which="both")
    ax_range.legend(fontsize=8, loc="lower left")
    fig.suptitle("One network, plain SGD, three learning rates")
    fig.tight_layout()
    save(fig, args, "6_learning_rate")
    findings = {name: {k: v for k, v in r.items() if k != "history"} for name, r in results.items()}
    findings["range_test"] = {"lowest_loss_lr": float(lrs[lowest]), "suggested_lr": suggestion}
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
