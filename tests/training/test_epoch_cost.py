"""An epoch's cost does not grow with the epoch number.

What grew: Adam's first moment of a weight whose gradient stays 0 (an always-blank pixel
of the digits, a dead ReLU) decays by beta1 each step into the subnormal range and sticks
there (0.1 m rounds to 0), and CPU arithmetic on subnormals is many times slower: epochs
of ``xpnn train`` on the digits went from 0.01 s to 0.04 s over 30 epochs. Counted here,
not timed: the number of subnormal values the optimizer keeps."""

from __future__ import annotations

import numpy as np

import xpnn
from xpnn.backends.numpy import FLUSH_EVERY


def subnormals(backend, arrays) -> int:
    count = 0
    for a in arrays:
        h = np.asarray(backend.to_numpy(a))
        count += int(np.count_nonzero((h != 0) & (np.abs(h) < np.finfo(h.dtype).tiny)))
    return count


def test_adam_update_sends_decaying_moments_to_zero_not_to_subnormals(backend):
    """m of 1e-30 with a gradient of 0 from then on: 0.9^t carries it below float32's
    smallest normal (1.2e-38) in ~190 steps; it must end at 0, not stuck as a subnormal.
    With the optimizer's scratch the flush may wait FLUSH_EVERY steps, never longer."""
    xp = backend.xp
    param = backend.asarray(np.ones(8, np.float32))
    grad = xp.zeros_like(param)
    m = backend.asarray(np.full(8, 1e-30, np.float32))
    v = backend.asarray(np.full(8, 1e-30, np.float32))
    scratch: dict = {}
    seen = 0
    for t in range(1, 25 * FLUSH_EVERY + 1):
        param, m, v = backend.adam_update(param, grad, m, v, 1e-3, 0.9, 0.999, 1.0, 1e-8, scratch)
        seen += subnormals(backend, [m, v])
        if t % FLUSH_EVERY == 0:
            assert subnormals(backend, [m, v]) == 0, t
    assert seen < 2 * 8 * FLUSH_EVERY  # a subnormal lives less than one flush interval
    assert np.all(np.asarray(backend.to_numpy(m)) == 0)
    # without scratch (no step count to keep) every step flushes
    m = backend.asarray(np.full(8, 1e-37, np.float32))
    for _ in range(30):
        param, m, v = backend.adam_update(param, grad, m, v, 1e-3, 0.9, 0.999, 1.0, 1e-8)
        assert subnormals(backend, [m, v]) == 0


def test_the_digits_epoch_does_not_accumulate_subnormal_moments():
    """The case that grew: the digits MLP of ``xpnn train`` (blank border pixels)."""
    (X, y), _ = xpnn.load_digits(flatten=True)
    X, y = X[:320], y[:320]
    model = xpnn.NeuralNetwork(64, [32], 10, init="he_uniform", seed=0)
    model.compile("softmax_cross_entropy", "adam")
    be = model.backend
    found = []
    for epoch in range(0, 128, 32):  # 10 steps an epoch: 1280 steps, counted after each 320th
        model.fit(X, y, epochs=epoch + 32, initial_epoch=epoch, batch_size=32, verbose=0)
        found.append(subnormals(be, [*model.optimizer.state["m"], *model.optimizer.state["v"]]))
    assert found == [0, 0, 0, 0]
