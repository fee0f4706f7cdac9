"""The `twin` subcommands: one module each, found here and ordered by their `ORDER`.

A command module defines `ORDER` (its place in `twin --help`) and `register(sub)`, which
adds its parser to the subparsers `sub` and sets `func` to the function that runs it and
returns an exit status. Heavy imports stay inside those functions, so `--help` is quick.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def modules() -> list[ModuleType]:
    """Every command module of this package, in `twin --help` order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
