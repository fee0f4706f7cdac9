"""Small pieces the pages share: scenario choices, checked scenario loading, messages, tables."""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Any

from dash import html

from twin.errors import ScenarioError
from twin.schema import ScenarioSpec

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
UPLOAD_CAP = 256 * 1024  # bytes; scenario files are small


def shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.yaml"))} if SCENARIOS.is_dir() else {}


def scenario_options() -> list[dict[str, str]]:
    return [{"label": name, "value": name} for name in shipped()]


@lru_cache(maxsize=32)
def _load_shipped(name: str) -> ScenarioSpec:
    from twin.scenario import load_scenario

    return load_scenario(shipped()[name])


def load_shipped(name: Any, design: Any = None) -> ScenarioSpec:
    """A shipped scenario by name (a name not shipped is refused, never read as a path)."""
    if not isinstance(name, str) or name not in shipped():
        raise ScenarioError([_problem("scenario", f"no shipped scenario {name!r}")])
    return with_design(_load_shipped(name), design)


def with_design(spec: ScenarioSpec, design: Any) -> ScenarioSpec:
    if design in (None, "", spec.design):
        return spec
    designs = designs_of(spec)
    if design not in designs:
        raise ScenarioError(
            [
                _problem(
                    "design", f"unknown design {design!r}; the facility has: {', '.join(designs)}"
                )
            ]
        )
    return spec.model_copy(update={"design": design})


def designs_of(spec: ScenarioSpec) -> list[str]:
    from twin.scenario import facility_of

    return list(facility_of(spec).designs)


def parse_upload(contents: Any) -> tuple[ScenarioSpec | None, str, list[str]]:
    """Check an uploaded scenario as `twin validate` does: (spec, text, problems with paths)."""

    if not isinstance(contents, str) or "," not in contents:
        return None, "", ["the upload is not a file"]
    try:
        data = base64.b64decode(contents.split(",", 1)[1], validate=True)
    except ValueError:
        return None, "", ["the upload is not valid base64"]
    if len(data) > UPLOAD_CAP:
        return None, "", [f"the file is larger than {UPLOAD_CAP // 1024} KiB"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "", ["the file is not UTF-8 text"]
    return parse_text(text)


def parse_text(text: str) -> tuple[ScenarioSpec | None, str, list[str]]:
    from twin.loader import parse_yaml
    from twin.scenario import parse_scenario

    try:
        raw = parse_yaml(text, "uploaded scenario")
        # facility paths are read relative to the shipped scenarios (facilities/...)
        spec, problems = parse_scenario(raw, SCENARIOS)
    except ScenarioError as exc:
        return None, text, [str(p) for p in exc.problems]
    except Exception as exc:  # any YAML the loader refuses is a problem to show, not a crash
        return None, text, [f"{type(exc).__name__}: {exc}"]
    if problems or spec is None:
        return None, text, [str(p) for p in problems]
    return spec, text, []


def _problem(path: str, message: str) -> Any:
    from twin.errors import Problem

    return Problem(path, message)


def message(text: str, ok: bool = False) -> html.Div:
    return html.Div(text, className="message " + ("ok" if ok else "error"))


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, **kw: Any) -> html.Table:
    cols = columns or (list(rows[0]) if rows else [])
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(c) for c in cols])),
            html.Tbody([html.Tr([html.Td(_cell(r.get(c))) for c in cols]) for r in rows]),
        ],
        className="simple",
        **kw,
    )


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else v
