"""TokenWindows: next-token windows over a long 1-D token array, gathered per batch."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.data import Dataset, TokenWindows


def naive(tokens, seq_len, stride=1):
    """Every window and its target by plain slicing (what TokenWindows must equal)."""
    starts = range(0, len(tokens) - seq_len, stride)
    X = np.array([tokens[s : s + seq_len] for s in starts])
    y = np.array([tokens[s + 1 : s + 1 + seq_len] for s in starts])
    return X, y


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
@pytest.mark.parametrize("seq_len, stride", [(1, 1), (5, 1), (7, 3), (7, 7), (49, 1)])
def test_windows_equal_naive_slicing(dtype, seq_len, stride, rng):
    tokens = rng.integers(0, 200, 50).astype(dtype)
    ds = TokenWindows(tokens, seq_len, stride=stride)
    X_want, y_want = naive(tokens, seq_len, stride)
    assert isinstance(ds, Dataset)
    assert len(ds) == len(X_want)
    if stride == 1:
        assert len(ds) == len(tokens) - seq_len
    idx = rng.permutation(len(ds))  # shuffled, as a sampler asks
    X, y = ds[idx]
    assert X.dtype == y.dtype == np.int64 and X.shape == y.shape == (len(ds), seq_len)
    np.testing.assert_array_equal(X, X_want[idx])
    np.testing.assert_array_equal(y, y_want[idx])
    np.testing.assert_array_equal(X[:, 1:], y[:, :-1])  # the target is the window shifted by one
    X1, _ = ds[np.array([len(ds) - 1, 0, len(ds) - 1])]  # repeats and the last window
    np.testing.assert_array_equal(X1, X_want[[len(ds) - 1, 0, len(ds) - 1]])


def test_memmap_windows_read_only_the_batch(tmp_path, rng):
    tokens = rng.integers(0, 256, 10_000).astype(np.uint8)
    path = tmp_path / "tokens.npy"
    np.save(path, tokens)
    mm = np.load(path, mmap_mode="r")
    ds = TokenWindows(mm, 64)
    assert ds.tokens is mm  # kept as it is: no copy of the text
    idx = rng.integers(0, len(ds), 32)
    X, y = ds[idx]
    X_want, y_want = naive(tokens, 64)
    np.testing.assert_array_equal(X, X_want[idx])
    np.testing.assert_array_equal(y, y_want[idx])
    assert type(X) is np.ndarray and type(y) is np.ndarray  # fresh batch arrays, not views of the memmap
    raw = np.memmap(tmp_path / "raw.bin", dtype=np.uint16, mode="w+", shape=(300,))
    raw[:] = np.arange(300)
    raw.flush()
    X, y = TokenWindows(np.memmap(tmp_path / "raw.bin", dtype=np.uint16, mode="r"), 10)[np.array([0, 289])]
    np.testing.assert_array_equal(X, [np.arange(10), np.arange(289, 299)])
    np.testing.assert_array_equal(y, [np.arange(1, 11), np.arange(290, 300)])


def test_a_list_is_converted():
    X, y = TokenWindows([3, 1, 4, 1, 5], 2)[np.array([2])]
    np.testing.assert_array_equal(X, [[4, 1]])
    np.testing.assert_array_equal(y, [[1, 5]])


@pytest.mark.parametrize(
    "tokens, seq_len, kwargs, error, message",
    [
        (
            np.zeros((4, 5), np.int64),
            2,
            {},
            ValueError,
            r"tokens must be 1-D \(one long sequence\), found shape \(4, 5\)",
        ),
        (np.zeros(10), 2, {}, TypeError, r"tokens must be integer token ids, found dtype float64"),
        (np.zeros(10, bool), 2, {}, TypeError, r"tokens must be integer token ids, found dtype bool"),
        ("some text", 2, {}, TypeError, r"tokens must be a 1-D NumPy integer array or memmap, found str"),
        (np.arange(5), 5, {}, ValueError, r"tokens has 5 tokens, too few for one window of seq_len=5 .*at least 6"),
        (np.arange(5), 0, {}, ValueError, r"seq_len must be a positive integer, found 0"),
        (np.arange(5), 2.0, {}, ValueError, r"seq_len must be a positive integer, found 2.0"),
        (np.arange(5), True, {}, ValueError, r"seq_len must be a positive integer, found True"),
        (np.arange(5), 2, {"stride": 0}, ValueError, r"stride must be a positive integer, found 0"),
    ],
)
def test_bad_tokens_and_seq_len(tokens, seq_len, kwargs, error, message):
    with pytest.raises(error, match="TokenWindows: " + message):
        TokenWindows(tokens, seq_len, **kwargs)


def test_bad_indices():
    ds = TokenWindows(np.arange(10), 3)  # 7 windows
    with pytest.raises(IndexError, match=r"window numbers must be in \[0, 7\), found 7 at position 1"):
        ds[np.array([0, 7])]
    with pytest.raises(IndexError, match=r"found -1 at position 0"):
        ds[np.array([-1])]
    with pytest.raises(TypeError, match=r"indices must be a 1-D integer array of window numbers, found dtype float"):
        ds[np.array([0.0])]
    with pytest.raises(TypeError, match=r"found shape \(\)"):
        ds[np.int64(0)]


def test_is_exported():
    assert xpnn.data.TokenWindows is TokenWindows
    assert repr(TokenWindows(np.arange(10), 3, stride=2)) == "TokenWindows(10 tokens, seq_len=3, stride=2)"


def _next_token_model(V):
    model = xpnn.Sequential([xpnn.layers.Embedding(V, 8), xpnn.layers.TimeDistributed(xpnn.layers.Dense(8, V))], seed=0)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.05))
    return model


def test_fit_on_windows_equals_fit_on_the_same_windows_as_arrays(rng):
    """fit(TokenWindows) streams the windows; the same seed gives the same weights as fit
    on every window materialised, and evaluate streams them too."""
    V = 6
    tokens = rng.integers(0, V, 300).astype(np.uint8)
    ds = TokenWindows(tokens, 8)
    streamed, in_memory = _next_token_model(V), _next_token_model(V)
    streamed.fit(ds, epochs=2, batch_size=16, verbose=0)
    X, y = ds[np.arange(len(ds))]
    in_memory.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(streamed.get_weights(), in_memory.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert streamed.evaluate(ds)["loss"] == pytest.approx(in_memory.evaluate(X, y)["loss"], rel=1e-5)


def test_a_bad_target_token_names_its_window_and_position(rng):
    V = 5
    tokens = rng.integers(0, V, 200)
    tokens[-1] = V  # only ever a target: in the last window's y, position 5
    with pytest.raises(
        ValueError, match=r"labels must be integers in \[0, 5\), found 5 at index \(0, 5\) \(sample 193\)"
    ):
        _next_token_model(V).fit(TokenWindows(tokens, 6), epochs=1, batch_size=16, verbose=0)
