"""Model selection: KFold/StratifiedKFold fold properties (and scikit-learn cross-checks),
cross_validate, GridSearch, RandomSearch, BayesSearch (Optuna: TPE, pruning, sqlite
storage shared by two fits), the results tables and the error messages.

Data are tiny (200 digits, 1-3 epochs, one small hidden layer): the whole file runs in
seconds."""

from __future__ import annotations

import itertools
import math
import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.model_selection import (
    BayesSearch,
    Choice,
    GridSearch,
    IntUniform,
    KFold,
    LogUniform,
    RandomSearch,
    StratifiedKFold,
    Uniform,
    cross_validate,
)

hyp = settings(max_examples=15, deadline=None)


def regression(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5], dtype=np.float32) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return X, y


def classifier(backend="numpy"):
    """build_fn for the digits: (hidden, lr, width) -> a compiled MLP; the calls are recorded."""
    calls = []

    def build(hidden=8, lr=0.03, width=None):
        calls.append({"hidden": hidden, "lr": lr, "width": width})
        sizes = list(width) if width is not None else hidden
        model = xpnn.NeuralNetwork(64, sizes, 10, backend=backend, seed=0)
        return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr))

    build.calls = calls
    return build


def regressor(lr=0.05, hidden=4):
    model = xpnn.NeuralNetwork(3, hidden, 1, seed=0)
    return model.compile("mse", xpnn.Adam(lr=lr))


# batches of 50 divide every fold (50, 100, 150 and 200 samples): one training shape for JAX to compile
FIT = {"epochs": 2, "batch_size": 50}


def check_partition(folds, n):
    """Test parts disjoint and covering 0..n-1; train = the complement; sorted int64."""
    tests = [te for _, te in folds]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    for tr, te in folds:
        assert tr.dtype == np.int64 and te.dtype == np.int64
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(n))
        assert np.intersect1d(tr, te).size == 0
        assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)


# ---- KFold --------------------------------------------------------------------------------


@hyp
@given(n=st.integers(2, 60), k=st.integers(2, 8), shuffle=st.booleans(), seed=st.integers(0, 50))
def test_kfold_partitions_with_balanced_sizes(n, k, shuffle, seed):
    if k > n:
        with pytest.raises(ValueError, match=f"n_splits={k} is more than the {n} samples"):
            list(KFold(k, shuffle, seed).split(np.zeros((n, 2))))
        return
    folds = list(KFold(k, shuffle, seed).split(np.zeros((n, 2))))
    assert len(folds) == k
    check_partition(folds, n)
    sizes = [len(te) for _, te in folds]
    assert sizes == [n // k + (i < n % k) for i in range(k)]  # the first n % k folds hold one more


def test_kfold_without_shuffle_is_consecutive_and_matches_sklearn():
    folds = list(KFold(3).split(np.zeros(10)))
    assert [te.tolist() for _, te in folds] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    sk = pytest.importorskip("sklearn.model_selection")
    for n, k in [(10, 3), (17, 5), (7, 7)]:
        ours = list(KFold(k).split(np.zeros(n)))
        theirs = list(sk.KFold(k).split(np.zeros(n)))
        assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(ours, theirs))


def test_kfold_shuffle_is_seeded():
    X = np.zeros((50, 1))
    tests = lambda splitter: [te.tolist() for _, te in splitter.split(X)]  # noqa: E731
    assert tests(KFold(5, shuffle=True, seed=3)) == tests(KFold(5, shuffle=True, seed=3))
    assert tests(KFold(5, shuffle=True, seed=3)) != tests(KFold(5, shuffle=True, seed=4))
    assert tests(KFold(5, shuffle=True, seed=3)) != tests(KFold(5))
    splitter = KFold(5, shuffle=True, seed=3)
    assert tests(splitter) == tests(splitter)  # each split call starts from the seed
    check_partition(list(splitter.split(X)), 50)


