"""The TensorBoard callback and ``xpnn train --tensorboard``: every event is read back with
TensorBoard's own reader (``tensorboard.backend.event_processing``), not taken from the writer."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

import xpnn
from xpnn import Dense, ReLU, Sequential
from xpnn.callbacks import Callback

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.plugins.hparams import metadata as hparams_metadata  # noqa: E402


def blobs(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(size=(k, d))[y] * 3.0 + rng.normal(size=(n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def mlp(backend="numpy", seed=0):
    model = Sequential([Dense(4, 8), ReLU(), Dense(8, 3)], backend=backend, seed=seed)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.05), metrics=["accuracy"])


def read(log_dir):
    """Every scalar, histogram and plugin tag of a run, as TensorBoard loads it."""
    keep_all = {
        event_accumulator.SCALARS: 0,
        event_accumulator.HISTOGRAMS: 0,
        event_accumulator.TENSORS: 0,
    }
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance=keep_all)
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_every_epochs_loss_metrics_and_lr_are_in_the_events(tmp_path, backend):
    X, y = blobs()
    model = mlp(backend)
    history = model.fit(
        X,
        y,
        epochs=4,
        batch_size=8,
        validation_data=blobs(seed=1),
        callbacks=[xpnn.TensorBoard(tmp_path / "run")],
        verbose=0,
    )
    acc = read(tmp_path / "run")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        found = scalars(acc, f"epoch/{key}")
        assert [step for step, _ in found] == [1, 2, 3, 4]
        # TensorBoard keeps float32: the history's values to float32 precision
        np.testing.assert_allclose([v for _, v in found], history.history[key], rtol=1e-6)
    assert scalars(acc, "epoch/lr") == [(s, pytest.approx(0.05)) for s in (1, 2, 3, 4)]
    assert not acc.Tags()["histograms"]  # histogram_freq=0: none
    assert not [t for t in acc.Tags()["scalars"] if t.startswith("batch/")]  # update_freq="epoch"


def test_the_lr_of_a_scheduler_is_logged_per_epoch(tmp_path):
    X, y = blobs()
    model = mlp()
    halve = xpnn.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)
    model.fit(X, y, epochs=3, batch_size=8, callbacks=[halve, xpnn.TensorBoard(tmp_path)], verbose=0)
    assert [v for _, v in scalars(read(tmp_path), "epoch/lr")] == pytest.approx([0.1, 0.05, 0.025])


class LastGradients(Callback):
    """Copies of the gradients the optimizer gets at every step (the last step's kept)."""

    def after_backward(self, params):
        self.grads = [np.array(self.model.backend.to_numpy(p.grad)) for p in params]
        return params


def test_weight_and_gradient_histograms_every_histogram_freq_epochs(tmp_path):
    X, y = blobs()
    model = mlp()
    grads = LastGradients()
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.05), clip_norm=0.01)  # the histograms show clipped grads
    model.fit(X, y, epochs=4, batch_size=8, callbacks=[grads, xpnn.TensorBoard(tmp_path, histogram_freq=2)], verbose=0)
    acc = read(tmp_path)
    names = list(model.named_params())
    assert sorted(acc.Tags()["histograms"]) == sorted(
        [f"weights/{n}" for n in names] + [f"gradients/{n}" for n in names]
    )
    for name, handle, grad in zip(names, model.named_params().values(), grads.grads):
        weights = [e for e in acc.Histograms(f"weights/{name}")]
        assert [e.step for e in weights] == [2, 4]
        final = model.backend.to_numpy(handle.value)
        h = weights[-1].histogram_value
        assert (h.num, h.min, h.max) == (final.size, pytest.approx(final.min()), pytest.approx(final.max()))
        gradient = acc.Histograms(f"gradients/{name}")[-1]
        assert gradient.step == 4  # the last step of epoch 4, after clipping
        g = gradient.histogram_value
        assert (g.num, g.min, g.max) == (grad.size, pytest.approx(grad.min()), pytest.approx(grad.max()))
    total = math.sqrt(sum(float((g**2).sum()) for g in grads.grads))
    assert total == pytest.approx(0.01, rel=1e-4)  # the clipped gradients are what was written


class BatchLosses(Callback):
    needs_batch_loss = True

    def __init__(self):
        self.losses = []

    def on_batch_loss(self, epoch, step, value):
        self.losses.append(value)


