"""`twin schema`: the JSON Schema of scenario files, with the bounds every scenario keeps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from twin.commands.common import out
from twin.errors import InputError

ORDER = 60


def cmd_schema(args: argparse.Namespace) -> int:
    from twin.scenario import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        target = Path(args.output)
        try:
            if target.is_dir():
                raise InputError(f"{target} is a directory; give a file name for the schema")
            target.write_text(text + "\n", encoding="utf-8")
        except ValueError:  # a NUL byte in the path
            raise InputError(f"not a valid file path: {args.output!r}") from None
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        out.print(f"wrote {target}", markup=False)
    else:
        print(text)
    return 0


def _bounds() -> str:
    from twin.schema import BOUNDS

    return "; ".join(f"{k}: {v}" for k, v in BOUNDS.items())


def register(sub: Any) -> None:
    s = sub.add_parser(
        "schema",
        help="print the JSON Schema of scenario files",
        description="Print the JSON Schema of scenario files, for editor completion. Every "
        "scenario keeps these bounds, so that a valid one finishes in bounded time and memory: "
        + _bounds()
        + ".",
    )
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.set_defaults(func=cmd_schema)
