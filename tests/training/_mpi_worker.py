"""Run by tests/training/test_distributed.py under ``mpiexec -n 2``: data-parallel training of
small models, each rank saving what it ends with to OUT/rank<r>.npz.

    mpiexec -n 2 python -m mpi4py tests/training/_mpi_worker.py OUT BACKEND

(``-m mpi4py`` aborts every rank when one raises, instead of leaving the others waiting.)
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import xpnn
from xpnn.distributed import DataParallel
from xpnn.layers import BatchNorm1D, Dense, Dropout, ReLU, Tanh


def data(n=51, features=6, classes=3):
    """51 samples in global batches of 16: 16, 16, 16 and a last batch of 3 that splits
    unevenly (1 and 2) over two ranks, so the per-rank gradient weights matter."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    return X, y


def mlp(seed, backend):
    model = xpnn.Sequential([Dense(6, 8), Tanh(), Dense(8, 8), ReLU(), Dense(8, 3)], seed=seed, backend=backend)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.01), metrics=["accuracy"])


def with_batchnorm(seed, backend):
    model = xpnn.Sequential(
        [Dense(6, 8), BatchNorm1D(8), ReLU(), Dropout(0.3), Dense(8, 3)], seed=seed, backend=backend
    )
    return model.compile("softmax_cross_entropy", xpnn.SGD(lr=0.1, momentum=0.9))


def main(out, backend):
    X, y = data()
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    # rank 1 starts from other weights and another seed: the broadcast must fix both
    seed = 0 if rank == 0 else 7
    saved = {}

    model = mlp(seed, backend)
    dp = DataParallel(model)
    # TerminateOnNaN asks for every batch loss: the reduced batch loss path
    history = dp.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[xpnn.TerminateOnNaN()])
    for k, v in model.named_arrays().items():
        saved[f"mlp.{k}"] = np.array(model.backend.to_numpy(v))

    model2 = with_batchnorm(seed, backend)
    # 48 samples: every rank's share has 8 (BatchNorm needs more than one to train)
    DataParallel(model2).fit(X[:48], y[:48], epochs=2, batch_size=16, verbose=0)
    for k, v in model2.named_arrays().items():
        saved[f"bn.{k}"] = np.array(model2.backend.to_numpy(v))

    # Dropout on uneven shards (the last batch splits 1 and 2): each rank draws masks from
    # its own generator, so the shared one, which draws the permutations, stays in step
    model3 = xpnn.Sequential([Dense(6, 8), ReLU(), Dropout(0.5), Dense(8, 3)], seed=seed, backend=backend)
    model3.compile("softmax_cross_entropy", "sgd")
    DataParallel(model3).fit(X, y, epochs=2, batch_size=16, verbose=0)

    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump(
            {
                "history": history.history,
                "world_size": dp.world_size,
                "reducer": dp.reducer,
                "dropout_model_generator": model3.generator.state,
            },
            fh,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
