"""Streamed data (xpnn.data): fit, evaluate and predict read array-likes on disk, Datasets and
iterables of batches a batch at a time, through a seeded sampler and a prefetch thread.

The same seed gives the same weights whatever the source (an in-memory array, a memmap,
h5py, zarr, .npy shards) and however many reading threads; bad input gets errors naming
what was expected and found, raised in the training thread; no thread outlives an epoch.
"""

from __future__ import annotations

import threading
import time
import traceback

import numpy as np
import pytest

import xpnn
from xpnn.data import ArrayDataset, Dataset, NpyShards
from xpnn.data import stream as streaming
from xpnn.data.prefetch import prefetched

N, F, C = 203, 12, 3  # 203 samples: batches of 16 leave a last one of 11


def make_data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, F), dtype=np.uint8)
    W = rng.normal(size=(F, C))
    y = (X.astype(np.float64) @ W).argmax(axis=1).astype(np.int64)
    return X, y


def mlp(seed=1, dropout=False):
    layers = [xpnn.Dense(F, 16), xpnn.ReLU(), *([xpnn.Dropout(0.3)] if dropout else []), xpnn.Dense(16, C)]
    return xpnn.Sequential(layers, seed=seed).compile("softmax_cross_entropy", xpnn.Adam(lr=1e-3), metrics=["accuracy"])


def trained(X, y=None, epochs=2, dropout=False, **fit):
    model = mlp(dropout=dropout)
    history = model.fit(X, y, epochs=epochs, batch_size=16, verbose=0, **fit)
    return model, history


def assert_same_weights(a, b, atol=1e-5):
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=0, atol=atol)


@pytest.fixture
def files(tmp_path):
    X, y = make_data()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, X, y


LIBRARY_POOLS = ("zarr_io", "asyncio_")  # zarr's own I/O threads, kept for the process's life


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """threading.enumerate() is back to what it was after every test (but zarr's pools)."""
    before = set(threading.enumerate())
    yield

    def extra():
        return {t for t in set(threading.enumerate()) - before if not t.name.startswith(LIBRARY_POOLS)}

    for _ in range(100):  # a thread that was told to stop may take a moment to end
        if not extra():
            break
        time.sleep(0.02)
    assert not extra(), f"threads left running: {extra()}"


# ---- same seed, same weights, whatever the source ------------------------------------------


def test_memmap_h5py_zarr_and_shards_train_the_weights_of_the_array(files):
    h5py = pytest.importorskip("h5py")
    zarr = pytest.importorskip("zarr")
    folder, X, y = files
    ref, ref_hist = trained(X, y, dropout=True, validation_split=0.2)

    Xm, ym = np.load(folder / "X.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")
    with h5py.File(folder / "d.h5", "w") as f:
        f["X"], f["y"] = X, y
    zX = zarr.open_array(str(folder / "X.zarr"), mode="w", shape=X.shape, chunks=(50, F), dtype="u1")
    zX[:] = X
    for k, (a, b) in enumerate(((X[:90], y[:90]), (X[90:], y[90:]))):
        np.save(folder / f"X-{k:05d}.npy", a)
        np.save(folder / f"y-{k:05d}.npy", b)
    with h5py.File(folder / "d.h5", "r") as f:
        sources = {
            "memmap": (Xm, ym),
            "h5py": (f["X"], f["y"]),
            "zarr": (zX, y),
            "ArrayDataset": (ArrayDataset(Xm, ym), None),
            "NpyShards": (NpyShards(folder), None),
        }
        for name, (Xs, ys) in sources.items():
            model, hist = trained(Xs, ys, dropout=True, validation_split=0.2)
            assert_same_weights(ref, model)
            np.testing.assert_allclose(hist.history["val_loss"], ref_hist.history["val_loss"], rtol=1e-6, err_msg=name)


def test_every_backend_streams_the_weights_of_its_arrays(backend, files):
    folder, X, y = files
    Xm = np.load(folder / "X.npy", mmap_mode="r")
    models = []
    for data in (X, Xm):
        model = xpnn.Sequential([xpnn.Dense(F, 8), xpnn.ReLU(), xpnn.Dense(8, C)], backend=backend, seed=0)
        model.compile("softmax_cross_entropy", "adam")
        model.fit(data, y, epochs=1, batch_size=32, verbose=0, validation_data=(data[:50], y[:50]))
        models.append(model)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), rtol=0, atol=1e-6)
    np.testing.assert_allclose(models[1].predict(Xm), models[0].predict(X), rtol=1e-6)


