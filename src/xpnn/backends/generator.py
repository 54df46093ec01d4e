"""The seeded random generator a model draws from: init, dropout masks and shuffling.

Never a global generator: every model owns one, made from its seed, so a run is
reproducible from that seed. Draws are made on the host with NumPy's PCG64 and copied to
the backend's device, so the same seed gives the same numbers on every backend.
"""

from __future__ import annotations

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

    def _dtype(self, dtype):
        return self.backend.dtype(dtype or "float32")

    def normal(self, shape, std=1.0, mean=0.0, dtype=None):
        """Normal draws of ``shape``: N(mean, std**2)."""
        host = self._np.normal(mean, std, size=shape)
        return self.backend.asarray(host, dtype=self._dtype(dtype))

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        """Uniform draws of ``shape`` in [low, high)."""
        host = self._np.uniform(low, high, size=shape)
        return self.backend.asarray(host, dtype=self._dtype(dtype))

    def bernoulli(self, shape, p, dtype=None):
        """0/1 draws of ``shape`` in ``dtype``, each 1 with probability ``p``.

        The mask crosses to the device as booleans and is cast there: one byte per
        element over the bus instead of four (dropout draws one mask per batch)."""
        host = self._np.random(size=shape, dtype=np.float32) < p
        return self.backend.xp.astype(self.backend.asarray(host), self._dtype(dtype))

    def permutation(self, n):
        """A random permutation of ``range(n)`` as an int64 backend array."""
        return self.backend.asarray(self.host_permutation(n), dtype="int64")

    def host_permutation(self, n):
        """The same draw as ``permutation`` as a host NumPy int64 array: streamed data is
        read from the host in this order (the same order as the arrays in memory)."""
        return self._np.permutation(n)

    def integers(self, low, high, shape):
        """Integers in [low, high) of ``shape`` as an int64 backend array."""
        host = self._np.integers(low, high, size=shape, dtype=np.int64)
        return self.backend.asarray(host, dtype="int64")

    @property
    def state(self) -> dict:
        """JSON-able state of the generator (for checkpoints)."""
        return {"seed": self.seed, "bit_generator": self._np.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._np.bit_generator.state = state["bit_generator"]
