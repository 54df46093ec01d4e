"""The prefetcher: a background thread that runs the next jobs (read a batch, convert it,
copy it to the device) while the training thread computes on the current one.

The results come out in the order of the jobs, whatever the number of reading threads
and their timing, so a run stays reproducible from its seed. An exception in a job is
raised in the consuming thread with its own traceback; closing the iterator (the end of
an epoch, a ``break``, an error or Ctrl-C in the training loop) stops and joins every
thread it started.
"""

from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

_END = object()
_POLL = 0.05  # seconds between looks at the stop flag while the queue is full


def prefetched(jobs, prefetch: int = 2, workers: int = 0):
    """Yield ``job()`` for each zero-argument callable of the iterable ``jobs``, in order,
    with up to ``prefetch`` results made ahead by a background thread (``workers`` > 1:
    that many threads run jobs at once). ``prefetch=0``: each job runs when its result is
    asked for, in the calling thread (no thread at all)."""
    if prefetch == 0:
        for job in jobs:
            yield job()
        return
    results: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    thread = threading.Thread(target=_feed, args=(jobs, results, stop, workers), name="xpnn-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = results.get()
            if kind is _END:
                return
            if kind == "error":
                raise value.with_traceback(value.__traceback__)
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a feeder waiting on a full queue
            try:
                results.get_nowait()
            except queue.Empty:
                pass
            thread.join(_POLL)


def _feed(jobs, results, stop, workers) -> None:
    """The background thread: run the jobs (over ``workers`` threads when > 1), put each
    result (or the first error) on ``results`` in order, then the end mark."""
    try:
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="xpnn-read") as pool:
                pending: collections.deque = collections.deque()
                for job in jobs:
                    pending.append(pool.submit(job))
                    if len(pending) >= workers:
                        if not _put(results, ("ok", pending.popleft().result()), stop):
                            break
                while pending and not stop.is_set():
                    if not _put(results, ("ok", pending.popleft().result()), stop):
                        break
                for f in pending:
                    f.cancel()
        else:
            for job in jobs:
                if stop.is_set() or not _put(results, ("ok", job()), stop):
                    break
        _put(results, (_END, None), stop)
    except BaseException as exc:  # noqa: BLE001 - every error goes to the training thread
        _put(results, ("error", exc), stop)


def _put(results, item, stop) -> bool:
    """Put ``item``, waiting while the queue is full; False once asked to stop."""
    while not stop.is_set():
        try:
            results.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False
