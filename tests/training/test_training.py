"""Training (xpnn.training): the one batch iterator, the Trainer's hooks in their order,
gradient clipping inside fit, keyword inputs (an attention mask) batched and shuffled with
X through fit, evaluate and predict, and nested models trained through fit."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import Callback
from xpnn.layers import (
    Dense,
    Embedding,
    PositionalEncoding,
    ReLU,
    Residual,
    SequencePool,
    Tanh,
    TransformerEncoderBlock,
)
from xpnn.training import Batches, Trainer, batches


def host(backend, a):
    return np.asarray(backend.to_numpy(a))


def blobs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = (rng.normal(size=(n, 4)) + 2.0 * np.eye(3, 4)[y]).astype(np.float32)
    return X, y


def mlp(backend, seed=0):
    model = xpnn.Sequential([Dense(4, 8), ReLU(), Dense(8, 3)], backend=backend, seed=seed)
    return model.compile("softmax_cross_entropy", xpnn.SGD(lr=0.1), metrics=["accuracy"])


# ---- batches ----------------------------------------------------------------------------------


def test_batches_in_order(backend):
    X = backend.asarray(np.arange(14).reshape(7, 2))
    y = backend.asarray(np.arange(7))
    got = list(batches(X, y, batch_size=3))
    assert [xb.shape[0] for xb, _ in got] == [3, 3, 1] and len(batches(X, y, batch_size=3)) == 3
    np.testing.assert_array_equal(np.concatenate([host(backend, xb) for xb, _ in got]), host(backend, X))
    np.testing.assert_array_equal(np.concatenate([host(backend, yb) for _, yb in got]), np.arange(7))
    assert all(backend.owns(xb) and backend.owns(yb) for xb, yb in got)
    # drop_last leaves out the short batch; without y the y batches are None
    got = list(batches(X, batch_size=3, drop_last=True))
    assert [xb.shape[0] for xb, _ in got] == [3, 3] and all(yb is None for _, yb in got)
    assert len(batches(X, batch_size=3, drop_last=True)) == 2


def test_batches_shuffled(backend):
    X = np.arange(10)
    b = batches(backend.asarray(X), backend.asarray(X * 10), batch_size=4, shuffle=True, seed=5)
    assert isinstance(b, Batches)
    first = [(host(backend, xb), host(backend, yb)) for xb, yb in b]
    order = np.concatenate([xb for xb, _ in first])
    assert sorted(order) == list(range(10)) and not np.array_equal(order, X)  # a permutation, not the identity
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in first]), order * 10)  # pairs kept together
    # iterating again, or on another backend, gives the same batches; another seed does not
    again = np.concatenate([host(backend, xb) for xb, _ in b])
    np.testing.assert_array_equal(again, order)
    on_host = np.concatenate([xb for xb, _ in batches(X, batch_size=4, shuffle=True, seed=5)])
    np.testing.assert_array_equal(on_host, order)
    other = np.concatenate([xb for xb, _ in batches(X, batch_size=4, shuffle=True, seed=6)])
    assert not np.array_equal(other, order)


def test_batches_errors_come_at_the_call(backend):
    X = backend.asarray(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="batches: batch_size must be a positive integer, found 0"):
        batches(X, batch_size=0)
    with pytest.raises(ValueError, match="batches: X has 5 samples but y has 4; they must be the same"):
        batches(X, backend.asarray(np.zeros(4)))
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        batches(X, shuffle=True, seed=-3)
    with pytest.raises(TypeError, match="batches: X must be an array .*found int"):
        batches(5)


def test_batches_carry_per_sample_inputs_in_step_with_x(backend):
    X = backend.asarray(np.arange(10)[:, None])
    mask = backend.asarray(np.arange(10) % 3 == 0)
    for b in batches(X, None, batch_size=4, shuffle=True, seed=1, mask=mask):
        np.testing.assert_array_equal(host(backend, b.inputs["mask"]), host(backend, b.X)[:, 0] % 3 == 0)
    with pytest.raises(ValueError, match="batches: X has 10 samples but mask has 9"):
        batches(X, mask=backend.asarray(np.ones(9, dtype=bool)))


def test_a_batch_unpacks_as_x_y():
    X, y = np.zeros((3, 2)), np.ones(3)
    (b,) = list(Batches(X, y, batch_size=None))
    Xb, yb = b
    assert Xb.shape == (3, 2) and yb.shape == (3,) and b.size == 3 and b.inputs == {}


# ---- the Trainer's hooks ----------------------------------------------------------------------------


class Recorder(Callback):
    """Records every hook call, in order, with what it saw."""

    needs_batch_loss = True

    def __init__(self):
        self.calls = []

    def on_train_begin(self):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch):
        self.calls.append(f"epoch_begin {epoch}")

    def on_batch_begin(self, step, batch):
        self.calls.append(f"batch_begin {step} size={batch.size}")
        return batch

    def on_loss(self, step, loss, out):
        relu = self.model.layers[1]
        self.calls.append(f"loss {step} shape={tuple(out.shape)} relu_mask={relu.mask is not None}")

    def on_batch_loss(self, epoch, batch, loss):
        self.calls.append(f"batch_loss {batch} {type(loss).__name__}")

    def after_backward(self, params):
        dense = self.model.layers[0]
        self.calls.append(
            f"after_backward grads={all(p.grad is not None for p in params)} saved={dense.saved is not None}"
        )
        self.weights = self.model.backend.to_numpy(dense.params["W"]).copy()
        return params

    def on_batch_end(self, batch, running):
        moved = not np.array_equal(self.weights, self.model.backend.to_numpy(self.model.layers[0].params["W"]))
        self.calls.append(f"batch_end {batch} stepped={moved}")

    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self):
        self.calls.append("train_end")


def test_hooks_run_in_order_at_their_points(backend):
    X, y = blobs(n=10)
    model = mlp(backend)
    rec = Recorder()
    model.fit(X, y, epochs=1, batch_size=6, shuffle=False, callbacks=[rec], verbose=0)
    assert rec.calls == [
        "train_begin",
        "epoch_begin 0",
        "batch_begin 0 size=6",
        "loss 0 shape=(6, 3) relu_mask=True",
        "batch_loss 0 float",
        "after_backward grads=True saved=False",
        "batch_end 0 stepped=True",
        "batch_begin 1 size=4",
        "loss 1 shape=(4, 3) relu_mask=True",
        "batch_loss 1 float",
        "after_backward grads=True saved=False",
        "batch_end 1 stepped=True",
        "epoch_end 0 ['accuracy', 'loss', 'seconds']",
        "train_end",
    ]


class ScaleGrads(Callback):
    """Multiplies every gradient by a factor (as a reducer or clipper would replace them)."""

    def __init__(self, factor):
        self.factor = factor

    def after_backward(self, params):
        return [p.with_grad(p.grad * self.factor) for p in params]


class SkipOddBatches(Callback):
    def on_batch_begin(self, step, batch):
        return None if step % 2 else batch


def test_after_backward_may_replace_the_gradients_and_batch_begin_may_skip(backend):
    X, y = blobs(n=24)
    plain, doubled = mlp(backend), mlp(backend)
    plain.compile("softmax_cross_entropy", xpnn.SGD(lr=0.2))
    doubled.compile("softmax_cross_entropy", xpnn.SGD(lr=0.1))
    plain.fit(X, y, epochs=2, batch_size=8, verbose=0)
    doubled.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[ScaleGrads(2.0)])
    for a, b in zip(plain.get_weights(), doubled.get_weights()):  # SGD: lr * (2 g) == (2 lr) * g
        np.testing.assert_allclose(host(backend, a), host(backend, b), rtol=1e-5, atol=1e-6)
    skipping = mlp(backend)
    history = skipping.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0, callbacks=[SkipOddBatches()])
    assert skipping.optimizer.iterations == 2  # batches 0 and 2 of 3
    assert history.history["loss"][0] > 0


def test_hooks_must_be_callbacks():
    X, y = blobs()
    with pytest.raises(TypeError, match=r"fit: callbacks\[0\] must be a Callback, found function"):
        mlp("numpy").fit(X, y, callbacks=[lambda: None], verbose=0)


def test_trainer_is_what_fit_runs(backend):
    X, y = blobs()
    a, b = mlp(backend), mlp(backend)
    ha = a.fit(X, y, epochs=2, batch_size=16, verbose=0)
    hb = Trainer(b, verbose=0).fit(X, y, epochs=2, batch_size=16)
    assert ha.history["loss"] == hb.history["loss"]
    with pytest.raises(RuntimeError, match="compile"):
        Trainer(xpnn.Sequential([Dense(2, 2)]))


# ---- clipping inside fit ---------------------------------------------------------------------------


def test_clip_norm_in_compile_clips_every_step(backend):
    X, y = blobs()
    X = X * 50.0  # large inputs: large gradients
    seen = []

    class Norms(Callback):
        def after_backward(self, params):  # runs after the Trainer's clipping hook
            xp = self.model.backend.xp
            seen.append(float(self.model.backend.to_float(xp.sqrt(sum(xp.sum(p.grad * p.grad) for p in params)))))
            return params

    model = mlp(backend).compile("softmax_cross_entropy", xpnn.SGD(lr=0.01), clip_norm=1.0)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, callbacks=[Norms()])
    assert len(seen) == 6 and max(seen) <= 1.0 + 1e-5 and min(seen) > 0.5  # clipped to the limit
    seen.clear()
    plain = mlp(backend).compile("softmax_cross_entropy", xpnn.SGD(lr=0.01))
    plain.fit(X, y, epochs=1, batch_size=8, verbose=0, callbacks=[Norms()])
    assert max(seen) > 1.0  # without clipping these steps are larger
    with pytest.raises(ValueError, match="compile: clip_norm must be a number > 0, found 0"):
        mlp(backend).compile(clip_norm=0)


def test_clip_grad_norm_callback_matches_clip_norm(backend):
    X, y = blobs()
    a = mlp(backend).compile("softmax_cross_entropy", xpnn.SGD(lr=0.05), clip_norm=0.3)
    b = mlp(backend).compile("softmax_cross_entropy", xpnn.SGD(lr=0.05))
    a.fit(X, y, epochs=2, batch_size=8, verbose=0)
    clip = xpnn.ClipGradNorm(0.3)
    b.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[clip])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(host(backend, wa), host(backend, wb))
    assert clip.last_norm is not None and backend.to_float(clip.last_norm) > 0


# ---- keyword inputs: a padding mask through fit, evaluate and predict --------------------------


def padded_sequences(n=64, T=6, vocab=8, seed=0):
    """Token ids, padded with 0 after a random length; the label is the first token's
    parity, which attention must find (padding and order carry no label information)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, size=n)
    ids = rng.integers(1, vocab, size=(n, T))
    mask = np.arange(T)[None, :] < lengths[:, None]
    ids[~mask] = 0
    return ids, mask, ids[:, 0] % 2