def test_kfold_takes_backend_arrays_and_lists(backend):
    X = backend.asarray(np.zeros((9, 2), dtype=np.float32))
    assert [te.tolist() for _, te in KFold(3).split(X)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [te.tolist() for _, te in KFold(3).split([[0]] * 6)] == [[0, 1], [2, 3], [4, 5]]


# ---- StratifiedKFold ------------------------------------------------------------------------


@st.composite
def labels_and_k(draw):
    k = draw(st.integers(2, 5))
    n_classes = draw(st.integers(1, 4))
    counts = [draw(st.integers(k, 3 * k + 5)) for _ in range(n_classes)]
    y = np.repeat(np.arange(n_classes), counts)
    order = draw(st.permutations(range(len(y))))
    return y[list(order)], k


@hyp
@given(data=labels_and_k(), shuffle=st.booleans(), seed=st.integers(0, 50))
def test_stratified_folds_keep_class_proportions(data, shuffle, seed):
    y, k = data
    folds = list(StratifiedKFold(k, shuffle, seed).split(np.zeros((len(y), 1)), y))
    assert len(folds) == k
    check_partition(folds, len(y))
    for c in np.unique(y):
        total = int(np.sum(y == c))
        in_fold = [int(np.sum(y[te] == c)) for _, te in folds]
        # each fold holds its share of every class, to within one sample
        assert max(in_fold) - min(in_fold) <= 1 and min(in_fold) >= total // k


@hyp
@given(data=labels_and_k())
def test_stratified_without_shuffle_matches_sklearn(data):
    sk = pytest.importorskip("sklearn.model_selection")
    y, k = data
    y = np.array([7, 3, 5, 1])[y]  # labels that are not 0..K-1, first seen out of order
    X = np.zeros((len(y), 1))
    ours = list(StratifiedKFold(k).split(X, y))
    theirs = list(sk.StratifiedKFold(k).split(X, y))
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(ours, theirs))


def test_stratified_shuffle_is_seeded_and_reads_one_hot_and_backend_labels(backend):
    y = np.repeat([0, 1, 2], [20, 30, 10])
    X = np.zeros((60, 1))
    tests = lambda s, labels: [te.tolist() for _, te in s.split(X, labels)]  # noqa: E731
    shuffled = tests(StratifiedKFold(5, shuffle=True, seed=1), y)
    assert shuffled == tests(StratifiedKFold(5, shuffle=True, seed=1), y)
    assert shuffled != tests(StratifiedKFold(5, shuffle=True, seed=2), y)
    assert shuffled != tests(StratifiedKFold(5), y)
    assert tests(StratifiedKFold(5), np.eye(3)[y]) == tests(StratifiedKFold(5), y)
    assert tests(StratifiedKFold(5), backend.asarray(y)) == tests(StratifiedKFold(5), y)
    assert tests(StratifiedKFold(5), y[:, None]) == tests(StratifiedKFold(5), y)


def test_splitter_errors():
    with pytest.raises(ValueError, match=r"^KFold: n_splits must be an integer >= 2, found 1$"):
        KFold(1)
    for bad in (0, True, 2.0, "3", np.float64(3.0)):
        with pytest.raises(ValueError, match=r"KFold: n_splits must be an integer >= 2, found"):
            KFold(bad)
    with pytest.raises(ValueError, match="StratifiedKFold: n_splits must be an integer >= 2"):
        StratifiedKFold(1)
    with pytest.raises(ValueError, match="KFold: seed must be a non-negative integer, found -1"):
        KFold(3, shuffle=True, seed=-1)
    with pytest.raises(ValueError, match="KFold: shuffle must be True or False, found 'yes'"):
        KFold(3, shuffle="yes")
    with pytest.raises(ValueError, match="n_splits=4 is more than the 3 samples in X"):
        list(KFold(4).split(np.zeros(3)))
    with pytest.raises(ValueError, match="X has 5 samples but y has 4"):
        list(KFold(2).split(np.zeros(5), np.zeros(4)))
    y = np.array([0] * 10 + [1] * 2)
    with pytest.raises(ValueError, match=r"n_splits=3 is more than the 2 members of class 1 in y"):
        list(StratifiedKFold(3).split(np.zeros(12), y))
    with pytest.raises(ValueError, match="y .the class labels. is required"):
        list(StratifiedKFold(2).split(np.zeros(12)))
    with pytest.raises(TypeError, match="X must be an array"):
        list(KFold(2).split(5))


