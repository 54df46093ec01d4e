"""SimpleRNN, LSTM and GRU: gradients of the input, the initial states and every param
(finite differences in float64, every backend), values against a NumPy loop written here
and against torch.nn.RNN / LSTM / GRU with the same weights (forward and autograd, both
return_sequences modes), training, initial states and save/load inside a Sequential, and
error messages. (The layer contract of tests/layers/test_layer_contract.py covers them too.)

Sizes are tiny (batch 2, seq 3, input 3, hidden 4): JAX compiles every operation once
per shape, and the finite differences run one forward per number.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.layers import GRU, LSTM, Dense, SimpleRNN

B, T, I, H = 2, 3, 3, 4
STEP = 1e-5
TOL = 1e-6
PARAMS = ("W_ih", "W_hh", "b_ih", "b_hh")

KINDS = {
    "rnn_tanh": lambda rs: SimpleRNN(I, H, return_sequences=rs),
    "rnn_relu": lambda rs: SimpleRNN(I, H, nonlinearity="relu", return_sequences=rs),
    "lstm": lambda rs: LSTM(I, H, return_sequences=rs),
    "gru": lambda rs: GRU(I, H, return_sequences=rs),
}


def make(backend, kind, return_sequences, seed=0):
    return KINDS[kind](return_sequences).bind(backend, backend.rng(seed), "float64")


def host_params(layer, backend) -> dict:
    return {k: np.array(backend.to_numpy(v)) for k, v in layer.params.items()}


def data(backend, seed, shape):
    host = np.random.default_rng(seed).standard_normal(shape)
    return host, backend.asarray(host)


def initial_states(backend, kind, seed=7):
    """({name: host array}, {name: backend array}) of the initial states ``kind`` takes."""
    rng = np.random.default_rng(seed)
    names = ("h0", "c0") if kind == "lstm" else ("h0",)
    host = {name: rng.standard_normal((B, H)) * 0.5 for name in names}
    return host, {name: backend.asarray(v) for name, v in host.items()}


def relative_error(a, b) -> float:
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0.0 else float(np.linalg.norm(a - b) / denom)


def central_difference(f, x):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + STEP
        plus = f(x)
        x[i] = orig - STEP
        minus = f(x)
        x[i] = orig
        grad[i] = (plus - minus) / (2 * STEP)
    return grad


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_recurrent(kind, X, p, h0=None, c0=None):
    """Every step's h (batch, seq, H), the textbook way: one sample, one step at a time."""
    n, steps, _ = X.shape
    size = p["W_hh"].shape[1]
    out = np.zeros((n, steps, size))
    for b in range(n):
        h = np.zeros(size) if h0 is None else h0[b].copy()
        c = np.zeros(size) if c0 is None else c0[b].copy()
        for t in range(steps):
            x = X[b, t]
            if kind.startswith("rnn"):
                a = p["W_ih"] @ x + p["b_ih"] + p["W_hh"] @ h + p["b_hh"]
                h = np.tanh(a) if kind == "rnn_tanh" else np.maximum(a, 0.0)
            elif kind == "lstm":
                i, f, g, o = np.split(p["W_ih"] @ x + p["b_ih"] + p["W_hh"] @ h + p["b_hh"], 4)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(c)
            else:  # gru
                a_r, a_z, a_n = np.split(p["W_ih"] @ x + p["b_ih"], 3)
                s_r, s_z, s_n = np.split(p["W_hh"] @ h + p["b_hh"], 3)
                r, z = sigmoid(a_r + s_r), sigmoid(a_z + s_z)
                n_ = np.tanh(a_n + r * s_n)
                h = (1.0 - z) * n_ + z * h
            out[b, t] = h
    return out


# ---- gradients ---------------------------------------------------------------------------


# each kind in one return_sequences mode here, the other in the contract test
@pytest.mark.parametrize(
    "kind,return_sequences", [("rnn_tanh", True), ("rnn_relu", False), ("lstm", False), ("gru", True)]
)
def test_gradcheck_of_input_initial_states_and_every_param(backend, kind, return_sequences):
    layer = make(backend, kind, return_sequences)
    _, X = data(backend, 1, (B, T, I))
    host_states, states = initial_states(backend, kind)
    errors = xpnn.gradcheck(layer, X, details=True, eps=STEP, **states)
    assert set(errors) == {"input", *PARAMS}
    assert max(errors.values()) < TOL, errors
    # the initial states: dh0 (dc0) after backward against central differences of sum(Y * R)
    Y = layer.forward(X, training=True, **states)
    R = np.random.default_rng(2).standard_normal(tuple(Y.shape))
    layer.backward(backend.asarray(R))
    for name, host in host_states.items():

        def loss(value, name=name):
            Y = layer.forward(X, **{**states, name: backend.asarray(value)})
            return float(np.sum(backend.to_numpy(Y) * R))

        analytic = np.array(backend.to_numpy(getattr(layer, f"d{name}")))
        assert analytic.shape == (B, H)
        assert relative_error(analytic, central_difference(loss, host.copy())) < TOL, name