def attention_model(backend, seed=0):
    layers = [
        Embedding(8, 8),
        PositionalEncoding(6),
        TransformerEncoderBlock(8, 2, 16),
        SequencePool("first"),
        Dense(8, 2),
    ]
    return xpnn.Sequential(layers, backend=backend, seed=seed).compile("softmax_cross_entropy", xpnn.Adam(0.01))


class MaskSpy(Callback):
    """Checks in every batch that the mask sent to the attention is the batch's own."""

    def __init__(self, ids, mask):
        self.pairs = {tuple(r): tuple(m) for r, m in zip(ids, mask)}
        self.checked = 0

    def on_batch_begin(self, step, batch):
        b = self.model.backend
        for row, m in zip(host(b, batch.X).tolist(), host(b, batch.inputs["mask"]).tolist()):
            assert self.pairs[tuple(row)] == tuple(m)
            self.checked += 1
        return batch


def test_mask_is_batched_and_shuffled_with_x_and_reaches_the_attention(backend):
    ids, mask, y = padded_sequences(n=32)
    ids = ids + np.arange(32)[:, None] * 0  # (rows may repeat: the spy maps rows to masks)
    model = attention_model(backend)
    spy = MaskSpy(ids, mask)
    model.fit(ids, y, epochs=2, batch_size=8, mask=mask, callbacks=[spy], verbose=0)
    assert spy.checked == 64
    # the mask changes what the model computes: hiding all keys but the first of each row
    first_only = np.zeros_like(mask)
    first_only[:, 0] = True
    a = model.predict(ids, mask=mask)
    b = model.predict(ids, mask=first_only)
    assert not np.allclose(a, b)
    # predict and evaluate in batches equal one batch (the mask is cut with X); batches of
    # the training size, so that JAX compiles no new shapes
    np.testing.assert_allclose(model.predict(ids, batch_size=8, mask=mask), a, rtol=1e-5, atol=1e-6)
    assert model.evaluate(ids, y, batch_size=8, mask=mask)["loss"] == pytest.approx(
        model.evaluate(ids, y, batch_size=None, mask=mask)["loss"], rel=1e-5
    )


