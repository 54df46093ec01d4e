"""The seeded random generator a model draws from: init, dropout masks and shuffling.

Never a global generator: every model owns one, made from its seed, so a run is
reproducible from that seed. Draws are made on the host with NumPy's PCG64 and copied to
the backend's device, so the same seed gives the same numbers on every backend.

A compiled training step (``compile(jit=True)``) cannot draw on the host while it is
traced: the draws a step makes are recorded once (``recording``), made on the host before
each compiled call in the same order (``draw_plan``) and handed to the trace, which takes
them in turn (``replaying``). Same seed, same masks, compiled or not.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .._checks import non_negative_int


class Generator:
    """Seeded random arrays for one model on one backend.

    ``state`` / ``set_state`` round-trip through JSON (checkpoints store it).
    """

    def __init__(self, backend, seed: int = 0):
        self.backend = backend
        self.seed = non_negative_int(seed, "seed", "Generator")
        self._np = np.random.Generator(np.random.PCG64(self.seed))
        self._record: list | None = None  # the calls of a step being recorded
        self._replay: list | None = None  # the arrays a traced step takes instead of drawing

    def _draw(self, call: tuple, make):
        """``make()``'s array, or, while a compiled step is traced, the next array drawn
        for it on the host (``call`` names the method and its arguments)."""
        if self._replay is not None:
            if not self._replay or self._replay[0][0] != call:
                raise RuntimeError(
                    f"Generator: a traced step asked for {call}, but the recorded draws of this step "
                    f"were {[c for c, _ in self._replay] or 'none'}; the step draws differently when traced"
                )
            return self._replay.pop(0)[1]
        if self._record is not None:
            self._record.append(call)
        return make()

    @contextlib.contextmanager
    def recording(self):
        """Record the draws made inside (a list of calls, for ``draw_plan``)."""
        self._record = calls = []
        try:
            yield calls
        finally:
            self._record = None

    def draw_plan(self, calls) -> list:
        """Make the recorded ``calls`` again, in order: the arrays a traced step takes."""
        return [(call, getattr(self, call[0])(*call[1:])) for call in calls]

    @contextlib.contextmanager
    def replaying(self, drawn: list):
        """Inside, draws return the arrays of ``drawn`` (from ``draw_plan``) in turn."""
        self._replay = list(drawn)
        try:
            yield
        finally:
            self._replay = None

    def _dtype(self, dtype):
        return self.backend.dtype(dtype or "float32")

    def normal(self, shape, std=1.0, mean=0.0, dtype=None):
        """Normal draws of ``shape``: N(mean, std**2)."""
        return self._draw(
            ("normal", tuple(shape), std, mean, dtype),
            lambda: self.backend.asarray(self._np.normal(mean, std, size=shape), dtype=self._dtype(dtype)),
        )

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        """Uniform draws of ``shape`` in [low, high)."""
        return self._draw(
            ("uniform", tuple(shape), low, high, dtype),
            lambda: self.backend.asarray(self._np.uniform(low, high, size=shape), dtype=self._dtype(dtype)),
        )

    def bernoulli(self, shape, p, dtype=None):
        """0/1 draws of ``shape`` in ``dtype``, each 1 with probability ``p``.

        The mask crosses to the device as booleans and is cast there: one byte per
        element over the bus instead of four (dropout draws one mask per batch)."""

        def make():
            host = self._np.random(size=shape, dtype=np.float32) < p
            return self.backend.xp.astype(self.backend.asarray(host), self._dtype(dtype))

        return self._draw(("bernoulli", tuple(shape), p, dtype), make)

    def permutation(self, n):
        """A random permutation of ``range(n)`` as an int64 backend array."""
        return self._draw(("permutation", n), lambda: self.backend.asarray(self.host_permutation(n), dtype="int64"))

    def host_permutation(self, n):
        """The same draw as ``permutation`` as a host NumPy int64 array: streamed data is
        read from the host in this order (the same order as the arrays in memory)."""
        return self._np.permutation(n)

    def host_order(self, n: int, batch_size: int, shuffle) -> np.ndarray:
        """An epoch's order of ``range(n)`` as a host NumPy int64 array: a permutation
        (shuffle=True), contiguous blocks of ``batch_size`` in a random order with the short
        last block last (shuffle="blocks"), or the stored order (False)."""
        if shuffle == "blocks":
            full = n // batch_size
            blocks = self.host_permutation(full)
            starts = (blocks[:, None] * batch_size + np.arange(batch_size)).reshape(-1)
            return np.concatenate([starts, np.arange(full * batch_size, n)])
        return self.host_permutation(n) if shuffle else np.arange(n)

    def integers(self, low, high, shape):
        """Integers in [low, high) of ``shape`` as an int64 backend array."""
        return self._draw(
            ("integers", low, high, tuple(shape)),
            lambda: self.backend.asarray(self._np.integers(low, high, size=shape, dtype=np.int64), dtype="int64"),
        )

    @property
    def state(self) -> dict:
        """JSON-able state of the generator (for checkpoints)."""
        return {"seed": self.seed, "bit_generator": self._np.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._np.bit_generator.state = state["bit_generator"]
