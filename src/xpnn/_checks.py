"""Argument checks for every public entry point, with one wording everywhere:

    Dense: in_features must be a positive integer, found 0
    SGD: momentum must be a number >= 0, found -1
    Dropout: rate must be a number in [0, 1), found 1.5

Python and NumPy scalars are accepted alike (``numbers.Integral`` / ``numbers.Real``,
which NumPy's integer and float types register with); ``bool`` is refused where a number
is expected, since ``True`` passing as 1 hides mistakes. Checked values come back as plain
Python ``int`` / ``float``, so they are JSON-able in configs.
"""

from __future__ import annotations

import math
import numbers


def is_integer(value) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A Python or NumPy real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value, name: str, where: str, minimum: int | None = None) -> int:
    """``value`` as an int >= ``minimum``, else a ValueError naming ``where`` and ``name``."""
    if not is_integer(value) or (minimum is not None and value < minimum):
        kind = "an integer"
        if minimum is not None:
            kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{where}: {name} must be {kind}, found {value!r}")
    return int(value)


def positive_int(value, name: str, where: str) -> int:
    return integer(value, name, where, minimum=1)


def non_negative_int(value, name: str, where: str) -> int:
    return integer(value, name, where, minimum=0)


def optional_positive_int(value, name: str, where: str, none_means: str = "") -> int | None:
    """None or a positive int (``none_means`` says what None does, for the message)."""
    if value is None:
        return None
    if not is_integer(value) or value < 1:
        extra = f" or None{f' ({none_means})' if none_means else ''}"
        raise ValueError(f"{where}: {name} must be a positive integer{extra}, found {value!r}")
    return int(value)


def number(
    value,
    name: str,
    where: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float within the bounds given, else a ValueError.

    The interval is closed unless ``low_open`` / ``high_open``: ``number(v, "rate", "Dropout",
    0, 1, high_open=True)`` accepts [0, 1).
    """
    ok = is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{where}: {name} must be {_describe(low, high, low_open, high_open)}, found {value!r}")
    return float(value)


def positive_number(value, name: str, where: str) -> float:
    return number(value, name, where, low=0.0, low_open=True)


def boolean(value, name: str, where: str) -> bool:
    """``value`` as a bool: True, False, or NumPy's bool scalars."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if not (isinstance(value, bool) or numpy_bool):
        raise ValueError(f"{where}: {name} must be True or False, found {value!r}")
    return bool(value)


def _describe(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"a number {'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"a number {'<' if high_open else '<='} {_fmt(high)}"
    return "a finite number"


def _fmt(bound) -> str:
    """0.0 -> "0", 0.5 -> "0.5": bounds read as people write them."""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def first_true(xp, mask) -> int:
    """The flat index of the first True of the boolean array ``mask`` (which holds one): where
    a check over an array failed first, for its error message. One host sync.
    (``argmax`` returns the first maximum; int8 because not every library takes argmax of bools.)"""
    return int(xp.argmax(xp.astype(xp.reshape(mask, (-1,)), xp.int8)))


def first_true_index(xp, mask) -> tuple:
    """The index tuple of the first True of ``mask`` (which holds one), in ``mask``'s shape:
    ``first_true`` unravelled, for an error message that names the element."""
    return unravel(first_true(xp, mask), mask.shape)


def unravel(flat: int, shape) -> tuple:
    """The flat (row-major) position ``flat`` as an index tuple of an array of ``shape``."""
    index = []
    for size in reversed(tuple(shape)):
        flat, r = divmod(flat, size)
        index.append(r)
    return tuple(reversed(index))
