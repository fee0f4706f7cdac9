"""The lifecycle and posture audit: a facility read as an asset inventory, findings per rule.

Each finding names the guidance it comes from, so a reviewer can look the rule up:

| rule | checks | guidance |
|---|---|---|
| inventory | device lacks an owner, vendor or firmware version | NIST IR 8259A device identification; CISA CPG 1.A asset inventory |
| default-credentials | device on its factory password | ETSI EN 303 645 provision 5.1-1; CISA CPG 2.A |
| weak-credentials | password from a common wordlist | ETSI EN 303 645 provision 5.1-1; CISA CPG 2.B |
| shared-credentials | one password on several devices | ETSI EN 303 645 provision 5.1-1 (unique per device) |
| insecure-protocol | a cleartext login protocol (telnet, http) crossing a conduit | IEC 62443-3-3 SR 4.1; CISA CPG 2.K |
| unneeded-service | a service open that no conduit of any design needs | IEC 62443-3-3 SR 7.7 least functionality |
| end-of-support | firmware past its support end | CISA CPG 1.E; NIST IR 8259A software update |
| known-exploited | firmware with a listed known exploited vulnerability (critical past its deadline) | CISA KEV, BOD 22-01 deadlines |
| unverified-updates | the device cannot verify the updates it installs | NIST IR 8259A software update; ETSI EN 303 645 provision 5.3 |
| broad-conduit | a conduit that a baseline (attack-free) run used only part of | IEC 62443-3-3 SR 5.1/5.2 zone boundary protection |

The known exploited vulnerability table is data (`twin/data/known_exploited.csv`) with
its source in the file's header.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from twin.schema import FacilitySpec

SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
CLEARTEXT_LOGINS = ("telnet", "http")

RULES = {
    "inventory": "NIST IR 8259A device identification; CISA CPG 1.A asset inventory",
    "default-credentials": "ETSI EN 303 645 5.1-1 (no universal default passwords); CISA CPG 2.A",
    "weak-credentials": "ETSI EN 303 645 5.1-1; CISA CPG 2.B minimum password strength",
    "shared-credentials": "ETSI EN 303 645 5.1-1 (unique per device)",
    "insecure-protocol": "IEC 62443-3-3 SR 4.1 communication confidentiality; CISA CPG 2.K",
    "unneeded-service": "IEC 62443-3-3 SR 7.7 least functionality",
    "end-of-support": "CISA CPG 1.E (no unsupported assets); NIST IR 8259A software update",
    "known-exploited": "CISA Known Exploited Vulnerabilities catalog, BOD 22-01 remediation deadline",
    "unverified-updates": "NIST IR 8259A software update; ETSI EN 303 645 5.3 (authenticated updates)",
    "broad-conduit": "IEC 62443-3-3 SR 5.1/5.2 network segmentation, zone boundary protection",
}


@dataclass(frozen=True)
class KnownExploited:
    cve: str
    vendor: str
    product: str  # a model prefix
    fixed_in: str
    date_added: dt.date
    due_date: dt.date
    name: str
    source: str


@lru_cache(maxsize=1)
def _table() -> tuple[KnownExploited, ...]:
    text = (files("twin") / "data" / "known_exploited.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO("".join(ln for ln in text.splitlines(True) if ln[:1] != "#")))
    return tuple(
        KnownExploited(
            cve=r["cve"],
            vendor=r["vendor"],
            product=r["product"],
            fixed_in=r["fixed_in"],
            date_added=dt.date.fromisoformat(r["date_added"]),
            due_date=dt.date.fromisoformat(r["due_date"]),
            name=r["name"],
            source=r["source"],
        )
        for r in rows
    )


def known_exploited() -> list[KnownExploited]:
    """The shipped known exploited vulnerability table."""
    return list(_table())


def matches(row: KnownExploited, vendor: str, model: str, firmware: str) -> bool:
    """Whether a device of this vendor, model and firmware is affected (firmware before the fix)."""
    from attacks.access import older, version_key

    return (
        vendor.lower() == row.vendor.lower()
        and model.upper().startswith(row.product.upper())
        and bool(version_key(firmware))
        and older(firmware, row.fixed_in)
    )


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    subject: str  # a device (group), a conduit, a vendor
    detail: str

    @property
    def guidance(self) -> str:
        return RULES[self.rule]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "guidance": self.guidance}


def _needed_services(facility: Any) -> dict[str, set[str]]:
    """Per device name, the services some conduit of some design lets others reach it on."""
    from twin.devices.base import SERVICE_PORTS

    needed: dict[str, set[str]] = {d.name: set() for d in facility.devices}
    port_names = {port: name for name, (port, _) in SERVICE_PORTS.items()}
    for design in facility.designs.values():
        for c in design.conduits:
            names = {s if isinstance(s, str) else port_names.get(s, "") for s in c.services}
            for d in facility.resolve(c.to):
                needed[d.name] |= names
    return needed


def audit(
    spec: FacilitySpec,
    raw: dict[str, Any] | None = None,
    today: dt.date | None = None,
    baseline: dict[str, dict[str, Any]] | None = None,
) -> list[Finding]:
    """Every finding for a facility: from its spec, the raw file (what was left out), and
    optionally the per-conduit use of a baseline run (see `conduit_use`)."""
    from twin.facility import Facility

    today = today or dt.date.today()
    site = Facility.build(spec)
    internet = {z.name for z in spec.zones if z.purpose == "internet"}
    own = [d for d in spec.devices if d.zone not in internet]
    raw_devices = {d.get("name"): d for d in (raw or {}).get("devices", []) if isinstance(d, dict)}
    out: list[Finding] = []
    for d in own:
        given = raw_devices.get(d.name, {})
        missing = [k for k in ("owner", "vendor", "firmware") if raw is not None and k not in given]
        missing += [
            k
            for k, v in (("vendor", d.vendor), ("owner", d.owner))
            if v in ("unknown", "nobody", "")
        ]
        if missing:
            out.append(
                Finding(
                    "inventory", "medium", d.name, f"no {', '.join(sorted(set(missing)))} recorded"
                )
            )
        n = f"{d.count} devices" if d.count > 1 else "the device"
        if d.credentials == "default":
            out.append(
                Finding(
                    "default-credentials",
                    "high",
                    d.name,
                    f"{n} {'is' if d.count == 1 else 'are'} still on the factory password",
                )
            )
        elif d.credentials == "weak":
            out.append(
                Finding(
                    "weak-credentials",
                    "medium",
                    d.name,
                    f"{n} {'uses' if d.count == 1 else 'use'} a password from common wordlists",
                )
            )
        if d.support_end is not None and d.support_end < today:
            out.append(Finding("end-of-support", "high", d.name,
                               f"{d.vendor} {d.model} firmware {d.firmware}: support ended {d.support_end}"))  # fmt: skip
        for row in known_exploited():
            if matches(row, d.vendor, d.model, d.firmware):
                late = today > row.due_date
                out.append(Finding(
                    "known-exploited", "critical" if late else "high", d.name,
                    f"{row.cve} ({row.name}; {row.source}) fixed in {row.fixed_in}, firmware "
                    f"{d.firmware}; remediation due {row.due_date}" + (" - overdue" if late else ""),
                ))  # fmt: skip
        if d.update_verification != "signed":
            out.append(Finding("unverified-updates", "medium", d.name,
                               f"{n} installs firmware without verifying its signature"
                               if d.count == 1 else f"{n} install firmware without verifying its signature"))  # fmt: skip
    passwords = Counter(dev.password for dev in site.devices if dev.zone not in internet)
    for group, members in site.groups.items():
        if members[0].zone in internet:
            continue
        shared = {m.password for m in members if passwords[m.password] > 1}
        if shared:
            out.append(Finding("shared-credentials", "medium", group,
                               f"{sum(passwords[p] for p in shared)} devices share a password with it"))  # fmt: skip
    needed = _needed_services(site)
    for group, members in site.groups.items():
        if members[0].zone in internet:
            continue
        extra = sorted(set(members[0].services) - needed[members[0].name])
        if extra:
            sev = "medium" if set(extra) & set(CLEARTEXT_LOGINS) else "low"
            out.append(Finding("unneeded-service", sev, group,
                               f"{', '.join(extra)} open, and no conduit of any design needs it"))  # fmt: skip
    seen: set[tuple[str, str, str]] = set()
    for dname, design in spec.designs.items():
        for c in design.conduits:
            for s in c.services:
                if s in CLEARTEXT_LOGINS and (c.from_, c.to, str(s)) not in seen:
                    seen.add((c.from_, c.to, str(s)))
                    outside = c.from_ in internet or any(
                        dev.zone in internet for dev in site.resolve(c.from_)
                    )
                    out.append(Finding(
                        "insecure-protocol", "high" if outside else "medium", f"{c.from_}->{c.to}",
                        f"{s} (cleartext login) allowed" + (" from the internet" if outside else "")
                        + f" (design {dname})",
                    ))  # fmt: skip
    for name, use in (baseline or {}).items():
        if use["pairs_used"] < use["pairs_allowed"]:
            share = use["pairs_used"] / use["pairs_allowed"] if use["pairs_allowed"] else 0.0
            out.append(Finding(
                "broad-conduit", "low" if use["pairs_used"] else "medium", name,
                f"a baseline run used {use['pairs_used']} of the {use['pairs_allowed']} "
                f"device-service pairs it allows ({share:.0%})",
            ))  # fmt: skip
    return sorted(out, key=lambda f: (-SEVERITY_ORDER.index(f.severity), f.rule, f.subject))


def conduit_use(
    spec: FacilitySpec, design: str, duration: float = 3600.0
) -> dict[str, dict[str, Any]]:
    """Per enforced conduit of a design: device-service pairs it allows, and those an
    attack-free run of `duration` used. Conduits that reach the internet zone by name are
    left out: the addresses behind them are not the site's to enumerate."""
    from twin.engine import Engine
    from twin.network.policy import Policy
    from twin.schema import ScenarioSpec

    scenario = ScenarioSpec(
        name="audit-baseline", facility=spec, design=design, duration=duration,
        warmup=min(900.0, duration / 2), seed=0,
    )  # fmt: skip
    engine = Engine(scenario)
    site = engine.facility
    policy = Policy(site, design, spec.designs[design])
    flows = []
    with engine.net:
        flows.append(engine.run_until(duration).flows)
    used: set[tuple[str, str, int]] = set()
    for f in flows:
        for src, dst, port in zip(f["src_ip"], f["dst_ip"], f["dst_port"], strict=True):
            used.add((str(src), str(dst), int(port)))
    out: dict[str, dict[str, Any]] = {}
    for c in policy.conduits:
        srcs = [d for d in site.devices if d.name in c.src or d.zone in c.src_zones]
        dsts = [d for d in site.devices if d.name in c.dst or d.zone in c.dst_zones]
        internet = set(site.internet_zones())
        if c.src_zones & internet or c.dst_zones & internet:
            continue
        pairs = {
            (s.ip, t.ip, p)
            for s in srcs
            for t in dsts
            for p in c.ports
            if s.name != t.name and p in t.ports
        }
        if pairs:
            out[c.name] = {"pairs_allowed": len(pairs), "pairs_used": len(pairs & used)}
    return out


