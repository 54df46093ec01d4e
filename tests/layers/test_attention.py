"""MultiHeadSelfAttention, PositionalEncoding, and the containers built on them (Residual,
TimeDistributed, TransformerEncoderBlock): gradients (finite differences, dropout
included), values (a NumPy reference written here, and PyTorch when installed), the causal
and padding masks, the params views of containers, and error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
import xpnn.layers as layers_module
from xpnn.layers.activations import ReLU, Tanh
from xpnn.layers.attention import MultiHeadSelfAttention, PositionalEncoding
from xpnn.layers.dense import Dense
from xpnn.layers.dropout import Dropout
from xpnn.layers.normalization import BatchNorm1D, LayerNorm
from xpnn.layers.residual import Residual, TimeDistributed, TransformerEncoderBlock

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-6
# Finite-difference step: 1e-5 rather than gradcheck's 1e-6, since heads of size 1 can have
# gradients near 1e-6 where rounding noise at h = 1e-6 reaches a relative 1e-6 (a sweep
# over 300 random shapes: worst 3e-6 at h = 1e-6, 9e-8 at h = 1e-5).
STEP = 1e-5
NAMES = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


def data(backend, seed, shape, dtype=np.float64):
    host = np.random.default_rng(1000 + seed).standard_normal(shape).astype(dtype)
    return host, backend.asarray(host)


def bool_mask(backend, rows):
    return backend.asarray(np.array(rows, dtype=bool))


def randomize(layer, backend, seed):
    """Non-zero biases too (zeros would hide a wrong bias gradient); returns host copies."""
    rng = np.random.default_rng(seed)
    host = {}
    for name, h in layer.named_params().items():
        host[name] = rng.standard_normal(tuple(h.value.shape)) * 0.5
        h.value = backend.asarray(host[name], layer.dtype)
    return host


def np_attention(X, p, H, causal=False, mask=None):
    """Multi-head self-attention the textbook way, one head and one batch row at a time."""
    B, T, E = X.shape
    d = E // H
    out = np.zeros((B, T, E))
    for b in range(B):
        Q, K, V = (X[b] @ p["W" + n] + p["b" + n] for n in "qkv")
        heads = []
        for h in range(H):
            cols = slice(h * d, (h + 1) * d)
            S = Q[:, cols] @ K[:, cols].T / math.sqrt(d)
            P = np.zeros((T, T))
            for t in range(T):
                keys = [s for s in range(T) if (not causal or s <= t) and (mask is None or mask[b, s])]
                if keys:
                    e = np.exp(S[t, keys] - S[t, keys].max())
                    P[t, keys] = e / e.sum()
            heads.append(P @ V[:, cols])
        out[b] = np.concatenate(heads, axis=1) @ p["Wo"] + p["bo"]
    return out


def check_attention_grads(layer, X, **kw):
    """gradcheck for every tensor but bk, and bk's exact zero gradient: adding a constant
    to every key adds q . bk to every score of a row, which the softmax ignores, so the
    true gradient of bk is 0 and a relative error would compare rounding noise."""
    errors = xpnn.gradcheck(layer, X, details=True, eps=STEP, **kw)
    assert set(errors) == {"input", *NAMES}
    assert max(v for k, v in errors.items() if k != "bk") < TOL, errors
    assert np.abs(layer.backend.to_numpy(layer.grads["bk"])).max() < 1e-10


# ---- MultiHeadSelfAttention: gradients ---------------------------------------------------------


@SETTINGS
@given(
    batch=st.integers(1, 3),
    seq=st.integers(1, 5),
    heads=st.integers(1, 2),
    head_dim=st.integers(1, 3),
    causal=st.booleans(),
    dropout=st.sampled_from([0.0, 0.3]),
    use_mask=st.booleans(),
    seed=st.integers(0, 10**6),
)
def test_mhsa_gradcheck(backend, batch, seq, heads, head_dim, causal, dropout, use_mask, seed):
    E = heads * head_dim
    layer = MultiHeadSelfAttention(E, heads, causal=causal, dropout=dropout).bind(backend, backend.rng(seed), "float64")
    randomize(layer, backend, seed)
    _, X = data(backend, seed, (batch, seq, E))
    inputs = {}
    if use_mask:  # random padding, some rows possibly all padding
        inputs["mask"] = bool_mask(backend, np.random.default_rng(seed).random((batch, seq)) < 0.7)
    check_attention_grads(layer, X, **inputs)


def test_mhsa_dropout_gradcheck_uses_a_real_mask(backend):
    """With dropout the check must see a non-trivial mask (and pass)."""
    layer = MultiHeadSelfAttention(4, 2, dropout=0.5).bind(backend, backend.rng(3), "float64")
    _, X = data(backend, 0, (2, 4, 4))
    check_attention_grads(layer, X)
    layer.forward(X, training=True)
    drop = backend.to_numpy(layer.saved[5])  # (X, Q, K, V, P, drop, A, O): the mask backward reuses
    assert (drop == 0).any() and (drop == 2.0).any()


# ---- MultiHeadSelfAttention: values ------------------------------------------------------------


@pytest.mark.parametrize(
    "heads,causal,masked", [(1, False, False), (2, False, True), (4, True, False), (2, True, True)]
)
def test_mhsa_matches_numpy_reference(backend, heads, causal, masked):
    layer = MultiHeadSelfAttention(8, heads, causal=causal).bind(backend, backend.rng(0), "float64")
    p = randomize(layer, backend, 1)
    Xh, X = data(backend, 2, (3, 5, 8))
    mask_h = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool) if masked else None
    mask = None if mask_h is None else backend.asarray(mask_h)
    Y = backend.to_numpy(layer.forward(X, mask=mask))
    np.testing.assert_allclose(Y, np_attention(Xh, p, heads, causal, mask_h), rtol=1e-10, atol=1e-12)
    assert layer.output_shape((3, 5, 8)) == (3, 5, 8)


def test_mhsa_matches_torch(backend):
    torch = pytest.importorskip("torch")
    E, H, B, T = 6, 3, 2, 5
    layer = MultiHeadSelfAttention(E, H, causal=True).bind(backend, backend.rng(0), "float64")
    p = randomize(layer, backend, 4)
    ref = torch.nn.MultiheadAttention(E, H, batch_first=True).double()
    with torch.no_grad():  # torch computes x @ W.T with W (out, in): ours are transposed
        ref.in_proj_weight.copy_(torch.from_numpy(np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T])))
        ref.in_proj_bias.copy_(torch.from_numpy(np.concatenate([p["bq"], p["bk"], p["bv"]])))
        ref.out_proj.weight.copy_(torch.from_numpy(p["Wo"].T))
        ref.out_proj.bias.copy_(torch.from_numpy(p["bo"]))
    Xh, X = data(backend, 5, (B, T, E))
    mask_h = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)  # key 0 is real: no empty row
    Xt = torch.tensor(Xh, requires_grad=True)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # torch: True = blocked
    Yt, _ = ref(Xt, Xt, Xt, attn_mask=causal, key_padding_mask=torch.from_numpy(~mask_h), need_weights=False)
    Y = layer.forward(X, training=True, mask=backend.asarray(mask_h))
    np.testing.assert_allclose(backend.to_numpy(Y), Yt.detach().numpy(), rtol=1e-9, atol=1e-12)
    R = np.random.default_rng(0).standard_normal((B, T, E))
    (Yt * torch.from_numpy(R)).sum().backward()
    dX = layer.backward(backend.asarray(R))
    np.testing.assert_allclose(backend.to_numpy(dX), Xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.grads["Wo"]), ref.out_proj.weight.grad.numpy().T, rtol=1e-8)
    dWq = ref.in_proj_weight.grad.numpy()[:E].T
    np.testing.assert_allclose(backend.to_numpy(layer.grads["Wq"]), dWq, rtol=1e-8, atol=1e-12)


@SETTINGS
@given(seq=st.integers(2, 5), cut=st.integers(0, 3), seed=st.integers(0, 10**6))
def test_causal_output_ignores_the_future(backend, seq, cut, seed):
    """Changing the inputs after position t changes no output at positions <= t."""
    cut = min(cut, seq - 2)  # positions 0..cut are kept, cut+1.. are changed
    layer = MultiHeadSelfAttention(4, 2, causal=True).bind(backend, backend.rng(0), "float64")
    Xh, X = data(backend, seed, (2, seq, 4))
    Xh2 = Xh.copy()
    Xh2[:, cut + 1 :, :] += np.random.default_rng(seed).standard_normal(Xh2[:, cut + 1 :, :].shape) * 3.0
    Y1 = backend.to_numpy(layer.forward(X))
    Y2 = backend.to_numpy(layer.forward(backend.asarray(Xh2)))
    np.testing.assert_allclose(Y1[:, : cut + 1], Y2[:, : cut + 1], rtol=1e-12, atol=1e-12)
    assert not np.allclose(Y1[:, cut + 1 :], Y2[:, cut + 1 :])
    # and without the causal mask the past does see the future
    full = MultiHeadSelfAttention(4, 2).bind(backend, backend.rng(0), "float64")
    Z1 = backend.to_numpy(full.forward(X))
    Z2 = backend.to_numpy(full.forward(backend.asarray(Xh2)))
    assert not np.allclose(Z1[:, : cut + 1], Z2[:, : cut + 1])


def test_causal_gradient_does_not_flow_backwards_in_time(backend):
    layer = MultiHeadSelfAttention(4, 1, causal=True).bind(backend, backend.rng(0), "float64")
    _, X = data(backend, 0, (1, 4, 4))
    layer.forward(X, training=True)
    dY = np.zeros((1, 4, 4))
    dY[0, 1] = 1.0  # the loss looks at output 1 only
    dX = backend.to_numpy(layer.backward(backend.asarray(dY)))
    assert np.abs(dX[0, :2]).sum() > 0 and np.all(dX[0, 2:] == 0.0)


def test_padding_mask_hides_padded_keys(backend):
    layer = MultiHeadSelfAttention(4, 2).bind(backend, backend.rng(0), "float64")
    p = randomize(layer, backend, 0)
    Xh, X = data(backend, 0, (2, 4, 4))
    mask_h = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    mask = backend.asarray(mask_h)
    Y1 = backend.to_numpy(layer.forward(X, mask=mask))
    Xh2 = Xh.copy()
    Xh2[0, 2:] = 100.0  # garbage in the padding
    Y2 = backend.to_numpy(layer.forward(backend.asarray(Xh2), training=True, mask=mask))
    np.testing.assert_allclose(Y1[0, :2], Y2[0, :2], rtol=1e-12)  # real tokens do not see it
    # a row with nothing to attend to gets zero weights (output bo), not NaN
    np.testing.assert_allclose(Y1[1], np.broadcast_to(p["bo"], (4, 4)), rtol=1e-12)
    assert np.isfinite(backend.to_numpy(layer.backward(backend.asarray(np.ones((2, 4, 4)))))).all()


def test_dropout_only_in_training_and_reproducible(backend):
    _, X = data(backend, 0, (2, 3, 4))
    layer = MultiHeadSelfAttention(4, 2, dropout=0.5).bind(backend, backend.rng(7), "float64")
    eval1, eval2 = layer.forward(X), layer.forward(X)
    np.testing.assert_array_equal(backend.to_numpy(eval1), backend.to_numpy(eval2))
    train = backend.to_numpy(layer.forward(X, training=True))
    assert not np.allclose(train, backend.to_numpy(eval1))
    again = MultiHeadSelfAttention(4, 2, dropout=0.5).bind(backend, backend.rng(7), "float64")
    again.forward(X)
    np.testing.assert_array_equal(backend.to_numpy(again.forward(X, training=True)), train)
    # no dropout: training and inference agree
    plain = MultiHeadSelfAttention(4, 2).bind(backend, backend.rng(7), "float64")
    np.testing.assert_array_equal(backend.to_numpy(plain.forward(X, training=True)), backend.to_numpy(plain.forward(X)))


def test_mhsa_stable_for_huge_scores(backend):
    layer = MultiHeadSelfAttention(2, 1).bind(backend, backend.rng(0), "float32")
    X = backend.asarray(np.array([[[1000.0, -1000.0], [-1000.0, 1000.0], [500.0, 3.0]]], dtype=np.float32))
    Y = layer.forward(X, training=True)
    assert Y.dtype == backend.xp.float32
    assert np.isfinite(backend.to_numpy(Y)).all()
    assert np.isfinite(backend.to_numpy(layer.backward(Y))).all()


def test_mhsa_float32_and_config(backend):
    layer = MultiHeadSelfAttention(4, 2, causal=True, dropout=0.1)
    _, X = data(backend, 0, (2, 3, 4), np.float32)
    Y = layer.forward(X, training=True)
    assert Y.dtype == backend.xp.float32
    assert layer.backward(Y).dtype == backend.xp.float32
    assert sorted(layer.grads) == sorted(NAMES) and all(g.dtype == backend.xp.float32 for g in layer.grads.values())
    config = json.loads(json.dumps(layer.config()))
    assert (
        MultiHeadSelfAttention(**config).config()
        == config
        == {"embed_dim": 4, "num_heads": 2, "causal": True, "dropout": 0.1}
    )


@pytest.mark.parametrize(
    "args,message",
    [
        ((6, 4), "embed_dim (6) must be divisible by num_heads (4)"),
        ((0, 1), "embed_dim must be a positive integer, found 0"),
        ((4, 2.0), "num_heads must be a positive integer, found 2.0"),
        ((4, 2, 1), "causal must be True or False, found 1"),
        ((4, 2, False, 1.0), "dropout must be a number in [0, 1), found 1.0"),
    ],
)
def test_mhsa_bad_arguments(args, message):
    with pytest.raises(ValueError) as info:
        MultiHeadSelfAttention(*args)
    assert message in str(info.value)


def test_mhsa_bad_inputs(backend):
    layer = MultiHeadSelfAttention(4, 2)
    _, X = data(backend, 0, (2, 3, 4))
    with pytest.raises(ValueError, match=r"X has shape \(2, 3, 5\), expected \(batch, seq, 4\)"):
        layer.forward(data(backend, 0, (2, 3, 5))[1])
    with pytest.raises(ValueError, match=r"X has shape \(6, 4\), expected \(batch, seq, 4\)"):
        layer.forward(data(backend, 0, (6, 4))[1])
    with pytest.raises(ValueError, match=r"mask must be a boolean key padding mask of shape \(batch, seq\) = \(2, 3\)"):
        layer.forward(X, mask=bool_mask(backend, np.ones((3, 3))))
    with pytest.raises(ValueError, match="found dtype float64 and shape"):
        layer.forward(X, mask=backend.asarray(np.ones((2, 3))))
    if backend.name != "numpy":  # a host mask given to a model on another backend
        with pytest.raises(TypeError, match="mask is a numpy.ndarray"):
            layer.forward(X, mask=np.ones((2, 3), dtype=bool))


# ---- PositionalEncoding ------------------------------------------------------------------------


@pytest.mark.parametrize("E", [1, 4, 5])
def test_positional_encoding_values(backend, E):
    Xh, X = data(backend, 0, (2, 6, E))
    Y = backend.to_numpy(PositionalEncoding(max_len=10).forward(X))
    pe = np.zeros((6, E))
    for t in range(6):
        for i in range(E):
            angle = t / 10000 ** (2 * (i // 2) / E)
            pe[t, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(Y - Xh, np.broadcast_to(pe, (2, 6, E)), atol=1e-12)


def test_positional_encoding_gradcheck_dtype_and_errors(backend):
    layer = PositionalEncoding(8)
    assert xpnn.gradcheck(layer, data(backend, 0, (2, 3, 4))[1]) < TOL
    assert layer.params == {} and layer.config() == {"max_len": 8}
    f32 = PositionalEncoding(8).forward(data(backend, 0, (1, 8, 4), np.float32)[1])
    assert f32.dtype == backend.xp.float32
    with pytest.raises(ValueError, match=r"X has 9 positions \(shape \(1, 9, 4\)\), more than max_len=8"):
        PositionalEncoding(8).forward(data(backend, 0, (1, 9, 4))[1])
    with pytest.raises(ValueError, match=r"expected \(batch, seq, embed\)"):
        PositionalEncoding(8).forward(data(backend, 0, (3, 4))[1])
    with pytest.raises(ValueError, match="max_len must be a positive integer, found 0"):
        PositionalEncoding(0)


# ---- Residual and TimeDistributed --------------------------------------------------------------


def test_residual_forward_and_gradcheck(backend):
    layer = Residual(Dense(3, 3), Tanh()).bind(backend, backend.rng(0), "float64")
    Xh, X = data(backend, 0, (4, 3))
    W, b = (backend.to_numpy(layer.named_params()[k].value) for k in ("0.W", "0.b"))
    np.testing.assert_allclose(backend.to_numpy(layer.forward(X)), Xh + np.tanh(Xh @ W + b), rtol=1e-12)
    errors = xpnn.gradcheck(layer, X, details=True)
    assert set(errors) == {"input", "0.W", "0.b"} and max(errors.values()) < TOL, errors


def test_residual_of_attention_gradcheck_with_mask(backend):
    layer = Residual(LayerNorm(4), MultiHeadSelfAttention(4, 2)).bind(backend, backend.rng(0), "float64")
    _, X = data(backend, 1, (2, 3, 4))
    mask = bool_mask(backend, [[1, 1, 0], [1, 1, 1]])
    errors = xpnn.gradcheck(layer, X, details=True, eps=STEP, mask=mask)  # routed to the attention
    assert max(v for k, v in errors.items() if k != "1.bk") < TOL, errors


def test_residual_params_are_the_childrens_by_path(backend):
    dense, norm = Dense(3, 3), BatchNorm1D(3)
    layer = Residual(dense, norm).bind(backend, backend.rng(0), "float32")
    params, buffers = layer.named_params(), layer.named_buffers()
    assert list(params) == ["0.W", "0.b", "1.gamma", "1.beta"]
    assert list(buffers) == ["1.running_mean", "1.running_var"]
    assert layer.params == {} and layer.buffers == {}  # a container has no arrays of its own
    assert params["0.W"].value is dense.params["W"]  # the same objects, not copies

    # what an optimizer does: a step through the handles reaches the children
    _, X = data(backend, 0, (4, 3), np.float32)
    layer.backward(layer.forward(X, training=True))
    assert params["0.W"].grad is dense.grads["W"]
    xpnn.SGD(lr=0.5).step(layer.parameters())
    np.testing.assert_array_equal(backend.to_numpy(dense.params["W"]), backend.to_numpy(params["0.W"].value))
    # a second backward makes new grad arrays: a handle reads the current one
    old = params["0.W"].grad
    layer.backward(layer.forward(X, training=True))
    assert params["0.W"].grad is dense.grads["W"] and params["0.W"].grad is not old

    # writing through a handle stores into the child (load, model.to, gradcheck do this)
    new = backend.asarray(np.zeros((3, 3), dtype=np.float32))
    params["0.W"].value = new
    assert dense.params["W"] is new


def test_nested_containers_and_lazy_children(backend):
    inner = Dense(4)  # in_features taken from the first input
    layer = Residual(LayerNorm(2), TimeDistributed(inner, ReLU(), Dense(4, 2)))
    _, X = data(backend, 0, (2, 3, 2), np.float32)
    assert "1.0.W" not in layer.named_params()  # not built yet
    Y = layer.forward(X)
    assert tuple(Y.shape) == (2, 3, 2) and Y.dtype == backend.xp.float32
    assert layer.named_params()["1.0.W"].value is inner.params["W"] and tuple(inner.params["W"].shape) == (2, 4)
    assert inner.backend is layer.backend and inner.generator is layer.generator


def test_time_distributed_matches_per_position_application(backend):
    dense = Dense(3, 2)
    layer = TimeDistributed(dense).bind(backend, backend.rng(0), "float64")
    Xh, X = data(backend, 0, (2, 4, 3))
    W, b = backend.to_numpy(dense.params["W"]), backend.to_numpy(dense.params["b"])
    np.testing.assert_allclose(backend.to_numpy(layer.forward(X)), Xh @ W + b, rtol=1e-12)
    assert layer.output_shape((None, 4, 3)) == (None, 4, 2)
    errors = xpnn.gradcheck(layer, X, details=True)
    assert set(errors) == {"input", "0.W", "0.b"} and max(errors.values()) < TOL, errors
    with pytest.raises(ValueError, match=r"X has shape \(4, 3\), expected \(batch, seq, features...\)"):
        layer.forward(data(backend, 0, (4, 3))[1])


def test_container_binding_reaches_every_child(backend):
    """Binding a container (what model.to and gradcheck do) binds its children, at any depth."""
    numpy_backend = xpnn.get_backend("numpy")
    inner = Residual(Dense(3, 3), Dropout(0.5))
    layer = Residual(inner, ReLU()).bind(numpy_backend, numpy_backend.rng(0), "float32")
    for h in layer.named_params().values():  # what model.to does, array by array
        h.value = backend.asarray(numpy_backend.to_numpy(h.value))
    generator = backend.rng(1)
    layer.bind(backend, generator, "float32")
    _, X = data(backend, 0, (2, 3), np.float32)
    Y = layer.forward(X, training=True)
    assert backend.owns(Y) and Y.dtype == backend.xp.float32
    assert all(child.backend is backend and child.generator is generator for child in layer.walk())


def test_residual_config_round_trips_through_the_registry(backend, monkeypatch):
    monkeypatch.setitem(layers_module.LAYERS, "LayerNorm", LayerNorm)
    monkeypatch.setitem(layers_module.LAYERS, "Residual", Residual)
    layer = Residual(Dense(3, 3), ReLU(), LayerNorm(3))
    config = json.loads(json.dumps(layer.config()))
    assert config == {
        "layers_config": [
            {
                "class": "Dense",
                "config": {"in_features": 3, "out_features": 3, "init": Dense(3, 3).config()["init"], "bias": True},
            },
            {"class": "ReLU", "config": {}},
            {"class": "LayerNorm", "config": {"normalized_shape": 3, "eps": 1e-5}},
        ]
    }
    again = Residual(**config)
    assert [type(c) for c in again.layers] == [Dense, ReLU, LayerNorm]
    assert repr(again) == repr(layer) == "Residual(Dense(3, 3), ReLU(), LayerNorm(normalized_shape=3, eps=1e-05))"
    # the rebuilt layer computes the same function once given the same weights
    a = layer.bind(backend, backend.rng(0), "float64")
    b = again.bind(backend, backend.rng(0), "float64")
    _, X = data(backend, 0, (2, 3))
    np.testing.assert_array_equal(backend.to_numpy(a.forward(X)), backend.to_numpy(b.forward(X)))
    # nested containers serialize recursively
    nested = Residual(Residual(Dense(3, 3)))
    assert Residual(**json.loads(json.dumps(nested.config()))).config() == nested.config()


def test_residual_errors(backend):
    with pytest.raises(ValueError, match=r"needs at least one inner layer"):
        Residual()
    with pytest.raises(TypeError, match=r"Residual: layers\[1\]: expected a Layer or a .*spec, found str"):
        Residual(Dense(2, 2), "relu")
    with pytest.raises(ValueError, match=r"Residual: layers\[0\]: unknown layer class 'Nope'"):
        Residual(layers_config=[{"class": "Nope", "config": {}}])
    with pytest.raises(ValueError, match=r"either as arguments or as layers_config=\[...\], not both"):
        Residual(ReLU(), layers_config=[ReLU()])
    with pytest.raises(
        ValueError, match=r"the inner layers map shape \(2, 3\) to \(2, 4\); a residual connection needs"
    ):
        Residual(Dense(3, 4)).forward(data(backend, 0, (2, 3))[1])


# ---- TransformerEncoderBlock -------------------------------------------------------------------


def test_encoder_block_gradcheck_with_dropout(backend):
    layer = TransformerEncoderBlock(4, 2, 6, dropout=0.3, causal=True).bind(backend, backend.rng(0), "float64")
    randomize(layer, backend, 0)
    _, X = data(backend, 0, (2, 3, 4))
    errors = xpnn.gradcheck(layer, X, details=True, eps=STEP)
    assert len(errors) == 1 + 8 + 4 + 4  # input, attention, two LayerNorms, two Dense
    assert max(v for k, v in errors.items() if k != "0.1.bk") < TOL, errors


def test_encoder_block_matches_torch(backend):
    torch = pytest.importorskip("torch")
    E, H, F = 4, 2, 6
    layer = TransformerEncoderBlock(E, H, F).bind(backend, backend.rng(0), "float64")
    p = randomize(layer, backend, 1)
    ref = torch.nn.TransformerEncoderLayer(
        E,
        H,
        F,
        dropout=0.0,
        batch_first=True,
        norm_first=True,
        activation=lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    ).double()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(t(np.concatenate([p["0.1.Wq"].T, p["0.1.Wk"].T, p["0.1.Wv"].T])))
        ref.self_attn.in_proj_bias.copy_(t(np.concatenate([p["0.1.bq"], p["0.1.bk"], p["0.1.bv"]])))
        ref.self_attn.out_proj.weight.copy_(t(p["0.1.Wo"].T))
        ref.self_attn.out_proj.bias.copy_(t(p["0.1.bo"]))
        for ours, theirs in (("0.0", ref.norm1), ("1.0", ref.norm2)):
            theirs.weight.copy_(t(p[f"{ours}.gamma"]))
            theirs.bias.copy_(t(p[f"{ours}.beta"]))
        for ours, theirs in (("1.1.0", ref.linear1), ("1.1.2", ref.linear2)):
            theirs.weight.copy_(t(p[f"{ours}.W"].T))
            theirs.bias.copy_(t(p[f"{ours}.b"]))
    ref.train()  # no dropout, and avoids the inference fast path
    Xh, X = data(backend, 3, (2, 5, E))
    Xt = torch.tensor(Xh, requires_grad=True)
    Yt = ref(Xt)
    np.testing.assert_allclose(
        backend.to_numpy(layer.forward(X, training=True)), Yt.detach().numpy(), rtol=1e-9, atol=1e-12
    )
    R = np.random.default_rng(0).standard_normal(Xh.shape)
    (Yt * t(R)).sum().backward()
    np.testing.assert_allclose(
        backend.to_numpy(layer.backward(backend.asarray(R))), Xt.grad.numpy(), rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(
        backend.to_numpy(layer.named_params()["1.1.0.W"].grad), ref.linear1.weight.grad.numpy().T, rtol=1e-8
    )


def test_encoder_block_causal_mask_and_config(backend):
    layer = TransformerEncoderBlock(4, 2, 8, causal=True)
    Xh, X = data(backend, 0, (1, 4, 4), np.float32)
    Y1 = backend.to_numpy(layer.forward(X)).copy()
    Xh2 = Xh.copy()  # (X may share memory with Xh)
    Xh2[0, 3] += 5.0
    Y2 = backend.to_numpy(layer.forward(backend.asarray(Xh2)))
    np.testing.assert_array_equal(Y1[0, :3], Y2[0, :3])
    assert not np.allclose(Y1[0, 3], Y2[0, 3])
    assert Y1.dtype == np.float32
    # the padding mask reaches the attention: hiding keys 2, 3 changes outputs 2, 3 only
    Y3 = backend.to_numpy(layer.forward(X, mask=bool_mask(backend, [[1, 1, 0, 0]])))
    np.testing.assert_array_equal(Y3[0, :2], Y1[0, :2])
    assert not np.allclose(Y3[0, 2:], Y1[0, 2:])
    config = json.loads(json.dumps(layer.config()))
    assert config == {"embed_dim": 4, "num_heads": 2, "ff_dim": 8, "dropout": 0.0, "causal": True}
    again = TransformerEncoderBlock(**config)
    assert list(again.bind(backend, backend.rng(0), "float32").named_params()) == list(layer.named_params())
    assert layer.output_shape((None, 4, 4)) == (None, 4, 4)
    assert repr(layer) == "TransformerEncoderBlock(embed_dim=4, num_heads=2, ff_dim=8, dropout=0.0, causal=True)"


def test_encoder_block_errors(backend):
    with pytest.raises(ValueError, match="ff_dim must be a positive integer, found 0"):
        TransformerEncoderBlock(4, 2, 0)
    with pytest.raises(ValueError, match=r"embed_dim \(5\) must be divisible by num_heads \(2\)"):
        TransformerEncoderBlock(5, 2, 8)
    with pytest.raises(ValueError, match=r"X has shape \(2, 3, 5\), expected \(batch, seq, 4\)"):
        TransformerEncoderBlock(4, 2, 8).forward(data(backend, 0, (2, 3, 5))[1])


def test_a_container_called_on_its_own_refuses_inputs_no_layer_takes(backend):
    _, X = data(backend, 0, (2, 3, 4))
    block = TransformerEncoderBlock(4, 2, 8)
    with pytest.raises(ValueError, match="no layer in it takes the input 'maks'"):
        block.forward(X, maks=bool_mask(backend, np.ones((2, 3))))
    with pytest.raises(ValueError, match="no layer in it takes the input 'mask'"):
        Residual(LayerNorm(4), TimeDistributed(Dense(4, 4))).forward(X, mask=bool_mask(backend, np.ones((2, 3))))
    model = xpnn.Sequential([TransformerEncoderBlock(4, 2, 8)], backend=backend)
    with pytest.raises(ValueError, match="Sequential.forward: no layer of this model takes the input 'maks'"):
        model.forward(X, maks=bool_mask(backend, np.ones((2, 3))))
