"""Lesson 9: underfitting, the other side of lesson 3.

A network underfits when it cannot even learn its training data: the training loss stays
high, and the validation loss stays just as high, right beside it (overfitting is the
opposite: a low training loss far below the validation loss). Three points, 200 per
class, lie on three interleaved spiral arms; no straight line separates them. Four ways
to underfit them, then the fix:

- a linear model (no hidden layer): its decision regions are three wedges, whatever the
  training;
- a network too small for the problem (2 hidden units): too few bends;
- too strong L2 (AdamW, weight_decay 1.0): the decay pulls every weight to zero as fast
  as the data pushes it away, so the network cannot grow the large weights the spiral
  needs;
- too few epochs (5): the right network, stopped while its loss is still falling fast;
- the fix: a 2-64-64-3 ReLU network, no decay, 100 epochs.

    python examples/lessons/9_underfitting.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn import Dense, ReLU, Sequential  # noqa: E402
from xpnn.plotting import plot_decision_boundary, pyplot  # noqa: E402

CLASSES, PER_CLASS = 3, 200
LR, EPOCHS, HIDDEN = 0.01, 100, 64
WEIGHT_DECAY = 1.0


def make_spirals(per_class=PER_CLASS, noise=0.25, seed=0):
    """``CLASSES`` interleaved spiral arms of 1.5 turns: X (n, 2) float32, y (n,) int64."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(CLASSES):
        r = np.linspace(0.2, 1.0, per_class)  # from near the centre outwards
        t = 3.0 * np.pi * r + 2.0 * np.pi * c / CLASSES + rng.normal(0.0, noise, per_class)
        X.append(np.c_[r * np.cos(t), r * np.sin(t)])
        y.append(np.full(per_class, c))
    return np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.int64)


def network(hidden, backend, seed):
    """2 -> hidden... -> 3 with ReLU; no hidden layer at all is a linear model."""
    layers, width = [], 2
    for h in hidden:
        layers += [Dense(width, h, init="he_uniform"), ReLU()]
        width = h
    return Sequential([*layers, Dense(width, CLASSES)], backend=backend, seed=seed)


def main(argv=None):
    args = parse_args(__doc__, argv)
    per_class = 60 if args.quick else PER_CLASS
    X, y = make_spirals(per_class, seed=args.seed)
    Xv, yv = make_spirals(per_class, seed=args.seed + 1000)  # fresh points on the same arms
    epochs = 3 if args.quick else EPOCHS
    few = 1 if args.quick else 5
    adam = lambda: xpnn.Adam(lr=LR)  # noqa: E731
    runs = {
        "linear (no hidden layer)": dict(hidden=[], optimizer=adam, epochs=epochs),
        "too small (2 hidden units)": dict(hidden=[2], optimizer=adam, epochs=epochs),
        f"too strong L2 (AdamW, wd {WEIGHT_DECAY:g})": dict(
            hidden=[HIDDEN, HIDDEN], optimizer=lambda: xpnn.AdamW(lr=LR, weight_decay=WEIGHT_DECAY), epochs=epochs
        ),
        f"too few epochs ({few})": dict(hidden=[HIDDEN, HIDDEN], optimizer=adam, epochs=few),
        f"the fix: 2-{HIDDEN}-{HIDDEN}-3, {epochs} epochs": dict(
            hidden=[HIDDEN, HIDDEN], optimizer=adam, epochs=epochs
        ),
    }
    results, models = {}, {}
    for name, run in runs.items():
        model = network(run["hidden"], args.backend, args.seed)
        model.compile("softmax_cross_entropy", run["optimizer"](), metrics=["accuracy"])
        h = model.fit(X, y, epochs=run["epochs"], batch_size=32, validation_data=(Xv, yv), verbose=0).history
        train, val = model.evaluate(X, y), model.evaluate(Xv, yv)
        results[name] = {
            "history": h,
            "epochs": run["epochs"],
            "params": model.count_params(),
            "train_loss": train["loss"],
            "val_loss": val["loss"],
            "gap": val["loss"] - train["loss"],
            "train_accuracy": train["accuracy"],
            "val_accuracy": val["accuracy"],
        }
        models[name] = model

    print(
        f"{CLASSES} spiral arms, {len(y)} training and {len(yv)} validation points; Adam, lr {LR}, batch 32 "
        f"(chance: loss ln 3 = {np.log(3):.3f}, accuracy 0.333)\n"
    )
    print(
        f"{'run':<38} {'params':>6} {'epochs':>6} {'train loss':>10} {'val loss':>8} {'gap':>7} "
        f"{'train acc':>9} {'val acc':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:<38} {r['params']:6,d} {r['epochs']:6d} {r['train_loss']:10.4f} {r['val_loss']:8.4f} "
            f"{r['gap']:7.4f} {r['train_accuracy']:9.3f} {r['val_accuracy']:7.3f}"
        )
    fix = results[list(results)[-1]]
    worst = max(r["train_loss"] for r in list(results.values())[:-1])
    print(
        f"\nThe four underfitting runs end with a training loss between "
        f"{min(r['train_loss'] for r in list(results.values())[:-1]):.2f} and {worst:.2f} and a validation loss "
        f"just beside it: the model cannot fit even the points it trains on, so more data or regularization "
        f"would not help. The fix reaches a training loss of {fix['train_loss']:.3f} "
        f"(validation {fix['val_loss']:.3f}, accuracy {fix['val_accuracy']:.3f})."
    )

    plt = pyplot()
    n = len(results)
    fig, axes = plt.subplots(2, n, figsize=(3.7 * n, 7.4))
    for col, (name, r) in enumerate(results.items()):
        ax = axes[0, col]
        h = r["history"]
        ep = np.arange(1, len(h["loss"]) + 1)
        ax.plot(ep, h["loss"], label="train loss")
        ax.plot(ep, h["val_loss"], label="validation loss")
        ax.axhline(np.log(CLASSES), color="grey", ls=":", lw=1, label="chance (ln 3)")
        # a linear scale: the underfitting curves stay up near ln 3, the fix falls to 0
        ax.set_ylim(0.0, 1.6)
        ax.set_xlim(0.5, max(epochs, 2) + 0.5)
        ax.set_xlabel("epoch")
        ax.set_title(f"{name}\ntrain loss {r['train_loss']:.3f}, val loss {r['val_loss']:.3f}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
        ax = axes[1, col]
        plot_decision_boundary(models[name], Xv, yv, ax=ax, resolution=150)
        ax.set_title(f"validation points: accuracy {r['val_accuracy']:.3f}", fontsize=9)
        if col:
            ax.set_ylabel("")
            ax.get_legend().remove()
    axes[0, 0].set_ylabel("cross-entropy loss")
    fig.suptitle(
        "Underfitting: training and validation loss stay high together (top); the decision regions "
        "on the validation points (bottom)"
    )
    fig.tight_layout()
    save(fig, args, "9_underfitting")
    findings = {name: {k: v for k, v in r.items() if k != "history"} for name, r in results.items()}
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
