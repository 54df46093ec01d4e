"""Fixtures of the model-selection tests."""

from __future__ import annotations

import pytest

import xpnn


@pytest.fixture(scope="module")
def digits():
    """The first 200 bundled digits, flattened: (X (200, 64) float32, y (200,) int)."""
    (X, y), _ = xpnn.load_digits(flatten=True)
    return X[:200], y[:200]
