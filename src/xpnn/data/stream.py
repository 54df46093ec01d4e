"""Streams: data that fit, evaluate and predict read a batch at a time instead of copying
it whole to the device.

What is streamed (``is_streamed``): array-likes that are not in memory (``np.memmap``,
``np.load(mmap_mode="r")``, h5py datasets, zarr arrays, any object with ``shape``,
``dtype`` and ``__getitem__``), map-style Datasets, and iterables of ``(X, y)`` batches
(generators, a PyTorch DataLoader). In-memory NumPy and backend arrays are not: they
take the prepared path, checked and copied to the device once per fit.

A Stream is iterated once per epoch and yields Batches on the model's device:

    order   the seeded sampler (training thread): the epoch's permutation, drawn from the
            model's generator exactly where the in-memory path draws it, or contiguous
            blocks (shuffle="blocks"), cut into batches; a DataParallel rank keeps only
            its part of each batch
    read    Dataset[indices] -> host NumPy arrays (prefetch thread, or ``workers`` threads)
    convert the model's dtype, checks (NaN/inf, input ids, label values), to the device
            through ``backend.stage`` (pinned memory and a copy stream on GPUs)
    train   the training thread takes ready batches from a queue ``prefetch`` deep

Errors name the sample's index in the whole data set (for an iterable: its position in
the epoch).
"""

from __future__ import annotations

import collections.abc
import math
import re

import array_api_compat
import numpy as np

from .. import _checks
from ..training import data
from ..training.batches import INFERENCE_BATCH, Batch, order_of
from ..training.threads import largest_matmul
from .dataset import ArrayDataset, Dataset, Subset, is_array_like
from .prefetch import prefetched

# labels up to this size are read whole once and checked before the first step (one host
# sync per fit); larger ones are checked batch by batch
WHOLE_LABELS_BYTES = 64 * 2**20


def is_in_memory(a) -> bool:
    """A NumPy array in memory (not a memory map) or an array of an array-API library."""
    if isinstance(a, np.ndarray):
        return not _memory_mapped(a)
    return array_api_compat.is_array_api_obj(a)


def _memory_mapped(a: np.ndarray) -> bool:
    """Whether ``a`` is a memmap or a view of one."""
    found: np.ndarray | None = a
    while found is not None:
        if isinstance(found, np.memmap):
            return True
        found = found.base if isinstance(found.base, np.ndarray) else None
    return False


def is_streamed(X, y=None) -> bool:
    """Whether ``X`` is read a batch at a time (see the module docstring). A list or tuple
    is a list of batches only without y and when its first item looks like a batch (a
    nested list of numbers is still refused as "not an array")."""
    if isinstance(X, (list, tuple)):
        first = X[0] if y is None and len(X) else None
        if isinstance(first, (tuple, list)):
            return len(first) > 0 and not isinstance(first[0], (int, float, complex, list))
        return isinstance(first, dict) or (first is not None and _is_array(first))
    return not is_in_memory(X) and not isinstance(X, (str, bytes, int, float, dict))


class StreamedBatch(Batch):
    """A Batch read from a stream: its arrays are on the device already. ``indices``: the
    samples' indices in the whole data set (host int64), for errors; ``part``: (lo, hi),
    the rows of the global batch held here (a DataParallel rank reads only its own)."""

    __slots__ = ("indices", "part")

    def __init__(self, X, y, inputs, size, indices, part):
        super().__init__(X, y, inputs, size=size)
        self.indices, self.part = indices, part

    def take(self, lo: int, hi: int) -> Batch:
        have = self.part
        if (lo, hi) == have:
            return StreamedBatch(self.X, self.y, self.inputs, hi - lo, self.indices, (0, hi - lo))
        if have[0] <= lo and hi <= have[1]:
            a, b = lo - have[0], hi - have[0]
            sub = {k: v[a:b, ...] for k, v in self.inputs.items()}
            y = None if self.y is None else self.y[a:b, ...]
            return StreamedBatch(self.X[a:b, ...], y, sub, b - a, self.indices[a:b], (0, b - a))
        raise ValueError(f"this batch holds rows {have} of its global batch, not {lo}:{hi}")


