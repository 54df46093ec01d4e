"""Fused steps (xpnn.training.fused): on JAX, fit runs an epoch's batches, and full-batch
epochs, in one compiled loop when every hook allows it. Same weights, the same History
(one entry per epoch) and the same generator state as the eager run; a hook that needs the
host between steps keeps one compiled call per step."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn

pytest.importorskip("jax")


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = xpnn.load_digits()
    return X[:160].reshape(160, -1), y[:160]


def _mlp(jit, dropout=0.25):
    model = xpnn.Sequential(
        [xpnn.Dense(64, 16), xpnn.ReLU(), xpnn.Dropout(dropout), xpnn.Dense(16, 10)], backend="jax", seed=5
    )
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.01), jit=jit)


def _weights(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


def _twins(fit_args, make=_mlp, callbacks=()):
    """The same fit eagerly and with jit: (eager model, its History, jit model, its History)."""
    out = []
    for jit in (False, True):
        model = make(jit)
        out += [model, model.fit(*fit_args[0], **fit_args[1], callbacks=list(callbacks))]
    return out


def _assert_same(eager, h_eager, jitted, h_jit, epochs):
    for a, b in zip(_weights(eager), _weights(jitted)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    assert set(h_eager.history) == set(h_jit.history)
    for key, values in h_eager.history.items():
        assert len(h_jit.history[key]) == epochs, key  # every epoch recorded
        if key != "seconds":
            np.testing.assert_allclose(values, h_jit.history[key], rtol=2e-5, err_msg=key)
    assert h_jit.epoch == h_eager.epoch == list(range(epochs))
    assert eager.generator.state == jitted.generator.state  # order and masks drawn in the same sequence
    assert eager.optimizer.iterations == jitted.optimizer.iterations
    assert jitted.epochs_trained == epochs


@pytest.mark.parametrize("shuffle", [False, True])
def test_full_batch_epochs_in_one_loop_match_eager(digits, shuffle):
    X, y = digits
    epochs = 8
    eager, h_eager, jitted, h_jit = _twins(((X, y), dict(epochs=epochs, batch_size=None, shuffle=shuffle, verbose=0)))
    _assert_same(eager, h_eager, jitted, h_jit, epochs)
    step = jitted.jit_step
    # the first step ran eagerly (it records the step's draws); the other 7 epochs in one loop
    assert step.loop is not None and len(step.loop.compiled) == 1 and step.compiles == 1


def test_epochs_of_equal_batches_share_a_loop(digits):
    X, y = digits
    epochs = 4  # 160 samples, drop_last with batch 48: 3 batches of 48 an epoch, every one fused
    args = ((X, y), dict(epochs=epochs, batch_size=48, drop_last=True, verbose=0))
    eager, h_eager, jitted, h_jit = _twins(args)
    _assert_same(eager, h_eager, jitted, h_jit, epochs)
    assert jitted.jit_step.compiles == 1


def test_an_epoch_with_metrics_validation_and_a_smaller_last_batch(digits, tmp_path):
    X, y = digits
    make = lambda jit: _mlp(jit).compile(  # noqa: E731
        "softmax_cross_entropy", xpnn.Adam(lr=0.01), metrics=["accuracy"], clip_norm=1.0, jit=jit
    )
    epochs = 3
    args = ((X[:130], y[:130]), dict(epochs=epochs, batch_size=32, validation_data=(X[130:], y[130:]), verbose=0))
    csv = tmp_path / "log.csv"
    eager, h_eager, jitted, h_jit = _twins(args, make)
    _assert_same(eager, h_eager, jitted, h_jit, epochs)
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(h_jit.history)
    step = jitted.jit_step
    assert step.loop is not None and step.compiles == 2  # the loop of 32-row batches; the 2-row last batch
    # a CSVLogger only writes what the epochs logged: it keeps the loop
    jitted.fit(X[:130], y[:130], epochs=1, batch_size=32, verbose=0, callbacks=[xpnn.callbacks.CSVLogger(csv)])
    assert csv.read_text().count("\n") == 2 and step.compiles == 2


def test_a_callback_with_epoch_control_keeps_a_call_per_step(digits):
    X, y = digits

    class StopAtThree(xpnn.callbacks.Callback):  # reads each epoch's logs and may stop the fit
        def on_epoch_end(self, epoch, logs):
            self.model.stop_training = epoch == 2

    args = ((X, y), dict(epochs=8, batch_size=None, verbose=0))
    eager, h_eager, jitted, h_jit = _twins(args, callbacks=[StopAtThree()])
    _assert_same(eager, h_eager, jitted, h_jit, 3)  # stopped after the third epoch, as eagerly
    assert jitted.jit_step.loop is None  # never fused: one compiled call per step
    assert not xpnn.callbacks.EarlyStopping().fusable and xpnn.callbacks.History().fusable


def test_an_untraceable_layer_in_the_loop_falls_back_with_a_warning(digits, host_check_layer):
    HostCheck = host_check_layer  # reads a value on the host in forward: cannot be traced

    X, y = digits
    runs = []
    for jit in (False, True):
        model = xpnn.Sequential([xpnn.Dense(64, 10), HostCheck()], backend="jax", seed=1)
        model.compile("softmax_cross_entropy", "sgd", jit=jit)
        if jit:
            with pytest.warns(xpnn.JitFallbackWarning, match=r"layer at 1 \(HostCheck\(\)\) cannot be traced"):
                history = model.fit(X, y, epochs=5, batch_size=None, verbose=0)
        else:
            history = model.fit(X, y, epochs=5, batch_size=None, verbose=0)
        runs.append((_weights(model), history.history["loss"], model.generator.state))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)  # the fallback is the eager run itself
    assert runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]


def test_jax_arrays_found_finite_are_not_read_again(monkeypatch):
    import gc

    from xpnn.backends.base import Backend

    b = xpnn.get_backend("jax")
    reads = []
    monkeypatch.setattr(Backend, "all_finite", lambda self, a: reads.append(1) or True)
    a = b.asarray(np.ones((4, 3), dtype=np.float32))
    assert b.all_finite(a) and b.all_finite(a) and len(reads) == 1  # immutable: read once
    key = id(a)
    del a
    gc.collect()
    assert key not in b._finite  # forgotten with the array (its id may be reused)
    bad = b.asarray(np.array([1.0, np.nan], dtype=np.float32))
    monkeypatch.setattr(Backend, "all_finite", lambda self, a: False)
    assert not b.all_finite(bad) and not b.all_finite(bad)  # a non-finite array is read every time
