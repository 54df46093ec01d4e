"""Data-parallel training over MPI: one process (rank) per CPU socket or GPU, each
training on its share of every batch, all keeping identical weights.

    # train.py, run with:  mpiexec -n 2 python -m mpi4py train.py
    # (-m mpi4py: an exception on one rank aborts them all instead of leaving the
    # others waiting in a collective forever)
    from xpnn.distributed import DataParallel
    model = xpnn.NeuralNetwork(784, [128], 10).compile("softmax_cross_entropy", "adam")
    DataParallel(model).fit(X, y, epochs=5, batch_size=128)   # every rank passes the whole X, y

What each rank does, and why the result is the single-process result:

1. At the start of ``fit``, rank 0's weights, buffers, optimizer state and generator
   state are broadcast, so every rank starts from the same model and draws the same
   permutation of the data every epoch.
2. ``batch_size`` is the GLOBAL batch: the same batches as a single-process ``fit`` with
   that batch size, and rank r of W takes the r-th of W near-equal slices of each one
   (``lo + m r // W`` to ``lo + m (r + 1) // W`` for a batch of m samples). So W ranks take
   exactly the optimizer steps one process would, each doing 1/W of the work.
3. After backward, every gradient is scaled by its rank's share of the batch (n_r / m)
   and summed over ranks with ONE in-place Allreduce of one flat buffer holding all of
   them (a call per tensor would pay the latency once per tensor). Since every loss is a
   mean over samples, sum_r (n_r / m) grad(mean over rank r) = grad(mean over the batch):
   the gradient of the whole batch, on every rank. Each rank then applies the same
   optimizer step to the same weights, so the weights stay identical without being sent.
4. The logged loss and metrics are over all ranks (summed loss, gathered outputs), so
   every rank sees the same logs and callbacks (EarlyStopping, ReduceLROnPlateau) take the
   same decisions; callbacks that write files (CSVLogger, ModelCheckpoint, and any with
   ``root_only = True``) and the progress bar run on rank 0 only.

Where it differs from one process: BatchNorm normalizes with each rank's own batch
statistics (PyTorch DDP without SyncBatchNorm does the same) and its running statistics
are averaged over ranks at the end of each epoch; Dropout draws each rank's masks from
its own generator (seeded from the model seed and the rank); a last batch with fewer
samples than ranks is skipped (at most W - 1 samples of an epoch, different ones each
epoch when shuffling). Validation and ``evaluate`` run in full on every rank.

How the flat buffer is summed is the backend's business (``Backend.allreducer``): MPI
sums straight into the array on NumPy and CPU tensors; on CuPy, NCCL when CuPy has it,
else CUDA-aware MPI if ``XPNN_CUDA_AWARE_MPI=1`` says the MPI library is one; anywhere
else through a host copy. ``rank_backend`` gives each rank of a node its own GPU.

Needs mpi4py and an MPI library: ``pip install "xpnn[mpi]"`` (mpi4py) plus MPICH or Open
MPI (``pip install mpich`` provides both the library and ``mpiexec``).
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from .callbacks import Callback
from .param import Param
from .training import INFERENCE_BATCH, Trainer, data

__all__ = ["DataParallel", "GradientAllreduce", "rank_backend", "require_mpi"]

_MPI_HELP = 'distributed training needs mpi4py and an MPI library: pip install "xpnn[mpi]" mpich'


def require_mpi():
    """mpi4py's MPI module (importing it starts MPI), or an ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"{_MPI_HELP} (import failed: {exc})") from None
    return MPI


def rank_backend(name=None, comm=None, device=None):
    """The backend this rank should train on: on GPUs (cupy, torch on "cuda") device
    ``local_rank % gpu_count`` (local_rank: this process's rank among those on the same
    node), so the ranks of a node spread over its GPUs; on the CPU ``get_backend(name)``."""
    from .backends import get_backend

    backend = get_backend(name, device)
    MPI = require_mpi()
    comm = comm or MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank = local.Get_rank()
    local.Free()
    return backend.for_local_rank(local_rank)