def vendor_scorecard(spec: FacilitySpec, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Per vendor: devices, and the share on default credentials, past support, with a
    known exploited vulnerability, without verified updates."""
    today = today or dt.date.today()
    internet = {z.name for z in spec.zones if z.purpose == "internet"}
    rows: dict[str, Counter[str]] = {}
    for d in spec.devices:
        if d.zone in internet:
            continue
        c = rows.setdefault(d.vendor, Counter())
        c["devices"] += d.count
        c["default_credentials"] += d.count * (d.credentials == "default")
        c["past_support"] += d.count * (d.support_end is not None and d.support_end < today)
        c["known_exploited"] += d.count * any(
            matches(r, d.vendor, d.model, d.firmware) for r in known_exploited()
        )
        c["unverified_updates"] += d.count * (d.update_verification != "signed")
    out = []
    for vendor, c in sorted(rows.items()):
        n = c["devices"]
        issues = sum(c[k] for k in c if k != "devices")
        out.append({
            "vendor": vendor, "devices": n,
            **{k: round(c[k] / n, 3) for k in ("default_credentials", "past_support",
                                                "known_exploited", "unverified_updates")},
            "score": round(max(0.0, 1.0 - issues / (4 * n)), 3),
        })  # fmt: skip
    return sorted(out, key=lambda r: (r["score"], r["vendor"]))


def at_or_above(findings: list[Finding], severity: str) -> list[Finding]:
    floor = SEVERITY_ORDER.index(severity)
    return [f for f in findings if SEVERITY_ORDER.index(f.severity) >= floor]