def test_padding_does_not_change_predictions_when_masked(backend):
    ids, mask, y = padded_sequences(n=16)
    model = attention_model(backend)
    model.fit(ids, y, epochs=1, batch_size=8, mask=mask, verbose=0)
    garbage = np.where(mask, ids, 7)  # other tokens in the padding
    # batches of the training size: JAX compiles no new shapes
    np.testing.assert_allclose(
        model.predict(garbage, batch_size=8, mask=mask),
        model.predict(ids, batch_size=8, mask=mask),
        rtol=1e-5,
        atol=1e-6,
    )


def test_validation_data_with_a_mask_and_input_errors(backend):
    ids, mask, y = padded_sequences(n=24)
    model = attention_model(backend)
    history = model.fit(
        ids[:16],
        y[:16],
        epochs=1,
        batch_size=8,
        mask=mask[:16],
        verbose=0,
        validation_data=(ids[16:], y[16:], {"mask": mask[16:]}),
    )
    assert "val_loss" in history.history
    with pytest.raises(ValueError, match="fit: unknown argument 'maks'"):
        model.fit(ids, y, maks=mask, verbose=0)
    with pytest.raises(ValueError, match="fit: X has 24 samples but input 'mask' has 23"):
        model.fit(ids, y, mask=mask[:23], verbose=0)
    with pytest.raises(ValueError, match="predict: unknown argument 'mask'"):
        mlp(backend).predict(np.zeros((2, 4), np.float32), mask=np.ones((2, 4), bool))


