"""Gradient checks: every layer's backward agrees with central differences (float64,
relative error < 1e-6) on every backend, and gradcheck itself catches wrong backwards."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn import gradcheck
from xpnn.layers import (
    ELU,
    GELU,
    Dense,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)

TOL = 1e-6
SHAPE_SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# name -> factory taking the feature count (every layer of xpnn.layers is also checked
# in test_layer_contract.py; these add the variants and shapes of the 2-D layers)
LAYERS = {
    "Dense": lambda f: Dense(f, 3),
    "Dense(out)": lambda f: Dense(2),
    "Dense(bias=False)": lambda f: Dense(f, 2, bias=False, init="he_normal"),
    "ReLU": lambda f: ReLU(),
    "LeakyReLU": lambda f: LeakyReLU(0.1),
    "ELU": lambda f: ELU(),
    "ELU(0.7)": lambda f: ELU(0.7),
    "GELU": lambda f: GELU(),
    "Sigmoid": lambda f: Sigmoid(),
    "Tanh": lambda f: Tanh(),
    "Softmax": lambda f: Softmax(),
    "Identity": lambda f: Identity(),
    "Dropout": lambda f: Dropout(0.4),
}


def _input(backend, shape, seed, dtype="float64"):
    """Inputs with |x| in [0.2, 2]: away from the kinks of ReLU, LeakyReLU and ELU at 0,
    where a central difference straddling the kink is not the derivative."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return backend.asarray(x, dtype=dtype)


