"""Lesson 7: hyper-parameter search: grid vs random vs Bayesian vs evolution, on the digits.

Two hyper-parameters of a one-hidden-layer network trained with Adam for a few epochs:
the hidden width (16 to 128) and the learning rate (1e-4 to 1, on a log scale). Each
search gets the same budget of trials, every trial scored by 3-fold cross-validated
accuracy (xpnn.model_selection):

- GridSearch tries a fixed grid: 4 widths x 5 learning rates; only 5 distinct learning
  rates, whatever the budget;
- RandomSearch draws each trial at random: as many distinct learning rates as trials;
- BayesSearch (Optuna's TPE) draws its first trials at random, then proposes where the
  scores so far look best, and prunes trials that start worse than the median;
- EvolutionSearch (Optuna's CMA-ES) moves a population (a normal distribution over the
  log learning rate) towards its best members, generation by generation; the width, a
  Choice, is drawn by TPE (CMA-ES models only ranges).

Then EvolutionSearch with objectives=("score", "n_params") (NSGA-II) trades accuracy
against the number of weights, with the width as a range (4 to 128) and the learning
rate between 1e-3 and 0.1, and keeps the Pareto front: the networks that no other is
both more accurate and smaller than.

The figure shows where each search looked (colour: the score), the best score found
after each trial, and the accuracy-vs-size front.

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
from xpnn.model_selection import (
    BayesSearch,
    Choice,
    EvolutionSearch,
    GridSearch,
    IntUniform,  # noqa: E402
    LogUniform,
    RandomSearch,
)
from xpnn.plotting import pyplot  # noqa: E402

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
    optional = {  # Optuna (and cmaes for CMA-ES) are an optional extra
        "Bayesian (TPE)": lambda: BayesSearch(build, space, n_iter=n_trials, cv=CV, seed=seed, fit_kwargs=fit_kwargs),
        "evolution (CMA-ES)": lambda: EvolutionSearch(
            build, space, n_iter=n_trials, cv=CV, seed=seed, fit_kwargs=fit_kwargs
        ),
    }
    for name, make in optional.items():
        try:
            searches[name] = make()
        except ImportError as exc:
            print(f"skipping the {name} search: {exc}")
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
        findings[name] = {
            "best_params": search.best_params_,
            "best_score": search.best_score_,
            "trials": len(search.results_),
            "pruned": sum(bool(r.get("pruned")) for r in search.results_),
            "seconds": seconds,
            "best_so_far": best_so_far.tolist(),
            "points": [(r["params"]["lr"], r["params"]["hidden"], r["mean_score"]) for r in search.results_],
        }
        print(
            f"\n{name} search: {len(search.results_)} trials in {seconds:.1f} s; best "
            f"{search.best_params_} with accuracy {search.best_score_:.4f}"
        )
        table = search.to_markdown().splitlines()
        print("\n".join(table[:8]) + (f"\n| ... {len(table) - 8} more rows |" if len(table) > 8 else ""))

    print(
        f"\n{'search':<18} {'best accuracy':>13} {'found at trial':>14} {'distinct lrs':>12} {'pruned':>7} "
        f"{'time (s)':>8}"
    )
    for name, f in findings.items():
        found = int(np.argmax(np.asarray(f["best_so_far"]) >= f["best_score"] - 1e-12)) + 1
        f["found_at_trial"] = found
        distinct = len({round(p[0], 12) for p in f["points"]})
        print(f"{name:<18} {f['best_score']:13.4f} {found:14d} {distinct:12d} {f['pruned']:7d} {f['seconds']:8.1f}")

    pareto = None
    if "Bayesian (TPE)" in searches:  # Optuna is there: NSGA-II, accuracy against size
        pareto = pareto_search(build, X, y, n_trials, seed, fit_kwargs)
        findings["pareto (NSGA-II)"] = {k: v for k, v in pareto.items() if k != "points"}

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.8))
    axes = axes.ravel()
    scatter_axes = [axes[0], axes[1], axes[2], axes[3]]
    searched = [(name, f) for name, f in findings.items() if "points" in f]
    for ax in scatter_axes[len(searched) :]:
        ax.set_visible(False)
    finite = [p[2] for _, f in searched for p in f["points"] if p[2] is not None]
    vmin, vmax = (min(finite), max(finite)) if finite else (0, 1)
    rng = np.random.default_rng(0)
    for ax, (name, f) in zip(scatter_axes, searched):
        pts = [p for p in f["points"] if p[2] is not None]
        pruned = [p for p in f["points"] if p[2] is None]
        # a little vertical jitter: trials with the same width and lr would hide each other
        jitter = lambda n: rng.uniform(-0.06, 0.06, n)  # noqa: E731
        if pts:
            sc = ax.scatter(
                [p[0] for p in pts],
                np.log2([p[1] for p in pts]) + jitter(len(pts)),
                c=[p[2] for p in pts],
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
                s=45,
                edgecolors="k",
            )
        if pruned:
            ax.scatter(
                [p[0] for p in pruned],
                np.log2([p[1] for p in pruned]) + jitter(len(pruned)),
                marker="x",
                color="C3",
                s=40,
                label="pruned",
            )
            ax.legend(fontsize=8, loc="lower left")
        best = f["best_params"]
        ax.scatter(
            [best["lr"]],
            [np.log2(best["hidden"])],
            marker="*",
            s=300,
            facecolors="none",
            edgecolors="C3",
            linewidths=1.5,
        )
        ax.set_xscale("log")
        ax.set_xlim(7e-5, 1.4)  # the whole range searched, the same in every panel
        ax.set_yticks(np.log2(WIDTHS), [str(w) for w in WIDTHS])
        ax.set_ylim(np.log2(WIDTHS[0]) - 0.5, np.log2(WIDTHS[-1]) + 0.5)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("hidden units")
        ax.set_title(f"{name}: best {f['best_score']:.3f} (star)", fontsize=10)
        ax.grid(alpha=0.3)
    if finite:
        # one colour bar, beside the last search: the four share its scale
        fig.colorbar(sc, ax=scatter_axes[len(searched) - 1], label=f"{CV}-fold CV accuracy (all four)")
    ax = axes[4]
    for i, (name, f) in enumerate(searched):
        ax.plot(range(1, len(f["best_so_far"]) + 1), f["best_so_far"], marker="o", ms=3, color=f"C{i}", label=name)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("best CV accuracy so far")
    ax.set_title("Best score vs number of trials")
    ax.set_ylim(max(0.0, vmax - 0.15), vmax + 0.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[5]
    if pareto is None:
        ax.set_visible(False)
    else:
        sizes, accs = zip(*[(n, a) for n, a in pareto["points"] if a is not None and np.isfinite(a)])
        ax.scatter(sizes, accs, s=30, color="C7", alpha=0.7, label="NSGA-II trials")
        front = pareto["front"]
        ax.step(
            [p["n_params"] for p in front][::-1],
            [p["score"] for p in front][::-1],
            where="post",
            color="C3",
            marker="o",
            label="Pareto front",
        )
        for p in front:
            ax.annotate(
                f"{p['params']['hidden']}",
                (p["n_params"], p["score"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color="C3",
            )
        ax.set_xscale("log")
        ax.set_xlabel("parameters (log scale); labels: hidden units")
        ax.set_ylabel(f"{CV}-fold CV accuracy")
        ax.set_ylim(max(0.0, min(accs) - 0.02), max(accs) + 0.02)
        ax.set_title(f"Accuracy vs size (NSGA-II, {len(pareto['points'])} trials)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Hyper-parameter search on the digits: {n_trials} trials each, {epochs} epochs of Adam per fit")
    fig.tight_layout()
    save(fig, args, "7_tuning")
    for f in findings.values():
        f.pop("points", None)
    findings["seconds"] = done(args)
    return findings


def pareto_search(build, X, y, n_trials, seed, fit_kwargs) -> dict:
    """NSGA-II on accuracy vs number of weights, the width a range: the Pareto front. The
    learning rate is searched where the four searches found their best (1e-3 to 0.1), so
    that the trials show the width's trade-off rather than bad learning rates."""
    space = {"hidden": IntUniform(4, 128), "lr": LogUniform(1e-3, 0.1)}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="optuna")
        search = EvolutionSearch(
            build,
            space,
            n_iter=n_trials,
            cv=CV,
            seed=seed,
            fit_kwargs=fit_kwargs,
            objectives=("score", "n_params"),
            population_size=max(4, n_trials // 4),
        ).fit(X, y)
    seconds = time.perf_counter() - start
    front = [{"params": params, "score": score, "n_params": n} for params, score, n in search.pareto_front_]
    print(
        f"\nEvolutionSearch(objectives=('score', 'n_params')), NSGA-II: {len(search.results_)} trials in "
        f"{seconds:.1f} s; the Pareto front (no other trial is both more accurate and smaller):"
    )
    print(f"{'hidden':>6} {'lr':>9} {'params':>7} {'accuracy':>9}")
    for p in front:
        print(f"{p['params']['hidden']:6d} {p['params']['lr']:9.4g} {p['n_params']:7,d} {p['score']:9.4f}")
    return {
        "front": front,
        "trials": len(search.results_),
        "seconds": seconds,
        "best_score": search.best_score_,
        "points": [(r["n_params"], r["mean_score"]) for r in search.results_],
    }


if __name__ == "__main__":
    main()
