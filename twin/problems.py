"""Problems located by field path: pydantic's errors as problems, suggestions, NaN finders."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from twin import schema
from twin.errors import Problem
from twin.rundir import NAME_RULE

__all__ = ["NAME_RULE", "field_path", "join", "non_finite_numbers", "pydantic_problems", "suggest"]


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for model in vars(schema).values():
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, info in model.model_fields.items():
                words.add(info.alias or name)
    return sorted(words)


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def field_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    vocabulary = _vocabulary()
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            msg = f"unknown field {name!r}{suggest(name, vocabulary)}"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == schema.NAME:
            msg = f"{err.get('input')!r} cannot name a run directory: use {NAME_RULE}"
        else:
            msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            given = err.get("input")
            if kind not in ("value_error",) and isinstance(given, str | int | float):
                msg += f" (got {given!r})"
        problems.append(Problem(join(prefix, field_path(loc)), msg))
    return problems


def non_finite_numbers(raw: Any, prefix: str = "") -> list[Problem]:
    """A problem for every NaN or infinity in a raw document, at its field path."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(prefix, raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(path, f"{value} is not a finite number"))
        elif isinstance(value, dict):
            stack.extend((join(path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
    return sorted(problems, key=lambda p: p.path)
