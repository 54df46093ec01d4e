"""Lesson 3: overfitting, and three ways to fight it.

A big network (64 -> 256 -> 256 -> 10, about 85,000 weights) learns from only 150 of the
digits, so it can memorize them: the training loss goes to ~0 while the validation loss
(on the 359 held-out test digits) bottoms out and climbs again. Then the same network with

- L2 weight decay (AdamW: the weights shrink by lr * wd each step, so only weights the
  data keeps pushing stay large),
- dropout (each hidden unit dropped with probability 0.5 while training, so no unit can
  rely on a particular other one),
- early stopping (stop when the validation loss has not improved for a while, and keep
  the best epoch's weights).

    python examples/lessons/3_overfitting.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits, done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn import Dense, Dropout, EarlyStopping, ReLU, Sequential  # noqa: E402
from xpnn.plotting import pyplot  # noqa: E402

N_TRAIN, HIDDEN = 150, 256
LR = 3e-3  # Adam's default 1e-3 gets there too, in more epochs


def network(dropout, backend, seed, hidden=HIDDEN):
    layers = [Dense(64, hidden, init="he_uniform"), ReLU()]
    layers += [Dropout(dropout)] if dropout else []
    layers += [Dense(hidden, hidden, init="he_uniform"), ReLU()]
    layers += [Dropout(dropout)] if dropout else []
    layers += [Dense(hidden, 10, init="he_uniform")]
    return Sequential(layers, backend=backend, seed=seed)


def main(argv=None):
    args = parse_args(__doc__, argv)
    (X, y), (Xv, yv) = digits(n_train=N_TRAIN, seed=args.seed)
    epochs = 3 if args.quick else 200
    hidden = 32 if args.quick else HIDDEN  # --quick only checks that the lesson runs
    runs = {
        "no regularization": dict(dropout=0.0, optimizer=lambda: xpnn.Adam(lr=LR), callbacks=lambda: []),
        "L2 (AdamW, weight_decay 1.0)": dict(
            dropout=0.0, optimizer=lambda: xpnn.AdamW(lr=LR, weight_decay=1.0), callbacks=lambda: []
        ),
        "dropout 0.5": dict(dropout=0.5, optimizer=lambda: xpnn.Adam(lr=LR), callbacks=lambda: []),
        "early stopping (patience 10)": dict(
            dropout=0.0, optimizer=lambda: xpnn.Adam(lr=LR), callbacks=lambda: [EarlyStopping("val_loss", patience=10)]
        ),
    }
    results = {}
    for name, run in runs.items():
        model = network(run["dropout"], args.backend, args.seed, hidden)
        model.compile("softmax_cross_entropy", run["optimizer"](), metrics=["accuracy"])
        callbacks = run["callbacks"]()
        h = model.fit(
            X, y, epochs=epochs, batch_size=32, validation_data=(Xv, yv), callbacks=callbacks, verbose=0
        ).history
        final = model.evaluate(Xv, yv)  # after early stopping: the restored best weights
        train = model.evaluate(X, y)
        best = int(np.argmin(h["val_loss"]))
        results[name] = {
            "history": h,
            "epochs": len(h["loss"]),
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "val_loss": final["loss"],
            "val_accuracy": final["accuracy"],
            "best_epoch": best + 1,
            "best_val_loss": h["val_loss"][best],
            "stopped_at": getattr(callbacks[0], "stopped_epoch", None) if callbacks else None,
        }

    print(
        f"{N_TRAIN} training digits, 359 validation digits, network 64-{hidden}-{hidden}-10 "
        f"({network(0, 'numpy', 0, hidden).count_params():,} params)\n"
    )
    print(
        f"{'run':<30} {'epochs':>6} {'train loss':>10} {'val loss':>9} {'best val loss (epoch)':>22} "
        f"{'train acc':>9} {'val acc':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<30} {r['epochs']:6d} {r['train_loss']:10.1e} {r['val_loss']:9.4f} "
            f"{r['best_val_loss']:14.4f} ({r['best_epoch']:3d}) {r['train_accuracy']:9.3f} {r['val_accuracy']:8.3f}"
        )
    base = results["no regularization"]
    print(
        f"\nwithout regularization the validation loss is lowest at epoch {base['best_epoch']} "
        f"({base['best_val_loss']:.3f}) and ends at {base['val_loss']:.3f}, while the training loss falls to "
        f"{base['train_loss']:.1e}: the network memorizes its {N_TRAIN} digits."
    )

    plt = pyplot()
    # shared axes: the early-stopping run visibly ends early, and the gaps compare directly
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.0), sharex=True, sharey=True)
    for ax, (name, r) in zip(axes, results.items()):
        h = r["history"]
        ep = np.arange(1, len(h["loss"]) + 1)
        ax.plot(ep, h["loss"], label="train loss" + (" (dropout on)" if "dropout" in name else ""))
        ax.plot(ep, h["val_loss"], label="validation loss")
        ax.axvline(r["best_epoch"], color="grey", ls=":", lw=1, label=f"best validation (epoch {r['best_epoch']})")
        if r["stopped_at"] is not None:
            ax.annotate(
                f"stopped after epoch {r['epochs']},\nbest weights restored",
                (r["epochs"], h["val_loss"][-1]),
                xytext=(0.45, 0.62),
                textcoords="axes fraction",
                fontsize=8,
                arrowprops=dict(arrowstyle="->", color="grey"),
            )
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{name}\nval acc {r['val_accuracy']:.3f}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("cross-entropy loss")
    fig.suptitle(f"A 64-{hidden}-{hidden}-10 network on {N_TRAIN} digits (Adam, lr {LR}): train vs validation loss")
    fig.tight_layout()
    save(fig, args, "3_overfitting")
    findings = {name: {k: v for k, v in r.items() if k != "history"} for name, r in results.items()}
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