# ---- cross_validate ---------------------------------------------------------------------------


def test_cross_validate_keys_lengths_and_scores(backend, digits):
    X, y = digits
    build = classifier(backend)
    out = cross_validate(build, X, y, cv=4, fit_kwargs=FIT, metrics=("accuracy", "loss", "f1"))
    assert set(out) == {"test_accuracy", "test_loss", "test_f1", "fit_time", "score_time"}
    assert all(len(v) == 4 and all(isinstance(x, float) for x in v) for v in out.values())
    assert all(0.0 <= a <= 1.0 for a in out["test_accuracy"]) and all(t > 0 for t in out["fit_time"])
    assert len(build.calls) == 4  # a fresh model per fold
    # the same pipeline by hand, on the first fold: stratified (integer labels), unshuffled
    train, test = next(StratifiedKFold(4).split(X, y))
    model = build()
    model.fit(X[train], y[train], verbose=0, **FIT)
    assert out["test_accuracy"][0] == xpnn.metrics.accuracy(y[test], model.predict(X[test]))
    assert out["test_loss"][0] == pytest.approx(model.evaluate(X[test], y[test])["loss"], rel=1e-6)
    # arrays already on the backend give the same scores
    again = cross_validate(
        build, backend.asarray(X), backend.asarray(y), cv=4, fit_kwargs=FIT, metrics=("accuracy", "loss", "f1")
    )
    for key in ("test_accuracy", "test_loss", "test_f1"):
        assert again[key] == pytest.approx(out[key], rel=1e-5)


def test_cross_validate_picks_stratified_for_labels_and_kfold_otherwise(digits):
    X, y = digits
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]  # sorted by class: unstratified consecutive folds would be lopsided
    seen = []

    def share_of_class_0(y_true, y_pred):
        seen.append(np.asarray(xpnn.get_backend("numpy").to_numpy(y_true)).reshape(-1))
        return 0.0

    cross_validate(classifier(), X, y, cv=2, fit_kwargs={"epochs": 1}, metrics=[share_of_class_0])
    shares = [np.mean(s == 0) for s in seen]
    assert shares[0] == pytest.approx(np.mean(y == 0), abs=0.01) and shares[0] == pytest.approx(shares[1])
    seen.clear()
    Xr, yr = regression()
    yr = np.sort(yr)
    cross_validate(regressor, Xr, yr, cv=2, fit_kwargs={"epochs": 1}, metrics=[share_of_class_0, "mse"])
    assert np.array_equal(seen[0], yr[:60]) and np.array_equal(seen[1], yr[60:])  # KFold: consecutive halves


def test_cross_validate_with_a_splitter_and_params(digits):
    X, y = digits
    build = classifier()
    a = cross_validate(
        build, X, y, cv=KFold(3, shuffle=True, seed=1), fit_kwargs=FIT, metrics="accuracy", params={"hidden": 5}
    )
    b = cross_validate(
        build, X, y, cv=KFold(3, shuffle=True, seed=1), fit_kwargs=FIT, metrics="accuracy", params={"hidden": 5}
    )
    assert len(a["test_accuracy"]) == 3 and a["test_accuracy"] == b["test_accuracy"]  # reproducible
    assert all(c["hidden"] == 5 for c in build.calls)


