"""The implementations a case can run on: xpnn (the subject) and its peers.

Each module has ``NAME``, ``unavailable(backend) -> reason | None``,
``supports(case) -> reason | None`` and ``build(case, X, y, backend, seed) -> runner``
(see ``harness.py`` for what a runner does). Modules import their library lazily, so a
missing peer is skipped with its reason instead of breaking the run.
"""

from . import numpy_ref, sklearn_peer, torch_peer, xpnn_runner

IMPLS = {m.NAME: m for m in (xpnn_runner, torch_peer, sklearn_peer, numpy_ref)}
PEERS = [name for name in IMPLS if name != "xpnn"]
