"""Math shared by layers and losses, written once: stable sigmoid, softmax, log-softmax
and the softmax backward. Each takes the array namespace ``xp`` (from a Backend) first.
"""

from __future__ import annotations


def sigmoid(xp, X):
    """Stable logistic 1 / (1 + exp(-x)): exp only ever sees a number <= 0."""
    e = xp.exp(-xp.abs(X))  # in (0, 1]: no overflow
    return xp.where(X >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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
