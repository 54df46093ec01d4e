"""Math shared by layers, losses and metrics, written once: stable sigmoid, softmax,
log-softmax, the softmax backward and bincount. Each takes the array namespace ``xp``
(from a Backend) first, except bincount, which takes the Backend (it needs the device).
"""

from __future__ import annotations


def sigmoid(xp, X, zero=0.0, one=1.0):
    """Stable logistic 1 / (1 + exp(-x)) as exp(min(x, 0)) / (1 + exp(-|x|)): both exps
    see numbers <= 0 (no overflow), and it is the same function on both sides of 0
    (x >= 0: 1 / (1 + e^-x); x < 0: e^x / (1 + e^x)) without a ``where``, which costs
    more than an exp on small arrays. ``zero``, ``one``: those numbers as
    ``Backend.constants`` gives them for X's dtype (faster on NumPy), or Python floats."""
    num = xp.exp(xp.minimum(X, zero))
    den = xp.exp(-xp.abs(X))
    den += one  # in place on fresh arrays: no temporaries (a small net's step is mostly overhead)
    num /= den
    return num


def softmax(xp, X, axis=-1):
    """Softmax with the max subtracted first, so exp never overflows."""
    e = xp.exp(X - xp.max(X, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(xp, X, axis=-1):
    """log(softmax(X)) computed as X - max - log(sum(exp(X - max))): stable for +-1000."""
    shifted = X - xp.max(X, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax_backward(xp, Y, dY, axis=-1):
    """dX for Y = softmax(X) along ``axis``: Y * (dY - sum(dY * Y)), the Jacobian
    diag(Y) - Y Y^T applied row by row without building it."""
    return Y * (dY - xp.sum(dY * Y, axis=axis, keepdims=True))


def bincount(backend, x, length):
    """counts (length,) int64: how many entries of x (n,) int64 equal each of 0 .. length-1.

    The array API has no bincount. Sorting, then binary-searching where each value's run
    starts, counts exactly in O(n log n) time and O(n + length) memory on any backend.
    """
    xp = backend.xp
    edges = xp.searchsorted(xp.sort(x), xp.arange(length + 1, dtype=xp.int64, device=backend.device))
    return edges[1:] - edges[:-1]
