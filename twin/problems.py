"""Problems located by field path: pydantic's errors as problems, suggestions, NaN finders."""

from __future__ import annotations

import difflib
import math
import typing
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
            words.update(_names(model))
    return sorted(words)


def _names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The one model an annotation holds (through Optional, list and dict), if exactly one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = {m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None}
    return found.pop() if len(found) == 1 else None


def fields_at(root: type[BaseModel] | None, loc: list[Any]) -> list[str]:
    """The field names valid where `loc` points (its last part is the unknown field).

    Walks the models from `root`; where the walk cannot tell (a union of models, free-form
    data), every field name the schema knows, so a suggestion is still offered.
    """
    model = root
    for part in loc[:-1]:
        if model is None:
            break
        if isinstance(part, int) or part not in model.model_fields:
            continue  # an index into a list or a key of a dict of models: same model
        model = _model_in(model.model_fields[str(part)].annotation)
    return _names(model) if model is not None else _vocabulary()


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    # never the word itself: a field valid elsewhere (a scenario's `seed` in a facility file)
    # is not a typo of itself
    others = [c for c in choices if c != word]
    close = difflib.get_close_matches(str(word), others, n=1, cutoff=0.6)
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


def pydantic_problems(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    """Pydantic's errors as located problems; `model` (what was validated) sharpens suggestions."""
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            msg = f"unknown field {name!r}{suggest(name, fields_at(model, loc))}"
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
