"""array-api-strict: the standard and nothing more, the CPU's stand-in for a GPU.

It has no fast path at all: every primitive runs base.py's generic code, so the CPU suite
proves that code on the standard alone. Arrays live on the fake device "device1" by
default, so an array made without the model's device, or a host array slipped into
device code, raises, as CuPy would on a GPU (which the machine running the suite may not have).
"""

from __future__ import annotations

from .base import Backend, register_backend

HELP = 'backend "array_api_strict" needs array-api-strict: pip install array-api-strict'


@register_backend
class StrictBackend(Backend):
    name = "array_api_strict"

    @classmethod
    def _library(cls):
        try:
            import array_api_strict
        except ImportError:
            raise RuntimeError(HELP) from None
        return array_api_strict

    @classmethod
    def create(cls, device=None) -> "StrictBackend":
        xp = cls._library()
        if device is None:
            device = xp.Device("device1")
        elif isinstance(device, str):
            names = ("CPU_DEVICE", "device1", "device2")
            if device not in names:
                raise ValueError(f'backend "array_api_strict": device must be one of {names}, found {device!r}')
            device = xp.Device(device)
        elif not isinstance(device, xp.Device):
            raise ValueError(
                f'backend "array_api_strict": device must be a device name or array_api_strict.Device, found {device!r}'
            )
        return cls(xp, device, xp)

    @classmethod
    def is_array(cls, a) -> bool:
        return type(a).__module__.split(".")[0] == "array_api_strict"

    @classmethod
    def devices(cls) -> list:
        cls._library()  # xpnn info: available only where array-api-strict imports
        return ["CPU_DEVICE", "device1", "device2"]

    @property
    def device_name(self) -> str:
        return str(self.device._device)
