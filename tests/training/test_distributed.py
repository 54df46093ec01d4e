"""Data-parallel training over MPI (xpnn.distributed).

The correctness test launches ``mpiexec -n 2 python -m mpi4py tests/training/_mpi_worker.py``:
after training, both ranks hold bit-identical weights, equal (within float32 rounding)
to one process trained with the same seed and global batch; BatchNorm and Dropout models
stay identical across ranks too. Skipped, with the reason, where mpi4py or mpiexec is
missing. The other tests run in this process (a one-rank MPI world) or with a stand-in
communicator, and check the sharding arithmetic and the errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import xpnn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _mpi_worker as worker

TIMEOUT = 120  # seconds; a hung collective must fail the test, not the whole suite


def _mpiexec():
    """mpiexec beside this Python first (pip's mpich wheel puts it there), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def _skip_reason():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install "xpnn[mpi]" mpich)'
    if _mpiexec() is None:
        return "mpiexec is not available (pip install mpich, or install MPICH or Open MPI)"
    return None


needs_mpi = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def launch(*args, ranks=2):
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


# ---- two ranks -----------------------------------------------------------------------------


@needs_mpi
def test_two_ranks_equal_one_process(backend, tmp_path):
    if backend.name == "cupy":
        pytest.skip("the GPU path needs one GPU per rank")
    launch(os.path.join(HERE, "_mpi_worker.py"), tmp_path, backend.name)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    # every rank holds exactly the same weights (also BatchNorm's averaged running stats)
    assert sorted(ranks[0].files) == sorted(ranks[1].files)
    for name in ranks[0].files:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
    assert logs[0]["world_size"] == logs[1]["world_size"] == 2
    # MPI sums straight into NumPy arrays and CPU tensors; other libraries go through a host copy
    assert logs[0]["reducer"] == ("mpi" if backend.name in ("numpy", "torch") else "mpi-host-staging")
    assert logs[0]["history"]["loss"] == logs[1]["history"]["loss"]
    # the generator that draws each epoch's permutation is in the same state on both ranks
    assert logs[0]["dropout_model_generator"] == logs[1]["dropout_model_generator"]

    # and they are what one process makes from rank 0's seed with the same global batch
    X, y = worker.data()
    single = worker.mlp(0, backend)
    history = single.fit(X, y, epochs=3, batch_size=16, verbose=0)
    for name, value in single.named_arrays().items():
        np.testing.assert_allclose(
            ranks[0][f"mlp.{name}"], single.backend.to_numpy(value), rtol=1e-4, atol=1e-5, err_msg=name
        )
    # the logged loss and accuracy cover both ranks' samples
    np.testing.assert_allclose(logs[0]["history"]["loss"], history.history["loss"], rtol=1e-5)
    assert logs[0]["history"]["accuracy"] == history.history["accuracy"]


@needs_mpi
def test_cli_distributed_writes_once_and_records_world_size(tmp_path):
    out = tmp_path / "run"
    result = launch(
        "-m", "xpnn.cli", "train", "--distributed", "--epochs", 2, "--hidden", 16, "--batch-size", 64, "--out", out
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["epochs"] == 2
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header and 2 epochs: only rank 0 logged
    assert result.stdout.count("test accuracy") == 1  # only rank 0 printed
    assert xpnn.load(out / "model.safetensors").epochs_trained == 2


# ---- in this process -----------------------------------------------------------------------


class FakeComm:
    """Just enough of a communicator for the sharding arithmetic."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@needs_mpi
def test_shards_cover_each_batch_once():
    """Each rank's on_batch_begin hook takes a contiguous, near-equal part of the global
    batch, and the shares (the gradients' weights) add up to one."""
    from xpnn.distributed import DataParallel, GradientAllreduce
    from xpnn.training import Batch

    model = xpnn.NeuralNetwork(3, 4, 2)
    for size in (1, 2, 3, 4):
        hooks = [GradientAllreduce(DataParallel(model, comm=FakeComm(r, size))) for r in range(size)]
        for m in (10, 7, size):
            batch = Batch(np.arange(m)[:, None], np.arange(m), {"mask": np.arange(m) % 2 == 0})
            parts = [h.on_batch_begin(0, batch) for h in hooks]
            rows = [p.X[:, 0].tolist() for p in parts]
            assert sum(rows, []) == list(range(m))  # every sample once, in order: contiguous, no overlap
            assert max(p.size for p in parts) - min(p.size for p in parts) <= 1  # near-equal
            assert all(
                p.y.tolist() == r and p.inputs["mask"].tolist() == [v % 2 == 0 for v in r] for p, r in zip(parts, rows)
            )  # y and the inputs go with X
            assert sum(h.share for h in hooks) == pytest.approx(1.0)
        if size > 1:  # fewer samples than ranks: every rank skips the batch
            small = Batch(np.zeros((size - 1, 1)), np.zeros(size - 1))
            assert all(h.on_batch_begin(0, small) is None for h in hooks)


@needs_mpi
def test_one_rank_is_plain_fit(backend):
    from xpnn.distributed import DataParallel

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)).astype(np.float32), rng.integers(0, 3, size=30)

    def make():
        model = xpnn.Sequential([xpnn.Dense(5, 6), xpnn.ReLU(), xpnn.Dense(6, 3)], backend=backend)
        return model.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])

    a, b = make(), make()
    ha = DataParallel(a).fit(X, y, epochs=2, batch_size=8, verbose=0)
    hb = b.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(a.backend.to_numpy(wa), b.backend.to_numpy(wb))
    assert all(layer.generator is a.generator for layer in a.walk())  # the rank generator is unbound after fit


@needs_mpi
def test_errors():
    from xpnn.distributed import DataParallel

    with pytest.raises(TypeError, match="model must be an xpnn Sequential, found str"):
        DataParallel("model")
    with pytest.raises(RuntimeError, match="call model.compile"):
        DataParallel(xpnn.NeuralNetwork(3, 4, 2)).fit(np.zeros((4, 3), np.float32), np.zeros(4, np.int64))


def test_missing_mpi4py_says_what_to_install(monkeypatch):
    from xpnn import distributed

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    with pytest.raises(ImportError, match=r'pip install "xpnn\[mpi\]"'):
        distributed.DataParallel(xpnn.NeuralNetwork(3, 4, 2))


def test_cli_without_mpi4py_is_a_usage_error(monkeypatch, capsys):
    from xpnn.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert main(["train", "--distributed", "--epochs", "1"]) == 2
    assert 'pip install "xpnn[mpi]"' in capsys.readouterr().err


@needs_mpi
def test_data_parallel_fit_takes_check_labels_and_inputs():
    from xpnn.distributed import DataParallel

    X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    model = xpnn.NeuralNetwork(3, 4, 2).compile("softmax_cross_entropy", "sgd")
    history = DataParallel(model).fit(X, np.arange(12) % 2, epochs=1, batch_size=4, verbose=0, check_labels=False)
    assert len(history.epoch) == 1
