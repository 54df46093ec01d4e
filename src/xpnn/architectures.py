"""Ready-made networks for the main job: the default CNN for image data."""

from __future__ import annotations

from .layers import (BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU)
from .model import Sequential


def cnn(input_shape=(1, 28, 28), num_classes=10, backend=None, seed=0, dtype="float32") -> Sequential:
    """Two conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool), dropout and a dense head.

    input_shape: (channels, height, width) of one image, e.g. (1, 28, 28) or (1, 8, 8).
    For 28x28 inputs: 32 and 64 channels, dense 128 (about 420K params). For small images
    (under 16 pixels a side, the 8x8 digits) the blocks are 16 and 32 channels and only
    the second block pools, so the 8x8 map is not shrunk to nothing.
    """
    if len(input_shape) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"cnn: input_shape must be (channels, height, width), found {input_shape!r}")
    channels, height, width = input_shape
    small = min(height, width) < 16
    c1, c2, dense = (16, 32, 64) if small else (32, 64, 128)
    layers = [Conv2D(channels, c1, 3, padding=1), BatchNorm2D(c1), ReLU()]
    if not small:
        layers.append(MaxPool2D(2))
        height, width = height // 2, width // 2
    layers += [Conv2D(c1, c2, 3, padding=1), BatchNorm2D(c2), ReLU(), MaxPool2D(2)]
    height, width = height // 2, width // 2
    layers += [Flatten(), Dropout(0.25), Dense(c2 * height * width, dense), ReLU(), Dropout(0.25),
               Dense(dense, num_classes)]
    return Sequential(layers, backend=backend, seed=seed, dtype=dtype)
