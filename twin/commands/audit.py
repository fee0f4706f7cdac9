"""`twin audit FACILITY`: the lifecycle and posture audit, as a table or JSON, gating on severity."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from twin.commands.common import SCENARIOS, err, out

ORDER = 50


def resolve_facility(arg: str, quiet: bool = False) -> Path:
    """The facility file to audit: `arg`, a shipped facility's name, or a scenario's facility.

    A scenario (a file, or a shipped scenario's name) names the facility it runs on, so
    `twin audit flagship` audits the flagship's facility, and says so.
    """
    from twin.commands.common import resolve_scenario
    from twin.loader import load_yaml

    path = Path(arg)
    if not (path.exists() or path.suffix in (".yaml", ".yml")):
        shipped = SCENARIOS / "facilities" / f"{arg}.yaml"
        if shipped.exists():
            return shipped
        path = resolve_scenario(arg)
    if not path.is_file():
        return path  # the loader names what is wrong with it
    raw = load_yaml(path, "facility file")
    named = raw.get("facility") if isinstance(raw, dict) else None
    if isinstance(named, str):  # a scenario: its facility file sits relative to it
        facility = (path.parent / named).resolve()
        if not quiet:
            err.print(f"{path} is a scenario: auditing its facility {facility}", markup=False)
        return facility
    if isinstance(named, dict):
        from twin.errors import InputError

        raise InputError(
            f"{path} is a scenario with its facility written inline: "
            "move the facility to a file of its own to audit it"
        )
    return path


def cmd_audit(args: argparse.Namespace) -> int:
    from twin.audit import SEVERITY_ORDER, at_or_above, audit, conduit_use, vendor_scorecard
    from twin.errors import InputError
    from twin.loader import load_yaml
    from twin.scenario import load_facility
    from twin.schema import parse_duration

    path = resolve_facility(args.facility, args.quiet)
    spec = load_facility(path)
    raw = load_yaml(path, "facility file")
    try:
        today = dt.date.fromisoformat(args.date) if args.date else dt.date.today()
    except ValueError:
        raise InputError(f"--date takes YYYY-MM-DD, got {args.date!r}") from None
    try:
        baseline_s = parse_duration(args.baseline)
    except ValueError as exc:
        raise InputError(f"--baseline: {exc}") from None
    designs = (
        [args.design] if args.design else [n for n, d in spec.designs.items() if d.kind != "flat"]
    )
    unknown = [d for d in designs if d not in spec.designs]
    if unknown:
        raise InputError(
            f"unknown design {unknown[0]!r}; the facility has: {', '.join(spec.designs)}"
        )
    use: dict[str, dict[str, Any]] = {}
    if baseline_s > 0:
        for d in designs:
            use.update({f"{d}: {k}": v for k, v in conduit_use(spec, d, baseline_s).items()})
    findings = audit(spec, raw, today, use)
    gated = at_or_above(findings, args.fail_on) if args.fail_on else []
    if args.json:
        doc = {
            "facility": spec.name,
            "date": today.isoformat(),
            "findings": [f.as_dict() for f in findings],
            "vendors": vendor_scorecard(spec, today),
            "counts": {s: sum(f.severity == s for f in findings) for s in SEVERITY_ORDER},
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            Path(args.json).write_text(text + "\n")
    if not args.quiet and args.json != "-":
        t = Table(title=f"audit: {spec.name} ({len(findings)} findings, {today})")
        for col in ("severity", "rule", "subject", "finding", "guidance"):
            t.add_column(col, overflow="fold")
        for f in findings:
            t.add_row(f.severity, f.rule, f.subject, f.detail, f.guidance)
        out.print(t)
        v = Table(title="vendor scorecard (share of devices; score 1 = no issue)")
        for col in ("vendor", "devices", "default creds", "past support", "known exploited",
                    "unverified updates", "score"):  # fmt: skip
            v.add_column(col, justify="left" if col == "vendor" else "right")
        for r in vendor_scorecard(spec, today):
            v.add_row(
                r["vendor"], str(r["devices"]), f"{r['default_credentials']:.0%}",
                f"{r['past_support']:.0%}", f"{r['known_exploited']:.0%}",
                f"{r['unverified_updates']:.0%}", f"{r['score']:.2f}",
            )  # fmt: skip
        out.print(v)
    if gated:
        err.print(f"{len(gated)} finding(s) at or above {args.fail_on}: failing")
        return 1
    return 0


def register(sub: Any) -> None:
    from twin.audit import SEVERITY_ORDER

    a = sub.add_parser(
        "audit",
        help="lifecycle and posture audit of a facility",
        description="Read a facility as an asset inventory and report each finding with the "
        "guidance rule it comes from (NIST IR 8259A, CISA CPGs, CISA KEV, ETSI EN 303 645, "
        "IEC 62443-3-3). Exit 1 when a finding is at or above --fail-on, to gate a pipeline.",
    )
    a.add_argument("facility", help="facility file, or a shipped facility's name (e.g. harbour-dc)")
    a.add_argument(
        "--design", help="design whose conduits a baseline run checks (default: all but flat)"
    )
    a.add_argument(
        "--baseline",
        default="1h",
        help="attack-free run per design to see which conduits traffic uses (default 1h; 0: skip)",
    )
    a.add_argument("--date", help="audit as of this date, YYYY-MM-DD (default today)")
    a.add_argument("--json", metavar="FILE", help="write findings as JSON ('-': stdout, no table)")
    a.add_argument("--fail-on", choices=SEVERITY_ORDER, help="exit 1 at or above this severity")
    a.add_argument("-q", "--quiet", action="store_true")
    a.set_defaults(func=cmd_audit)
