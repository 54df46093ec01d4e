"""Lesson 5: how a network carves up the plane, snapshot by snapshot.

Two generated 2-D problems that no straight line separates: two interleaved half-moons
and two concentric circles. A 2-32-32-2 ReLU network learns each; the figure shows its
decision regions (the probability of class 1, with the 0.5 contour in black) after a few
epochs of training. After one epoch the moons boundary is a bent line; it curls around
the moons as the hidden units specialize, and once every point is on its side, training
keeps sharpening the boundary (the band of uncertain probabilities narrows).

    python examples/lessons/5_decision_boundary.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn.plotting import plot_decision_boundary, pyplot  # noqa: E402


def make_moons(n=400, noise=0.12, seed=0):
    """Two interleaved half circles: X (n, 2) float32, y (n,) int64 in {0, 1}."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    y = np.arange(n) % 2
    X = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return (X + rng.normal(0, noise, X.shape)).astype(np.float32), y.astype(np.int64)


def make_circles(n=400, noise=0.08, factor=0.45, seed=0):
    """A small circle (class 1) inside a large one (class 0): X (n, 2), y (n,)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    y = np.arange(n) % 2
    r = np.where(y == 1, factor, 1.0)
    X = np.c_[r * np.cos(t), r * np.sin(t)]
    return (X + rng.normal(0, noise, X.shape)).astype(np.float32), y.astype(np.int64)


def main(argv=None):
    args = parse_args(__doc__, argv)
    snapshots = [1, 3] if args.quick else [1, 5, 20, 100]
    problems = {"moons": make_moons(seed=args.seed), "circles": make_circles(seed=args.seed)}
    plt = pyplot()
    fig, axes = plt.subplots(
        len(problems), len(snapshots), figsize=(3.9 * len(snapshots), 3.6 * len(problems)), squeeze=False
    )
    findings = {}
    for row, (name, (X, y)) in enumerate(problems.items()):
        model = xpnn.NeuralNetwork(2, [32, 32], 2, init="he_uniform", backend=args.backend, seed=args.seed)
        model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.01), metrics=["accuracy"])
        trained, accuracies, unsure = 0, {}, {}
        for col, epoch in enumerate(snapshots):
            model.fit(X, y, epochs=epoch, initial_epoch=trained, batch_size=32, verbose=0)
            trained = epoch
            accuracies[epoch] = float(np.mean(model.predict_classes(X) == y))
            # how much of the plane the network is unsure about: P(class 1) in (0.1, 0.9)
            lo, hi = X.min(axis=0) - 0.3, X.max(axis=0) + 0.3
            g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 100), np.linspace(lo[1], hi[1], 100)), -1)
            p1 = model.predict(g.reshape(-1, 2).astype(np.float32))[:, 1]
            unsure[epoch] = float(np.mean((p1 > 0.1) & (p1 < 0.9)))
            plot_decision_boundary(model, X, y, ax=axes[row, col], resolution=150, title=f"{name}, epoch {epoch}")
            if col:
                axes[row, col].set_ylabel("")
        findings[name] = {"accuracy": accuracies, "unsure_area": unsure}
        print(
            f"{name:<8} " + "; ".join(f"epoch {e}: acc {a:.1%}, unsure {unsure[e]:.0%}" for e, a in accuracies.items())
        )
    print("\n(acc: training accuracy; unsure: the share of the plotted plane where 0.1 < P(class 1) < 0.9)")
    print(
        "After one epoch (13 steps) the moons boundary is a bent line and the circle a faint blob; once the "
        "points are all separated, training goes on sharpening the boundary: the unsure band narrows."
    )
    fig.suptitle("Decision regions of a 2-32-32-2 ReLU network as training proceeds (Adam, lr 0.01)")
    fig.tight_layout()
    save(fig, args, "5_decision_boundary")
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
