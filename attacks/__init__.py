"""Attack techniques by name: every Technique subclass in this package's modules is registered."""

from __future__ import annotations

import importlib
import pkgutil

from attacks.base import Technique


def _discover() -> dict[str, type[Technique]]:
    found: dict[str, type[Technique]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Technique) and "name" in vars(obj):
                if obj.name in found and found[obj.name] is not obj:
                    raise TypeError(f"two techniques named {obj.name!r}")
                found[obj.name] = obj
    return found


TECHNIQUES: dict[str, type[Technique]] = _discover()

__all__ = ["TECHNIQUES", "Technique"]
