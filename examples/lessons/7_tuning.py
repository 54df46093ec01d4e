"""Lesson 7: hyper-parameter search: grid vs random vs Bayesian, on the digits.

Two hyper-parameters of a one-hidden-layer network trained with Adam for a few epochs:
the hidden width (16 to 128) and the learning rate (1e-4 to 1, on a log scale). Each
search gets the same budget of trials, every trial scored by 3-fold cross-validated
accuracy (xpnn.model_selection):

- GridSearch tries a fixed grid: 4 widths x 5 learning rates; only 5 distinct learning
  rates, whatever the budget;
- RandomSearch draws each trial at random: as many distinct learning rates as trials;
- BayesSearch (Optuna's TPE) draws its first trials at random, then proposes where the
  scores so far look best, and prunes trials that start worse than the median.

The figure shows where each search looked (colour: the score) and the best score found
after each trial.

    python examples/lessons/7_tuning.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits, done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn.model_selection import BayesSearch, Choice, GridSearch, LogUniform, RandomSearch  # noqa: E402
from xpnn.plotting import _plt  # noqa: E402

WIDTHS = [16, 32, 64, 128]
CV = 3


def main(argv=None):
    args = parse_args(__doc__, argv)
    (X, y), _ = digits()
    epochs = 1 if args.quick else 10
    if args.quick:
        X, y = X[:400], y[:400]
    backend, seed = args.backend, args.seed

    def build(hidden=64, lr=1e-3):
        model = xpnn.NeuralNetwork(64, hidden, 10, init="he_uniform", backend=backend, seed=seed)
        return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr), metrics=["accuracy"])

    fit_kwargs = {"epochs": epochs, "batch_size": 32, "verbose": 0}
    grid_lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    if args.quick:
        grid = {"hidden": [16, 64], "lr": [1e-3, 1e-1]}
    else:
        grid = {"hidden": WIDTHS, "lr": grid_lrs}
    n_trials = int(np.prod([len(v) for v in grid.values()]))
    space = {"hidden": Choice(WIDTHS), "lr": LogUniform(1e-4, 1.0)}
    searches = {
        "grid": GridSearch(build, grid, cv=CV, fit_kwargs=fit_kwargs),
        "random": RandomSearch(build, space, n_iter=n_trials, cv=CV, seed=seed, fit_kwargs=fit_kwargs),
    }
    try:
        searches["Bayesian (TPE)"] = BayesSearch(build, space, n_iter=n_trials, cv=CV, seed=seed,
                                                 fit_kwargs=fit_kwargs)
    except ImportError as exc:  # Optuna is an optional extra
        print(f"skipping the Bayesian search: {exc}")
    findings = {}
    for name, search in searches.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            # Optuna flags its own newer features as experimental; not our business here
            warnings.filterwarnings("ignore", module="optuna")
            search.fit(X, y)
        seconds = time.perf_counter() - start
        scores = [r["mean_score"] if r["mean_score"] is not None else np.nan for r in search.results_]
        order = [r.get("number", i) for i, r in enumerate(search.results_)]
        trials = [s for _, s in sorted(zip(order, scores))]
        best_so_far = np.fmax.accumulate(np.nan_to_num(trials, nan=0.0))
        findings[name] = {"best_params": search.best_params_, "best_score": search.best_score_,
                          "trials": len(search.results_), "pruned": sum(bool(r.get("pruned")) for r in search.results_),
                          "seconds": seconds, "best_so_far": best_so_far.tolist(),
                          "points": [(r["params"]["lr"], r["params"]["hidden"], r["mean_score"])
                                     for r in search.results_]}
        print(f"\n{name} search: {len(search.results_)} trials in {seconds:.1f} s; best "
              f"{search.best_params_} with accuracy {search.best_score_:.4f}")
        table = search.to_markdown().splitlines()
        print("\n".join(table[:8]) + (f"\n| ... {len(table) - 8} more rows |" if len(table) > 8 else ""))

    print(f"\n{'search':<16} {'best accuracy':>13} {'found at trial':>14} {'distinct lrs':>12} {'pruned':>7}")
    for name, f in findings.items():
        found = int(np.argmax(np.asarray(f["best_so_far"]) >= f["best_score"] - 1e-12)) + 1
        f["found_at_trial"] = found
        distinct = len({round(p[0], 12) for p in f["points"]})
        print(f"{name:<16} {f['best_score']:13.4f} {found:14d} {distinct:12d} {f['pruned']:7d}")

    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4), gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    if len(findings) < 3:
        axes[2].set_visible(False)
    finite = [p[2] for f in findings.values() for p in f["points"] if p[2] is not None]
    vmin, vmax = (min(finite), max(finite)) if finite else (0, 1)
    rng = np.random.default_rng(0)
    for ax, (name, f) in zip(axes[:3], findings.items()):
        pts = [p for p in f["points"] if p[2] is not None]
        pruned = [p for p in f["points"] if p[2] is None]
        # a little vertical jitter: trials with the same width and lr would hide each other
        jitter = lambda n: rng.uniform(-0.06, 0.06, n)  # noqa: E731
        if pts:
            sc = ax.scatter([p[0] for p in pts], np.log2([p[1] for p in pts]) + jitter(len(pts)),
                            c=[p[2] for p in pts], cmap="viridis", vmin=vmin, vmax=vmax, s=45, edgecolors="k")
        if pruned:
            ax.scatter([p[0] for p in pruned], np.log2([p[1] for p in pruned]) + jitter(len(pruned)), marker="x",
                       color="C3", s=40, label="pruned")
            ax.legend(fontsize=8, loc="lower left")
        best = f["best_params"]
        ax.scatter([best["lr"]], [np.log2(best["hidden"])], marker="*", s=300, facecolors="none", edgecolors="C3",
                   linewidths=1.5)
        ax.set_xscale("log")
        ax.set_yticks(np.log2(WIDTHS), [str(w) for w in WIDTHS])
        ax.set_ylim(np.log2(WIDTHS[0]) - 0.5, np.log2(WIDTHS[-1]) + 0.5)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("hidden units")
        ax.set_title(f"{name}: best {f['best_score']:.3f} (star)", fontsize=10)
        ax.grid(alpha=0.3)
    if finite:
        fig.colorbar(sc, ax=axes[len(findings) - 1], label=f"{CV}-fold CV accuracy")
    ax = axes[3]
    for i, (name, f) in enumerate(findings.items()):
        ax.plot(range(1, len(f["best_so_far"]) + 1), f["best_so_far"], marker="o", ms=3, color=f"C{i}", label=name)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("best CV accuracy so far")
    ax.set_title("Best score vs number of trials")
    ax.set_ylim(max(0.0, vmax - 0.15), vmax + 0.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Hyper-parameter search on the digits: {n_trials} trials each, {epochs} epochs of Adam per fit")
    fig.tight_layout()
    save(fig, args, "7_tuning")
    for f in findings.values():
        f.pop("points")
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
