"""Preprocessing: scalers, one_hot and train_test_split on every backend:
hand-worked values, scikit-learn cross-checks, round trips and error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnn.preprocessing import (
    MinMaxScaler,
    NotFittedError,
    StandardScaler,
    one_hot,
    train_test_split,
)

# the backend fixture is stateless, so sharing it across hypothesis examples is safe
hyp = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def host(backend, a):
    return np.asarray(backend.to_numpy(a))


# ---- StandardScaler ---------------------------------------------------------------------------


def test_standard_scaler_by_hand(backend):
    # feature 0: [1, 2, 3] has mean 2 and variance 2/3 -> (x - 2) / sqrt(2/3)
    # feature 1: [10, 10, 10] is constant -> scale 1, so it maps to 0 (no 0/0)
    X = backend.asarray(np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0]], dtype=np.float32))
    scaler = StandardScaler()
    Y = scaler.fit_transform(X)
    assert backend.owns(Y) and Y.dtype == X.dtype
    s = np.sqrt(2 / 3)
    np.testing.assert_allclose(host(backend, Y), [[-1 / s, 0], [0, 0], [1 / s, 0]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(host(backend, scaler.mean_), [2, 10])
    np.testing.assert_allclose(host(backend, scaler.var_), [2 / 3, 0], rtol=1e-6)
    np.testing.assert_allclose(host(backend, scaler.scale_), [s, 1], rtol=1e-6)
    assert scaler.n_features_in_ == 2 and scaler.n_samples_seen_ == 3
    assert backend.owns(scaler.mean_)  # the statistics are arrays where X lives
    np.testing.assert_allclose(host(backend, scaler.inverse_transform(Y)), host(backend, X), rtol=1e-6)


def test_standard_scaler_constant_feature_with_rounding_in_its_mean(backend):
    # three copies of 0.1 average to 0.10000000000000002 in float64: a variance of ~1e-34;
    # dividing by its square root would turn rounding noise into values near 1
    X = backend.asarray(np.full((3, 1), 0.1))
    Y = host(backend, StandardScaler().fit_transform(X))
    assert np.all(np.abs(Y) < 1e-12)


def test_standard_scaler_converts_integers_to_float32(backend):
    X = backend.asarray(np.array([[0, 255], [255, 0]], dtype=np.uint8))
    Y = StandardScaler().fit_transform(X)
    assert Y.dtype == backend.dtype("float32")
    np.testing.assert_array_equal(host(backend, Y), [[-1, 1], [1, -1]])


@hyp
@given(n=st.integers(1, 30), k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_standard_scaler_matches_sklearn(backend, n, k, seed):
    skp = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(seed)
    X = rng.normal(3.0, 2.0, size=(n, k))
    X[:, 0] = 5.0  # a constant feature
    ours = StandardScaler().fit(backend.asarray(X))
    theirs = skp.StandardScaler().fit(X)
    np.testing.assert_allclose(host(backend, ours.transform(backend.asarray(X))), theirs.transform(X), atol=1e-12)
    for name in ("mean_", "var_", "scale_"):
        np.testing.assert_allclose(host(backend, getattr(ours, name)), getattr(theirs, name), rtol=1e-12, atol=1e-14)
    Z = rng.normal(size=(4, k))
    np.testing.assert_allclose(
        host(backend, ours.inverse_transform(backend.asarray(Z))), theirs.inverse_transform(Z), rtol=1e-12, atol=1e-14
    )


def test_scaler_fitted_on_the_host_transforms_device_arrays(backend):
    X = np.array([[1.0, 4.0], [3.0, 8.0]], dtype=np.float32)
    scaler = StandardScaler().fit(X)  # NumPy statistics
    Y = scaler.transform(backend.asarray(X))
    assert backend.owns(Y)
    np.testing.assert_allclose(host(backend, Y), [[-1, -1], [1, 1]])
    # and a float64 input gives float64 (the statistics follow the input's dtype)
    Y64 = scaler.transform(backend.asarray(X.astype(np.float64)))
    assert Y64.dtype == backend.dtype("float64")


# ---- MinMaxScaler ---------------------------------------------------------------------------


def test_minmax_scaler_by_hand(backend):
    # feature 0: [2, 4, 6] -> [0, 0.5, 1]; feature 1 is constant -> the low end, 0
    X = backend.asarray(np.array([[2.0, 7.0], [4.0, 7.0], [6.0, 7.0]], dtype=np.float32))
    scaler = MinMaxScaler()
    Y = scaler.fit_transform(X)
    assert backend.owns(Y) and Y.dtype == X.dtype
    np.testing.assert_allclose(host(backend, Y), [[0, 0], [0.5, 0], [1, 0]])
    np.testing.assert_allclose(host(backend, scaler.data_min_), [2, 7])
    np.testing.assert_allclose(host(backend, scaler.data_max_), [6, 7])
    np.testing.assert_allclose(host(backend, scaler.data_range_), [4, 0])
    np.testing.assert_allclose(host(backend, scaler.scale_), [0.25, 1])
    np.testing.assert_allclose(host(backend, scaler.min_), [-0.5, -7])
    np.testing.assert_allclose(host(backend, scaler.inverse_transform(Y)), host(backend, X))
    # feature_range (-1, 1): [2, 4, 6] -> [-1, 0, 1]; the constant feature -> -1
    Y = MinMaxScaler(feature_range=(-1, 1)).fit_transform(X)
    np.testing.assert_allclose(host(backend, Y), [[-1, -1], [0, -1], [1, -1]])


def test_minmax_scaler_clip(backend):
    X = backend.asarray(np.array([[0.0], [10.0]]))
    new = backend.asarray(np.array([[-5.0], [5.0], [20.0]]))
    np.testing.assert_allclose(host(backend, MinMaxScaler().fit(X).transform(new)), [[-0.5], [0.5], [2.0]])
    np.testing.assert_allclose(host(backend, MinMaxScaler(clip=True).fit(X).transform(new)), [[0], [0.5], [1]])


@hyp
@given(n=st.integers(1, 30), k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_minmax_scaler_matches_sklearn(backend, n, k, seed):
    skp = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)) * 10
    X[:, -1] = -2.0
    ours = MinMaxScaler(feature_range=(-2, 3)).fit(backend.asarray(X))
    theirs = skp.MinMaxScaler(feature_range=(-2, 3)).fit(X)
    np.testing.assert_allclose(host(backend, ours.transform(backend.asarray(X))), theirs.transform(X), atol=1e-12)
    for name in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
        np.testing.assert_allclose(host(backend, getattr(ours, name)), getattr(theirs, name), rtol=1e-12)


# ---- scaler errors and saving ---------------------------------------------------------------


@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler])
def test_scaler_errors(backend, cls):
    X = backend.asarray(np.ones((4, 3), dtype=np.float32))
    scaler = cls()
    for method in ("transform", "inverse_transform"):
        with pytest.raises(
            NotFittedError,
            match=rf"{cls.__name__}.{method}: this {cls.__name__} is not fitted "
            rf"yet; call fit\(X\)",
        ):
            getattr(scaler, method)(X)
    assert issubclass(NotFittedError, ValueError)
    scaler.fit(X)
    with pytest.raises(
        ValueError,
        match=rf"{cls.__name__}.transform: X has 4 features, but {cls.__name__} was "
        rf"fitted with 3 features",
    ):
        scaler.transform(backend.asarray(np.ones((2, 4), dtype=np.float32)))
    with pytest.raises(
        ValueError,
        match=r"X must be 2-D \(samples, features\), found shape \(4,\); for a single "
        r"feature use X\[:, None\]",
    ):
        cls().fit(X[:, 0])
    with pytest.raises(ValueError, match=r"fit: X has no samples \(shape \(0, 3\)\)"):
        cls().fit(X[:0, :])
    with pytest.raises(TypeError, match="fit: X must be an array .*found str"):
        cls().fit("data")


def test_minmax_scaler_bad_feature_range():
    with pytest.raises(ValueError, match=r"feature_range must have low < high, found \(1, 1\)"):
        MinMaxScaler(feature_range=(1, 1))
    for bad in [(0, 1, 2), ("0", "1"), (0, True), (0, float("inf")), 5, None]:
        with pytest.raises(
            ValueError, match="MinMaxScaler: feature_range must be a pair .low, high. of finite numbers"
        ):
            MinMaxScaler(feature_range=bad)
    # NumPy scalars (and a NumPy pair) are numbers like any other
    assert MinMaxScaler(feature_range=(np.int64(-1), np.float32(2.0))).feature_range == (-1.0, 2.0)
    assert MinMaxScaler(feature_range=np.array([0.0, 1.0])).config()["feature_range"] == [0.0, 1.0]


@pytest.mark.parametrize("cls,kwargs", [(StandardScaler, {}), (MinMaxScaler, {"feature_range": (-1, 2), "clip": True})])
def test_scaler_json_round_trip(backend, rng, cls, kwargs):
    X = backend.asarray(rng.normal(size=(20, 3)).astype(np.float32))
    scaler = cls(**kwargs).fit(X)
    d = json.loads(json.dumps(scaler.to_dict()))  # JSON-able
    assert d["class"] == cls.__name__ and d["dtype"] == "float32" and d["n_features_in_"] == 3
    restored = cls.from_dict(d, backend=backend)
    assert restored.config() == scaler.config() and restored.n_samples_seen_ == 20
    assert backend.owns(restored.scale_) and restored.scale_.dtype == backend.dtype("float32")
    # float32 statistics survive JSON exactly, so the transform is bit-identical
    np.testing.assert_array_equal(host(backend, restored.transform(X)), host(backend, scaler.transform(X)))
    # an unfitted scaler round-trips as unfitted
    assert not cls.from_dict(cls(**kwargs).to_dict()).fitted


def test_scaler_from_dict_checks_the_class():
    d = StandardScaler().fit(np.ones((2, 2))).to_dict()
    with pytest.raises(
        ValueError,
        match="MinMaxScaler.from_dict: expected a dict from MinMaxScaler.to_dict\\(\\), found class 'StandardScaler'",
    ):
        MinMaxScaler.from_dict(d)


# ---- one_hot ----------------------------------------------------------------------------------


def test_one_hot_by_hand(backend):
    labels = backend.asarray(np.array([0, 2, 1]))
    Y = one_hot(labels, 3)
    assert backend.owns(Y) and Y.dtype == backend.dtype("float32")
    np.testing.assert_array_equal(host(backend, Y), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    # num_classes defaults to the largest label + 1; dtype is selectable
    Y = one_hot(backend.asarray(np.array([1, 3], dtype=np.uint8)), dtype="float64")
    assert Y.dtype == backend.dtype("float64")
    np.testing.assert_array_equal(host(backend, Y), [[0, 1, 0, 0], [0, 0, 0, 1]])
    # no labels at all, with num_classes known
    assert one_hot(backend.asarray(np.zeros(0, dtype=np.int64)), 4).shape == (0, 4)


def test_one_hot_errors(backend):
    labels = backend.asarray(np.array([0, 3, 10, 2]))
    with pytest.raises(ValueError, match=r"one_hot: labels must be integers in \[0, 10\), found 10 at index 2"):
        one_hot(labels, 10)
    with pytest.raises(ValueError, match="labels must be non-negative integers, found -1 at index 1"):
        one_hot(backend.asarray(np.array([0, -1])))
    with pytest.raises(TypeError, match="labels must be integers, found dtype .*float32"):
        one_hot(backend.asarray(np.array([0.0, 1.0], dtype=np.float32)))
    with pytest.raises(ValueError, match=r"labels must be 1-D \(n,\), found shape \(2, 1\)"):
        one_hot(backend.asarray(np.array([[0], [1]])))
    with pytest.raises(ValueError, match="labels is empty, so the number of classes is unknown; pass num_classes"):
        one_hot(backend.asarray(np.zeros(0, dtype=np.int64)))
    with pytest.raises(ValueError, match="one_hot: num_classes must be a positive integer or None, found 0"):
        one_hot(labels, 0)
    with pytest.raises(ValueError, match="one_hot: num_classes must be a positive integer or None, found True"):
        one_hot(labels, True)
    # NumPy integers count like Python ints
    np.testing.assert_array_equal(host(backend, one_hot(labels, np.int64(11))), host(backend, one_hot(labels, 11)))


# ---- train_test_split -------------------------------------------------------------------------


def test_train_test_split_sizes_and_coverage(backend):
    X = backend.asarray(np.arange(20).reshape(10, 2))
    y = backend.asarray(np.arange(10) * 10)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=3)
    # ceil(0.25 * 10) = 3 test samples, 7 training samples
    assert X_train.shape == (7, 2) and X_test.shape == (3, 2) and y_train.shape == (7,) and y_test.shape == (3,)
    assert all(backend.owns(a) for a in (X_train, X_test, y_train, y_test))
    Xtr, Xte, ytr, yte = (host(backend, a) for a in (X_train, X_test, y_train, y_test))
    # every sample lands in exactly one part, with its X row and y kept together
    assert sorted(np.concatenate([Xtr[:, 0], Xte[:, 0]]) // 2) == list(range(10))
    np.testing.assert_array_equal(Xtr[:, 0] // 2 * 10, ytr)
    np.testing.assert_array_equal(Xte[:, 0] // 2 * 10, yte)
    assert sorted(Xte[:, 0] // 2) != [7, 8, 9]  # shuffled (for this seed)
    # a count works as test_size too
    assert train_test_split(X, y, test_size=4)[1].shape == (4, 2)


def test_train_test_split_is_seeded_and_the_same_on_every_backend(backend):
    X = np.arange(50).reshape(25, 2)
    on_host = train_test_split(X, test_size=0.2, seed=7)
    on_backend = train_test_split(backend.asarray(X), test_size=0.2, seed=7)
    assert len(on_host) == 2  # no y: X_train, X_test
    for a, b in zip(on_host, on_backend):
        np.testing.assert_array_equal(a, host(backend, b))
    other = train_test_split(X, test_size=0.2, seed=8)
    assert not np.array_equal(other[1], on_host[1])


def test_train_test_split_without_shuffle(backend):
    X = backend.asarray(np.arange(10))
    X_train, X_test = train_test_split(X, test_size=0.3, shuffle=False)
    np.testing.assert_array_equal(host(backend, X_train), np.arange(7))
    np.testing.assert_array_equal(host(backend, X_test), [7, 8, 9])


def test_stratified_split_keeps_class_proportions(backend):
    # classes of 50, 30 and 20 samples, test_size 0.2 -> 10, 6 and 4 test samples
    y = np.repeat([0, 1, 2], [50, 30, 20])
    X = np.arange(100)[:, None].astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(backend.asarray(X), backend.asarray(y), stratify=True, seed=1)
    assert np.bincount(host(backend, y_test)).tolist() == [10, 6, 4]
    assert np.bincount(host(backend, y_train)).tolist() == [40, 24, 16]
    Xte, yte = host(backend, X_test), host(backend, y_test)
    np.testing.assert_array_equal(y[Xte[:, 0].astype(int)], yte)  # rows stay with their labels
    assert not np.all(np.diff(yte) >= 0)  # classes are mixed again, not in blocks
    # one-hot rows stratify the same way; so does a separate labels array
    onehot = backend.asarray(np.eye(3, dtype=np.float32)[y])
    split = train_test_split(backend.asarray(X), onehot, stratify=True, seed=1)
    assert host(backend, split[3]).sum(axis=0).tolist() == [10, 6, 4]
    split = train_test_split(backend.asarray(X), stratify=backend.asarray(y), seed=1)
    assert len(split) == 2 and split[1].shape == (20, 1)


@hyp
@given(
    sizes=st.lists(st.integers(2, 30), min_size=2, max_size=5),
    test_size=st.floats(0.1, 0.5),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_matches_sklearn_class_counts(backend, sizes, test_size, seed):
    skms = pytest.importorskip("sklearn.model_selection")
    y = np.repeat(np.arange(len(sizes)), sizes)
    n = len(y)
    n_test = int(np.ceil(test_size * n))
    if n_test < len(sizes) or n - n_test < len(sizes):
        return  # both functions refuse these
    X = np.arange(n)[:, None]
    _, _, y_train, y_test = train_test_split(
        backend.asarray(X), backend.asarray(y), test_size=test_size, stratify=True, seed=seed
    )
    ours = np.bincount(host(backend, y_test), minlength=len(sizes))
    assert ours.sum() == n_test and np.bincount(host(backend, y_train), minlength=len(sizes)).min() >= 1
    _, _, _, sk_test = skms.train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    theirs = np.bincount(sk_test, minlength=len(sizes))
    # sklearn breaks ties between equal remainders at random; counts agree within one
    assert np.abs(ours - theirs).max() <= 1
    # and each class's count is its exact share rounded down or up
    exact = n_test * np.array(sizes) / n
    assert np.all(ours >= np.floor(exact) - 1e-9) and np.all(ours <= np.ceil(exact) + 1e-9)


def test_train_test_split_errors(backend):
    X = backend.asarray(np.zeros((10, 2)))
    y = backend.asarray(np.zeros(9))
    with pytest.raises(ValueError, match="train_test_split: X has 10 samples but y has 9; they must be the same"):
        train_test_split(X, y)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(
            ValueError,
            match=rf"test_size must be a fraction in \(0, 1\) or a count in \[1, 9\], "
            rf"found {bad}",
        ):
            train_test_split(X, test_size=bad)
    for bad in (0, 10):
        with pytest.raises(ValueError, match=rf"test_size={bad} gives {bad} test and {10 - bad} training samples"):
            train_test_split(X, test_size=bad)
    with pytest.raises(TypeError, match="test_size must be a fraction in \\(0, 1\\) or a count, found True"):
        train_test_split(X, test_size=True)
    labels = backend.asarray(np.array([0] * 9 + [1]))
    with pytest.raises(ValueError, match="stratify class 1 has only 1 sample; every class needs at least 2"):
        train_test_split(X, labels, stratify=True)
    labels = backend.asarray(np.array([0, 1, 2, 3, 4] * 2))
    with pytest.raises(
        ValueError,
        match="with 5 classes both parts need at least 5 samples to hold every class, "
        "found 8 training and 2 test samples",
    ):
        train_test_split(X, labels, stratify=True)
    with pytest.raises(ValueError, match="a stratified split needs shuffle=True"):
        train_test_split(X, labels, stratify=labels, shuffle=False)
    with pytest.raises(ValueError, match="stratify=True stratifies by y, but y is None"):
        train_test_split(X, stratify=True)
    with pytest.raises(TypeError, match="train_test_split: y must be an array .*found dict"):
        train_test_split(X, {})
    with pytest.raises(ValueError, match="train_test_split: seed must be a non-negative integer, found -1"):
        train_test_split(X, seed=-1)
    with pytest.raises(ValueError, match="train_test_split: seed must be a non-negative integer, found True"):
        train_test_split(X, seed=True)
    assert len(train_test_split(X, seed=-1, shuffle=False)) == 2  # an unshuffled split never uses the seed


def test_train_test_split_takes_numpy_scalars_as_python_numbers(backend):
    X = backend.asarray(np.arange(20.0).reshape(10, 2))
    y = backend.asarray(np.arange(10) % 2)
    for args, plain in [
        (dict(test_size=np.float64(0.25), seed=np.int64(3)), dict(test_size=0.25, seed=3)),
        (dict(test_size=np.float32(0.5), seed=np.uint8(1)), dict(test_size=0.5, seed=1)),
        (dict(test_size=np.int64(3), seed=np.int32(2)), dict(test_size=3, seed=2)),
        (dict(test_size=np.int8(4), stratify=True), dict(test_size=4, stratify=True)),
    ]:
        got, expected = train_test_split(X, y, **args), train_test_split(X, y, **plain)
        assert [a.shape for a in got] == [a.shape for a in expected]
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(host(backend, a), host(backend, b))
    with pytest.raises(TypeError, match=r"train_test_split: test_size must be a fraction in \(0, 1\) or a count"):
        train_test_split(X, test_size=np.bool_(False))
