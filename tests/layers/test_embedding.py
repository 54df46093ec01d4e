"""Embedding: lookup values, the scatter-add gradient (repeated ids summed, checked by finite
differences, by a loop in the test and by PyTorch), dtypes and error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.layers.embedding import Embedding

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def ids(backend, values, dtype=np.int64):
    return backend.asarray(np.asarray(values, dtype=dtype))


def table(layer, backend):
    return backend.to_numpy(layer.params["W"]).copy()


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    num=st.integers(1, 6),
    dim=st.integers(1, 4),
    seed=st.integers(0, 10**6),
)
def test_gradcheck(backend, shape, num, dim, seed):
    X = ids(backend, np.random.default_rng(seed).integers(0, num, size=tuple(shape)))
    errors = xpnn.gradcheck(Embedding(num, dim), X, check_input=False, details=True)
    assert set(errors) == {"W"}
    assert errors["W"] < 1e-6, errors


def test_forward_picks_rows(backend):
    layer = Embedding(5, 3).bind(backend, backend.rng(0), "float32")
    W = table(layer, backend)
    Xh = np.array([[4, 0, 4], [1, 2, 3]])
    Y = layer.forward(ids(backend, Xh))
    assert tuple(Y.shape) == (2, 3, 3) and Y.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(Y), W[Xh])
    assert layer.output_shape((2, 3)) == (2, 3, 3)
    # int32 ids and a 0-d id work too
    np.testing.assert_array_equal(backend.to_numpy(layer.forward(ids(backend, Xh, np.int32))), W[Xh])
    np.testing.assert_array_equal(backend.to_numpy(layer.forward(ids(backend, 2))), W[2])


def test_repeated_ids_are_summed_not_overwritten(backend):
    layer = Embedding(4, 2).bind(backend, backend.rng(0), "float64")
    Xh = np.array([[2, 2, 0], [2, 3, 0]])  # id 2 three times, id 0 twice, id 1 never
    layer.forward(ids(backend, Xh), training=True)
    dY = np.arange(12, dtype=np.float64).reshape(2, 3, 2) + 1.0
    assert layer.backward(backend.asarray(dY)) is None  # no gradient for integer ids
    expected = np.zeros((4, 2))
    for pos in np.ndindex(Xh.shape):  # the plain loop the scatter-add must agree with
        expected[Xh[pos]] += dY[pos]
    dW = backend.to_numpy(layer.grads["W"])
    np.testing.assert_allclose(dW, expected)
    np.testing.assert_allclose(dW[2], dY[0, 0] + dY[0, 1] + dY[1, 0])  # not just the last one
    np.testing.assert_array_equal(dW[1], 0.0)


def test_gradient_is_overwritten_by_each_backward(backend):
    layer = Embedding(3, 2).bind(backend, backend.rng(0), "float64")
    for _ in range(2):
        layer.forward(ids(backend, [1, 1]), training=True)
        layer.backward(backend.asarray(np.ones((2, 2))))
    np.testing.assert_allclose(backend.to_numpy(layer.grads["W"]), [[0, 0], [2, 2], [0, 0]])


def test_matches_torch(backend):
    torch = pytest.importorskip("torch")
    layer = Embedding(6, 3).bind(backend, backend.rng(0), "float64")
    ref = torch.nn.Embedding(6, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(table(layer, backend)))
    Xh = np.array([[5, 1, 1, 0], [1, 5, 2, 2]])
    Yt = ref(torch.from_numpy(Xh))
    Y = layer.forward(ids(backend, Xh), training=True)
    np.testing.assert_allclose(backend.to_numpy(Y), Yt.detach().numpy())
    R = np.random.default_rng(0).standard_normal((2, 4, 3))
    (Yt * torch.from_numpy(R)).sum().backward()
    layer.backward(backend.asarray(R))
    np.testing.assert_allclose(backend.to_numpy(layer.grads["W"]), ref.weight.grad.numpy(), rtol=1e-12)


def test_float32_and_config(backend):
    layer = Embedding(7, 4, init="glorot_uniform")
    Y = layer.forward(ids(backend, [[0, 6]]), training=True)
    assert Y.dtype == backend.xp.float32 and layer.params["W"].dtype == backend.xp.float32
    layer.backward(Y)
    assert layer.grads["W"].dtype == backend.xp.float32
    config = json.loads(json.dumps(layer.config()))
    assert config == {"num_embeddings": 7, "embedding_dim": 4, "init": "glorot_uniform"}
    assert Embedding(**config).config() == config
    assert Embedding(3, 2).config()["init"] == "uniform"


def test_same_seed_same_table(backend):
    a = Embedding(5, 3).bind(backend, backend.rng(42), "float32")
    b = Embedding(5, 3).bind(backend, backend.rng(42), "float32")
    np.testing.assert_array_equal(table(a, backend), table(b, backend))
    assert np.abs(table(a, backend)).max() <= 0.05


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        ((0, 3), "Embedding: num_embeddings must be a positive integer, found 0"),
        ((5, 2.0), "Embedding: embedding_dim must be a positive integer, found 2.0"),
        ((True, 2), "Embedding: num_embeddings must be a positive integer, found True"),
        ((4, np.int64(-2)), f"Embedding: embedding_dim must be a positive integer, found {np.int64(-2)!r}"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError) as info:
        Embedding(*args)
    assert message in str(info.value)


def test_numpy_integer_sizes():
    layer = Embedding(np.int64(5), np.int32(3))
    config = json.loads(json.dumps(layer.config()))
    assert config == {"num_embeddings": 5, "embedding_dim": 3, "init": "uniform"}


def test_float_ids_are_refused(backend):
    layer = Embedding(5, 2)
    with pytest.raises(TypeError) as info:
        layer.forward(backend.asarray(np.array([0.0, 1.0])))
    assert "X must be integer ids in [0, 5), found dtype float64" in str(info.value)


@pytest.mark.parametrize(
    "values,bad,where",
    [
        ([[0, 1], [5, 2]], 5, (1, 0)),
        ([[0, -1]], -1, (0, 1)),
        ([1, 2, 7, 9], 7, (2,)),
    ],
)
def test_out_of_range_ids_are_refused(backend, values, bad, where):
    layer = Embedding(5, 2)
    with pytest.raises(IndexError) as info:
        layer.forward(ids(backend, values))
    assert f"X must hold ids in [0, 5), found {bad} at index {where}" in str(info.value)


def test_empty_ids(backend):
    Y = Embedding(5, 2).forward(ids(backend, np.zeros((0, 3))))
    assert tuple(Y.shape) == (0, 3, 2)


def test_first_true_is_the_flat_index_of_the_first_failure(backend):
    """The helper behind "found ... at index ..." messages: the first True in C order, on
    every backend (argmax's first maximum), for any shape."""
    from xpnn._checks import first_true

    mask = np.zeros((3, 4), dtype=bool)
    mask[1, 2] = mask[2, 0] = True
    assert first_true(backend.xp, backend.asarray(mask)) == 6
    assert first_true(backend.xp, backend.asarray(np.array([True]))) == 0


def test_first_true_index_unravels_as_numpy_does(backend):
    from xpnn._checks import first_true_index, unravel

    mask = np.zeros((2, 3, 4), dtype=bool)
    mask[1, 0, 3] = mask[1, 2, 0] = True
    assert first_true_index(backend.xp, backend.asarray(mask)) == (1, 0, 3)
    for flat in (0, 5, 23):
        assert unravel(flat, (2, 3, 4)) == tuple(int(i) for i in np.unravel_index(flat, (2, 3, 4)))
