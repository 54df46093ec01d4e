"""Weight initializers. Every draw comes from the model's seeded Generator.

An initializer is a callable ``init(generator, shape, dtype) -> array``. Fans follow the
weight layouts of xpnn: Dense ``W`` is (in, out); conv ``W`` is (out, in, *kernel).

Why scale at all: with unit-variance weights each layer multiplies the signal's variance
by about ``fan_in``, so deep stacks explode or (with saturating activations) vanish.
Glorot/Xavier keeps variance steady for tanh/sigmoid-like layers (2 / (fan_in + fan_out));
He/Kaiming doubles it for ReLU, which zeroes half its inputs (2 / fan_in).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``."""
    if len(shape) < 1:
        raise ValueError(f"initializers need a weight shape with at least one axis, found {shape!r}")
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:  # Dense: (in, out)
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])  # conv: (out, in, *kernel)
    return shape[1] * receptive, shape[0] * receptive


def zeros(generator, shape, dtype):
    return generator.backend.zeros(shape, dtype)


def ones(generator, shape, dtype):
    xp = generator.backend.xp
    return xp.ones(shape, dtype=generator.backend.dtype(dtype), device=generator.backend.device)


def normal(std: float = 0.01, mean: float = 0.0):
    """N(mean, std**2) initializer (call it: ``init=normal(0.05)``)."""

    def draw(generator, shape, dtype):
        return generator.normal(shape, std=std, mean=mean, dtype=dtype)

    draw.__name__ = f"normal(std={std})" if mean == 0.0 else f"normal(std={std}, mean={mean})"
    return draw


def uniform(limit: float = 0.05):
    """U(-limit, limit) initializer (call it: ``init=uniform(0.1)``)."""

    def draw(generator, shape, dtype):
        return generator.uniform(shape, -limit, limit, dtype=dtype)

    draw.__name__ = f"uniform(limit={limit})"
    return draw


def glorot_uniform(generator, shape, dtype):
    fan_in, fan_out = fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return generator.uniform(shape, -limit, limit, dtype=dtype)


def glorot_normal(generator, shape, dtype):
    fan_in, fan_out = fans(shape)
    return generator.normal(shape, std=math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype)


def he_uniform(generator, shape, dtype):
    fan_in, _ = fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return generator.uniform(shape, -limit, limit, dtype=dtype)


def he_normal(generator, shape, dtype):
    fan_in, _ = fans(shape)
    return generator.normal(shape, std=math.sqrt(2.0 / fan_in), dtype=dtype)


def lecun_normal(generator, shape, dtype):
    fan_in, _ = fans(shape)
    return generator.normal(shape, std=math.sqrt(1.0 / fan_in), dtype=dtype)


INITIALIZERS = {
    "zeros": zeros,
    "ones": ones,
    "normal": normal(),
    "uniform": uniform(),
    "xavier_uniform": glorot_uniform,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "lecun_normal": lecun_normal,
}


_FACTORY = re.compile(r"(normal|uniform)\((.*)\)")


def get(init, argname: str = "init"):
    """An initializer from a name or a callable.

    Also accepts the names :func:`name_of` gives the factories' draws, such as
    "normal(std=0.05)" or "uniform(limit=0.1)", so a saved config loads back.
    """
    if callable(init):
        return init
    if isinstance(init, str) and init.lower() in INITIALIZERS:
        return INITIALIZERS[init.lower()]
    match = _FACTORY.fullmatch(init.replace(" ", "")) if isinstance(init, str) else None
    if match:
        try:
            kwargs = {k: float(v) for k, v in (kv.split("=") for kv in match.group(2).split(",") if kv)}
            factories: dict[str, Callable[..., Callable]] = {"normal": normal, "uniform": uniform}
            return factories[match.group(1)](**kwargs)
        except (TypeError, ValueError):
            pass  # a bad argument: the error below
    raise ValueError(f"{argname} must be a callable or one of {sorted(INITIALIZERS)}, found {init!r}")


def name_of(init) -> str:
    """The name to store in a config for ``init`` (a name from INITIALIZERS if it is one)."""
    if isinstance(init, str):
        return init
    for name, fn in INITIALIZERS.items():
        if fn is init:
            return name
    return getattr(init, "__name__", "custom")
