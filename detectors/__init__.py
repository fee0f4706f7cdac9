"""Detectors by name: the built-in registry plus the `twin.detectors` entry-point group."""

from __future__ import annotations

import inspect
import math
import types
import typing
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


MAX_COUNT = 1_000_000  # an integer parameter (windows, rounds, sizes) is at most this
MAX_NUMBER = 1e12  # a real parameter is finite and at most this in size
MAX_ITEMS = 1_000  # a list parameter has at most this many items


def _mismatch(value: Any, hint: Any, name: str) -> str | None:
    """Why `value` is not of the annotated type `hint` within the bounds above, or None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return _non_finite(value)
    if hint is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number, got {value!r}"
        top = 2**32 - 1 if name == "seed" else MAX_COUNT
        low = 0 if name == "seed" else -MAX_COUNT
        return None if low <= value <= top else f"{value} is outside {low}..{top}"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            return f"{value} is not a finite number of at most {MAX_NUMBER:g}"
        return None
    if hint is str:
        return None if isinstance(value, str) else f"expected text, got {value!r}"
    if origin is typing.Literal:
        return None if value in args else f"expected one of {', '.join(map(repr, args))}"
    if origin in (typing.Union, types.UnionType):
        reasons = [_mismatch(value, a, name) for a in args]
        return None if any(r is None for r in reasons) else next(r for r in reasons if r)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return f"expected a list, got {value!r}"
        if len(value) > MAX_ITEMS:
            return f"{len(value)} items; at most {MAX_ITEMS}"
        item = args[0] if args else Any
        return next((r for v in value if (r := _mismatch(v, item, name))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return f"expected a mapping, got {value!r}"
        return next((r for v in value.values() if (r := _mismatch(v, args[1], name))), None)
    return _non_finite(value)


def _non_finite(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return next((r for v in value if (r := _non_finite(v))), None)
    return None


def check_params(cls: type[Detector], params: dict[str, Any]) -> list[Problem]:
    """Problems with a detector's parameters (paths relative to its params), without fitting.

    Each value must be of its annotated type (a real boolean: the text "no" is not false),
    finite and within the bounds above; then the detector's own checks run.
    """
    from twin.problems import suggest

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    problems = [
        Problem(
            f".{k}",
            f"unknown parameter {k!r} of {cls.name}{suggest(str(k), allowed)}; it takes: {', '.join(allowed) or 'none'}",
        )
        for k in params
        if k not in allowed
    ]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # a plug-in's annotations that do not resolve: its own checks remain
        hints = {}
    for k, value in params.items():
        if k in allowed:
            reason = _mismatch(value, hints.get(k, Any), str(k))
            if reason:
                problems.append(Problem(f".{k}", reason))
    if not problems:
        try:
            cls(**params)
        except (TypeError, ValueError) as exc:
            problems.append(Problem("", str(exc)))
        except Exception as exc:  # a detector that fails oddly on odd input: still a problem
            problems.append(Problem("", f"{type(exc).__name__}: {exc}"))
    return problems


def build(name: str, params: dict[str, Any] | None = None) -> Detector:
    return REGISTRY[name](**(params or {}))


__all__ = ["BUILTIN", "REGISTRY", "Detector", "SiteView", "build", "check_params"]
