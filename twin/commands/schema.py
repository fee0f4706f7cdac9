"""`twin schema`: the JSON Schema of scenario files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from twin.commands.common import out

ORDER = 60


def cmd_schema(args: argparse.Namespace) -> int:
    from twin.scenario import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
        out.print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser(
        "schema",
        help="print the JSON Schema of scenario files",
        description="Print the JSON Schema of scenario files, for editor completion.",
    )
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.set_defaults(func=cmd_schema)