class Stream:
    """Batches of a streamed source for one model (see the module docstring).

    Args:
        model: the model whose dtype, device and loss the batches are made for.
        source: a Dataset, an array-like X (with ``y`` and ``inputs`` beside it), or an
            iterable of ``(X, y)`` / ``(X, y, inputs)`` batches.
        where: the caller, for error messages ("fit").
        argname: the argument, for error messages ("X" or "validation_data").
        batch_size: samples per batch of a Dataset (an iterable's batches are its own).
        shuffle: True (a permutation per epoch), "blocks" (contiguous runs of batch_size
            samples in a random order) or False; only for Datasets.
        steps: batches per epoch of an iterable without ``len`` (``steps_per_epoch``).
        prefetch: batches made ahead.
        workers: threads reading them.
        targets: whether the batches hold targets (fit, evaluate) or not (predict).
        shard: (rank, world_size): read only this rank's part of each global batch.
        to_end: an iterable without a length is read to its end (inference), instead of
            needing ``steps``.
    """

    def __init__(
        self,
        model,
        source,
        y=None,
        inputs=None,
        *,
        where: str,
        argname: str = "X",
        batch_size: int | None = 32,
        shuffle=False,
        drop_last: bool = False,
        steps: int | None = None,
        prefetch: int = 2,
        workers: int = 0,
        allow_nonfinite: bool = False,
        targets: bool = True,
        shard: tuple[int, int] | None = None,
        to_end: bool = False,
    ):
        self.model, self.where, self.argname = model, where, argname
        self.prefetch, self.workers, self.allow_nonfinite = prefetch, workers, allow_nonfinite
        self.targets, self.shard, self.drop_last = targets, shard, drop_last
        self.labels_checked = False  # inference: the targets were checked on an earlier pass
        self._first: dict | None = None  # the first batch's shapes and dtypes: later ones must match
        self._iterator = None
        self.dataset: Dataset | None
        self.n: int | None  # samples of a Dataset; None for an iterable
        self.steps: int | None  # batches per epoch; None: an iterable read to its end
        self.dataset, self.iterable = self._open(source, y, dict(inputs or {}))
        if self.dataset is not None:
            self._size_dataset(self.dataset, batch_size, shuffle, steps)
        else:
            self._size_iterable(batch_size, steps, to_end)
        self.sample_shape = self._sample_shape()

    def _open(self, source, y, inputs: dict):
        """The source checked: (the Dataset, None) or (None, the iterable of batches)."""
        where, argname = self.where, self.argname
        if isinstance(source, Dataset):
            if y is not None or inputs:
                raise TypeError(f"{where}: {argname} is a Dataset, which holds its own targets; pass y=None")
            return source, None
        if is_array_like(source) and not isinstance(source, (list, tuple)):
            if len(getattr(source, "shape", ())) == 0:
                raise ValueError(f"{where}: {argname} must have one entry per sample (axis 0), found shape ()")
            for name, a in (("y", y), *inputs.items()):
                if a is not None and not (is_array_like(a) or isinstance(a, np.ndarray)):
                    raise TypeError(
                        f"{where}: {name} must be an array or array-like beside the array-like {argname}, "
                        f"found {type(a).__name__}"
                    )
            if self.targets and y is None:
                raise ValueError(f"{where}: y is missing; pass the targets beside {argname}")
            return ArrayDataset(source, y, **{k: v for k, v in inputs.items()}), None
        if hasattr(source, "__iter__") and not isinstance(source, (str, bytes, dict)):
            if y is not None:
                raise TypeError(
                    f"{where}: {argname} is an iterable of (X, y) batches ({type(source).__name__}), which "
                    f"holds its own targets; pass y=None"
                )
            return None, source
        raise TypeError(
            f"{where}: {argname} must be an array, an array-like with shape, dtype and __getitem__ "
            f"(np.memmap, h5py, zarr), an xpnn.data.Dataset or an iterable of (X, y) batches; found "
            f"{type(source).__name__}" + ("" if hasattr(source, "shape") else " (it has no shape)")
        )

    def _size_dataset(self, dataset: Dataset, batch_size, shuffle, steps) -> None:
        """A Dataset's samples, batch size, shuffle and batches per epoch."""
        self.n = len(dataset)
        if self.n == 0:
            raise ValueError(f"{self.where}: {self.argname} is empty")
        self.batch_size = self.n if batch_size is None else min(batch_size, self.n)
        self.shuffle = shuffle
        full, rest = divmod(self.n, self.batch_size)
        self.steps = full + (1 if rest and not self.drop_last else 0)
        if steps is not None:
            self.steps = min(self.steps, steps)

    def _size_iterable(self, batch_size, steps, to_end) -> None:
        """An iterable's batches per epoch (None: read to its end); it has no sample count."""
        known = _length(self.iterable)
        if steps is None and known is None and not to_end:
            raise ValueError(
                f"{self.where}: {self.argname} is an iterable without a length ({type(self.iterable).__name__}); "
                f"pass steps_per_epoch, the number of batches that make an epoch"
            )
        self.steps = steps if steps is not None else known
        self.n, self.batch_size, self.shuffle = None, batch_size or 32, False

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError(f"{self.where}: {self.argname} has no length; it is read to its end")
        return self.steps

    def _sample_shape(self):
        """One sample's shape where the source says it without a read (for the BLAS thread
        policy), else None."""
        ds = self.dataset.dataset if isinstance(self.dataset, Subset) else self.dataset
        shape = getattr(ds, "shape", None) or getattr(getattr(ds, "X", None), "shape", None)
        return None if shape is None else tuple(int(d) for d in shape[1:])

    def split(self, fraction: float):
        """(train, validation): the last ``fraction`` of a Dataset held out (validation_split)."""
        if self.dataset is None:
            raise ValueError(
                f"{self.where}: validation_split needs data that can be indexed (an array, array-like or "
                f"Dataset), found an iterable of batches; pass validation_data instead"
            )
        total = len(self.dataset)
        n_val = int(round(total * fraction))
        if n_val < 1 or n_val >= total:
            raise ValueError(f"{self.where}: validation_split={fraction} leaves no data on one side of {total} samples")
        cut = total - n_val
        train, val = _copy(self), _copy(self)
        train.dataset, val.dataset = Subset(self.dataset, 0, cut), Subset(self.dataset, cut, total)
        for part, n in ((train, cut), (val, n_val)):
            part.n = n
            part.batch_size = min(self.batch_size, n)
            full, rest = divmod(n, part.batch_size)
            part.steps = full + (1 if rest and not part.drop_last else 0)
        val.shuffle, val.shard, val.drop_last = False, None, False
        val.steps = math.ceil(n_val / val.batch_size)
        return train, val

    def for_inference(self, batch_size):
        """This stream read in order, in batches of ``batch_size``, on every rank (validation)."""
        s = _copy(self)
        s.shuffle, s.shard, s.drop_last = False, None, False
        if s.dataset is not None:
            s.batch_size = s.n if batch_size is None else min(batch_size, s.n)
            s.steps = math.ceil(s.n / s.batch_size)
        return s

    # ---- labels checked whole, once ----------------------------------------------------

    def whole_labels(self):
        """The targets on the device, checked, if they are small enough to hold (a Dataset
        with a ``y`` array of at most WHOLE_LABELS_BYTES); else None (checked per batch)."""
        ds = self.dataset
        start, stop = 0, self.n
        if isinstance(ds, Subset):
            start, stop, ds = ds.start, ds.stop, ds.dataset
        y = getattr(ds, "y", None)
        if y is None or not self.targets or isinstance(y, list):
            return None
        size = math.prod(int(d) for d in y.shape) * np.dtype(y.dtype).itemsize
        if size > WHOLE_LABELS_BYTES:
            return None
        host = np.asarray(y[start:stop])
        return Batch(host, data.targets(self.model, host, f"{self.argname} y", self.where, self.allow_nonfinite))

    # ---- iteration -----------------------------------------------------------------------

    def __iter__(self):
        if self.dataset is not None:
            # drawn here, in the training thread, where the in-memory path draws it
            order = order_of(self.model.generator, self.n, self.batch_size, self.shuffle, host=True)
            jobs = (self._map_job(order, b) for b in range(self.steps))
        else:
            it = self._iterator
            if it is None or not isinstance(self.iterable, collections.abc.Iterator):
                # here, in the training thread: a DataLoader starts its worker processes in iter(),
                # and forking beside a running prefetch thread could deadlock
                it = iter(self.iterable)  # a re-iterable (DataLoader, list) starts over each epoch
            self._iterator = it  # a generator carries on where the last epoch stopped
            jobs = self._iterable_jobs(it)
        return prefetched(jobs, self.prefetch, self.workers)

    def _bounds(self, b):
        lo = b * self.batch_size
        return lo, min(lo + self.batch_size, self.n)

    def _map_job(self, order, b):
        lo, hi = self._bounds(b)
        indices = order[lo:hi] if not isinstance(order, list) else order[b]
        m = indices.shape[0]
        part = (0, m)
        if self.shard is not None:
            r, W = self.shard
            part = (m * r // W, m * (r + 1) // W)
            indices = indices[part[0] : part[1]]

        def job():
            if self.shard is not None and m < self.shard[1]:  # fewer samples than ranks: every rank skips it
                return Batch(None, None, size=m)
            got = self.dataset[np.ascontiguousarray(indices, dtype=np.int64)]
            return self._convert(got, indices, m, part, f"batch {b}")

        return job

    def _iterable_jobs(self, it):
        seen, b = 0, 0
        while self.steps is None or b < self.steps:
            try:
                item = next(it)
            except StopIteration:
                if self.steps is None:  # read to its end
                    return
                raise ValueError(
                    f"{self.where}: {self.argname} ran dry after {b} batches of an epoch of {self.steps} "
                    f"(steps_per_epoch or its length); make it yield at least that many batches per epoch "
                    f"(a generator: loop over the data forever), or lower steps_per_epoch"
                ) from None
            X, y, inputs = self._unpack(item, b)
            size = int(X.shape[0])
            indices = np.arange(seen, seen + size, dtype=np.int64)
            seen += size
            got = (X, y, inputs)
            yield lambda got=got, indices=indices, size=size, b=b: self._convert(
                got, indices, size, (0, size), f"batch {b}", positions=True
            )
            b += 1

    def _unpack(self, item, b):
        """(X, y, inputs) of one item an iterable yielded, or the error naming what was found."""
        what = f"{self.where}: {self.argname} must yield (X, y) or (X, y, inputs) tuples of arrays"
        if not self.targets:
            what = f"{self.where}: {self.argname} must yield X arrays or (X, ...) tuples"
            if _is_array(item):
                return item, None, {}
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            n = f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""
            raise TypeError(f"{what}; batch {b} is a {type(item).__name__}{n}")
        X, y = item[0], item[1]
        inputs = item[2] if len(item) == 3 else {}
        if not _is_array(X) or (self.targets and not _is_array(y)):
            raise TypeError(
                f"{what}; batch {b} holds ({type(X).__name__}, {type(y).__name__}), expected arrays "
                f"(NumPy, a tensor or the model's backend)"
            )
        if not isinstance(inputs, dict):
            raise TypeError(f"{what}; batch {b}'s third item is a {type(inputs).__name__}, expected a dict")
        return X, (y if self.targets else None), inputs

    # ---- one batch: checks, conversion, onto the device -----------------------------------

    def _convert(self, got, indices, size, part, name, positions=False) -> Batch:
        if isinstance(got, tuple) and len(got) in (2, 3):
            X, y = got[0], got[1]
            inputs = got[2] if len(got) == 3 else {}
        else:
            raise TypeError(
                f"{self.where}: a Dataset's __getitem__ must return (X, y) or (X, y, inputs), found "
                f"{type(got).__name__}"
            )
        self._check_layout(X, y, inputs, name, int(part[1] - part[0]))
        model, where = self.model, self.where
        what = "samples counted from the start of the epoch" if positions else "samples counted over the whole data set"
        X = self._device(X)
        X = data.features(model, X, self.argname, where)
        data.record_sample_shape(model, X)
        self._locate(lambda a: data.check_inputs(model, a, self.argname, where), X, indices, what)
        if not self.allow_nonfinite:
            self._locate(lambda a: data.check_finite(model, a, self.argname, where), X, indices, what)
        if y is not None and self.targets:
            y = self._device(y)
            if not self.allow_nonfinite:
                self._locate(lambda a: data.check_finite(model, a, "y", where), y, indices, what)
            y = self._locate(lambda a: data.targets(model, a, "y", where, True), y, indices, what)
        else:
            y = None
        inputs = {k: self._device(v) for k, v in inputs.items()}
        inputs = data.forward_inputs(model, inputs, where)
        return StreamedBatch(X, y, inputs, size, indices, part)

    def _device(self, a):
        """A batch's array on the model's device: host data through ``backend.stage``."""
        b = self.model.backend
        if b.owns(a):
            return a
        if not isinstance(a, np.ndarray):
            a = b.to_numpy(a) if b.is_array(a) else np.asarray(a)  # a CPU tensor: shared memory, no copy
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{self.where}: {self.argname} must hold real numbers, found dtype {a.dtype}")
        return b.stage(a)

    def _check_layout(self, X, y, inputs, name, rows) -> None:
        """Every batch of an epoch has the first batch's sample shapes and dtypes."""
        found = {"X": X, **({} if y is None else {"y": y}), **inputs}
        layout = {}
        for k, a in found.items():
            if not hasattr(a, "shape"):
                raise TypeError(f"{self.where}: {name} of {self.argname}: {k} is a {type(a).__name__}, not an array")
            layout[k] = (tuple(int(d) for d in a.shape[1:]), str(a.dtype))
            if int(a.shape[0]) != int(X.shape[0]):
                raise ValueError(
                    f"{self.where}: {name} of {self.argname} holds {X.shape[0]} samples of X but {a.shape[0]} of {k}"
                )
        if self.dataset is not None and int(X.shape[0]) != rows:
            raise ValueError(
                f"{self.where}: {self.argname}[indices] returned {X.shape[0]} samples for {rows} indices ({name})"
            )
        if self._first is None:
            self._first = layout
            return
        for k, (shape, dtype) in layout.items():
            want = self._first.get(k)
            if want is not None and want != (shape, dtype):
                raise ValueError(
                    f"{self.where}: {name} of {self.argname} changed {k} mid-stream: samples of shape {shape} and "
                    f"dtype {dtype}, but the first batch had shape {want[0]} and dtype {want[1]}; every batch "
                    f"must hold samples of one shape and dtype"
                )

    def _locate(self, check, a, indices, what):
        """``check(a)``; if it fails, the error again for the first failing sample alone,
        with that sample's index in the whole data in place of its row in the batch."""
        try:
            return check(a)
        except (ValueError, IndexError) as exc:
            for r in range(int(a.shape[0])):
                try:
                    check(a[r : r + 1, ...])
                except (ValueError, IndexError) as row:
                    g = int(indices[r])
                    # the one-row check names row 0: say which sample that is
                    message = re.sub(r"\b(sample|index) 0\b(?!,? index \()", lambda m: f"{m.group(1)} {g}", str(row))
                    message = re.sub(r"\bsample 0, index \(0", f"sample {g}, index ({g}", message)
                    if message == str(row):
                        message += f" (sample {g})"
                    raise type(exc)(f"{message} [{what}]") from None
            raise

    def check_targets(self, batch, out) -> None:
        """The loss's check of a streamed batch's targets (label range, [0, 1] targets),
        naming the first bad sample's index: one host sync per batch."""
        if batch.y is None:
            return
        loss = self.model.loss
        what = (
            "samples counted from the start of the epoch"
            if self.dataset is None
            else "samples counted over the whole data set"
        )
        self._locate(lambda y: data.check_targets(loss, y, out), batch.y, batch.indices, what)


def _is_array(a) -> bool:
    return isinstance(a, np.ndarray) or array_api_compat.is_array_api_obj(a) or hasattr(a, "__array__")


def _length(iterable):
    try:
        return len(iterable)
    except TypeError:
        return None


def _copy(stream: Stream) -> Stream:
    new = object.__new__(Stream)
    new.__dict__.update(stream.__dict__)
    new._first = None
    return new


def options(where, prefetch, workers, steps_per_epoch):
    """Checked (prefetch, workers, steps_per_epoch)."""
    return (
        _checks.non_negative_int(prefetch, "prefetch", where),
        _checks.non_negative_int(workers, "workers", where),
        _checks.optional_positive_int(steps_per_epoch, "steps_per_epoch", where, "the length of the data"),
    )


def validation(model, validation_data, where: str, streaming: dict):
    """fit's validation data: in-memory arrays prepared once (a Batch), anything else a
    Stream read in order every epoch; None if there is none."""
    if validation_data is None:
        return None
    argname = "validation_data"
    arrays = isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)
    if arrays and is_array_like(validation_data[0]):  # (X_val, y_val[, inputs])
        if is_in_memory(validation_data[0]):
            return data.validation(model, validation_data, where, streaming["allow_nonfinite"])
        inputs = validation_data[2] if len(validation_data) == 3 else None
        return Stream(model, validation_data[0], validation_data[1], inputs, where=where, argname=argname,
                      batch_size=INFERENCE_BATCH, **streaming)  # fmt: skip
    if isinstance(validation_data, (tuple, list)) and (
        not is_streamed(validation_data) or (validation_data and _is_array(validation_data[0]))
    ):  # arrays in a tuple of the wrong length, or not arrays at all: its error
        return data.validation(model, validation_data, where, streaming["allow_nonfinite"])
    return Stream(model, validation_data, where=where, argname=argname, batch_size=INFERENCE_BATCH, to_end=True,
                  **streaming)  # fmt: skip


def batches_of(stream: Stream, check_targets: bool):
    """(outputs, targets) of a whole stream in inference mode, concatenated on the device;
    the targets checked batch by batch on the first pass if ``check_targets``."""
    model = stream.model
    xp = model.backend.xp
    outs, ys = [], []
    macs = None if stream.sample_shape is None else largest_matmul(model, (stream.batch_size, *stream.sample_shape))
    check = check_targets and not stream.labels_checked and stream.targets
    with model.backend.threads_for(macs), data.trusted_inputs(model):
        iterator = iter(stream)
        try:
            for batch in iterator:
                out = model.run(batch.X, False, batch.inputs)
                if check:
                    stream.check_targets(batch, out)
                outs.append(out)
                if batch.y is not None:
                    ys.append(batch.y)
        finally:
            iterator.close()
    if not outs:
        raise ValueError(
            f"{stream.where}: {stream.argname} yielded no batches (a generator is used up after one pass: "
            f"for data read again every epoch pass a list, a DataLoader or a Dataset)"
        )
    stream.labels_checked = stream.labels_checked or check
    cat = lambda parts: parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
    return cat(outs), (cat(ys) if ys else None)
