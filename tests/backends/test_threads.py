"""The NumPy backend's BLAS thread policy: small matrix products run on one OpenBLAS
thread inside fit and predict (a second thread costs more than it gives there), large ones
keep OpenBLAS's own choice, and the setting is restored afterwards."""

from __future__ import annotations

import os

import numpy as np
import pytest

import xpnn
from xpnn.architectures import cnn
from xpnn.backends import numpy as numpy_backend
from xpnn.callbacks import Callback
from xpnn.training.threads import largest_matmul

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> int:
    """NumPy's own BLAS's thread count: the one its products run on (another BLAS, such as
    SciPy's, loaded after the policy's first use, is neither used nor limited)."""
    info = [d for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
    own = [d for d in info if os.path.dirname(np.__file__) + ".libs" in d["filepath"]]
    return max(d["num_threads"] for d in own or info)


class Record(Callback):
    def __init__(self):
        self.seen = []

    def on_batch_end(self, step, logs):
        self.seen.append(blas_threads())


def test_largest_matmul_from_output_shapes():
    mlp = xpnn.NeuralNetwork(64, [256, 128], 10)
    assert largest_matmul(mlp, (32, 64)) == 32 * (256 * 128 + 128)  # the 256 -> 128 layer is the largest
    net = cnn((1, 28, 28), 10)
    conv2 = [layer for layer in net.walk() if type(layer).__name__ == "Conv2D"][1]
    assert largest_matmul(net, (8, 1, 28, 28)) >= 8 * 14 * 14 * conv2.count_params()
    lazy = xpnn.Sequential([xpnn.Dense(None, 4)])
    assert largest_matmul(lazy, (8, 3)) is None  # not built: nothing assumed


def small_fit(record):
    X = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    model = xpnn.Sequential([xpnn.Dense(8, 16), xpnn.ReLU(), xpnn.Dense(16, 3)], backend="numpy").compile()
    model.fit(X, np.arange(64) % 3, epochs=2, batch_size=16, verbose=0, callbacks=[record])
    return model, X


def test_a_nested_sequential_counts_its_products_and_an_embedding_none():
    """takes_indices is one declared bool on every layer: a nested Sequential's is False
    (its products count), only a layer that looks rows up (an Embedding) says True."""
    inner = xpnn.Sequential([xpnn.Dense(4, 64), xpnn.ReLU()])
    model = xpnn.Sequential([inner, xpnn.Dense(64, 2)])
    assert inner.takes_indices is False
    assert largest_matmul(model, (32, 4)) == 32 * (4 * 64 + 64)  # the nested block's product is the largest
    tokens = xpnn.Sequential([xpnn.Sequential([xpnn.Embedding(1000, 8), xpnn.Dense(8, 16)]), xpnn.Dense(16, 2)])
    assert tokens.first_leaf().takes_indices is True
    # inside the block the lookup table is no product; its Dense on (4, 5, 8) is the largest
    assert largest_matmul(tokens, (4, 5)) == 4 * 5 * (8 * 16 + 16)


def test_small_products_run_on_one_blas_thread_and_the_setting_comes_back():
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # the suite runs on one thread
        record = Record()
        model, X = small_fit(record)
        assert set(record.seen) == {1}
        assert blas_threads() == 2


def test_large_products_keep_the_library_threads(monkeypatch):
    monkeypatch.setattr(numpy_backend, "SMALL_MATMUL", 0)  # every product counts as large
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        record = Record()
        small_fit(record)
        assert set(record.seen) == {2}


def test_other_backends_keep_their_threading():
    backend = xpnn.get_backend("array_api_strict")
    with backend.threads_for(10):
        pass  # a no-op context on every backend but NumPy