def test_batches_go_to_the_device_through_backend_stage_in_the_prefetch_thread(files, monkeypatch):
    """GPU backends copy from pinned memory on their own stream in ``stage``; here the
    generic one, watched: every host batch passes through it, off the training thread.
    (array_api_strict: its arrays are not NumPy's, like a GPU's; a NumPy model takes the
    host batch as it is.)"""
    folder, X, y = files
    model = xpnn.Sequential([xpnn.Dense(F, 8), xpnn.ReLU(), xpnn.Dense(8, C)], backend="array_api_strict", seed=0)
    model.compile("softmax_cross_entropy", "adam")
    seen = []
    plain = type(model.backend).stage

    def stage(self, host):
        seen.append((threading.current_thread().name, host.dtype, host.shape[0]))
        return plain(self, host)

    monkeypatch.setattr(type(model.backend), "stage", stage)
    model.fit(np.load(folder / "X.npy", mmap_mode="r"), y, batch_size=16, verbose=0)
    assert len(seen) == 2 * 13  # X and y of each of the 13 batches
    assert {name for name, _, _ in seen} == {"xpnn-prefetch"}
    assert seen[0][1] == np.uint8  # bytes cross to the device; the float conversion happens there


@pytest.mark.parametrize("options", [{"workers": 3}, {"prefetch": 0}, {"prefetch": 1, "workers": 2}])
def test_threads_and_queue_depth_do_not_change_the_result(files, options):
    folder, X, y = files
    ref, _ = trained(X, y, dropout=True)
    slow = SlowDataset(np.load(folder / "X.npy", mmap_mode="r"), y)  # random delays: reads finish out of order
    model, _ = trained(slow, dropout=True, **options)
    assert_same_weights(ref, model)


