"""EvolutionSearch: CMA-ES (Optuna's CmaEsSampler) for the score, NSGA-II for score vs
model size with its Pareto front; seeded reproducibility, Choice parameters (TPE
fallback), the results table, a shared study, the error messages.

Data are tiny (200 digits, 2 epochs, one small hidden layer), as in test_model_selection."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import xpnn
from xpnn.model_selection import Choice, EvolutionSearch, IntUniform, LogUniform, Uniform

optuna = pytest.importorskip("optuna")

FIT = {"epochs": 2, "batch_size": 32}
SPACE = {"hidden": IntUniform(2, 24), "lr": LogUniform(1e-4, 1.0)}


def build(hidden=8, lr=0.03, width=None):
    sizes = list(width) if width is not None else hidden
    model = xpnn.NeuralNetwork(64, sizes, 10, seed=0)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr))


def mlp_size(hidden):
    """64 -> hidden -> 10: weights and biases."""
    return 64 * hidden + hidden + hidden * 10 + 10


def generations(search) -> list:
    """The CMA-ES generation of each trial in results_ (None: drawn independently)."""
    return [search.study_.trials[r["number"]].system_attrs.get("cma:generation") for r in search.results_]


def test_cma_es_moves_its_population_to_a_good_region(digits):
    pytest.importorskip("cmaes")
    X, y = digits
    search = EvolutionSearch(build, SPACE, n_iter=20, cv=2, seed=0, fit_kwargs=FIT).fit(X, y)
    assert len(search.results_) == 20 and [r["number"] for r in search.results_] == list(range(20))
    gens = generations(search)
    # the first trial is drawn at random; then generations of 6 (4 + floor(3 ln 2)) from CMA-ES
    assert gens[0] is None and gens[1:] == [g for g in range(4) for _ in range(6)][:19]
    scores = np.array([r["mean_score"] for r in search.results_])
    first, last = scores[1:7], scores[13:19]
    assert last.mean() > first.mean() + 0.1  # the population moved to better settings
    assert search.best_score_ == scores.max() > 0.5  # chance is 0.1
    assert search.best_params_ == search.results_[int(scores.argmax())]["params"]
    for r in search.results_:
        assert 2 <= r["params"]["hidden"] <= 24 and type(r["params"]["hidden"]) is int
        assert 1e-4 <= r["params"]["lr"] <= 1.0
        assert r["n_params"] == mlp_size(r["params"]["hidden"])
    assert search.pareto_front_ == [(search.best_params_, search.best_score_, mlp_size(search.best_params_["hidden"]))]
    assert search.best_model_.epochs_trained == 2


def test_same_seed_same_trials_and_another_seed_others(digits):
    pytest.importorskip("cmaes")
    X, y = digits
    runs = [EvolutionSearch(build, SPACE, n_iter=8, cv=2, seed=s, fit_kwargs=FIT).fit(X, y) for s in (3, 3, 4)]
    a, b, c = ([(r["params"], r["scores"]) for r in run.results_] for run in runs)
    assert a == b
    assert [p for p, _ in a] != [p for p, _ in c]
    front = [
        EvolutionSearch(
            build, SPACE, n_iter=6, cv=2, seed=1, fit_kwargs=FIT, objectives=("score", "n_params"), population_size=4
        )
        .fit(X, y)
        .pareto_front_
        for _ in range(2)
    ]
    assert front[0] == front[1]


def test_choice_parameters_fall_back_to_tpe(digits):
    pytest.importorskip("cmaes")
    X, y = digits
    space = {"lr": LogUniform(1e-3, 0.3), "width": Choice([None, (6, 6), (12,)])}
    search = EvolutionSearch(build, space, n_iter=10, cv=2, seed=0, fit_kwargs=FIT, population_size=4).fit(X, y)
    assert {repr(r["params"]["width"]) for r in search.results_} <= {"None", "(6, 6)", "(12,)"}
    assert len({repr(r["params"]["width"]) for r in search.results_}) > 1
    # the Choice is in no CMA-ES generation's search space: only lr is CMA-ES's
    assert any(g is not None for g in generations(search))
    sizes = {"None": mlp_size(8), "(6, 6)": 64 * 6 + 6 + 6 * 6 + 6 + 6 * 10 + 10, "(12,)": mlp_size(12)}
    assert all(r["n_params"] == sizes[repr(r["params"]["width"])] for r in search.results_)
    with pytest.warns(UserWarning, match="every parameter is a Choice, which CMA-ES cannot model"):
        EvolutionSearch(build, {"hidden": [4, 8]})


def test_nsga2_pareto_front_is_non_dominated_and_sorted(digits):
    X, y = digits
    space = {"hidden": IntUniform(1, 32), "lr": LogUniform(1e-3, 0.3)}
    search = EvolutionSearch(
        build, space, n_iter=16, cv=2, seed=0, fit_kwargs=FIT, objectives=("score", "n_params"), population_size=4
    ).fit(X, y)
    assert len(search.study_.directions) == 2
    points = [(r["mean_score"], r["n_params"]) for r in search.results_]
    front = search.pareto_front_
    assert front and [s for _, s, _ in front] == sorted((s for _, s, _ in front), reverse=True)

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and a != b

    on_front = [(s, n) for _, s, n in front]
    assert len(set(on_front)) == len(on_front)
    for p in on_front:
        assert p in points and not any(dominates(q, p) for q in points)
    for p in points:  # everything else is beaten on both counts by a front member
        assert p in on_front or any(dominates(q, p) or q == p for q in on_front)
    for params, _, n in front:
        assert n == mlp_size(params["hidden"])
    # the most accurate trade-off is the one refit
    assert (search.best_params_, search.best_score_) == front[0][:2]
    assert search.best_model_.count_params() == front[0][2]
    # the table shows the sizes and marks the front
    lines = search.to_markdown().splitlines()
    assert lines[0] == (
        "| trial | rank | hidden | lr | mean accuracy (higher is better) | std | n_params | "
        "Pareto front | fit time (s) |"
    )
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert sum(r[7] == "yes" for r in rows) == len(front)


def test_multi_objective_minimizes_a_loss_and_needs_no_cmaes(monkeypatch, digits):
    monkeypatch.setitem(sys.modules, "cmaes", None)  # NSGA-II does not use it
    X, y = digits
    search = EvolutionSearch(
        build,
        {"hidden": IntUniform(1, 16)},
        n_iter=6,
        cv=2,
        seed=0,
        fit_kwargs=FIT,
        scoring="loss",
        objectives=("score", "n_params"),
        population_size=4,
    ).fit(X, y)
    assert [d.name for d in search.study_.directions] == ["MINIMIZE", "MINIMIZE"]
    scores = [s for _, s, _ in search.pareto_front_]
    assert scores == sorted(scores) and search.best_score_ == min(r["mean_score"] for r in search.results_)


def test_a_shared_study_continues_and_checks_its_directions(tmp_path, digits):
    pytest.importorskip("cmaes")
    X, y = digits
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make = lambda **kw: EvolutionSearch(
        build,
        SPACE,
        n_iter=5,
        cv=2,
        seed=0,
        fit_kwargs=FIT,  # noqa: E731
        storage=url,
        study_name="evo",
        population_size=4,
        **kw,
    )
    first = make().fit(X, y)
    second = make().fit(X, y)  # loads the study: the CMA-ES state travels in the trials
    assert [r["number"] for r in second.results_] == list(range(10))
    assert [r["params"] for r in second.results_[:5]] == [r["params"] for r in first.results_]
    # the first fit: a random trial, then generation 0; the second goes on with generation 1
    assert generations(second) == [None, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    with pytest.raises(
        ValueError,
        match=re.escape("study 'evo' in") + ".*has the directions \\['maximize'\\], "
        "but this search needs \\['maximize', 'minimize'\\]",
    ):
        make(objectives=("score", "n_params")).fit(X, y)


def test_missing_packages_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "cmaes", None)
    with pytest.raises(
        ImportError,
        match=r"EvolutionSearch needs the cmaes package for CMA-ES: pip install "
        r'"xpnn\[tune\]" \(or pip install cmaes\)',
    ):
        EvolutionSearch(build, SPACE)
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r'EvolutionSearch needs Optuna: pip install "xpnn\[tune\]"'):
        EvolutionSearch(build, SPACE, objectives=("score", "n_params"))


def test_errors():
    pytest.importorskip("cmaes")
    for bad in (("n_params",), ("score", "size"), ("score", "n_params", "score"), (), 3, "n_params"):
        with pytest.raises(
            ValueError,
            match=r"EvolutionSearch: objectives must be \('score',\) \(CMA-ES\) or "
            r"\('score', 'n_params'\) .* found",
        ):
            EvolutionSearch(build, SPACE, objectives=bad)
    assert EvolutionSearch(build, SPACE, objectives="score").objectives == ("score",)
    assert EvolutionSearch(build, SPACE, objectives=["score", "n_params"]).multi_objective
    for bad in (3, 0, 4.0, True):
        with pytest.raises(
            ValueError, match=re.escape(f"EvolutionSearch: population_size must be an integer >= 4, found {bad!r}")
        ):
            EvolutionSearch(build, SPACE, population_size=bad)
    with pytest.raises(ValueError, match="EvolutionSearch: n_iter must be a positive integer, found 0"):
        EvolutionSearch(build, SPACE, n_iter=0)
    with pytest.raises(ValueError, match="EvolutionSearch: seed must be a non-negative integer, found -1"):
        EvolutionSearch(build, SPACE, seed=-1)
    with pytest.raises(ValueError, match="EvolutionSearch: unknown metric 'bad'"):
        EvolutionSearch(build, SPACE, scoring="bad")
    with pytest.raises(ValueError, match="EvolutionSearch: param_distributions is empty"):
        EvolutionSearch(build, {})
    with pytest.raises(TypeError, match=r"EvolutionSearch: param_distributions\['lr'\] must be Choice"):
        EvolutionSearch(build, {"lr": Uniform})
    with pytest.raises(TypeError, match="EvolutionSearch: build_fn must be a function returning a compiled model"):
        EvolutionSearch("build", SPACE)
    with pytest.raises(TypeError, match="EvolutionSearch: storage must be None \\(in memory\\), .sqlite:"):
        EvolutionSearch(build, SPACE, storage=3)


def test_exported_at_the_top_level():
    assert xpnn.EvolutionSearch is EvolutionSearch and "EvolutionSearch" in xpnn.__all__
    assert "EvolutionSearch" in xpnn.model_selection.__all__
