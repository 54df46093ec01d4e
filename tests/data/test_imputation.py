"""Missing values and outliers on every backend: SimpleImputer, RobustScaler and
OutlierClipper against scikit-learn and NumPy (hand-worked values, NaN handling, saving)
and their error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xpnn.preprocessing import NotFittedError, OutlierClipper, RobustScaler, SimpleImputer

sk_impute = pytest.importorskip("sklearn.impute")
sk_preprocessing = pytest.importorskip("sklearn.preprocessing")


def host(backend, a):
    return np.asarray(backend.to_numpy(a))


def with_nans(rng, n, k, fraction=0.25, values=None):
    """(n, k) float64 with about ``fraction`` of the cells NaN (every column keeps a value);
    ``values``: draw the cells from these (repeats, for most_frequent)."""
    X = rng.normal(2.0, 3.0, size=(n, k)) if values is None else rng.choice(values, size=(n, k)).astype(float)
    holes = rng.random((n, k)) < fraction
    holes[0] = False  # the first row keeps every column non-empty
    X[holes] = np.nan
    return X


# ---- SimpleImputer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy, fill", [("mean", 7 / 3), ("median", 3.0), ("most_frequent", 3.0), ("constant", -1.0)]
)
def test_simple_imputer_by_hand(backend, strategy, fill):
    # column 0: [1, NaN, 3, 3]; column 1 has nothing missing and keeps its values
    X = backend.asarray(np.array([[1.0, 5.0], [np.nan, 6.0], [3.0, 7.0], [3.0, 8.0]]))
    imputer = SimpleImputer(strategy, fill_value=-1.0 if strategy == "constant" else None)
    Y = imputer.fit_transform(X)
    assert backend.owns(Y) and Y.dtype == X.dtype and backend.owns(imputer.statistics_)
    np.testing.assert_allclose(host(backend, Y), [[1, 5], [fill, 6], [3, 7], [3, 8]], rtol=1e-15)
    assert imputer.n_features_in_ == 2 and imputer.n_samples_seen_ == 4
    # new data is filled with the statistics of the fitted data, not its own
    new = backend.asarray(np.array([[np.nan, np.nan], [100.0, 100.0]]))
    stat1 = {"mean": 6.5, "median": 6.5, "most_frequent": 5.0, "constant": -1.0}[strategy]
    np.testing.assert_allclose(host(backend, imputer.transform(new)), [[fill, stat1], [100, 100]], rtol=1e-15)


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
def test_simple_imputer_matches_sklearn(backend, strategy):
    rng = np.random.default_rng(7)
    # few sizes: JAX compiles every operation anew for every new shape
    for n, k, add_indicator in ((1, 1, False), (9, 4, True), (40, 6, False), (40, 6, True)):
        # few distinct values, so most_frequent has ties to break (the smallest wins)
        X = with_nans(rng, n, k, values=[-1.5, 0.0, 2.0, 3.25, 8.0] if strategy == "most_frequent" else None)
        X[:, -1] = X[0, -1]  # a column with nothing missing
        theirs = sk_impute.SimpleImputer(strategy=strategy, add_indicator=add_indicator).fit(X)
        ours = SimpleImputer(strategy, add_indicator=add_indicator).fit(backend.asarray(X))
        # (scikit-learn's constant statistics are an object array)
        np.testing.assert_allclose(host(backend, ours.statistics_), theirs.statistics_.astype(float), rtol=1e-13)
        Z = with_nans(rng, 5, k)
        np.testing.assert_allclose(host(backend, ours.transform(backend.asarray(Z))), theirs.transform(Z), rtol=1e-13)
        if add_indicator:
            assert ours.indicator_features_ == theirs.indicator_.features_.tolist()


def test_simple_imputer_most_frequent_breaks_ties_with_the_smallest(backend):
    # column 0: 5 and 2 twice each -> 2; column 1: -3 three times -> -3; column 2: all different -> the smallest
    X = np.array([[5, -3, 9], [2, 7, 4], [np.nan, -3, 6], [5, -3, np.nan], [2, 7, 8]], dtype=np.float64)
    imputer = SimpleImputer("most_frequent").fit(backend.asarray(X))
    np.testing.assert_array_equal(host(backend, imputer.statistics_), [2, -3, 4])


def test_simple_imputer_float32_and_integers(backend):
    X = backend.asarray(np.array([[1, 2], [3, 4]], dtype=np.int32))  # integers have no NaN: nothing changes
    Y = SimpleImputer("median").fit_transform(X)
    assert Y.dtype == backend.dtype("float32")
    np.testing.assert_array_equal(host(backend, Y), [[1, 2], [3, 4]])
    X32 = backend.asarray(np.array([[0.5], [np.nan], [1.5]], dtype=np.float32))
    Y32 = SimpleImputer().fit_transform(X32)
    assert Y32.dtype == backend.dtype("float32")
    np.testing.assert_array_equal(host(backend, Y32), np.array([[0.5], [1.0], [1.5]], dtype=np.float32))


def test_simple_imputer_constant_fills_a_column_without_values(backend):
    X = backend.asarray(np.array([[np.nan, 1.0], [np.nan, 2.0]]))
    Y = SimpleImputer("constant").fit_transform(X)  # fill_value defaults to 0, as scikit-learn's for numbers
    np.testing.assert_array_equal(host(backend, Y), [[0, 1], [0, 2]])


def test_simple_imputer_add_indicator_marks_the_missing_cells(backend):
    X = backend.asarray(np.array([[np.nan, 1.0, 2.0], [4.0, 5.0, np.nan], [6.0, 7.0, 8.0]]))
    imputer = SimpleImputer("mean", add_indicator=True).fit(X)
    assert imputer.indicator_features_ == [0, 2]  # only the features that had missing values
    Y = host(backend, imputer.transform(X))
    np.testing.assert_array_equal(Y, [[5, 1, 2, 1, 0], [4, 5, 5, 0, 1], [6, 7, 8, 0, 0]])


def test_simple_imputer_errors(backend):
    X = backend.asarray(np.array([[1.0, np.nan, np.nan], [2.0, np.nan, 3.0]]))
    for strategy in ("mean", "median", "most_frequent"):
        with pytest.raises(
            ValueError,
            match=rf"SimpleImputer.fit: column 1 of X \(counting from 0\) has no values, "
            rf"only NaN \(missing\), so strategy '{strategy}' cannot be computed; "
            rf"drop it from X",
        ):
            SimpleImputer(strategy).fit(X)
    both = backend.asarray(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"columns 0, 1, 2 of X \(counting from 0\) have no values"):
        SimpleImputer().fit(both)
    with pytest.raises(
        ValueError,
        match="SimpleImputer: strategy must be one of 'mean', 'median', 'most_frequent', 'constant', found 'mode'",
    ):
        SimpleImputer("mode")
    with pytest.raises(
        ValueError,
        match="SimpleImputer: fill_value is used only with strategy='constant', found strategy 'mean' and fill_value=0",
    ):
        SimpleImputer("mean", fill_value=0)
    with pytest.raises(ValueError, match="SimpleImputer: fill_value must be a finite number, found nan"):
        SimpleImputer("constant", fill_value=float("nan"))
    with pytest.raises(ValueError, match="SimpleImputer: add_indicator must be True or False, found 1"):
        SimpleImputer(add_indicator=1)
    imputer = SimpleImputer()
    with pytest.raises(
        NotFittedError,
        match=r"SimpleImputer.transform: this SimpleImputer is not fitted yet; "
        r"call fit\(X\)",
    ):
        imputer.transform(X)
    imputer.fit(backend.asarray(np.ones((3, 2))))
    with pytest.raises(
        ValueError, match="SimpleImputer.transform: X has 3 features, but SimpleImputer was fitted with 2 features"
    ):
        imputer.transform(X)
    assert not hasattr(imputer, "inverse_transform")  # nothing to undo: which values were filled is lost


def test_simple_imputer_json_round_trip(backend):
    X = backend.asarray(np.array([[1.0, np.nan], [np.nan, 4.0], [3.0, 5.0]], dtype=np.float32))
    imputer = SimpleImputer("median", add_indicator=True).fit(X)
    d = json.loads(json.dumps(imputer.to_dict()))
    assert d["config"] == {"strategy": "median", "fill_value": None, "add_indicator": True}
    restored = SimpleImputer.from_dict(d, backend=backend)
    assert restored.indicator_features_ == [0, 1]
    np.testing.assert_array_equal(host(backend, restored.transform(X)), host(backend, imputer.transform(X)))


def test_imputer_fitted_on_the_host_fills_device_arrays(backend):
    imputer = SimpleImputer().fit(np.array([[1.0], [np.nan], [5.0]]))
    Y = imputer.transform(backend.asarray(np.array([[np.nan]], dtype=np.float32)))
    assert backend.owns(Y) and Y.dtype == backend.dtype("float32")
    assert host(backend, Y).tolist() == [[3.0]]


# ---- RobustScaler ---------------------------------------------------------------------------------


def test_robust_scaler_by_hand(backend):
    # [1, 2, 3, 4, 100]: median 3, quartiles 2 and 4 -> scale 2; the outlier barely matters.
    # The second feature is constant: scale 1, so it maps to 0.
    X = backend.asarray(np.array([[1.0, 7.0], [2.0, 7.0], [3.0, 7.0], [4.0, 7.0], [100.0, 7.0]]))
    scaler = RobustScaler()
    Y = scaler.fit_transform(X)
    assert backend.owns(Y) and Y.dtype == X.dtype
    np.testing.assert_allclose(host(backend, Y), [[-1, 0], [-0.5, 0], [0, 0], [0.5, 0], [48.5, 0]])
    np.testing.assert_allclose(host(backend, scaler.center_), [3, 7])
    np.testing.assert_allclose(host(backend, scaler.scale_), [2, 1])
    np.testing.assert_allclose(host(backend, scaler.inverse_transform(Y)), host(backend, X))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"quantile_range": (10, 90)}, {"with_centering": False}, {"with_scaling": False}, {"unit_variance": True}],
)
def test_robust_scaler_matches_sklearn(backend, kwargs):
    rng = np.random.default_rng(3)
    for n, k in ((1, 1), (2, 2), (7, 3), (50, 5)):
        X = with_nans(rng, n, k, fraction=0.2)
        X[:, 0] = 4.0  # constant
        theirs = sk_preprocessing.RobustScaler(**kwargs).fit(X)
        ours = RobustScaler(**kwargs).fit(backend.asarray(X))
        if theirs.center_ is not None:
            np.testing.assert_allclose(host(backend, ours.center_), theirs.center_, rtol=1e-13)
        if theirs.scale_ is not None:
            np.testing.assert_allclose(host(backend, ours.scale_), theirs.scale_, rtol=1e-13)
        Z = with_nans(rng, 4, k)
        # NaN is kept by both
        np.testing.assert_allclose(
            host(backend, ours.transform(backend.asarray(Z))), theirs.transform(Z), rtol=1e-12, atol=1e-12
        )


def test_robust_scaler_errors(backend):
    for bad in [(75, 25), (0, 101), (-1, 50), (50, 50), (1, 2, 3), "25-75", None]:
        with pytest.raises(
            ValueError,
            match=r"RobustScaler: quantile_range must be a pair \(low, high\) of "
            r"percentages with 0 <= low < high <= 100, such as \(25, 75\)",
        ):
            RobustScaler(quantile_range=bad)
    with pytest.raises(ValueError, match=r"RobustScaler: unit_variance=True needs quantile_range inside \(0, 100\)"):
        RobustScaler(quantile_range=(0, 100), unit_variance=True)
    with pytest.raises(ValueError, match="RobustScaler.fit: column 0 of X .counting from 0. has no values"):
        RobustScaler().fit(backend.asarray(np.array([[np.nan, 1.0], [np.nan, 2.0]])))
    with pytest.raises(NotFittedError, match="RobustScaler.inverse_transform: this RobustScaler is not fitted yet"):
        RobustScaler().inverse_transform(backend.asarray(np.ones((2, 2))))
    scaler = RobustScaler().fit(backend.asarray(np.ones((2, 2))))
    with pytest.raises(
        ValueError, match="RobustScaler.transform: X has 3 features, but RobustScaler was fitted with 2 features"
    ):
        scaler.transform(backend.asarray(np.ones((2, 3))))


def test_robust_scaler_json_round_trip(backend):
    X = backend.asarray(np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    scaler = RobustScaler(quantile_range=(10, 90)).fit(X)
    restored = RobustScaler.from_dict(json.loads(json.dumps(scaler.to_dict())), backend=backend)
    assert restored.quantile_range == (10.0, 90.0)
    np.testing.assert_array_equal(host(backend, restored.transform(X)), host(backend, scaler.transform(X)))


# ---- OutlierClipper --------------------------------------------------------------------------------


def test_outlier_clipper_quantile_matches_numpy(backend):
    rng = np.random.default_rng(5)
    X = with_nans(rng, 200, 3, fraction=0.1)
    X[5, 1] = 1e6  # an outlier
    clipper = OutlierClipper(quantile_range=(5, 95)).fit(backend.asarray(X))
    low, high = np.nanpercentile(X, [5, 95], axis=0)
    np.testing.assert_allclose(host(backend, clipper.lower_), low, rtol=1e-13)
    np.testing.assert_allclose(host(backend, clipper.upper_), high, rtol=1e-13)
    Y = host(backend, clipper.transform(backend.asarray(X)))
    expected = np.minimum(np.maximum(X, low), high)  # NaN stays NaN
    np.testing.assert_allclose(Y, expected, rtol=1e-15)
    assert np.isnan(Y).sum() == np.isnan(X).sum() and Y[5, 1] == high[1]


def test_outlier_clipper_zscore_by_hand(backend):
    # [0, 0, 0, 4]: mean 1, population std sqrt(3); threshold 1 -> bounds 1 -/+ sqrt(3)
    X = backend.asarray(np.array([[0.0], [0.0], [np.nan], [0.0], [4.0]]))
    clipper = OutlierClipper("zscore", threshold=1).fit(X)
    s = np.sqrt(3)
    np.testing.assert_allclose(host(backend, clipper.lower_), [1 - s])
    np.testing.assert_allclose(host(backend, clipper.upper_), [1 + s])
    Y = host(backend, clipper.transform(X))
    np.testing.assert_allclose(Y, [[0], [0], [np.nan], [0], [1 + s]])
    # new data beyond either bound
    Z = host(backend, clipper.transform(backend.asarray(np.array([[-10.0], [10.0]]))))
    np.testing.assert_allclose(Z, [[1 - s], [1 + s]])


def test_outlier_clipper_errors_and_saving(backend):
    with pytest.raises(ValueError, match="OutlierClipper: method must be 'quantile' or 'zscore', found 'iqr'"):
        OutlierClipper("iqr")
    with pytest.raises(ValueError, match="OutlierClipper: threshold must be a number > 0, found 0"):
        OutlierClipper("zscore", threshold=0)
    with pytest.raises(ValueError, match=r"OutlierClipper: quantile_range must be a pair .* such as \(1, 99\)"):
        OutlierClipper(quantile_range=(99, 1))
    for method in ("quantile", "zscore"):
        with pytest.raises(ValueError, match="OutlierClipper.fit: column 1 of X .counting from 0. has no values"):
            OutlierClipper(method).fit(backend.asarray(np.array([[1.0, np.nan], [2.0, np.nan]])))
    with pytest.raises(NotFittedError, match="OutlierClipper.transform: this OutlierClipper is not fitted yet"):
        OutlierClipper().transform(backend.asarray(np.ones((2, 2))))
    X = backend.asarray(np.arange(12.0).reshape(6, 2))
    clipper = OutlierClipper("zscore", threshold=0.5).fit(X)
    with pytest.raises(
        ValueError, match="OutlierClipper.transform: X has 1 features, but OutlierClipper was fitted with 2 features"
    ):
        clipper.transform(X[:, :1])
    restored = OutlierClipper.from_dict(json.loads(json.dumps(clipper.to_dict())), backend=backend)
    assert restored.config() == {"method": "zscore", "quantile_range": [1.0, 99.0], "threshold": 0.5}
    np.testing.assert_array_equal(host(backend, restored.transform(X)), host(backend, clipper.transform(X)))
