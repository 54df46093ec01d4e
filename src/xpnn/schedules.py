"""Learning-rate schedules: ``schedule(step) -> lr`` as a Python float.

Give one to an optimizer as its lr (``Adam(lr=CosineDecay(1e-3, total_steps=1000))``);
the optimizer calls it with the number of steps taken so far (0 for the first update).
Each schedule has ``config()``; ``get_schedule(config)`` rebuilds it (save/load).
"""

from __future__ import annotations

import math

from ._checks import non_negative_int, number, positive_int, positive_number
from .registry import Registry

__all__ = [
    "Schedule",
    "StepDecay",
    "ExponentialDecay",
    "CosineDecay",
    "LinearWarmup",
    "SCHEDULES",
    "register_schedule",
    "get_schedule",
]


class Schedule:
    """Base class: ``__call__(step) -> float`` and ``config()``."""

    name = "schedule"

    def __call__(self, step) -> float:
        return float(self.value(non_negative_int(step, "step", type(self).__name__)))

    def value(self, step: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments as JSON-able values, plus ``"name"``."""
        return {"name": self.name, **self._args()}

    def _args(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._args().items())})"


# name -> Schedule class: what optimizer configs (model files) read
SCHEDULES = Registry("schedule", "xpnn.schedules.register_schedule", Schedule)


def register_schedule(cls):
    """Make a Schedule subclass known by its ``name`` to ``get_schedule`` and model files
    (use as a class decorator); its ``_args()`` must return its constructor arguments."""
    return SCHEDULES.register(cls)


@register_schedule
class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps: ``lr * gamma ** (step // step_size)``."""

    name = "step_decay"

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        self.lr = positive_number(lr, "lr", "StepDecay")
        self.step_size = positive_int(step_size, "step_size", "StepDecay")
        self.gamma = positive_number(gamma, "gamma", "StepDecay")

    def value(self, step):
        return self.lr * self.gamma ** (step // self.step_size)

    def _args(self):
        return {"lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


@register_schedule
class ExponentialDecay(Schedule):
    """Smooth decay: ``lr * gamma ** step``."""

    name = "exponential_decay"

    def __init__(self, lr: float, gamma: float):
        self.lr = positive_number(lr, "lr", "ExponentialDecay")
        self.gamma = positive_number(gamma, "gamma", "ExponentialDecay")

    def value(self, step):
        return self.lr * self.gamma**step

    def _args(self):
        return {"lr": self.lr, "gamma": self.gamma}


@register_schedule
class CosineDecay(Schedule):
    """Half a cosine from ``lr`` down to ``min_lr`` over ``total_steps``, then ``min_lr``:

    min_lr + (lr - min_lr) * (1 + cos(pi * min(step, total_steps) / total_steps)) / 2
    """

    name = "cosine_decay"

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0):
        self.lr = positive_number(lr, "lr", "CosineDecay")
        self.total_steps = positive_int(total_steps, "total_steps", "CosineDecay")
        self.min_lr = number(min_lr, "min_lr", "CosineDecay", low=0.0, high=self.lr)  # in [0, lr]: it decays down

    def value(self, step):
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _args(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "min_lr": self.min_lr}


@register_schedule
class LinearWarmup(Schedule):
    """Ramp up linearly for ``warmup_steps`` steps, then follow the wrapped schedule.

    With ``base`` the wrapped schedule (a float lr is a constant schedule):

        step < warmup_steps:   base(0) * (step + 1) / warmup_steps    (base(0)/warmup ... base(0))
        step >= warmup_steps:  base(step - warmup_steps)              (the base starts after warmup)
    """

    name = "linear_warmup"

    def __init__(self, schedule_or_lr, warmup_steps: int):
        if isinstance(schedule_or_lr, dict):
            schedule_or_lr = get_schedule(schedule_or_lr)
        if not isinstance(schedule_or_lr, Schedule):
            schedule_or_lr = positive_number(schedule_or_lr, "schedule_or_lr (a Schedule or an lr)", "LinearWarmup")
        self.schedule = schedule_or_lr
        self.warmup_steps = positive_int(warmup_steps, "warmup_steps", "LinearWarmup")

    def _base(self, step: int) -> float:
        return self.schedule(step) if isinstance(self.schedule, Schedule) else self.schedule

    def value(self, step):
        if step < self.warmup_steps:
            return self._base(0) * (step + 1) / self.warmup_steps
        return self._base(step - self.warmup_steps)

    def _args(self):
        base = self.schedule.config() if isinstance(self.schedule, Schedule) else self.schedule
        return {"schedule": base, "warmup_steps": self.warmup_steps}

    def __repr__(self) -> str:
        return f"LinearWarmup({self.schedule!r}, warmup_steps={self.warmup_steps})"


def get_schedule(config) -> Schedule:
    """Rebuild a schedule from its ``config()`` dict (a Schedule is returned as is)."""
    if isinstance(config, Schedule):
        return config
    cls = SCHEDULES.lookup(config.get("name")) if isinstance(config, dict) else None
    if cls is None:
        found = config.get("name") if isinstance(config, dict) else config
        raise ValueError(
            f"get_schedule: expected a config dict with 'name' one of {sorted(SCHEDULES)}, found {found!r}"
        )
    args = {k: v for k, v in config.items() if k != "name"}
    if config["name"] == "linear_warmup" and "schedule" in args:
        args["schedule_or_lr"] = args.pop("schedule")
    try:
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"get_schedule: bad arguments for {config['name']!r}: {exc}") from None
