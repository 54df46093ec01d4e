"""Run by tests/data/test_streaming.py under ``mpiexec -n 2``: data-parallel training from a
memmap, each rank recording which samples it read; saves OUT/rank<r>.npz.

    mpiexec -n 2 python -m mpi4py tests/data/_mpi_stream_worker.py OUT X.npy y.npy
"""

from __future__ import annotations

import os
import sys

import numpy as np

import xpnn
from xpnn.data import ArrayDataset
from xpnn.distributed import DataParallel


class Recording(ArrayDataset):
    def __init__(self, X, y):
        super().__init__(X, y)
        self.reads = []

    def __getitem__(self, idx):
        self.reads.append(np.array(idx))
        return super().__getitem__(idx)


def mlp(seed):
    model = xpnn.Sequential([xpnn.Dense(12, 16), xpnn.ReLU(), xpnn.Dense(16, 3)], seed=seed)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=1e-3))


def main(out, xpath, ypath):
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    ds = Recording(np.load(xpath, mmap_mode="r"), np.load(ypath, mmap_mode="r"))
    model = mlp(0 if rank == 0 else 7)  # the broadcast makes rank 1's weights rank 0's
    DataParallel(model).fit(ds, epochs=2, batch_size=16, verbose=0)
    np.savez(
        os.path.join(out, f"rank{rank}.npz"),
        reads=np.concatenate(ds.reads),
        **{f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())},
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