# ---- nested models through fit ----------------------------------------------------------------------


def test_a_sequential_inside_a_residual_inside_a_sequential_trains(backend, tmp_path):
    X, y = blobs()
    inner = xpnn.Sequential([Dense(8, 8), Tanh()])
    model = xpnn.Sequential([Dense(4, 8), ReLU(), Residual(inner), Dense(8, 3)], backend=backend, seed=1)
    model.compile("softmax_cross_entropy", xpnn.Adam(0.02), metrics=["accuracy"])
    assert sorted(model.named_params()) == ["0.W", "0.b", "2.0.0.W", "2.0.0.b", "3.W", "3.b"]
    before = host(backend, inner.layers[0].params["W"]).copy()
    history = model.fit(X, y, epochs=15, batch_size=16, verbose=0)
    assert not np.array_equal(host(backend, inner.layers[0].params["W"]), before)  # the nested layer learned
    assert history.history["loss"][-1] < history.history["loss"][0] and history.history["accuracy"][-1] > 0.9
    model.save(tmp_path / "nested.safetensors")
    loaded = xpnn.load(tmp_path / "nested.safetensors", backend=backend)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# ---- stopping, skipping, misspelling ----------------------------------------------------------------


class StopAt(Callback):
    def __init__(self, hook, step):
        self.hook, self.step = hook, step

    def on_loss(self, step, loss, out):
        if self.hook == "on_loss" and step == self.step:
            self.model.stop_training = True

    def on_batch_end(self, batch, running):
        if self.hook == "on_batch_end" and batch == self.step:
            self.model.stop_training = True


@pytest.mark.parametrize("hook, steps_taken", [("on_loss", 2), ("on_batch_end", 3)])
def test_stop_training_ends_the_loop_at_once_and_frees_the_activations(backend, hook, steps_taken):
    """Asked in on_loss, the step is not taken; asked after a step, no further step runs.
    Either way no layer keeps a batch's activations afterwards."""
    X, y = blobs(n=48)
    model = mlp(backend)
    history = model.fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[StopAt(hook, 2)])
    assert model.optimizer.iterations == steps_taken
    assert len(history.epoch) == 1  # the partial epoch is logged
    assert all(layer.saved is None for layer in model.walk())


def test_an_epoch_whose_batches_were_all_skipped_logs_nan(backend):
    X, y = blobs(n=16)

    class SkipAll(Callback):
        def on_batch_begin(self, step, batch):
            return None

    history = mlp(backend).fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[SkipAll()])
    assert sorted(history.history) == ["accuracy", "loss", "seconds"]  # the same keys as any epoch
    assert all(np.isnan(v) for v in history.history["loss"] + history.history["accuracy"])


def test_a_misspelled_argument_is_named_as_such():
    X, y = blobs()
    with pytest.raises(
        ValueError,
        match=r"fit: unknown argument 'epoch': not an argument of fit, and no layer "
        r"of this model takes an input of that name",
    ):
        mlp("numpy").fit(X, y, epoch=3, verbose=0)
    with pytest.raises(ValueError, match="predict: unknown argument 'batchsize'"):
        mlp("numpy").predict(X, batchsize=3)


def test_fit_takes_numpy_scalars_like_python_numbers():
    X, y = blobs(n=16)
    history = mlp("numpy").fit(
        X,
        y,
        epochs=np.int64(2),
        batch_size=np.int32(8),
        validation_split=np.float64(0.25),
        shuffle=np.bool_(False),
        verbose=0,
    )
    assert len(history.epoch) == 2 and "val_loss" in history.history