def test_cross_validate_errors(digits):
    X, y = digits
    build = classifier()
    with pytest.raises(ValueError, match="cross_validate: unknown metric 'nope'"):
        cross_validate(build, X, y, metrics=["nope"])
    with pytest.raises(ValueError, match="metrics must name at least one metric"):
        cross_validate(build, X, y, metrics=[])
    with pytest.raises(ValueError, match="cross_validate: cv must be a number of folds >= 2 .* found 1"):
        cross_validate(build, X, y, cv=1)
    with pytest.raises(TypeError, match="cv must be a number of folds .* found '3'"):
        cross_validate(build, X, y, cv="3")
    with pytest.raises(TypeError, match="build_fn must be a function"):
        cross_validate("model", X, y)
    with pytest.raises(TypeError, match="fit_kwargs must be a dict"):
        cross_validate(build, X, y, fit_kwargs=[3])
    with pytest.raises(ValueError, match="fit_kwargs must not hold 'y'"):
        cross_validate(build, X, y, fit_kwargs={"y": y})
    with pytest.raises(ValueError, match="X has 200 samples but y has 199"):
        cross_validate(build, X, y[:-1])
    with pytest.raises(TypeError, match="not compiled; call model.compile"):
        cross_validate(lambda: xpnn.NeuralNetwork(64, 4, 10), X, y, cv=2)
    with pytest.raises(TypeError, match=r"build_fn\(\*\*\{'depth': 2\}\) failed"):
        cross_validate(build, X, y, cv=2, params={"depth": 2})


# ---- GridSearch ------------------------------------------------------------------------------


def test_grid_search_enumerates_the_grid_and_picks_the_best(backend, digits):
    X, y = digits
    build = classifier(backend)
    grid = {"hidden": [4, 16], "lr": [0.001, 0.03]}
    # cv=2: two equal folds of the 200 samples (cv=3's 133/134 rows would double the shapes jax compiles for)
    search = GridSearch(build, grid, cv=2, fit_kwargs=FIT)
    assert search.fit(X, y) is search
    tried = [r["params"] for r in search.results_]
    assert tried == [{"hidden": h, "lr": lr} for h, lr in itertools.product([4, 16], [0.001, 0.03])]
    for r in search.results_:
        assert len(r["scores"]) == 2 and r["mean_score"] == pytest.approx(np.mean(r["scores"]))
        assert r["std_score"] == pytest.approx(np.std(r["scores"])) and r["fit_time"] > 0
    means = [r["mean_score"] for r in search.results_]
    assert search.best_score_ == max(means) and search.best_params_ == tried[int(np.argmax(means))]
    assert search.best_params_ == {"hidden": 16, "lr": 0.03}  # the big, fast learner wins on 2 epochs
    # each candidate is scored exactly as cross_validate scores it
    cv = cross_validate(build, X, y, cv=2, fit_kwargs=FIT, params=search.best_params_)
    assert cv["test_accuracy"] == search.results_[search.best_index_]["scores"]
    # best_model_: the best params, refit on all 200 samples
    model = search.best_model_
    assert model.layers[0].params["W"].shape == (64, 16) and model.epochs_trained == 2
    ref = build(**search.best_params_)
    ref.fit(X, y, verbose=0, **FIT)
    assert np.array_equal(model.predict(X), ref.predict(X))


def test_grid_search_minimises_mse_and_takes_a_list_of_grids():
    X, y = regression()
    search = GridSearch(
        regressor,
        [{"lr": [0.0001, 0.05]}, {"lr": [0.02], "hidden": [2, 8]}],
        cv=3,
        fit_kwargs={"epochs": 3},
        scoring="mse",
    ).fit(X, y)
    assert [r["params"] for r in search.results_] == [
        {"lr": 0.0001},
        {"lr": 0.05},
        {"lr": 0.02, "hidden": 2},
        {"lr": 0.02, "hidden": 8},
    ]
    means = [r["mean_score"] for r in search.results_]
    assert search.mode == "min" and search.best_score_ == min(means) and max(means) > min(means)
    assert search.best_params_ != {"lr": 0.0001}  # the slowest learner has the largest error
    table = search.to_markdown()
    assert "mean mse (lower is better)" in table
    shown = [float(row.split("|")[4]) for row in table.splitlines()[2:]]
    assert shown == sorted(shown)  # best (smallest) first


