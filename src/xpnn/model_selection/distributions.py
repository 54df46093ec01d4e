"""Search spaces: where RandomSearch draws a hyper-parameter from and what BayesSearch asks
Optuna to suggest: Choice, Uniform, LogUniform, IntUniform."""

from __future__ import annotations

import math

import numpy as np

from .._checks import integer, number

__all__ = ["Distribution", "Choice", "Uniform", "LogUniform", "IntUniform"]


class Distribution:
    """Where a hyper-parameter is drawn from. ``sample(rng)`` draws a Python value with a
    NumPy Generator (RandomSearch); ``suggest(trial, name)`` asks an Optuna trial (BayesSearch);
    ``decode(stored)`` turns what Optuna stored back into the value."""

    def sample(self, rng):
        raise NotImplementedError

    def suggest(self, trial, name):
        raise NotImplementedError

    def decode(self, stored):
        return stored

    def size(self):
        """The number of distinct values, or None for a continuous range."""
        return None

    def values(self):
        """Every value, in order (discrete distributions only)."""
        raise NotImplementedError


class Choice(Distribution):
    """One of ``options``, each equally likely (a plain list means the same)."""

    _OPTUNA_TYPES = (type(None), bool, int, float, str)

    def __init__(self, options):
        if isinstance(options, (str, bytes)) or not hasattr(options, "__iter__"):
            raise TypeError(f"Choice: options must be a list of values, found {options!r}")
        self.options = [python_value(o) for o in options]
        if not self.options:
            raise ValueError("Choice: options is empty; give at least one value")
        # Optuna stores only None, bool, int, float and str; other options (a tuple of layer
        # sizes, an optimizer object) are suggested by their index and decoded back.
        self._by_index = not all(type(o) in self._OPTUNA_TYPES for o in self.options)

    def __repr__(self) -> str:
        return f"Choice({self.options!r})"

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def suggest(self, trial, name):
        if self._by_index:
            return self.options[trial.suggest_categorical(name, list(range(len(self.options))))]
        return trial.suggest_categorical(name, self.options)

    def decode(self, stored):
        return self.options[stored] if self._by_index else stored

    def size(self):
        return len(self.options)

    def values(self):
        return list(self.options)


class Uniform(Distribution):
    """A float uniformly in [low, high)."""

    def __init__(self, low, high):
        where = type(self).__name__
        self.low, self.high = number(low, "low", where), number(high, "high", where)
        if not self.low < self.high:
            raise ValueError(f"{where}: low must be below high, found low={low!r}, high={high!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.low!r}, {self.high!r})"

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high)


class LogUniform(Uniform):
    """A float in [low, high) whose logarithm is uniform: as likely in [1e-4, 1e-3) as in
    [1e-3, 1e-2). The usual prior for learning rates and weight decays. Needs 0 < low."""

    def __init__(self, low, high):
        super().__init__(low, high)
        if self.low <= 0.0:
            raise ValueError(f"LogUniform: low must be positive (it is a logarithmic range), found {low!r}")

    def sample(self, rng):
        value = math.exp(float(rng.uniform(math.log(self.low), math.log(self.high))))
        return min(max(value, self.low), self.high)  # exp(log(x)) may round just outside

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high, log=True)


class IntUniform(Distribution):
    """An integer in [low, high], both ends included, each equally likely; with
    ``log=True``, its logarithm roughly uniform instead (16 to 32 as likely as 128 to 256:
    the usual prior for layer widths; needs 1 <= low)."""

    def __init__(self, low, high, log: bool = False):
        low, high = integer(low, "low", "IntUniform"), integer(high, "high", "IntUniform")
        if low > high:
            raise ValueError(f"IntUniform: low must not exceed high, found low={low!r}, high={high!r}")
        if not isinstance(log, bool):
            raise TypeError(f"IntUniform: log must be True or False, found {log!r}")
        if log and low < 1:
            raise ValueError(f"IntUniform: log=True needs low >= 1 (a logarithmic range), found low={low}")
        self.low, self.high, self.log = low, high, log

    def __repr__(self) -> str:
        return f"IntUniform({self.low}, {self.high}{', log=True' if self.log else ''})"

    def sample(self, rng):
        if self.log:  # as Optuna: uniform in [log(low - 0.5), log(high + 0.5)), rounded
            value = round(math.exp(float(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))))
            return int(min(max(value, self.low), self.high))
        return int(rng.integers(self.low, self.high + 1))

    def suggest(self, trial, name):
        if self.log:
            return trial.suggest_int(name, self.low, self.high, log=True)
        return trial.suggest_int(name, self.low, self.high)

    def size(self):
        return self.high - self.low + 1

    def values(self):
        return list(range(self.low, self.high + 1))


def python_value(value):
    """NumPy scalars as Python numbers: a NumPy float64 reaching a model would upcast float32.
    (Not in __all__: GridSearch's grids go through it too.)"""
    return value.item() if isinstance(value, np.generic) else value