def test_update_freq_logs_the_mean_loss_of_every_n_batches(tmp_path):
    X, y = blobs()  # 40 samples in batches of 8: 5 steps an epoch, 15 in all
    model = mlp()
    seen = BatchLosses()
    model.fit(X, y, epochs=3, batch_size=8, callbacks=[seen, xpnn.TensorBoard(tmp_path, update_freq=4)], verbose=0)
    found = scalars(read(tmp_path), "batch/loss")
    assert [step for step, _ in found] == [4, 8, 12]
    expected = [np.mean(seen.losses[i - 4 : i]) for i in (4, 8, 12)]
    np.testing.assert_allclose([v for _, v in found], expected, rtol=1e-5)
    assert [step for step, _ in scalars(read(tmp_path), "batch/lr")] == [4, 8, 12]


def count_syncs(model, monkeypatch):
    """Count the reads from the device of the model's backend: ``to_float`` and ``to_numpy``
    calls (a ``to_float`` that reads through ``to_numpy`` counts once)."""
    calls = {"n": 0, "inside": False}
    to_numpy, to_float = model.backend.to_numpy, model.backend.to_float

    def counted_numpy(*args, **kwargs):
        calls["n"] += not calls["inside"]
        return to_numpy(*args, **kwargs)

    def counted_float(*args, **kwargs):
        calls["n"] += 1
        calls["inside"] = True
        try:
            return to_float(*args, **kwargs)
        finally:
            calls["inside"] = False

    monkeypatch.setattr(model.backend, "to_numpy", counted_numpy)
    monkeypatch.setattr(model.backend, "to_float", counted_float)
    return calls


@pytest.mark.parametrize("update_freq, extra", [("epoch", 0), (5, 30 // 5)])
def test_no_host_sync_unless_update_freq_asks(tmp_path, monkeypatch, update_freq, extra):
    X, y = blobs(n=60)  # 6 steps of 10 an epoch, 30 in all
    counts = []
    for callbacks in ([], [xpnn.TensorBoard(tmp_path / str(update_freq), update_freq=update_freq)]):
        model = mlp()
        calls = count_syncs(model, monkeypatch)
        model.fit(X, y, epochs=5, batch_size=10, callbacks=callbacks, verbose=0)
        counts.append(calls["n"])
    assert counts[1] - counts[0] == extra


def test_hparams_hold_the_runs_hyperparameters_and_end_as_success(tmp_path):
    X, y = blobs()
    model = mlp()
    board = xpnn.TensorBoard(tmp_path, hparams={"batch_size": 8, "hidden": [8], "note": None})
    model.fit(X, y, epochs=2, batch_size=8, validation_data=blobs(seed=1), callbacks=[board], verbose=0)
    acc = read(tmp_path)
    content = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert values == {
        "batch_size": 8.0,
        "hidden": "[8]",
        "optimizer": "adam",
        "lr": pytest.approx(0.05),
        "loss": "softmax_cross_entropy",
        "backend": "numpy",
        "dtype": "float32",
        "params": float(model.count_params()),
    }
    end = hparams_metadata.parse_session_end_info_plugin_data(content[hparams_metadata.SESSION_END_INFO_TAG])
    assert end.status == 1  # STATUS_SUCCESS
    # the session's metrics are the last values of the run's scalars: the final epoch's
    assert acc.Scalars("epoch/val_accuracy")[-1].step == 2


def test_bad_arguments_name_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="update_freq must be 'epoch' or a positive int, found 'batch'"):
        xpnn.TensorBoard(tmp_path, update_freq="batch")
    with pytest.raises(ValueError, match="update_freq"):
        xpnn.TensorBoard(tmp_path, update_freq=0)
    with pytest.raises(ValueError, match="histogram_freq"):
        xpnn.TensorBoard(tmp_path, histogram_freq=-1)
    with pytest.raises(TypeError, match="log_dir must be a folder path, found int"):
        xpnn.TensorBoard(3)
    with pytest.raises(TypeError, match="hparams must be a dict"):
        xpnn.TensorBoard(tmp_path, hparams=[("lr", 1)])


def test_without_tensorboardx_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "xpnn\[tensorboard\]"'):
        xpnn.TensorBoard(tmp_path)


def test_xpnn_train_tensorboard_writes_every_epoch(tmp_path, capsys):
    from xpnn.cli import main

    logs = tmp_path / "tb"
    code = main(
        [
            "train",
            "--epochs",
            "2",
            "--hidden",
            "16",
            "--verbose",
            "0",
            "--out",
            str(tmp_path / "run"),
            "--tensorboard",
            str(logs),
        ]
    )
    assert code == 0, capsys.readouterr().err
    acc = read(logs)
    assert [s for s, _ in scalars(acc, "epoch/val_accuracy")] == [1, 2]
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert history["epochs"] == 2
    content = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["data"].string_value == "digits"
    assert start.hparams["hidden"].string_value == "[16]"
    assert start.hparams["epochs"].number_value == 2


def test_import_xpnn_does_not_import_tensorboardx():
    import subprocess

    code = "import sys, xpnn; print('tensorboardX' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