def test_grid_search_to_markdown(digits):
    X, y = digits
    search = GridSearch(classifier(), {"hidden": [4, 16], "lr": [0.001, 0.03]}, cv=2, fit_kwargs=FIT)
    with pytest.raises(RuntimeError, match="GridSearch.to_markdown: nothing to show yet; call fit"):
        search.to_markdown()
    lines = search.fit(X, y).to_markdown().splitlines()
    assert lines[0] == "| rank | hidden | lr | mean accuracy (higher is better) | std | fit time (s) |"
    assert re.fullmatch(r"\|(---\|){6}", lines[1])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(rows) == 4 and [r[0] for r in rows] == ["1", "2", "3", "4"]
    scores = [float(r[3]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert rows[0][1:3] == [str(search.best_params_["hidden"]), f"{search.best_params_['lr']:.4g}"]
    assert scores[0] == pytest.approx(search.best_score_, abs=5e-5)


def test_grid_search_errors(digits):
    X, y = digits
    build = classifier()
    with pytest.raises(ValueError, match="GridSearch: param_grid is empty"):
        GridSearch(build, {})
    with pytest.raises(ValueError, match="param_grid is an empty list"):
        GridSearch(build, [])
    with pytest.raises(ValueError, match=r"GridSearch: param_grid\['lr'\] is an empty list"):
        GridSearch(build, {"lr": []})
    with pytest.raises(
        TypeError,
        match=r"param_grid\['lr'\] must be a list of values, found float 0.1 "
        r"\(for a fixed value use \[0.1\]\)",
    ):
        GridSearch(build, {"lr": 0.1})
    with pytest.raises(TypeError, match=r"param_grid\[1\]\['lr'\] is Uniform\(0.0, 1.0\), a range a grid cannot"):
        GridSearch(build, [{"hidden": [4]}, {"lr": Uniform(0, 1)}])
    with pytest.raises(ValueError, match="GridSearch: unknown metric 'accuracyy'"):
        GridSearch(build, {"lr": [0.1]}, scoring="accuracyy")
    with pytest.raises(TypeError, match="parameter names must be strings"):
        GridSearch(build, {1: [0.1]})
    nan = lambda y_true, y_pred: float("nan")  # noqa: E731
    with pytest.raises(RuntimeError, match="no trial finished with a finite score"):
        GridSearch(build, {"lr": [0.01]}, cv=2, fit_kwargs={"epochs": 1}, scoring=nan).fit(X, y)


def test_numpy_grid_values_reach_build_fn_as_python_numbers(digits):
    X, y = digits
    build = classifier()
    GridSearch(build, {"lr": np.array([0.01, 0.02])}, cv=2, fit_kwargs={"epochs": 1}).fit(X, y)
    assert all(type(c["lr"]) is float for c in build.calls)


# ---- distributions and RandomSearch -------------------------------------------------------------


def test_distributions_draw_within_bounds():
    rng = np.random.default_rng(0)
    u = [Uniform(-2, 3).sample(rng) for _ in range(2000)]
    assert all(type(v) is float and -2.0 <= v < 3.0 for v in u) and np.mean(u) == pytest.approx(0.5, abs=0.15)
    lu = np.array([LogUniform(1e-4, 1e-1).sample(rng) for _ in range(2000)])
    assert np.all((lu >= 1e-4) & (lu <= 1e-1))
    # log-uniform: each decade equally likely, so a third of the draws lie below 1e-3
    assert np.mean(lu < 1e-3) == pytest.approx(1 / 3, abs=0.05)
    iu = [IntUniform(2, 5).sample(rng) for _ in range(500)]
    assert all(type(v) is int for v in iu) and set(iu) == {2, 3, 4, 5}  # both ends included
    ch = [Choice(["a", (1, 2), None]).sample(rng) for _ in range(300)]
    assert {repr(v) for v in ch} == {"'a'", "(1, 2)", "None"}


def test_random_search_draws_within_bounds_and_is_reproducible(digits):
    X, y = digits
    space = {"hidden": IntUniform(3, 20), "lr": LogUniform(1e-3, 0.1), "width": [None, (6, 6)]}
    draws = RandomSearch(classifier(), space, n_iter=40).candidates
    assert len(draws) == 40 and len({repr(d) for d in draws}) == 40
    assert all(3 <= d["hidden"] <= 20 and 1e-3 <= d["lr"] <= 0.1 and d["width"] in (None, (6, 6)) for d in draws)
    build = classifier()
    first = RandomSearch(build, space, n_iter=3, seed=7, fit_kwargs=FIT, cv=2).fit(X, y)
    again = RandomSearch(build, space, n_iter=3, seed=7, fit_kwargs=FIT, cv=2).fit(X, y)
    other = RandomSearch(build, space, n_iter=3, seed=8, fit_kwargs=FIT, cv=2).fit(X, y)
    assert [r["params"] for r in first.results_] == [r["params"] for r in again.results_]
    assert [r["scores"] for r in first.results_] == [r["scores"] for r in again.results_]
    assert [r["params"] for r in first.results_] != [r["params"] for r in other.results_]
    assert [c for c in build.calls[:6:2]] == [{**{"width": None}, **r["params"]} for r in first.results_]
    means = [r["mean_score"] for r in first.results_]
    assert first.best_score_ == max(means) and first.best_params_ == first.results_[int(np.argmax(means))]["params"]


def test_random_search_tries_a_small_discrete_space_once_each(digits):
    search = RandomSearch(classifier(), {"hidden": [4, 8], "lr": IntUniform(1, 2)}, n_iter=10, seed=0)
    drawn = sorted((c["hidden"], c["lr"]) for c in search.candidates)
    assert drawn == [(4, 1), (4, 2), (8, 1), (8, 2)]
    # a space just larger than n_iter is sampled, and still without repeats
    for seed in range(3):
        hidden = [
            c["hidden"]
            for c in RandomSearch(classifier(), {"hidden": IntUniform(1, 6)}, n_iter=5, seed=seed).candidates
        ]
        assert len(hidden) == 5 and len(set(hidden)) == 5


def test_random_search_errors():
    build = classifier()
    with pytest.raises(
        TypeError,
        match=r"RandomSearch: param_distributions\['lr'\] must be Choice, Uniform, "
        r"LogUniform, IntUniform or a list of values, found str 'uniform'",
    ):
        RandomSearch(build, {"lr": "uniform"})
    with pytest.raises(TypeError, match=r"param_distributions\['lr'\] .* found float 0.1 .*use a list: \[0.1\]"):
        RandomSearch(build, {"lr": 0.1})
    with pytest.raises(ValueError, match="param_distributions is empty"):
        RandomSearch(build, {})
    with pytest.raises(ValueError, match=r"param_distributions\['lr'\] is an empty list"):
        RandomSearch(build, {"lr": []})
    with pytest.raises(ValueError, match="n_iter must be a positive integer, found 0"):
        RandomSearch(build, {"lr": [0.1]}, n_iter=0)
    with pytest.raises(ValueError, match="RandomSearch: unknown metric 'bad'"):
        RandomSearch(build, {"lr": [0.1]}, scoring="bad")
    with pytest.raises(ValueError, match="Uniform: low must be below high, found low=1, high=0"):
        Uniform(1, 0)
    with pytest.raises(ValueError, match="Uniform: high must be a finite number, found inf"):
        Uniform(0, math.inf)
    with pytest.raises(ValueError, match="LogUniform: low must be positive"):
        LogUniform(0, 1)
    with pytest.raises(ValueError, match="IntUniform: low must be an integer, found 1.5"):
        IntUniform(1.5, 3)
    with pytest.raises(ValueError, match="IntUniform: low must not exceed high"):
        IntUniform(3, 2)
    with pytest.raises(ValueError, match="Choice: options is empty"):
        Choice([])
    with pytest.raises(TypeError, match="Choice: options must be a list of values"):
        Choice(3)


def test_numpy_scalars_are_accepted_like_python_numbers_and_bool_is_refused():
    folds = KFold(np.int64(3), shuffle=True, seed=np.uint8(1))
    assert (folds.n_splits, folds.seed) == (3, 1) and type(folds.n_splits) is int and type(folds.seed) is int
    assert [te.tolist() for _, te in folds.split(np.zeros(7))] == [
        te.tolist() for _, te in KFold(3, shuffle=True, seed=1).split(np.zeros(7))
    ]
    assert StratifiedKFold(np.int32(2)).n_splits == 2
    ints = IntUniform(np.int64(1), np.int32(3))
    assert ints.values() == [1, 2, 3] and repr(ints) == "IntUniform(1, 3)"
    floats = LogUniform(np.float32(0.5), np.float64(2.0))
    assert (floats.low, floats.high) == (0.5, 2.0) and type(floats.low) is float
    search = RandomSearch(
        classifier(), {"lr": Uniform(np.float64(0.01), 0.1)}, n_iter=np.int64(2), cv=np.int64(2), seed=np.int16(4)
    )
    assert (search.n_iter, search.seed, search.cv) == (2, 4, 2) and len(search.candidates) == 2
    assert type(search.cv) is int
    assert GridSearch(classifier(), {"hidden": np.array([4, 8])}, cv=np.int8(3)).cv == 3
    assert KFold(3, shuffle=np.bool_(True)).shuffle is True  # NumPy's bool is a bool

    for make, message in [
        (lambda: KFold(True), "KFold: n_splits must be an integer >= 2, found True"),
        (lambda: KFold(3, seed=True), "KFold: seed must be a non-negative integer, found True"),
        (lambda: KFold(3, shuffle=1), "KFold: shuffle must be True or False"),
        (lambda: IntUniform(False, 3), "IntUniform: low must be an integer, found False"),
        (lambda: Uniform(0, True), "Uniform: high must be a finite number, found True"),
        (
            lambda: RandomSearch(classifier(), {"lr": [0.1]}, n_iter=True),
            "RandomSearch: n_iter must be a positive integer, found True",
        ),
        (
            lambda: RandomSearch(classifier(), {"lr": [0.1]}, seed=False),
            "RandomSearch: seed must be a non-negative integer, found False",
        ),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            make()
    with pytest.raises(TypeError, match="GridSearch: cv must be a number of folds .* found True"):
        GridSearch(classifier(), {"lr": [0.1]}, cv=True)


# ---- BayesSearch -----------------------------------------------------------------------------


def test_bayes_search_names_the_extra_when_optuna_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what a missing package looks like to import
    with pytest.raises(ImportError, match=r'BayesSearch needs Optuna: pip install "xpnn\[tune\]"'):
        BayesSearch(classifier(), {"lr": LogUniform(1e-3, 0.1)})


SPACE = {"hidden": IntUniform(3, 24), "lr": LogUniform(1e-4, 0.1)}


def test_bayes_search_runs_and_is_reproducible(backend, digits):
    pytest.importorskip("optuna")
    X, y = digits
    runs = [
        BayesSearch(
            classifier(backend), {**SPACE, "width": [None, (6, 6)]}, n_iter=6, cv=2, seed=3, fit_kwargs=FIT
        ).fit(X, y)
        for _ in range(2)
    ]
    a, b = runs
    assert len(a.results_) == 6 and [r["number"] for r in a.results_] == list(range(6))
    assert [r["params"] for r in a.results_] == [r["params"] for r in b.results_]
    assert [r["mean_score"] for r in a.results_] == [r["mean_score"] for r in b.results_]
    for r in a.results_:
        p = r["params"]
        assert 3 <= p["hidden"] <= 24 and 1e-4 <= p["lr"] <= 0.1 and p["width"] in (None, (6, 6))
    scored = [r for r in a.results_ if not r["pruned"]]
    assert a.best_score_ == max(r["mean_score"] for r in scored)
    assert a.best_params_ == max(scored, key=lambda r: r["mean_score"])["params"]
    assert a.best_model_.epochs_trained == 2
    other = BayesSearch(classifier(backend), SPACE, n_iter=2, cv=2, seed=4, fit_kwargs=FIT).fit(X, y)
    assert other.results_[0]["params"] != a.results_[0]["params"]


def test_bayes_search_prunes_hopeless_trials(digits):
    optuna = pytest.importorskip("optuna")
    X, y = digits
    fit = {"epochs": 3, "batch_size": 32}
    search = BayesSearch(classifier(), SPACE, n_iter=12, cv=2, seed=0, fit_kwargs=fit).fit(X, y)
    pruned = [r for r in search.results_ if r["pruned"]]
    assert pruned and len(pruned) < len(search.results_)
    for r in pruned:
        assert r["mean_score"] is None and r["std_score"] is None and 0 <= r["pruned_at_epoch"] < 3
        trial = search.study_.trials[r["number"]]
        assert trial.state == optuna.trial.TrialState.PRUNED and trial.last_step == r["pruned_at_epoch"]
        # the median rule: its score at that epoch was below the median of the earlier trials'
        step = r["pruned_at_epoch"]
        earlier = [
            t.intermediate_values[step]
            for t in search.study_.trials[: r["number"]]
            if t.state == optuna.trial.TrialState.COMPLETE
        ]
        assert trial.intermediate_values[step] < np.median(earlier)
    # the first fold's reports are the held-out scores after each epoch: the last equals the fold's score
    done = next(r for r in search.results_ if not r["pruned"])
    assert search.study_.trials[done["number"]].intermediate_values[2] == done["scores"][0]
    # pruned trials come last in the table
    rows = search.to_markdown().splitlines()[2:]
    assert all("pruned (epoch" in row for row in rows[-len(pruned) :])
    assert not any("pruned" in row for row in rows[: -len(pruned)])
    assert rows[0].split("|")[2].strip() == "1"
    unpruned = BayesSearch(classifier(), SPACE, n_iter=12, cv=2, seed=0, fit_kwargs=fit, pruning=False).fit(X, y)
    assert not any(r["pruned"] for r in unpruned.results_)


def test_bayes_search_minimises_loss_and_shares_a_sqlite_study(tmp_path, digits):
    optuna = pytest.importorskip("optuna")
    X, y = digits
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make = lambda scoring="loss": BayesSearch(
        classifier(),
        SPACE,
        n_iter=3,
        cv=2,
        seed=0,  # noqa: E731
        fit_kwargs=FIT,
        scoring=scoring,
        storage=url,
        study_name="s",
    )
    first = make().fit(X, y)
    assert first.study_.direction == optuna.study.StudyDirection.MINIMIZE
    assert first.best_score_ == min(r["mean_score"] for r in first.results_ if not r["pruned"])
    second = make().fit(X, y)  # as another process would: loads the study and adds 3 trials
    assert [r["number"] for r in second.results_] == list(range(6))
    assert [r["params"] for r in second.results_[:3]] == [r["params"] for r in first.results_]
    assert [r["mean_score"] for r in second.results_[:3]] == [r["mean_score"] for r in first.results_]
    new = [r["params"] for r in second.results_[3:]]
    assert all(p not in [r["params"] for r in first.results_] for p in new)  # no repeated proposals
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 6
    assert second.best_score_ <= first.best_score_
    with pytest.raises(ValueError, match="study 's' .* is set to minimize, but scoring='accuracy' must be maximized"):
        make("accuracy").fit(X, y)


def test_bayes_search_errors():
    pytest.importorskip("optuna")
    build = classifier()
    with pytest.raises(ValueError, match="BayesSearch: unknown metric 'bad'"):
        BayesSearch(build, SPACE, scoring="bad")
    with pytest.raises(TypeError, match=r"BayesSearch: param_distributions\['lr'\] must be Choice"):
        BayesSearch(build, {"lr": {"low": 1}})
    with pytest.raises(ValueError, match="BayesSearch: param_distributions is empty"):
        BayesSearch(build, {})
    with pytest.raises(TypeError, match="pruning must be True, False or an optuna pruner"):
        BayesSearch(build, SPACE, pruning="median")
    with pytest.raises(TypeError, match="storage must be None \\(in memory\\), .sqlite:"):
        BayesSearch(build, SPACE, storage=3)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        BayesSearch(build, SPACE, seed=-1)