class DataParallel:
    """Wrap a compiled model for data-parallel ``fit`` over the ranks of ``comm``.

    Args:
        model: a compiled Sequential (the same architecture and seed on every rank).
        comm: an mpi4py communicator (default MPI.COMM_WORLD).

    Attributes: ``rank``, ``world_size``, ``is_root`` (rank 0, the one that should print
    and write files), ``model``, ``comm``, ``reducer`` (how gradients are summed:
    "mpi", "nccl", "cuda-aware-mpi" or "mpi-host-staging").
    """

    def __init__(self, model, comm=None):
        self.MPI = require_mpi()
        from .model import Sequential

        if not isinstance(model, Sequential):
            raise TypeError(f"DataParallel: model must be an xpnn Sequential, found {type(model).__name__}")
        self.model = model
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.reducer = None
        self._reduce = None  # flat buffer -> summed over ranks

    def __repr__(self) -> str:
        return f"DataParallel({self.model!r}, rank={self.rank}, world_size={self.world_size})"

    # ---- training ---------------------------------------------------------------------

    def fit(self, X, y=None, *, callbacks=(), verbose: int = 1, check_labels: bool = True, **options):
        """``model.fit`` with every global batch of ``batch_size`` samples split over the
        ranks (see the module docstring); ``options`` are model.fit's. Every rank passes
        the same full ``X, y``; streamed data (a memmap, h5py, zarr, a Dataset) is read
        by each rank only for its own part of every batch. Returns the History (the same
        on every rank)."""
        model, where = self.model, "DataParallel.fit"
        data.require_compiled(model, where)
        self._check_same_data(X, y, where)
        if any(not layer.built for layer in model.walk()):
            # build lazily-sized layers now, so that their weights exist to be broadcast
            model.forward(data.features(model, _first_sample(X), "X", where), training=False)
        self.broadcast_state()
        if self._reduce is None:
            self._reduce, self.reducer = model.backend.allreducer(self.comm, self.MPI)
        # a callback that reads every batch loss makes each batch's loss a collective: every
        # rank must take part, also where that callback (root only) does not run
        reducer = GradientAllreduce(self, needs_batch_loss=any(c.needs_batch_loss for c in callbacks))
        if not self.is_root:
            verbose = 0
            callbacks = [c for c in callbacks if not _root_only(c)]
        # Each rank's own generator for dropout masks: model.generator must stay the same
        # on all ranks (it draws the shared permutation), and masks of unequal shards
        # would draw unequal amounts from it.
        self._bind_layers(model.backend.rng(_rank_seed(model.seed, self.rank)))
        try:
            trainer = Trainer(model, callbacks, hooks=[reducer], check_labels=check_labels, verbose=verbose)
            inputs = {k: options.pop(k) for k in list(options) if k not in _FIT_OPTIONS}
            history = trainer.fit(X, y, inputs=inputs, **options)
        finally:
            self._bind_layers(model.generator)
        self.sync_buffers()  # also when training stopped in mid-epoch
        return history

    def _bind_layers(self, generator) -> None:
        """The model's layers draw their masks from ``generator``; the model keeps its own."""
        model = self.model
        for layer in model.children():
            layer.bind(model.backend, generator, model.dtype)

    def evaluate(self, X, y, batch_size: int | None = INFERENCE_BATCH, allow_nonfinite: bool = False, **inputs) -> dict:
        """``model.evaluate`` (the weights are the same on every rank, so is the result)."""
        return self.model.evaluate(X, y, batch_size, allow_nonfinite, **inputs)

    def predict(self, X, batch_size: int | None = INFERENCE_BATCH, allow_nonfinite: bool = False, **inputs):
        return self.model.predict(X, batch_size, allow_nonfinite, **inputs)

    def save(self, path, epoch=None) -> None:
        """Save the model from rank 0 only (every rank holds the same weights)."""
        if self.is_root:
            self.model.save(path, epoch=epoch)
        self.comm.Barrier()  # the file exists on return, on every rank

    def allreduce(self, flat):
        """The 1-D array ``flat`` summed over the ranks (the backend's way: NCCL, MPI in
        place, or through the host)."""
        return self._reduce(flat)

    # ---- collectives ------------------------------------------------------------------

    def broadcast_state(self) -> None:
        """Make every rank's params, buffers, optimizer state and generator rank 0's."""
        model, b = self.model, self.model.backend
        handles = list(model.named_handles().values())
        opt = model.optimizer
        if opt is not None:
            handles += [Param(arrays, i) for arrays in opt.state.values() for i in range(len(arrays))]
        # optimizer state exists on some ranks but not others: the flat layouts would differ
        counts = self.comm.allgather(len(handles))
        if len(set(counts)) != 1:
            raise RuntimeError(
                f"DataParallel: the ranks hold different numbers of arrays {counts}; "
                f"build and compile the same model on every rank"
            )
        host = np.array(b.to_numpy(self._pack(handles)))  # a host copy MPI can write into
        self.comm.Bcast(host, root=0)
        self._unpack(b.asarray(host), handles, scale=1.0)
        meta = self.comm.bcast(
            {
                "generator": model.generator.state,
                "epochs": model.epochs_trained,
                "iterations": 0 if opt is None else opt.iterations,
            },
            root=0,
        )
        model.generator.set_state(meta["generator"])
        model.epochs_trained = meta["epochs"]
        if opt is not None:
            opt.iterations = meta["iterations"]

    def sync_buffers(self) -> None:
        """Average non-trained buffers (BatchNorm running statistics) over the ranks."""
        buffers = list(self.model.named_buffers().values())
        if not buffers or self.world_size == 1:
            return
        self._unpack(self._reduce(self._pack(buffers)), buffers, scale=1.0 / self.world_size)

    def _pack(self, handles):
        """The handles' arrays, flattened into one new 1-D array in the model's dtype."""
        b = self.model.backend
        if not handles:
            return b.zeros((0,), self.model.dtype)
        return b.xp.concat([b.xp.astype(b.xp.reshape(h.value, (-1,)), self.model.dtype) for h in handles])

    def _unpack(self, flat, handles, scale: float) -> None:
        """Store ``flat``'s pieces (times ``scale``) back through the handles."""
        xp = self.model.backend.xp
        off = 0
        for h in handles:
            a = h.value
            size = math.prod(a.shape)
            h.value = xp.astype(xp.reshape(flat[off : off + size], a.shape) * scale, a.dtype)
            off += size

    def allgather(self, a):
        """Concatenate ``a`` (n_r, ...) of every rank along axis 0, in rank order."""
        b = self.model.backend
        parts = self.comm.allgather(b.to_numpy(a))  # small: one epoch's outputs, once an epoch
        return b.xp.concat([b.asarray(p) for p in parts], axis=0)

    def _check_same_data(self, X, y, where) -> None:
        shapes = self.comm.allgather((tuple(getattr(X, "shape", ())), tuple(getattr(y, "shape", ()))))
        for r, s in enumerate(shapes):
            if s != shapes[0]:
                raise ValueError(
                    f"{where}: every rank must pass the same X and y; rank {r} has shapes {s}, rank 0 has {shapes[0]}"
                )