def test_shuffle_blocks_reads_contiguous_runs_and_matches_the_array(files):
    folder, X, y = files
    ref, _ = trained(X, y, shuffle="blocks")
    ds = Recording(np.load(folder / "X.npy", mmap_mode="r"), y)
    model, _ = trained(ds, shuffle="blocks")
    assert_same_weights(ref, model)
    for idx in ds.reads:
        assert np.all(np.diff(idx) == 1)  # one contiguous block per batch
    first = [int(i[0]) for i in ds.reads[: len(ds.reads) // 2]]
    assert first != sorted(first)  # in a random order
    with pytest.raises(ValueError, match='shuffle must be True, False or "blocks"'):
        trained(X, y, shuffle="rows")


def test_evaluate_and_predict_stream_the_same_numbers(files):
    folder, X, y = files
    model, _ = trained(X, y)
    Xm, ym = np.load(folder / "X.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")
    assert model.evaluate(Xm, ym, batch_size=50) == pytest.approx(model.evaluate(X, y), rel=1e-6)
    np.testing.assert_allclose(model.predict(Xm, batch_size=64), model.predict(X), rtol=1e-6)
    np.testing.assert_allclose(model.predict(X[i : i + 30] for i in range(0, N, 30)), model.predict(X), rtol=1e-6)
    assert model.evaluate(ArrayDataset(Xm, ym)) == pytest.approx(model.evaluate(X, y), rel=1e-6)


def test_validation_data_takes_memmaps_datasets_and_loaders(files):
    folder, X, y = files
    Xm, ym = np.load(folder / "X.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")
    _, ref = trained(X, y, validation_data=(X[:100], y[:100]))
    for val in ((Xm[:100], ym[:100]), ArrayDataset(Xm[:100], ym[:100]), [(X[:60], y[:60]), (X[60:100], y[60:100])]):
        _, hist = trained(X, y, validation_data=val)
        np.testing.assert_allclose(hist.history["val_loss"], ref.history["val_loss"], rtol=1e-6)
        assert hist.history["val_accuracy"] == ref.history["val_accuracy"]


def test_resume_from_a_checkpoint_continues_the_same_streamed_run(files, tmp_path):
    folder, X, y = files
    Xm, ym = np.load(folder / "X.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")
    whole, _ = trained(Xm, ym, epochs=3, dropout=True)
    first, _ = trained(Xm, ym, epochs=1, dropout=True)
    first.save(tmp_path / "ckpt.safetensors")
    resumed = xpnn.load(tmp_path / "ckpt.safetensors")
    resumed.fit(Xm, ym, epochs=3, initial_epoch=1, batch_size=16, verbose=0)
    assert_same_weights(whole, resumed)
    assert resumed.epochs_trained == 3


# ---- iterables: generators and a PyTorch DataLoader ---------------------------------------


def test_a_generator_and_a_dataloader_train_to_the_accuracy_of_their_arrays():
    torch = pytest.importorskip("torch")
    X, y = make_data(n=320)
    Xf = (X / 255.0).astype(np.float32)
    ref, _ = trained(Xf, y, epochs=3, shuffle=False)
    expected = ref.evaluate(Xf, y)["accuracy"]

    def forever():
        while True:
            for i in range(0, 320, 16):
                yield Xf[i : i + 16], y[i : i + 16]

    gen_model, _ = trained(forever(), epochs=3, steps_per_epoch=20)
    assert gen_model.evaluate(Xf, y)["accuracy"] == expected
    assert_same_weights(ref, gen_model)

    data = torch.utils.data.TensorDataset(torch.from_numpy(Xf), torch.from_numpy(y))
    # spawn: forking a process where JAX (or any threaded library) runs can deadlock
    loader = torch.utils.data.DataLoader(
        data, batch_size=16, num_workers=2, multiprocessing_context="spawn", persistent_workers=True
    )
    loader_model, _ = trained(loader, epochs=3)
    assert loader_model.evaluate(Xf, y)["accuracy"] == expected
    assert_same_weights(ref, loader_model)
    del loader  # its worker processes end


def test_torch_model_takes_tensor_batches_as_they_are():
    torch = pytest.importorskip("torch")
    X, y = make_data()
    model = xpnn.Sequential([xpnn.Dense(F, 8), xpnn.ReLU(), xpnn.Dense(8, C)], backend="torch", seed=1)
    model.compile("softmax_cross_entropy", "adam")
    batches = [(torch.from_numpy(X[i : i + 50].astype(np.float32)), torch.from_numpy(y[i : i + 50])) for i in (0, 50)]
    history = model.fit(batches, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


# ---- bad input --------------------------------------------------------------------------


def test_an_array_like_without_shape_is_refused():
    class NoShape:
        def __getitem__(self, i):
            return 0

    with pytest.raises(TypeError, match="fit: X must be an array.*found NoShape \\(it has no shape\\)"):
        mlp().fit(NoShape(), np.zeros(3), verbose=0)


def test_a_dataset_whose_batches_change_shape_or_dtype_mid_epoch():
    X, y = make_data()

    class Changing(Dataset):
        def __init__(self, change):
            self.change, self.calls = change, 0

        def __len__(self):
            return N

        def __getitem__(self, idx):
            self.calls += 1
            Xb = X[idx]
            return (self.change(Xb) if self.calls == 3 else Xb), y[idx]

    with pytest.raises(ValueError, match=r"batch 2 of X changed X mid-stream: samples of shape \(13,\).*shape \(12,\)"):
        mlp().fit(Changing(lambda a: np.pad(a, ((0, 0), (0, 1)))), batch_size=16, verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="dtype float64, but the first batch had shape \\(12,\\) and dtype uint8"):
        mlp().fit(Changing(lambda a: a.astype(np.float64)), batch_size=16, verbose=0, shuffle=False)


def test_a_generator_that_runs_dry_before_steps_per_epoch():
    X, y = make_data()
    short = ((X[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16))
    with pytest.raises(ValueError, match="ran dry after 3 batches of an epoch of 5"):
        mlp().fit(short, steps_per_epoch=5, verbose=0)
    with pytest.raises(ValueError, match="iterable without a length .*pass steps_per_epoch"):
        mlp().fit(iter([]), verbose=0)
    once = ((X[i : i + 50], y[i : i + 50]) for i in range(0, 200, 50))
    with pytest.raises(ValueError, match="validation_data yielded no batches .a generator is used up"):
        mlp().fit(X, y, epochs=2, verbose=0, validation_data=once)  # the second epoch finds it empty


@pytest.mark.parametrize(
    ("item", "found"),
    [
        (np.zeros((4, F)), "batch 0 is a ndarray"),
        ((np.zeros((4, F)),), "batch 0 is a tuple of length 1"),
        (("text", np.zeros(4)), r"batch 0 holds \(str, ndarray\)"),
        ({"X": np.zeros((4, F)), "y": np.zeros(4)}, "batch 0 is a dict"),
    ],
)
def test_a_loader_yielding_something_other_than_x_y(item, found):
    with pytest.raises(TypeError, match=f"fit: X must yield \\(X, y\\) or \\(X, y, inputs\\) tuples.*{found}"):
        mlp().fit([item], verbose=0)


def test_nan_and_bad_labels_name_the_global_sample_index(files, monkeypatch):
    folder, X, y = files
    Xf = X.astype(np.float32)
    Xf[157, 3] = np.nan
    np.save(folder / "Xnan.npy", Xf)
    whole = r"\[samples counted over the whole data set\]"
    with pytest.raises(ValueError, match=r"NaN or inf \(nan at sample 157, index \(157, 3\)\).*" + whole):
        mlp().fit(np.load(folder / "Xnan.npy", mmap_mode="r"), y, batch_size=16, verbose=0)
    y_bad = y.copy()
    y_bad[131] = 7
    np.save(folder / "ybad.npy", y_bad)
    Xm = np.load(folder / "X.npy", mmap_mode="r")
    # small labels: checked whole, once, before the first step
    with pytest.raises(ValueError, match="found 7 at index 131"):
        mlp().fit(Xm, np.load(folder / "ybad.npy", mmap_mode="r"), batch_size=16, verbose=0)
    # labels too large to hold: checked batch by batch, naming the sample
    monkeypatch.setattr(streaming, "WHOLE_LABELS_BYTES", 0)
    model = mlp()
    with pytest.raises(ValueError, match=r"found 7 at index 131 \[samples counted over the whole data set\]"):
        model.fit(Xm, np.load(folder / "ybad.npy", mmap_mode="r"), batch_size=16, verbose=0)
    gen = [(Xm[i : i + 50], y_bad[i : i + 50]) for i in range(0, 200, 50)]
    with pytest.raises(ValueError, match=r"found 7 at index 131 \[samples counted from the start of the epoch\]"):
        mlp().fit(gen, verbose=0)


def test_bad_options():
    X, y = make_data()
    with pytest.raises(ValueError, match="prefetch must be"):
        mlp().fit(X, y, prefetch=-1, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch is for iterables"):
        mlp().fit(X, y, steps_per_epoch=3, verbose=0)
    with pytest.raises(TypeError, match="holds its own targets; pass y=None"):
        mlp().fit(ArrayDataset(X, y), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs data that can be indexed"):
        mlp().fit([(X, y)], validation_split=0.2, verbose=0)
    with pytest.raises(TypeError, match="positional arguments but 4 were given"):
        mlp().fit(X, y, 3)  # the options are keyword-only


# ---- the prefetch thread: errors, breaks, Ctrl-C ---------------------------------------------


def test_an_error_in_the_reading_thread_is_raised_in_the_training_thread_with_its_traceback():
    X, y = make_data()

    class Broken(Dataset):
        def __len__(self):
            return N

        def __getitem__(self, idx):
            if idx[0] > 100:
                raise_it()
            return X[idx], y[idx]

    def raise_it():
        raise OSError("disk on fire")

    for workers in (0, 3):
        with pytest.raises(OSError, match="disk on fire") as info:
            mlp().fit(Broken(), batch_size=16, shuffle=False, verbose=0, workers=workers)
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert "raise_it" in frames and "__getitem__" in frames


def test_a_stop_or_ctrl_c_mid_epoch_leaves_no_thread(files):
    folder, X, y = files
    Xm = np.load(folder / "X.npy", mmap_mode="r")

    class Stop(xpnn.Callback):
        def on_batch_end(self, step, logs):
            if step == 2:
                self.model.stop_training = True

    class CtrlC(xpnn.Callback):
        def on_batch_end(self, step, logs):
            if step == 3:
                raise KeyboardInterrupt

    mlp().fit(Xm, y, batch_size=16, verbose=0, callbacks=[Stop()])
    with pytest.raises(KeyboardInterrupt):
        mlp().fit(Xm, y, batch_size=16, verbose=0, callbacks=[CtrlC()], workers=2)


def test_prefetched_keeps_the_order_and_stops_early():
    def job(i):
        def run():
            time.sleep(0.001 * ((i * 7) % 5))
            return i

        return run

    for workers in (0, 1, 4):
        assert list(prefetched((job(i) for i in range(30)), 2, workers)) == list(range(30))
    it = prefetched((job(i) for i in range(1000)), 2, 3)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # a break: the threads go (checked by the fixture)


# ---- DataParallel: each rank reads only its part ------------------------------------------


def test_each_rank_reads_only_its_shard_of_each_batch(files):
    from xpnn.data.stream import Stream

    folder, X, y = files
    reads = {}
    for r in range(3):
        model = mlp()
        ds = Recording(np.load(folder / "X.npy", mmap_mode="r"), y)
        s = Stream(model, ds, where="fit", batch_size=16, shuffle=True, shard=(r, 3))
        got = list(s)
        reads[r] = ds.reads
        assert [b.part for b in got] == [(16 * r // 3, 16 * (r + 1) // 3)] * 12 + [(11 * r // 3, 11 * (r + 1) // 3)]
        assert [b.size for b in got] == [16] * 12 + [11]  # the global batch's size, for the gradient weights
        part = got[0].take(*got[0].part)
        np.testing.assert_array_equal(part.X, X[reads[r][0]].astype(np.float32))
    order = mlp().generator.host_permutation(N)  # the permutation every rank draws
    for b in range(13):
        joined = np.concatenate([reads[r][b] for r in range(3)])
        np.testing.assert_array_equal(joined, order[16 * b : 16 * b + 16])


# ---- helpers ------------------------------------------------------------------------------


class Recording(ArrayDataset):
    """An ArrayDataset that keeps the indices of every read."""

    def __init__(self, X, y):
        super().__init__(X, y)
        self.reads = []
        self.lock = threading.Lock()

    def __getitem__(self, idx):
        with self.lock:
            self.reads.append(np.array(idx))
        return super().__getitem__(idx)


class SlowDataset(ArrayDataset):
    """Reads that take a random time, so that threads finish them out of order."""

    def __getitem__(self, idx):
        time.sleep(0.002 * (int(idx[0]) % 3))
        return super().__getitem__(idx)


def _mpiexec():
    import os
    import shutil
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def _no_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install "xpnn[mpi]" mpich)'
    return None if _mpiexec() else "mpiexec is not available (pip install mpich)"


@pytest.mark.skipif(_no_mpi() is not None, reason=str(_no_mpi()))
def test_two_ranks_streaming_read_disjoint_halves_and_equal_one_process(files):
    import os
    import subprocess
    import sys

    folder, X, y = files
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_mpi_stream_worker.py")
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", worker, str(folder)]
    cmd += [str(folder / "X.npy"), str(folder / "y.npy")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [np.load(folder / f"rank{r}.npz") for r in range(2)]
    reads = [r["reads"] for r in ranks]
    # each rank read about half of every epoch, the two halves together every sample once per epoch
    assert abs(len(reads[0]) - len(reads[1])) <= 13 and len(reads[0]) + len(reads[1]) == 2 * N
    assert np.array_equal(np.sort(np.concatenate(reads)), np.sort(np.tile(np.arange(N), 2)))
    single = xpnn.Sequential([xpnn.Dense(F, 16), xpnn.ReLU(), xpnn.Dense(16, C)], seed=0)
    single.compile("softmax_cross_entropy", xpnn.Adam(lr=1e-3)).fit(X, y, epochs=2, batch_size=16, verbose=0)
    for i, w in enumerate(single.get_weights()):
        np.testing.assert_array_equal(ranks[0][f"w{i}"], ranks[1][f"w{i}"])
        np.testing.assert_allclose(ranks[0][f"w{i}"], w, rtol=1e-4, atol=1e-5)
