"""The implementations a case can run on: xpnn (the subject) and its peers.

Each module has ``NAME``, ``unavailable(target) -> reason | None``,
``supports(case) -> reason | None`` and ``build(case, X, y, target, seed) -> runner``
(see ``harness.py`` for what a runner does). ``target`` is where it runs: for xpnn a
backend as --backend spells it ("numpy", "torch:cuda"), which runs once per backend; for
a peer the device class, "cpu" or "gpu", which runs once per device class whatever the
number of xpnn backends on it. Keras 3 is two peers (keras-jax, keras-torch), one
object per backend. Modules import their library lazily, so a
missing peer is skipped with its reason instead of breaking the run.
"""

from . import jax_ref, numpy_ref, sklearn_peer, torch_peer, xpnn_runner
from .keras_peer import keras_jax, keras_torch

IMPLS = {m.NAME: m for m in (xpnn_runner, torch_peer, keras_jax, keras_torch, sklearn_peer, numpy_ref, jax_ref)}
PEERS = [name for name in IMPLS if name != "xpnn"]
