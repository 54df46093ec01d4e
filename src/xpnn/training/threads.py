"""The size of a step's largest matrix product, for the backend's thread policy
(``Backend.threads_for``): OpenBLAS's second thread slows small products down."""

from __future__ import annotations

import math


def largest_matmul(model, batch_shape) -> int | None:
    """Multiply-adds of the largest matrix product in a forward of a batch of
    ``batch_shape`` (backward's products have the same sizes), from the layers' output
    shapes, without running anything.

    Per top-level layer: the positions it applies its params at times its param count,
    lookup tables (``takes_indices``, an Embedding's) left out (Dense: batch x in*out;
    Conv2D: batch*OH*OW x out*C*kh*kw; a block of Dense layers on
    (batch, seq, d): batch*seq x its params). None when a layer is not built yet or cannot
    say its output shape: then nothing is assumed.
    """
    shape, largest = tuple(batch_shape), 0
    for layer in model.children():
        if not all(part.built for part in layer.walk()):
            return None
        try:
            out = tuple(layer.output_shape(shape))
        except Exception:  # a layer without a static shape rule
            return None
        # an Embedding looks up rows: no product; inside a block, only its other layers' params count
        weights = sum(math.prod(a.shape) for p in layer.walk() if not p.takes_indices for a in p.params.values())
        if weights:
            features = out[1] if len(out) == 4 else out[-1]
            positions = math.prod(out) // max(features, 1)
            largest = max(largest, positions * weights)
        shape = out
    return largest
