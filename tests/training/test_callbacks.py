"""Callbacks: EarlyStopping, ModelCheckpoint, LearningRateScheduler, ReduceLROnPlateau,
CSVLogger, TerminateOnNaN and ProgressBar. Where a callback reacts to a monitored value,
a scripted callback puts known values in the logs, so the expected epoch is exact."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest

import xpnn
from xpnn import (
    CSVLogger,
    Dense,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    ReLU,
    Sequential,
    TerminateOnNaN,
)
from xpnn.callbacks import Callback, ProgressBar


def blobs(n=24, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(size=(k, d))[y] * 3.0 + rng.normal(size=(n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def mlp(backend="numpy", seed=0, optimizer=None):
    model = Sequential([Dense(4, 8), ReLU(), Dense(8, 3)], backend=backend, seed=seed)
    return model.compile("softmax_cross_entropy", optimizer or xpnn.Adam(lr=0.05), metrics=["accuracy"])


def weights(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


def equal(wa, wb):
    return all(np.array_equal(p, q) for p, q in zip(wa, wb))


class Script(Callback):
    """Writes values[epoch] into logs[key] and keeps a copy of the weights at each epoch end."""

    def __init__(self, values, key="score"):
        self.values, self.key, self.snapshots = values, key, []

    def on_epoch_end(self, epoch, logs):
        logs[self.key] = float(self.values[epoch])
        self.snapshots.append(weights(self.model))


# ---- EarlyStopping ---------------------------------------------------------------------


def test_early_stopping_stops_and_restores_best_weights(backend):
    X, y = blobs()
    script = Script([5.0, 3.0, 4.0, 3.5, 1.0, 1.0])
    stop = EarlyStopping(monitor="score", patience=2, mode="min")
    model = mlp(backend)
    history = model.fit(X, y, epochs=6, batch_size=8, verbose=0, callbacks=[script, stop])
    # best at epoch 1; epochs 2 and 3 do not improve: stop after epoch 3
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["score"] == [5.0, 3.0, 4.0, 3.5]
    assert (stop.best_epoch, stop.stopped_epoch) == (1, 3)
    assert equal(weights(model), script.snapshots[1])
    assert not equal(weights(model), script.snapshots[3])


def test_early_stopping_without_restore_keeps_last_weights():
    X, y = blobs()
    script = Script([1.0, 2.0, 3.0])
    model = mlp()
    model.fit(
        X,
        y,
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[script, EarlyStopping(monitor="score", patience=0, restore_best_weights=False)],
    )
    assert len(script.snapshots) == 2  # patience 0: stops at the first epoch without improvement
    assert equal(weights(model), script.snapshots[1])


def test_early_stopping_mode_and_min_delta():
    X, y = blobs()
    # "accuracy" is maximized in auto mode: rising values never stop training
    script = Script([0.1, 0.2, 0.3, 0.4], key="val_accuracy")
    history = mlp().fit(X, y, epochs=4, verbose=0, callbacks=[script, EarlyStopping("val_accuracy", patience=1)])
    assert len(history.epoch) == 4
    # improvements smaller than min_delta do not count
    script = Script([1.0, 0.99, 0.98, 0.97, 0.5])
    stop = EarlyStopping("score", patience=2, min_delta=0.05)
    history = mlp().fit(X, y, epochs=5, verbose=0, callbacks=[script, stop])
    assert len(history.epoch) == 3 and stop.best_epoch == 0


def test_early_stopping_restores_best_weights_when_epochs_run_out():
    """The epochs end before patience does: restore_best_weights still means the best
    epoch's weights (epoch 1 here), not the last epoch's."""
    X, y = blobs()
    script = Script([3.0, 2.0, 2.5])
    model = mlp()
    model.fit(X, y, epochs=3, verbose=0, callbacks=[script, EarlyStopping("score", patience=5)])
    assert equal(weights(model), script.snapshots[1])
    assert not equal(weights(model), script.snapshots[-1])
    # without restore_best_weights the last epoch's weights stay
    script = Script([3.0, 2.0, 2.5])
    model = mlp()
    model.fit(
        X, y, epochs=3, verbose=0, callbacks=[script, EarlyStopping("score", patience=5, restore_best_weights=False)]
    )
    assert equal(weights(model), script.snapshots[-1])


def test_early_stopping_on_real_val_loss(backend):
    """An lr so large that val_loss jumps around: training stops, best weights come back."""
    X, y = blobs(n=30)
    model = mlp(backend, optimizer=xpnn.SGD(lr=3.0))
    stop = EarlyStopping(patience=1)
    history = model.fit(X, y, epochs=30, batch_size=5, validation_split=0.2, verbose=0, callbacks=[stop])
    assert stop.stopped_epoch is not None and len(history.epoch) < 30
    best = min(history.history["val_loss"])
    assert model.evaluate(X[24:], y[24:])["loss"] == pytest.approx(best, rel=1e-6)


def test_early_stopping_errors():
    X, y = blobs()
    with pytest.raises(ValueError, match=r"monitor 'val_loss' is not in the epoch logs .*pass validation_data"):
        mlp().fit(X, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="patience must be a non-negative integer, found -1"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max', found 'up'"):
        EarlyStopping(mode="up")


# ---- ModelCheckpoint -----------------------------------------------------------------------


def test_model_checkpoint_every_epoch(tmp_path, backend):
    X, y = blobs()
    script = Script([0.0] * 3)
    model = mlp(backend)
    check = ModelCheckpoint(tmp_path / "ck-{epoch:02d}-{loss:.3f}.safetensors", monitor="loss")
    history = model.fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[script, check])
    names = sorted(p.name for p in tmp_path.iterdir())
    losses = history.history["loss"]
    assert names == [f"ck-{e + 1:02d}-{losses[e]:.3f}.safetensors" for e in range(3)]  # no temp files left
    assert check.last_saved == str(tmp_path / names[-1])
    for e, name in enumerate(names):
        loaded = xpnn.load(tmp_path / name, backend=backend)
        assert equal(weights(loaded), script.snapshots[e])
        assert loaded.epochs_trained == e + 1


def test_model_checkpoint_save_best_only(tmp_path):
    X, y = blobs()
    script = Script([3.0, 2.0, 4.0, 1.0, 1.5])
    check = ModelCheckpoint(tmp_path / "best-{epoch}.safetensors", monitor="score", save_best_only=True)
    mlp().fit(X, y, epochs=5, verbose=0, callbacks=[script, check])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"best-{e}.safetensors" for e in (1, 2, 4)]
    # one fixed name: it ends up holding the best epoch
    check = ModelCheckpoint(tmp_path / "best.safetensors", monitor="score", save_best_only=True)
    script = Script([3.0, 2.0, 4.0, 1.0, 1.5])
    mlp().fit(X, y, epochs=5, verbose=0, callbacks=[script, check])
    loaded = xpnn.load(tmp_path / "best.safetensors")
    assert loaded.epochs_trained == 4
    assert equal(weights(loaded), script.snapshots[3])


def test_model_checkpoint_writes_atomically(tmp_path, monkeypatch):
    """The file is written beside the target and renamed over it; a failed write leaves the
    previous checkpoint intact and no temporary file behind."""
    X, y = blobs()
    path = tmp_path / "model.safetensors"
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(xpnn.io.os, "replace", spy)
    model = mlp()
    model.fit(X, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path, monitor="loss")])
    assert len(renames) == 2
    for src, dst in renames:
        assert dst == str(path) and src != dst and os.path.dirname(src) == str(tmp_path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(xpnn.io.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(path, monitor="loss")])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# ---- LearningRateScheduler and ReduceLROnPlateau ------------------------------------------------


def test_learning_rate_scheduler_sets_lr_each_epoch(backend):
    X, y = blobs()

    def schedule(epoch, lr):
        return 0.2 * 0.5**epoch

    model = mlp(backend, optimizer=xpnn.SGD(lr=1.0))
    history = model.fit(
        X, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[LearningRateScheduler(schedule)]
    )
    assert history.history["lr"] == [0.2, 0.1, 0.05]
    # the same run, lr set by hand before each epoch
    manual = mlp(backend, optimizer=xpnn.SGD(lr=1.0))
    for epoch in range(3):
        manual.optimizer.lr = schedule(epoch, None)
        manual.fit(X, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=8, shuffle=False, verbose=0)
    assert equal(weights(model), weights(manual))


def test_learning_rate_scheduler_gets_the_current_lr():
    seen = []

    def halve(epoch, lr):
        seen.append((epoch, lr))
        return lr / 2

    X, y = blobs()
    mlp(optimizer=xpnn.SGD(lr=0.4)).fit(X, y, epochs=3, verbose=0, callbacks=[LearningRateScheduler(halve)])
    assert seen == [(0, 0.4), (1, 0.2), (2, 0.1)]
    with pytest.raises(TypeError, match="schedule must be callable"):
        LearningRateScheduler(0.1)


def test_reduce_lr_on_plateau():
    X, y = blobs()
    script = Script([1.0] * 7)  # never improves after epoch 0
    reduce = ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, min_lr=0.02)
    model = mlp(optimizer=xpnn.SGD(lr=0.1))
    history = model.fit(X, y, epochs=7, verbose=0, callbacks=[script, reduce])
    assert history.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02])
    assert model.optimizer.get_lr() == pytest.approx(0.02)


def test_reduce_lr_on_plateau_cooldown_and_improvement():
    X, y = blobs()
    script = Script([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    reduce = ReduceLROnPlateau(monitor="score", factor=0.5, patience=1, cooldown=2)
    history = mlp(optimizer=xpnn.SGD(lr=0.8)).fit(X, y, epochs=8, verbose=0, callbacks=[script, reduce])
    # As Keras: the cooldown counts down at the start of each epoch, so cooldown=2 skips one
    # epoch's check. Reduce at 1; skip 2; reduce at 3; skip 4; improvement at 5; reduce at 6.
    assert history.history["lr"] == pytest.approx([0.8, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1])


def test_reduce_lr_on_plateau_errors():
    with pytest.raises(ValueError, match="factor must be in"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="monitor 'val_loss' is not in the epoch logs"):
        mlp().fit(*blobs(), epochs=1, verbose=0, callbacks=[ReduceLROnPlateau()])


# ---- CSVLogger -------------------------------------------------------------------------------


def test_csv_logger_writes_one_row_per_epoch(tmp_path, backend):
    X, y = blobs()
    path = tmp_path / "history.csv"
    history = mlp(backend).fit(
        X, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0, callbacks=[CSVLogger(path)]
    )
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["epoch", "accuracy", "loss", "seconds", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]
    for j, key in enumerate(rows[0][1:], start=1):
        assert [float(row[j]) for row in rows[1:]] == history.history[key]  # repr round-trips floats


def test_csv_logger_overwrites_or_appends(tmp_path):
    X, y = blobs()
    path = tmp_path / "log.csv"
    model = mlp()
    model.fit(X, y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    model.fit(X, y, epochs=3, verbose=0, callbacks=[CSVLogger(path)])
    assert len(path.read_text().splitlines()) == 1 + 3
    model.fit(X, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "1", "2", "3", "4", "5"]


# ---- TerminateOnNaN ----------------------------------------------------------------------------


def test_terminate_on_nan_from_the_data(backend, capsys):
    """An inf in sample 9 (batch 3 of 4 samples, no shuffling): training stops before that
    batch's update, so the model holds the weights after batches 1 and 2."""
    X, y = blobs()
    X[9, 2] = np.inf
    stop = TerminateOnNaN()
    model = mlp(backend)
    with np.errstate(all="ignore"):
        history = model.fit(
            X, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[stop], allow_nonfinite=True
        )  # by default fit refuses the inf before training
    assert stop.stopped_at == (1, 3)
    assert "epoch 1, batch 3" in stop.message
    assert capsys.readouterr().err.strip() == stop.message
    assert model.optimizer.iterations == 2
    assert len(history.epoch) == 1  # the partial epoch is logged: mean loss of the 2 good batches
    assert model.epochs_trained == 0  # but it is not a trained epoch
    good = mlp(backend)
    expected = good.fit(X[:8], y[:8], epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert history.history["loss"] == expected.history["loss"]
    assert equal(weights(model), weights(good))
    assert all(np.isfinite(w).all() for w in weights(model))


def test_terminate_on_nan_from_a_huge_lr(backend, capsys):
    X, y = blobs()
    stop = TerminateOnNaN()
    model = mlp(backend, optimizer=xpnn.SGD(lr=1e30))
    with np.errstate(all="ignore"):
        model.fit(X, y, epochs=5, batch_size=4, shuffle=False, verbose=0, callbacks=[stop])
    epoch, batch = stop.stopped_at
    assert (epoch, batch) == (1, model.optimizer.iterations + 1)
    assert f"at epoch {epoch}, batch {batch}" in capsys.readouterr().err
    assert all(np.isfinite(w).all() for w in weights(model))


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_terminate_on_nan_at_the_first_batch(backend, bad):
    X, y = blobs()
    X[0, 0] = bad
    model = mlp(backend)
    before = weights(model)
    stop = TerminateOnNaN()
    with np.errstate(all="ignore"):
        history = model.fit(
            X, y, epochs=2, batch_size=4, shuffle=False, verbose=0, callbacks=[stop], allow_nonfinite=True
        )
    assert stop.stopped_at == (1, 1)
    assert history.history == {} and model.epochs_trained == 0
    assert equal(weights(model), before)


def test_terminate_on_nan_is_quiet_on_finite_losses(capsys):
    stop = TerminateOnNaN()
    history = mlp().fit(*blobs(), epochs=2, verbose=0, callbacks=[stop])
    assert stop.stopped_at is None and len(history.epoch) == 2
    assert capsys.readouterr().err == ""


# ---- ProgressBar ---------------------------------------------------------------------------------


def test_progress_bar_one_line_per_epoch_when_not_a_tty(capsys):
    X, y = blobs()
    mlp().fit(X, y, epochs=3, batch_size=8, validation_split=0.25, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for e, line in enumerate(lines, start=1):
        assert line.startswith(f"Epoch {e}/3 - ")
        assert "loss: " in line and "val_accuracy: " in line


def test_progress_bar_verbose_levels(capsys):
    X, y = blobs()
    mlp().fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    mlp().fit(X, y, epochs=2, verbose=2)
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_progress_bar_uses_tqdm_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    bar = ProgressBar(epochs=2, steps=3, verbose=1, file=out)
    assert bar.use_bar
    bar.on_epoch_begin(0)
    for step in range(3):
        bar.on_batch_end(step, lambda: {"loss": "0.5000"})
    bar.on_epoch_end(0, {"loss": 0.5})
    text = out.getvalue()
    assert "Epoch 1/2" in text and "3/3" in text and "loss=0.5000" in text
    assert ProgressBar(2, 3, verbose=2, file=out).use_bar is False
