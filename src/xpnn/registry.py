"""Registry: the one way a name in a model file or a config becomes a class.

Each kind has one registry, filled by its decorator where the class is defined:

    LAYERS      register_layer      (xpnn.layers)     by class name: "Dense"
    LOSSES      register_loss       (xpnn.losses)     by ``name``: "mse"
    OPTIMIZERS  register_optimizer  (xpnn.optimizers) by ``name``: "adam"
    SCHEDULES   register_schedule   (xpnn.schedules)  by ``name``: "cosine_decay"
    CALLBACKS   register_callback   (xpnn.callbacks)  by ``name``: "early_stopping"
    BACKENDS    register_backend    (xpnn.backends)   by ``name``: "numpy"

A registered class saves into a model file under its name and loads back from it (a
user's own loss or optimizer included); an unregistered one is refused when saving, not
when loading. Two classes under one name are an error: a saved name must mean one thing.
A registry is a dict (name -> class, in the order registered), so it reads as one.
"""

from __future__ import annotations

from typing import Callable


def _by_name(cls) -> str:
    return cls.__dict__.get("name")  # its own, not inherited: a subclass needs a name of its own


class Registry(dict):
    """name -> class for one kind of thing a model file or config names.

    Args:
        kind: what is registered ("loss"), for the error messages.
        decorator: the public name of the decorator ("xpnn.losses.register_loss"), for them too.
        base: the class every entry must subclass (``base`` may also be set once it is defined).
        key: the name of a class; by default its own ``name`` attribute.
        normalize: how a name looked up is written before the lookup (``str.lower``: "Adam"
            finds "adam"); registered names are stored normalized.
    """

    def __init__(
        self,
        kind: str,
        decorator: str,
        base: type | None = None,
        key: Callable[[type], str | None] = _by_name,
        normalize: Callable[[str], str] = lambda name: name,
    ):
        super().__init__()
        self.kind, self.decorator, self.key, self.normalize = kind, decorator, key, normalize
        self.base = base

    def register(self, cls):
        """Add ``cls`` under its name; returns it (so this is a class decorator)."""
        where = self.decorator.rsplit(".", 1)[-1]
        if self.base is not None and not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{where}: expected a subclass of {self.base.__name__}, found {cls!r}")
        name = self.key(cls)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{where}: {cls.__name__} needs a name of its own (a class attribute name = '...'), found {name!r}"
            )
        name = self.normalize(name)
        known = self.get(name)
        # the same class defined again (a module reloaded, a notebook cell run twice) replaces itself
        if known is not None and known is not cls and _qualified(known) != _qualified(cls):
            raise ValueError(
                f"{where}: a {self.kind} named {name!r} is already registered ({_qualified(known)}); "
                f"give {cls.__name__} another name"
            )
        self[name] = cls
        return cls

    def lookup(self, name):
        """The class registered under ``name`` (normalized), or None."""
        return self.get(self.normalize(name)) if isinstance(name, str) else None

    def name_of(self, obj, where: str) -> str:
        """The name ``obj``'s class is registered under (what a model file records); a
        ValueError saying how to register it if it is not."""
        cls = type(obj)
        name = self.key(cls)
        if not isinstance(name, str) or self.lookup(name) is not cls:
            raise ValueError(
                f"{where}: the {self.kind} {cls.__name__} is not registered for saving (a model file could not "
                f"load it again); decorate its class with @{self.decorator}"
            )
        return self.normalize(name)


def _qualified(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
