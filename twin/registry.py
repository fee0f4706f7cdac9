"""Plug-in discovery shared by the technique and detector registries."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def discover(
    package: str, path: Iterable[str], base: type, skip: frozenset[str] = frozenset({"base"})
) -> dict[str, type]:
    """Every subclass of `base` that declares its own `name`, in the modules of `package`.

    Modules are imported in name order so the registry is the same on every machine.
    """
    found: dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if info.name in skip:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, base) and "name" in vars(obj):
                name = vars(obj)["name"]
                if name in found and found[name] is not obj:
                    raise TypeError(f"two {base.__name__} classes are named {name!r}")
                found[name] = obj
    return found
