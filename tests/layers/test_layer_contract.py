"""The layer contract, for every registered layer on every backend.

Parametrized over ``xpnn.layers.LAYERS`` (a newly registered layer without a case here
fails ``test_every_registered_layer_has_a_case``):

- float64 gradient check of the input and every param (through any nesting);
- float32 stays float32 forward and backward;
- the output is an array of the layer's backend and device;
- inference keeps nothing: no array larger than the layer's largest param is referenced
  after ``forward(training=False)``, and a training forward's activations are handed
  back by backward;
- ``config()`` round-trips through save/load (the same predictions);
- the layer inside two levels of containers computes what it computes at top level.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import xpnn
from xpnn.layers import (
    ELU,
    GELU,
    GRU,
    LAYERS,
    LSTM,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Container,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    MultiHeadSelfAttention,
    PositionalEncoding,
    ReLU,
    Residual,
    SequencePool,
    Sigmoid,
    SimpleRNN,
    Softmax,
    Tanh,
    TimeDistributed,
    TransformerEncoderBlock,
)

TOL = 1e-6


def _floats(shape):
    """Inputs with |x| in [0.2, 2]: away from the kinks of ReLU-like layers at 0."""

    def make(rng):
        return rng.uniform(0.2, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)

    return make


def _ids(shape, high):
    def make(rng):
        return rng.integers(0, high, size=shape)

    return make


# name -> (factory(backend, dtype), input maker(rng), params whose true gradient is exactly 0).
# Key biases of attention get no gradient (a constant added to every key shifts a row of
# scores, which softmax ignores); their analytic gradient must be ~0 instead.
CASES = {
    "Dense": (lambda b, d: Dense(4, 3), _floats((3, 4)), ()),
    "Dropout": (lambda b, d: Dropout(0.3), _floats((3, 4)), ()),
    "Flatten": (lambda b, d: Flatten(), _floats((2, 3, 2)), ()),
    "ReLU": (lambda b, d: ReLU(), _floats((3, 4)), ()),
    "LeakyReLU": (lambda b, d: LeakyReLU(0.1), _floats((3, 4)), ()),
    "ELU": (lambda b, d: ELU(), _floats((3, 4)), ()),
    "GELU": (lambda b, d: GELU(), _floats((3, 4)), ()),
    "Sigmoid": (lambda b, d: Sigmoid(), _floats((3, 4)), ()),
    "Tanh": (lambda b, d: Tanh(), _floats((3, 4)), ()),
    "Softmax": (lambda b, d: Softmax(), _floats((3, 4)), ()),
    "Identity": (lambda b, d: Identity(), _floats((3, 4)), ()),
    "BatchNorm1D": (lambda b, d: BatchNorm1D(4), _floats((5, 4)), ()),
    "BatchNorm2D": (lambda b, d: BatchNorm2D(2), _floats((3, 2, 3, 3)), ()),
    "LayerNorm": (lambda b, d: LayerNorm(4), _floats((3, 4)), ()),
    "Embedding": (lambda b, d: Embedding(6, 3), _ids((2, 3), 6), ()),
    "MultiHeadSelfAttention": (lambda b, d: MultiHeadSelfAttention(4, 2), _floats((2, 3, 4)), ("bk",)),
    "PositionalEncoding": (lambda b, d: PositionalEncoding(8), _floats((2, 3, 4)), ()),
    "Residual": (lambda b, d: Residual(Dense(4, 4), Tanh()), _floats((3, 4)), ()),
    "TimeDistributed": (lambda b, d: TimeDistributed(Dense(4, 3), Tanh()), _floats((2, 3, 4)), ()),
    "TransformerEncoderBlock": (lambda b, d: TransformerEncoderBlock(4, 2, 6), _floats((2, 3, 4)), ("0.1.bk",)),
    "Conv1D": (lambda b, d: Conv1D(2, 3, 3, padding=1), _floats((2, 2, 5)), ()),
    "Conv2D": (lambda b, d: Conv2D(2, 3, 3, stride=2, padding=1), _floats((2, 2, 5, 5)), ()),
    "MaxPool2D": (lambda b, d: MaxPool2D(2), _floats((2, 2, 4, 4)), ()),
    "AvgPool2D": (lambda b, d: AvgPool2D(2, stride=1), _floats((2, 2, 3, 3)), ()),
    "GlobalAvgPool2D": (lambda b, d: GlobalAvgPool2D(), _floats((2, 3, 3, 3)), ()),
    "SequencePool": (lambda b, d: SequencePool("max"), _floats((2, 4, 3)), ()),
    # both return_sequences modes between them (with initial states: tests/layers/test_recurrent.py)
    "SimpleRNN": (lambda b, d: SimpleRNN(3, 4), _floats((2, 3, 3)), ()),
    "LSTM": (lambda b, d: LSTM(3, 4, return_sequences=True), _floats((2, 3, 3)), ()),
    "GRU": (lambda b, d: GRU(3, 4), _floats((2, 3, 3)), ()),
    "Sequential": (
        lambda b, d: xpnn.Sequential([Dense(4, 5), ReLU(), Residual(Dense(5, 5), Tanh())], backend=b, dtype=d),
        _floats((3, 4)),
        (),
    ),
    "NeuralNetwork": (
        lambda b, d: xpnn.NeuralNetwork(4, [5], 3, activation="tanh", backend=b, dtype=d),
        _floats((3, 4)),
        (),
    ),
}
NAMES = sorted(CASES)


def _make(name, backend, dtype, seed=0):
    """(bound layer, input X on the backend in ``dtype`` for float inputs)."""
    factory, inputs, _ = CASES[name]
    layer = factory(backend, dtype).bind(backend, backend.rng(seed), dtype)
    host = inputs(np.random.default_rng(seed))
    X = backend.asarray(host) if host.dtype.kind == "i" else backend.asarray(host, dtype=dtype)
    return layer, X


def _takes_floats(name) -> bool:
    return name != "Embedding"


def test_every_registered_layer_has_a_case():
    assert set(CASES) == set(LAYERS), "add a case for each registered layer"


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_of_input_and_every_param(backend, name):
    layer, X = _make(name, backend, "float64")
    errors = xpnn.gradcheck(layer, X, details=True, eps=1e-5, check_input=_takes_floats(name))
    zero = set(CASES[name][2])
    assert set(errors) == ({"input"} if _takes_floats(name) else set()) | set(layer.named_params())
    assert max((v for k, v in errors.items() if k not in zero), default=0.0) < TOL, errors
    for key in zero:  # exactly 0 in theory: the analytic gradient is rounding noise
        assert np.abs(backend.to_numpy(layer.named_params()[key].grad)).max() < 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32_and_output_on_the_backend(backend, name):
    layer, X = _make(name, backend, "float32")
    Y = layer.forward(X, training=True)
    assert backend.owns(Y), f"{name} returned {type(Y).__name__} on another backend or device"
    assert Y.dtype == backend.xp.float32
    dX = layer.backward(backend.xp.ones_like(Y))
    if _takes_floats(name):
        assert backend.owns(dX) and dX.dtype == backend.xp.float32 and tuple(dX.shape) == tuple(X.shape)
    for key, h in layer.named_params().items():
        assert h.value.dtype == backend.xp.float32 and h.grad.dtype == backend.xp.float32, key


def _arrays(value, found):
    """Every array reachable from ``value`` through tuples, lists and dicts."""
    if isinstance(value, (tuple, list)):
        for v in value:
            _arrays(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _arrays(v, found)
    elif array_api_compat.is_array_api_obj(value) and not isinstance(value, type) and value.ndim > 0:
        found.append(value)
    return found


def _held(layer) -> list:
    """(layer, array) for every array a layer of the tree holds outside params/grads/buffers."""
    out = []
    for part in layer.walk():
        for key, value in vars(part).items():
            if key not in ("params", "grads", "buffers") and key != "layers":
                out += [(part, a) for a in _arrays(value, [])]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_inference_keeps_nothing_and_backward_hands_activations_back(backend, name):
    layer, X = _make(name, backend, "float32")
    largest = max((math.prod(h.value.shape) for h in layer.named_params().values()), default=0)
    layer.forward(X, training=False)
    for part, a in _held(layer):
        assert math.prod(a.shape) <= largest, f"{part!r} keeps an array of shape {tuple(a.shape)} after inference"
    assert all(part.saved is None for part in layer.walk())
    Y = layer.forward(X, training=True)
    kept = any(part.saved is not None for part in layer.walk())
    layer.forward(X, training=False)  # an inference forward drops what a training one kept
    assert all(part.saved is None for part in layer.walk())
    Y = layer.forward(X, training=True)
    layer.backward(backend.xp.ones_like(Y))
    assert all(part.saved is None for part in layer.walk()), "backward must hand the activations back"
    if kept:  # a backward that needs activations cannot run twice on one forward
        with pytest.raises(RuntimeError, match=r"needs a forward\(X, training=True\) first"):
            layer.backward(backend.xp.ones_like(Y))


# training changes what these compute (a random mask; batch statistics)
MODE_DEPENDENT = {"Dropout", "BatchNorm1D", "BatchNorm2D"}


@pytest.mark.parametrize("name", NAMES)
def test_one_training_forward_serves_one_backward_and_need_dX_false_skips_only_dX(backend, name):
    layer, X = _make(name, backend, "float64")
    Y_inference = layer.forward(X, training=False)
    state = layer.generator.state
    Y = layer.forward(X, training=True)
    if name not in MODE_DEPENDENT:
        np.testing.assert_array_equal(backend.to_numpy(Y), backend.to_numpy(Y_inference))
    dY = backend.asarray(np.random.default_rng(1).standard_normal(tuple(Y.shape)))
    dX = layer.backward(dY)
    grads = {k: np.array(backend.to_numpy(h.grad)) for k, h in layer.named_params().items()}
    layer.generator.set_state(state)  # (Dropout: the same mask again)
    layer.forward(X, training=True)
    dX_again = layer.backward(dY, need_dX=False)  # a layer may skip dX then (None), or compute it anyway
    assert dX_again is None or np.array_equal(backend.to_numpy(dX_again), backend.to_numpy(dX))
    for k, h in layer.named_params().items():
        np.testing.assert_allclose(backend.to_numpy(h.grad), grads[k], rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_through_save_and_load(backend, name, tmp_path):
    factory, inputs, _ = CASES[name]
    layer = factory(backend, "float32")
    model = layer if isinstance(layer, xpnn.Sequential) else xpnn.Sequential([layer], backend=backend, seed=3)
    host = inputs(np.random.default_rng(1))
    X = host if host.dtype.kind == "i" else host.astype(np.float32)
    before = model.predict(X)
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors", backend=backend)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.predict(X), before)


@pytest.mark.parametrize("name", NAMES)
def test_inside_nested_containers_it_computes_the_same(backend, name):
    top, X = _make(name, backend, "float64", seed=2)
    inner, _ = _make(name, backend, "float64", seed=5)  # other initial weights ...
    for key, h in inner.named_params().items():  # ... then the same ones
        h.value = backend.xp.asarray(top.named_params()[key].value, copy=True)
    nested = Container([Container([inner])]).bind(backend, backend.rng(2), "float64")
    top.bind(backend, backend.rng(2), "float64")  # the same generator state: the same dropout masks
    Y_top, Y_nested = top.forward(X, training=True), nested.forward(X, training=True)
    np.testing.assert_allclose(backend.to_numpy(Y_nested), backend.to_numpy(Y_top), rtol=1e-12, atol=1e-12)
    R = backend.asarray(np.random.default_rng(0).standard_normal(tuple(Y_top.shape)))
    dX_top, dX_nested = top.backward(R), nested.backward(R)
    if _takes_floats(name):
        np.testing.assert_allclose(backend.to_numpy(dX_nested), backend.to_numpy(dX_top), rtol=1e-12, atol=1e-12)
    nested_params = nested.named_params()
    for key, h in top.named_params().items():
        np.testing.assert_allclose(
            backend.to_numpy(nested_params[f"0.0.{key}"].grad), backend.to_numpy(h.grad), rtol=1e-12, atol=1e-12
        )
