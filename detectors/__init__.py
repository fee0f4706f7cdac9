"""Detectors by name: the built-in registry plus the `twin.detectors` entry-point group."""

from __future__ import annotations

import inspect
import warnings
from importlib.metadata import entry_points
from typing import Any

from detectors.base import Detector, SiteView
from twin.errors import Problem
from twin.registry import discover

BUILTIN: dict[str, type[Detector]] = discover(__name__, __path__, Detector)


def _discover() -> dict[str, type[Detector]]:
    found = dict(BUILTIN)
    for ep in entry_points(group="twin.detectors"):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not break the twin
            warnings.warn(f"detector plug-in {ep.name!r} failed to load: {exc}", stacklevel=2)
            continue
        if isinstance(cls, type) and issubclass(cls, Detector):
            found.setdefault(ep.name, cls)
    return found


REGISTRY: dict[str, type[Detector]] = _discover()


def check_params(cls: type[Detector], params: dict[str, Any]) -> list[Problem]:
    """Problems with a detector's parameters (paths relative to its params), without fitting."""
    from twin.scenario import suggest

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    problems = [
        Problem(
            f".{k}",
            f"unknown parameter {k!r} of {cls.name}{suggest(k, allowed)}; it takes: {', '.join(allowed) or 'none'}",
        )
        for k in params
        if k not in allowed
    ]
    if not problems:
        try:
            cls(**params)
        except (TypeError, ValueError) as exc:
            problems.append(Problem("", str(exc)))
    return problems


def build(name: str, params: dict[str, Any] | None = None) -> Detector:
    return REGISTRY[name](**(params or {}))


__all__ = ["BUILTIN", "REGISTRY", "Detector", "SiteView", "build", "check_params"]
