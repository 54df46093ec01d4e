"""The registries: one Registry class behind register_layer, register_loss,
register_optimizer, register_schedule, register_callback and register_backend; a user's
own registered loss and optimizer save into a model file and load back (resuming training
exactly), and an unregistered one is refused when saving, not when loading."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.backends import BACKENDS, Backend, register_backend
from xpnn.callbacks import CALLBACKS
from xpnn.layers import LAYERS
from xpnn.losses import LOSSES, MSE, Loss, register_loss
from xpnn.optimizers import OPTIMIZERS, Optimizer, register_optimizer
from xpnn.registry import Registry
from xpnn.schedules import SCHEDULES, Schedule, register_schedule

REGISTRIES = (LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, CALLBACKS, BACKENDS)


@pytest.fixture(autouse=True)
def restore_registries():
    """Each test may register classes: every registry is as before afterwards."""
    saved = [dict(r) for r in REGISTRIES]
    yield
    for registry, entries in zip(REGISTRIES, saved):
        registry.clear()
        registry.update(entries)


# ---- a user's own loss and optimizer -----------------------------------------------------


class ScaledMSE(Loss):
    """``scale * mean((pred - target)**2)``: a loss with an argument of its own."""

    name = "scaled_mse"

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)

    def forward(self, pred, target):
        self._bind(pred, target)
        r = pred - self._same_shape_target(pred, target)
        self._saved = r
        return self.xp.sum(r * r) * (self.scale / math.prod(r.shape))

    def backward(self):
        r = self._get_saved()
        return r * (2.0 * self.scale / math.prod(r.shape))

    def config(self):
        return {"scale": self.scale}


class SignMomentum(Optimizer):
    """``m = beta * m + grad; param -= lr * sign(m)``: state of its own (``m``)."""

    name = "sign_momentum"
    state_names = ("m",)

    def __init__(self, lr=0.01, beta: float = 0.9):
        super().__init__(lr)
        self.beta = float(beta)

    def update(self, i, param, grad, lr):
        xp = xpnn.backend_of(param).xp
        m = self.state["m"][i]
        m *= self.beta
        m += grad
        self.state["m"][i] = m
        param -= lr * xp.sign(m)
        return param

    def _hyper(self):
        return {"beta": self.beta}


def regression(seed=0, n=32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, (X @ rng.normal(size=(4, 2))).astype(np.float32)


def model_with(loss, optimizer, backend="numpy"):
    model = xpnn.Sequential([xpnn.Dense(4, 8), xpnn.Tanh(), xpnn.Dense(8, 2)], backend=backend, seed=1)
    return model.compile(loss, optimizer)


def weights(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


def test_a_users_registered_loss_and_optimizer_save_load_and_resume_exactly(tmp_path, backend):
    register_loss(ScaledMSE)
    register_optimizer(SignMomentum)
    X, y = regression()
    straight = model_with(ScaledMSE(scale=3.0), SignMomentum(lr=0.01, beta=0.5), backend)
    straight.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)

    first = model_with(
        xpnn.get_loss("scaled_mse", scale=3.0), xpnn.get_optimizer("sign_momentum", lr=0.01, beta=0.5), backend
    )
    first.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    first.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors", backend=backend)
    assert type(loaded.loss) is ScaledMSE and loaded.loss.scale == 3.0
    assert type(loaded.optimizer) is SignMomentum and loaded.optimizer.config() == first.optimizer.config()
    assert loaded.optimizer.iterations == 4
    loaded.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(weights(loaded), weights(straight)):
        np.testing.assert_array_equal(a, b)  # the state (m) came back: the same steps follow


def test_a_registered_loss_keeps_its_arguments_through_the_file(tmp_path):
    register_loss(ScaledMSE)
    model = model_with(ScaledMSE(scale=2.5), "sgd")
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors")
    assert type(loaded.loss) is ScaledMSE and loaded.loss.scale == 2.5
    X, y = regression(seed=2)
    assert loaded.evaluate(X, y)["loss"] == pytest.approx(model.evaluate(X, y)["loss"], rel=1e-6)


def test_an_unregistered_loss_or_optimizer_is_refused_when_saving(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"loss ScaledMSE is not registered for saving.*@xpnn.losses.register_loss"):
        model_with(ScaledMSE(), "sgd").save(path)
    with pytest.raises(
        ValueError, match=r"optimizer SignMomentum is not registered for saving.*@xpnn.optimizers.register_optimizer"
    ):
        model_with("mse", SignMomentum()).save(path)

    class LouderMSE(MSE):  # inherits MSE's name: saved as "mse", it would load as MSE
        def forward(self, pred, target):
            return super().forward(pred, target) * 2.0

    with pytest.raises(ValueError, match="LouderMSE is not registered for saving"):
        model_with(LouderMSE(), "sgd").save(path)
    assert not path.exists()  # nothing was written that could not be loaded


def test_loading_a_file_whose_loss_is_not_registered_names_the_decorator(tmp_path):
    register_loss(ScaledMSE)
    model_with(ScaledMSE(), "adam").save(tmp_path / "m.safetensors")
    del LOSSES["scaled_mse"]  # a new process that has not imported the module defining it
    with pytest.raises(ValueError, match=r"loss 'scaled_mse', which is not registered.*@xpnn.losses.register_loss"):
        xpnn.load(tmp_path / "m.safetensors")


def test_a_registered_schedule_saves_and_loads(tmp_path):
    @register_schedule
    class Halving(Schedule):
        name = "halving"

        def __init__(self, lr: float = 0.1, every: int = 2):
            self.lr, self.every = lr, every

        def value(self, step):
            return self.lr * 0.5 ** (step // self.every)

        def _args(self):
            return {"lr": self.lr, "every": self.every}

    X, y = regression()
    model = model_with("mse", xpnn.SGD(lr=Halving(0.2, 3)))
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors")
    assert type(loaded.optimizer.lr) is Halving and loaded.optimizer.get_lr() == pytest.approx(0.1)  # step 4

    del SCHEDULES["halving"]
    with pytest.raises(ValueError, match="schedule Halving is not registered for saving"):
        model.save(tmp_path / "n.safetensors")


# ---- the Registry itself ------------------------------------------------------------------


def test_two_classes_under_one_name_are_refused():
    class Other(Loss):
        name = "mse"

    with pytest.raises(
        ValueError, match=r"register_loss: a loss named 'mse' is already registered \(xpnn.losses.MSE\)"
    ):
        register_loss(Other)
    assert LOSSES["mse"] is MSE


def test_a_class_needs_a_name_of_its_own_and_the_right_base():
    class Unnamed(MSE):
        pass

    with pytest.raises(ValueError, match="register_loss: Unnamed needs a name of its own"):
        register_loss(Unnamed)
    with pytest.raises(TypeError, match="register_optimizer: expected a subclass of Optimizer, found <class"):
        register_optimizer(ScaledMSE)
    with pytest.raises(TypeError, match="register_layer: expected a subclass of Layer"):
        xpnn.layers.register_layer(ScaledMSE)


def test_the_same_class_defined_again_replaces_itself():
    """A module reloaded or a notebook cell run twice defines the class anew: not a clash."""

    def define():
        class Again(ScaledMSE):
            name = "again"

        return Again

    first, second = define(), define()
    register_loss(first)
    register_loss(second)
    assert LOSSES["again"] is second


def test_names_are_looked_up_as_users_write_them():
    assert type(xpnn.get_loss("MSE")) is MSE and type(xpnn.get_optimizer("AdamW")) is xpnn.AdamW
    assert xpnn.get_backend("Array-API-Strict").name == "array_api_strict"
    assert LOSSES.lookup(3) is None and OPTIMIZERS.lookup(None) is None


def test_a_registered_backend_is_found_by_name():
    from xpnn.backends.numpy import NumpyBackend

    @register_backend
    class Renamed(NumpyBackend):
        name = "numpy_renamed"

    assert issubclass(BACKENDS["numpy_renamed"], Backend)
    assert xpnn.get_backend("numpy_renamed").name == "numpy_renamed"


def test_every_registry_is_a_registry_of_its_kind():
    kinds = {r.kind: r for r in REGISTRIES}
    assert set(kinds) == {"layer", "loss", "optimizer", "schedule", "callback", "backend"}
    for registry in REGISTRIES:
        assert isinstance(registry, Registry) and registry, registry.kind
        for name, cls in registry.items():
            assert issubclass(cls, registry.base) and registry.lookup(name) is cls