@pytest.mark.parametrize("name", sorted(LAYERS))
@SHAPE_SETTINGS
@given(batch=st.integers(1, 4), features=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_every_layer_passes_gradcheck(backend, name, batch, features, seed):
    layer = LAYERS[name](features)
    X = _input(backend, (batch, features), seed)
    errors = gradcheck(layer, X, details=True, seed=seed)
    expected_keys = {"input", *layer.params}
    assert set(errors) == expected_keys
    assert max(errors.values()) < TOL, errors


@SHAPE_SETTINGS
@given(batch=st.integers(1, 3), dims=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_flatten_passes_gradcheck(backend, batch, dims, seed):
    X = _input(backend, (batch, *dims), seed)
    assert gradcheck(Flatten(), X, seed=seed) < TOL


def test_gradcheck_of_a_small_stack(backend):
    """Dense -> Tanh -> Dense -> Softmax as one layer (a Container): the chain rule across
    layers, and the params of the children reached by path."""
    stack = xpnn.layers.Container([Dense(4, 5), Tanh(), Dense(5, 3), Softmax()])
    errors = gradcheck(stack, _input(backend, (3, 4), 0), details=True)
    assert set(errors) == {"input", "0.W", "0.b", "2.W", "2.b"}
    assert max(errors.values()) < TOL, errors
    nested = xpnn.layers.Container([Dense(4, 4), xpnn.layers.Container([Tanh(), Dense(4, 2)])])
    errors = gradcheck(nested, _input(backend, (3, 4), 1), details=True)
    assert set(errors) == {"input", "0.W", "0.b", "1.1.W", "1.1.b"} and max(errors.values()) < TOL, errors


def test_gradcheck_accepts_float32_input_and_float32_bound_layer(backend):
    layer = Dense(3, 2).bind(backend, backend.rng(0), "float32")
    X = _input(backend, (4, 3), 1, dtype="float32")
    assert gradcheck(layer, X) < TOL
    assert gradcheck(GELU(), _input(backend, (2, 3), 2, dtype="float32")) < TOL


def test_gradcheck_leaves_a_bound_layer_as_it_found_it(backend):
    layer = Dense(3, 2).bind(backend, backend.rng(0), "float32")
    W, b = (backend.to_numpy(layer.params[k]).copy() for k in ("W", "b"))
    assert gradcheck(layer, _input(backend, (4, 3), 1, dtype="float32")) < TOL
    assert layer.dtype == backend.xp.float32
    assert layer.params["W"].dtype == layer.params["b"].dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(layer.params["W"]), W)
    np.testing.assert_array_equal(backend.to_numpy(layer.params["b"]), b)
    drop = Dropout(0.5).bind(backend, backend.rng(4), "float32")
    state = drop.generator.state
    assert gradcheck(drop, _input(backend, (3, 3), 0)) < TOL
    assert drop.generator.state == state  # the next training step draws the mask it would have
    assert layer.saved is None and drop.saved is None  # the check's activations are not kept


def test_gradcheck_restores_the_layer_when_the_check_fails(backend):
    """A backward that raises half way: params, dtype and generator are back as they were."""

    class Broken(Dense):
        def backward(self, dY, need_dX=True):
            raise RuntimeError("boom")

    layer = Broken(3, 2).bind(backend, backend.rng(0), "float32")
    W = layer.params["W"]
    with pytest.raises(RuntimeError, match="boom"):
        gradcheck(layer, _input(backend, (4, 3), 1, dtype="float32"))
    assert layer.params["W"] is W and layer.dtype == backend.xp.float32 and layer.saved is None


def test_gradcheck_returns_a_float_by_default(backend):
    err = gradcheck(Tanh(), _input(backend, (2, 3), 0))
    assert isinstance(err, float) and 0.0 <= err < TOL


def test_gradcheck_details_per_tensor(backend):
    errors = gradcheck(Dense(3, 2), _input(backend, (4, 3), 0), details=True)
    assert set(errors) == {"input", "W", "b"}
    assert all(isinstance(e, float) and 0.0 <= e < TOL for e in errors.values())
    assert set(gradcheck(Dense(3, 2), _input(backend, (4, 3), 0), details=True, check_input=False)) == {"W", "b"}
    assert set(gradcheck(Sigmoid(), _input(backend, (4, 3), 0), details=True)) == {"input"}


# ---- gradcheck must catch wrong backwards ---------------------------------------------------


class TanhMissingSquare(Tanh):
    """Wrong: derivative 1 - Y instead of 1 - Y^2."""

    def backward(self, dY, need_dX=True):
        return dY * (1.0 - self.take_saved())


class DenseWrongWeightGrad(Dense):
    """Wrong dW (twice X^T dY); dX and db stay right."""

    def backward(self, dY, need_dX=True):
        dX = super().backward(dY)
        self.grads["W"] = 2.0 * self.grads["W"]
        return dX


class DenseMeanBiasGrad(Dense):
    """Wrong db: the batch mean instead of the sum."""

    def backward(self, dY, need_dX=True):
        dX = super().backward(dY)
        self.grads["b"] = self.xp.mean(dY, axis=0)
        return dX


class DenseNoWeightTranspose(Dense):
    """Wrong dX: dY @ W with W as is (only square W lets this run): a classic slip."""

    def backward(self, dY, need_dX=True):
        super().backward(dY)
        return dY @ self.params["W"]


class SoftmaxAsElementwise(Softmax):
    """Wrong: Y (1 - Y) dY, the diagonal of the Jacobian only."""

    def backward(self, dY, need_dX=True):
        Y = self.take_saved()
        return dY * Y * (1.0 - Y)


class DropoutFreshMask(Dropout):
    """Wrong: backward draws a new mask instead of reusing the forward one."""

    def backward(self, dY, need_dX=True):
        self.take_saved()
        keep = 1.0 - self.rate
        mask = self.generator.bernoulli(tuple(dY.shape), keep, dtype=dY.dtype) * (1.0 / keep)
        return dY * mask


def test_gradcheck_detects_wrong_activation_backward(backend):
    assert gradcheck(TanhMissingSquare(), _input(backend, (3, 4), 0)) > 1e-2


def test_gradcheck_detects_wrong_softmax_backward(backend):
    assert gradcheck(SoftmaxAsElementwise(), _input(backend, (3, 4), 0)) > 1e-2


def test_gradcheck_detects_wrong_weight_grad_and_names_it(backend):
    errors = gradcheck(DenseWrongWeightGrad(3, 2), _input(backend, (4, 3), 0), details=True)
    assert errors["W"] > 0.1
    assert errors["input"] < TOL and errors["b"] < TOL


def test_gradcheck_detects_wrong_bias_grad(backend):
    errors = gradcheck(DenseMeanBiasGrad(3, 2), _input(backend, (4, 3), 0), details=True)
    assert errors["b"] > 0.1
    assert errors["input"] < TOL and errors["W"] < TOL


def test_gradcheck_detects_wrong_input_grad(backend):
    errors = gradcheck(DenseNoWeightTranspose(3, 3), _input(backend, (4, 3), 0), details=True)
    assert errors["input"] > 1e-2
    assert errors["W"] < TOL and errors["b"] < TOL
    assert gradcheck(DenseNoWeightTranspose(3, 3), _input(backend, (4, 3), 0)) == errors["input"]


def test_gradcheck_detects_dropout_mask_mismatch(backend):
    X = _input(backend, (6, 8), 0)
    assert gradcheck(Dropout(0.5), X) < TOL
    assert gradcheck(DropoutFreshMask(0.5), X) > 1e-2


# ---- losses (the loss protocol: forward(pred, target) -> 0-d, backward() -> dpred) ----------


class HalfSquaredError:
    def __init__(self, wrong=False):
        self.wrong = wrong

    def forward(self, pred, target):
        self.diff = pred - target
        xp = array_api_compat.array_namespace(pred)
        return 0.5 * xp.sum(self.diff * self.diff) / pred.shape[0]

    def backward(self):
        d = self.diff / self.diff.shape[0]
        return 2.0 * d if self.wrong else d


def test_gradcheck_on_a_loss(backend):
    pred = _input(backend, (4, 3), 0)
    target = _input(backend, (4, 3), 1)
    errors = gradcheck(HalfSquaredError(), pred, target, details=True)
    assert set(errors) == {"input"} and errors["input"] < TOL
    assert gradcheck(HalfSquaredError(wrong=True), pred, target) > 0.1


# ---- the relative error itself --------------------------------------------------------------


def test_relative_error_definition():
    from xpnn.gradcheck import _relative_error

    a = np.array([1.0, 2.0, 2.0])
    assert _relative_error(a, a) == 0.0
    assert _relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert _relative_error(a, -a) == pytest.approx(1.0)  # the maximum
    assert _relative_error(a, 2 * a) == pytest.approx(1 / 3)
    assert _relative_error(1e-9 * a, 2e-9 * a) == pytest.approx(1 / 3)  # scale-free


def test_gradcheck_reaches_lazily_sized_children(backend):
    """Dense(5) learns its input size from the first forward: its params must be checked too."""
    stack = xpnn.Sequential([Dense(5), Tanh(), Dense(2)], backend=backend, dtype="float64")
    errors = gradcheck(stack, _input(backend, (3, 4), 0), details=True)
    assert set(errors) == {"input", "0.W", "0.b", "2.W", "2.b"} and max(errors.values()) < TOL, errors


def test_gradcheck_says_the_training_argument_is_gone(backend):
    with pytest.raises(TypeError, match="gradcheck: there is no training argument"):
        gradcheck(Dropout(0.5), _input(backend, (3, 4), 0), training=True)