def test_initial_state_gradients_only_for_states_given():
    backend = xpnn.get_backend("numpy")
    layer = make(backend, "lstm", False)
    _, X = data(backend, 1, (B, T, I))
    _, states = initial_states(backend, "lstm")
    Y = layer.forward(X, training=True, h0=states["h0"])
    layer.backward(backend.xp.ones_like(Y))
    assert layer.dh0 is not None and layer.dc0 is None
    layer.forward(X, training=True)
    layer.backward(backend.xp.ones_like(Y))
    assert layer.dh0 is None and layer.dc0 is None


# ---- values ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_forward_matches_a_numpy_loop(backend, kind):
    every, last = make(backend, kind, True), make(backend, kind, False, seed=1)
    for name, value in every.params.items():  # the same weights in both
        last.params[name] = backend.xp.asarray(value, copy=True)
    p = host_params(every, backend)
    Xh, X = data(backend, 3, (B, T, I))
    host_states, states = initial_states(backend, kind)
    for given_host, given in (({}, {}), (host_states, states)):  # zeros, then given initial states
        want = np_recurrent(kind, Xh, p, **given_host)
        Y_every = backend.to_numpy(every.forward(X, **given))
        Y_last = backend.to_numpy(last.forward(X, **given))
        assert Y_every.shape == (B, T, H) and Y_last.shape == (B, H)
        np.testing.assert_allclose(Y_every, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(Y_last, want[:, -1], rtol=1e-10, atol=1e-12)
    zeros = {k: backend.asarray(np.zeros((B, H))) for k in states}  # no state given means zeros
    np.testing.assert_array_equal(backend.to_numpy(last.forward(X, **zeros)), backend.to_numpy(last.forward(X)))


def torch_reference(torch, kind):
    make_ref = {
        "rnn_tanh": lambda: torch.nn.RNN(I, H, batch_first=True),
        "rnn_relu": lambda: torch.nn.RNN(I, H, nonlinearity="relu", batch_first=True),
        "lstm": lambda: torch.nn.LSTM(I, H, batch_first=True),
        "gru": lambda: torch.nn.GRU(I, H, batch_first=True),
    }[kind]
    return make_ref().double()


TORCH_NAMES = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_torch_forward_and_autograd(backend, kind, return_sequences):
    """Our weights copied into torch.nn.RNN / LSTM / GRU (batch_first): the same outputs,
    and the same gradients of sum(Y * R) for the input, the initial states and every param."""
    torch = pytest.importorskip("torch")
    layer = make(backend, kind, return_sequences)
    ref = torch_reference(torch, kind)
    p = host_params(layer, backend)
    with torch.no_grad():
        for name, torch_name in TORCH_NAMES.items():
            getattr(ref, torch_name).copy_(torch.from_numpy(p[name]))
    Xh, X = data(backend, 4, (B, T, I))
    host_states, states = initial_states(backend, kind)
    Xt = torch.tensor(Xh, requires_grad=True)
    st = {k: torch.tensor(v[None], requires_grad=True) for k, v in host_states.items()}  # (layers=1, batch, H)
    out, _ = ref(Xt, (st["h0"], st["c0"]) if kind == "lstm" else st["h0"])
    Yt = out if return_sequences else out[:, -1, :]
    R = np.random.default_rng(5).standard_normal(tuple(Yt.shape))
    (Yt * torch.from_numpy(R)).sum().backward()

    Y = layer.forward(X, training=True, **states)
    np.testing.assert_allclose(backend.to_numpy(Y), Yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    dX = layer.backward(backend.asarray(R))
    close = {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(backend.to_numpy(dX), Xt.grad.numpy(), **close)
    for name, torch_name in TORCH_NAMES.items():
        np.testing.assert_allclose(
            backend.to_numpy(layer.grads[name]), getattr(ref, torch_name).grad.numpy(), err_msg=name, **close
        )
    for name, t in st.items():
        np.testing.assert_allclose(
            backend.to_numpy(getattr(layer, f"d{name}")), t.grad.numpy()[0], err_msg=name, **close
        )


def test_initialization_is_uniform_within_torch_bound():
    layer = GRU(5, 16).bind(xpnn.get_backend("numpy"), xpnn.get_backend("numpy").rng(0), "float64")
    assert {k: v.shape for k, v in layer.params.items()} == {
        "W_ih": (48, 5),
        "W_hh": (48, 16),
        "b_ih": (48,),
        "b_hh": (48,),
    }
    values = np.concatenate([v.ravel() for v in layer.params.values()])
    assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.24  # 1 / sqrt(16)
    again = GRU(5, 16).bind(xpnn.get_backend("numpy"), xpnn.get_backend("numpy").rng(0), "float64")
    for k, v in layer.params.items():  # drawn from the model's generator: the same seed, the same weights
        np.testing.assert_array_equal(again.params[k], v)


# ---- in a model --------------------------------------------------------------------------


def sign_of_sum_task(n, rng):
    """Label 1 when the first feature sums to more than 0 over the sequence."""
    X = rng.standard_normal((n, 6, 2)).astype(np.float32)
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)


def test_lstm_in_sequential_trains_routes_h0_and_saves(tmp_path):
    X, y = sign_of_sum_task(256, np.random.default_rng(0))
    model = xpnn.Sequential([LSTM(2, 8), Dense(8, 2)], backend="numpy", seed=0)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.02), metrics=["accuracy"])
    history = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert history.history["accuracy"][-1] > 0.85
    # an initial state is a per-sample keyword input: batched by fit and predict, routed to the LSTM
    h0 = np.random.default_rng(1).standard_normal((256, 8)).astype(np.float32)
    model.fit(X, y, epochs=1, batch_size=32, verbose=0, h0=h0)
    with_h0 = model.predict(X, h0=h0)
    assert not np.allclose(with_h0, model.predict(X))
    model.save(tmp_path / "lstm.safetensors")
    loaded = xpnn.load(tmp_path / "lstm.safetensors")
    assert isinstance(loaded.layers[0], LSTM) and loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict(X, h0=h0), with_h0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_config_repr_and_output_shape(kind):
    for rs in (False, True):
        layer = KINDS[kind](rs)
        config = layer.config()
        assert type(layer)(**config).config() == config
        assert config["return_sequences"] is rs and config["input_size"] == I and config["hidden_size"] == H
        assert layer.output_shape((B, T, I)) == ((B, T, H) if rs else (B, H))
        assert repr(layer).startswith(f"{type(layer).__name__}({I}, {H}")
    relu = SimpleRNN(3, 4, "relu", return_sequences=True)
    assert repr(relu) == "SimpleRNN(3, 4, nonlinearity='relu', return_sequences=True)"
    assert repr(LSTM(3, 4)) == "LSTM(3, 4)"
    assert xpnn.layers.LAYERS["LSTM"] is LSTM and xpnn.LSTM is LSTM and xpnn.GRU is GRU and xpnn.SimpleRNN is SimpleRNN