class GradientAllreduce(Callback):
    """DataParallel's part of the training loop, as Trainer hooks: each rank takes its
    shard of every global batch, and the gradients, the batch loss and the epoch's loss
    and outputs are summed over the ranks. The loop itself knows nothing of ranks."""

    def __init__(self, parallel: DataParallel, needs_batch_loss: bool = False):
        self.parallel = parallel
        self.needs_batch_loss = needs_batch_loss  # then the Trainer reduces every batch loss on every rank
        self.share = 1.0  # this rank's fraction of the current global batch
        # streamed data: the Trainer reads only this rank's part of each batch
        self.reads_shard = (parallel.rank, parallel.world_size)
        self._slots = self._flat = None

    def on_train_begin(self):
        self._slots = self._flat = None

    def on_batch_begin(self, step, batch):
        """This rank's near-equal part of the global batch, or None when the batch has
        fewer samples than ranks (every rank then skips it)."""
        m, W, r = batch.size, self.parallel.world_size, self.parallel.rank
        if m < W:
            return None
        start, stop = m * r // W, m * (r + 1) // W
        self.share = (stop - start) / m
        return batch.take(start, stop)  # only this part is gathered from the data

    def after_backward(self, params):
        """Params carrying the grad of this rank's mean loss -> the same params carrying the
        grad of the global batch's mean loss, equal on every rank: one Allreduce over one
        flat buffer. Scaled by the shares, sum_r (n_r / m) grad_r = grad of the batch mean."""
        b = self.parallel.model.backend
        xp = b.xp
        if not params:  # a model without params: nothing to sum
            return params
        if self._slots is None:  # offsets of each grad in the flat buffer, made once per fit
            self._slots, offset = [], 0
            for p in params:
                size = math.prod(p.value.shape)
                self._slots.append((offset, size, tuple(p.value.shape)))
                offset += size
            self._flat = xp.zeros((offset,), dtype=params[0].value.dtype, device=b.device)
        flat = self._flat
        for p, (off, size, _) in zip(params, self._slots):
            flat = b.set_at(flat, slice(off, off + size), xp.reshape(p.grad, (size,)) * self.share)
        self._flat = flat = self.parallel.allreduce(flat)
        # views of the summed buffer (NumPy: no copy); the optimizer only reads them
        return [
            p.with_grad(xp.reshape(flat[off : off + size], shape)) for p, (off, size, shape) in zip(params, self._slots)
        ]

    def reduce_batch_loss(self, value):
        """The global batch's mean loss from this rank's (for TerminateOnNaN and the like)."""
        par = self.parallel
        return par.comm.allreduce(value * self.share, op=par.MPI.SUM)

    def reduce_epoch(self, totals):
        """The epoch's loss sum and sample count over all ranks, the outputs and targets of
        all ranks (so metrics cover the whole epoch), and BatchNorm running statistics
        averaged, so every rank validates and saves the same model."""
        par = self.parallel
        totals.loss_sum = par.comm.allreduce(totals.loss_sum, op=par.MPI.SUM)
        totals.seen = par.comm.allreduce(totals.seen, op=par.MPI.SUM)
        if totals.outputs is not None:
            totals.outputs, totals.targets = par.allgather(totals.outputs), par.allgather(totals.targets)
        par.sync_buffers()
        return totals


# model.fit's keywords that are options of Trainer.fit; any other keyword is a forward input (mask=)
_FIT_OPTIONS = set(inspect.signature(Trainer.fit).parameters) - {"self", "X", "y", "inputs"}


def _first_sample(X):
    """Sample 0 of X (an array, an array-like or a Dataset), to build lazy layers."""
    from .data import Dataset

    if isinstance(X, Dataset):
        return np.asarray(X[np.zeros(1, dtype=np.int64)][0])
    return X[:1, ...] if hasattr(X, "shape") else X


def _root_only(callback) -> bool:
    from .callbacks import CSVLogger, ModelCheckpoint

    return isinstance(callback, (CSVLogger, ModelCheckpoint)) or callback.root_only


def _rank_seed(seed: int, rank: int) -> int:
    """A per-rank generator seed, reproducible from the model seed (distinct from it)."""
    return (seed + 1) * 1_000_003 + rank
