"""NaN-aware preprocessing: every scaler skips NaN (a missing value) when fitting and keeps it
when transforming, as scikit-learn's do; statistics are accumulated in float64; a fill
value must be finite."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xpnn.preprocessing import MinMaxScaler, OutlierClipper, RobustScaler, SimpleImputer, StandardScaler

skp = pytest.importorskip("sklearn.preprocessing")

PAIRS = {
    "standard": (StandardScaler, skp.StandardScaler),
    "minmax": (MinMaxScaler, skp.MinMaxScaler),
    "robust": (RobustScaler, skp.RobustScaler),
}


def host(backend, a):
    return np.asarray(backend.to_numpy(a))


@st.composite
def with_gaps(draw):
    """(n, k) float64 with NaN holes; every column keeps at least one value."""
    n, k = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    values = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)))
    holes = draw(hnp.arrays(np.bool_, (n, k)))
    holes[draw(st.integers(0, n - 1)), :] = False  # one row without gaps
    values[holes] = np.nan
    return values


@settings(max_examples=60, deadline=None)
@given(X=with_gaps(), kind=st.sampled_from(sorted(PAIRS)))
def test_every_scaler_skips_nan_as_sklearn_does(X, kind):
    ours_cls, theirs_cls = PAIRS[kind]
    ours, theirs = ours_cls().fit(X), theirs_cls().fit(X)
    got, want = ours.transform(X), theirs.transform(X)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(X))  # NaN kept, nothing else made NaN
    scale = max(1.0, float(np.nanmax(np.abs(X))))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    back = ours.inverse_transform(got)
    np.testing.assert_allclose(back, X, rtol=1e-9, atol=1e-9 * scale)


def test_standard_and_minmax_scalers_skip_nan_on_every_backend(backend):
    X = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, np.nan], [5.0, 40.0]])
    for ours_cls, theirs_cls in (PAIRS["standard"], PAIRS["minmax"]):
        ours = ours_cls().fit(backend.asarray(X))
        got = host(backend, ours.transform(backend.asarray(X)))
        np.testing.assert_allclose(got, theirs_cls().fit(X).transform(X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_a_column_without_values_is_an_error(kind):
    X = np.array([[1.0, np.nan], [2.0, np.nan]])
    with pytest.raises(ValueError, match="column 1 of X .* has no values, only NaN"):
        PAIRS[kind][0]().fit(X)


@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler, RobustScaler, SimpleImputer, OutlierClipper])
def test_fit_refuses_inf_naming_it(cls):
    X = np.array([[1.0, 2.0], [3.0, -np.inf]])
    with pytest.raises(ValueError, match=r"X must not hold inf .*found -inf at row 1, column 1"):
        cls().fit(X)


def test_float16_statistics_are_accumulated_in_float64():
    """A float16 sum of a thousand values near 200 overflows (65504 is float16's largest)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 400, size=(1000, 2)).astype(np.float16)
    wide = X.astype(np.float64)
    s = StandardScaler().fit(X)
    assert s.mean_.dtype == np.float16
    np.testing.assert_array_equal(s.mean_, wide.mean(axis=0).astype(np.float16))
    np.testing.assert_array_equal(s.var_, wide.var(axis=0).astype(np.float16))
    imputer = SimpleImputer().fit(X)
    np.testing.assert_array_equal(imputer.statistics_, wide.mean(axis=0).astype(np.float16))
    clip = OutlierClipper(method="zscore").fit(X)
    assert np.all(np.isfinite(clip.lower_)) and np.all(np.isfinite(clip.upper_))


def test_float32_statistics_equal_sklearn_float64_rounded():
    rng = np.random.default_rng(1)
    X = (1e4 + rng.normal(size=(5000, 3))).astype(np.float32)
    s = StandardScaler().fit(X)
    theirs = skp.StandardScaler().fit(X.astype(np.float64))
    np.testing.assert_allclose(s.mean_, theirs.mean_, rtol=1e-7)
    np.testing.assert_allclose(s.var_, theirs.var_, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(X=with_gaps(), strategy=st.sampled_from(["mean", "median", "most_frequent", "constant"]))
def test_simple_imputer_fills_every_gap_with_a_finite_number(X, strategy):
    for dtype in (np.float64, np.float32):
        Y = SimpleImputer(strategy=strategy).fit_transform(X.astype(dtype))
        assert Y.dtype == dtype and np.isfinite(Y).all()


def test_simple_imputer_never_fills_with_inf():
    """A column holding inf has an infinite mean: refused, not used to fill the gaps."""
    X = np.array([[1.0], [np.inf], [np.nan]])
    with pytest.raises(ValueError, match="SimpleImputer.fit: X must not hold inf"):
        SimpleImputer(strategy="mean").fit(X)