# ---- errors ------------------------------------------------------------------------------


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="SimpleRNN: nonlinearity must be one of .*'tanh', 'relu'.*found 'sigmoid'"):
        SimpleRNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="LSTM: hidden_size must be a positive integer, found 0"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="GRU: input_size must be a positive integer, found -2"):
        GRU(-2, 4)
    with pytest.raises(ValueError, match="LSTM: input_size must be a positive integer, found 2.5"):
        LSTM(2.5, 4)
    with pytest.raises(ValueError, match="GRU: return_sequences must be True or False, found 'yes'"):
        GRU(3, 4, return_sequences="yes")


def test_bad_inputs_are_clear_errors(backend):
    layer = make(backend, "lstm", False)
    with pytest.raises(
        ValueError,
        match=r"LSTM\(3, 4\)\.forward: X has shape \(2, 3\), expected \(batch, seq, "
        r"input_size=3\)",
    ):
        layer.forward(backend.asarray(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"X has shape \(2, 3, 5\), expected \(batch, seq, input_size=3\)"):
        layer.forward(backend.asarray(np.zeros((2, 3, 5))))
    with pytest.raises(ValueError, match=r"X has shape \(2, 0, 3\).*with seq >= 1"):
        layer.forward(backend.asarray(np.zeros((2, 0, 3))))
    with pytest.raises(TypeError, match="X has dtype int64, expected a floating-point array"):
        layer.forward(backend.asarray(np.zeros((2, 3, 3), dtype=np.int64)))
    X = backend.asarray(np.zeros((2, 3, 3)))
    with pytest.raises(
        ValueError,
        match=r"c0 must be a floating-point array of shape \(batch, hidden_size\) = "
        r"\(2, 4\); found dtype float64 and shape \(2, 3\)",
    ):
        layer.forward(X, c0=backend.asarray(np.zeros((2, 3))))
    with pytest.raises(TypeError, match="unexpected keyword argument 'c0'"):
        make(backend, "gru", False).forward(X, c0=backend.asarray(np.zeros((2, 4))))
    if backend.name != "numpy":  # a host array given to a layer on another backend
        with pytest.raises(TypeError, match="h0 is a numpy.ndarray"):
            layer.forward(X, h0=np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match=r"needs a forward\(X, training=True\) first"):
        layer.backward(backend.asarray(np.zeros((2, 4))))
