"""The shortcuts that keep a tiny net's step cheap change nothing that fit does.

fit calls only the hooks a callback overrides (found once per fit), reuses the one
batch of unshuffled full-batch epochs, and an optimizer updates plain Param handles
through their stores; on NumPy, layers, losses and SGD compute with cached 0-d constants.
Each is checked here against the general path.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backends import Backend
from xpnn.callbacks import Callback, overriding
from xpnn.training.batches import Batch, Batches

X4 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y4 = np.array([[0], [1], [1], [0]], dtype=np.float32)


def xor_model(backend="numpy", optimizer=None):
    layers = [xpnn.Dense(2, 4), xpnn.Sigmoid(), xpnn.Dense(4, 1), xpnn.Sigmoid()]
    model = xpnn.Sequential(layers, seed=0, backend=backend)
    return model.compile("bce", optimizer or xpnn.SGD(lr=0.5))


class EpochEnds(Callback):
    def __init__(self):
        self.ends = []

    def on_epoch_end(self, epoch, logs):
        self.ends.append(epoch)


def test_overriding_finds_class_and_instance_hooks_in_order():
    ends, plain, patched = EpochEnds(), Callback(), Callback()
    patched.on_batch_begin = lambda step, batch: batch  # set on the instance, not the class
    hooks = [plain, ends, patched]
    assert overriding(hooks, "on_epoch_end") == [ends]
    assert overriding(hooks, "on_batch_begin") == [patched]
    assert overriding(hooks, "after_backward") == []


def test_fit_calls_hooks_set_on_an_instance():
    seen = []
    watcher = Callback()
    watcher.on_batch_end = lambda step, running: seen.append(running()["loss"])
    watcher.on_epoch_begin = lambda epoch: seen.append(epoch)
    xor_model().fit(X4, Y4, epochs=3, batch_size=None, shuffle=False, verbose=0, callbacks=[watcher])
    assert [s for s in seen if isinstance(s, int)] == [0, 1, 2]
    assert len([s for s in seen if isinstance(s, str)]) == 3


def test_full_batch_epochs_reuse_one_batch_and_a_hook_may_still_replace_it():
    batches = Batches(X4, Y4, batch_size=None)
    first, second = list(batches), list(batches)
    assert len(first) == 1 and first[0] is second[0] and first[0].X is X4 and first[0].y is Y4

    class Flip(Callback):  # trains on 1 - X: a different batch every epoch
        def on_batch_begin(self, step, batch):
            return Batch(1.0 - batch.X, batch.y, batch.inputs, batch.size)

    flipped = xor_model().fit(X4, Y4, epochs=20, batch_size=None, shuffle=False, verbose=0, callbacks=[Flip()])
    reference = xor_model().fit(1.0 - X4, Y4, epochs=20, batch_size=None, shuffle=False, verbose=0)
    assert flipped.history["loss"] == reference.history["loss"]
    np.testing.assert_array_equal(X4, [[0, 0], [0, 1], [1, 0], [1, 1]])  # the data itself untouched


def test_full_batch_fit_equals_the_same_steps_in_minibatch_form():
    # batch_size=4 and batch_size=None: one batch of all four samples either way
    a = xor_model().fit(X4, Y4, epochs=30, batch_size=None, shuffle=False, verbose=0)
    model_b = xor_model()
    b = model_b.fit(X4, Y4, epochs=30, batch_size=4, shuffle=True, verbose=0)
    assert a.history["loss"][0] == b.history["loss"][0]  # the same first step
    assert a.epoch == b.epoch == list(range(30))


def test_direct_param_updates_match_the_handles_path(backend):
    """The same list every step (the direct path) and a tuple (the handles, through their
    properties) give the same weights, bit for bit; on JAX the new arrays are stored back."""
    results = []
    for same_list in (True, False):
        model = xor_model(backend, xpnn.SGD(lr=0.3, momentum=0.9))
        X, y = backend.asarray(X4), backend.asarray(Y4)
        params = model.parameters()
        for _ in range(15):
            out = model.forward(X, training=True)
            model.loss.forward(out, y)
            model.backward(model.loss.backward(), need_dX=False)
            model.optimizer.step(params if same_list else tuple(params))
        assert (model.optimizer._direct is not None) == same_list
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(np.asarray(backend.to_numpy(a)), np.asarray(backend.to_numpy(b)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_numpy_constants_train_the_weights_python_numbers_train(monkeypatch, dtype):
    """NumPy's constants (0-d arrays of the array's dtype in Sigmoid, ReLU, BCE and SGD)
    give the weights, losses and predictions of Python numbers (the generic
    Backend.constants), bit for bit."""
    X = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    y = (X[:, :1] * X[:, 1:] > 0).astype(np.float32)

    def train():
        layers = [xpnn.Dense(2, 8), xpnn.ReLU(), xpnn.Dense(8, 4), xpnn.Sigmoid(), xpnn.Dense(4, 1), xpnn.Sigmoid()]
        model = xpnn.Sequential(layers, seed=3, dtype=dtype).compile("bce", xpnn.SGD(lr=0.2))
        history = model.fit(X, y, epochs=25, batch_size=8, verbose=0)
        return model.get_weights(), history.history["loss"], model.predict(X)

    fast = train()
    assert type(xpnn.get_backend("numpy").constants(np.dtype(dtype), 1.0)[0]) is np.ndarray
    monkeypatch.setattr(type(xpnn.get_backend("numpy")), "constants", Backend.constants)
    assert xpnn.get_backend("numpy").constants(np.dtype(dtype), 1.0) == (1.0,)
    slow = train()
    for a, b in zip(fast[0], slow[0]):
        np.testing.assert_array_equal(a, b)
    assert fast[1] == slow[1]
    np.testing.assert_array_equal(fast[2], slow[2])
