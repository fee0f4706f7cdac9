"""Device identity and firmware attestation: the asset inventory is the ground truth (zero trust)."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, summarise
from twin import evidence
from twin.telemetry import Alert, TelemetryBatch

FIRMWARE_EVENTS = ("firmware_report",)
ROGUE_EVENTS = ("new_device", "port_security_violation")
LOGIN_EVENTS = ("login_failed", "account_locked")
ATTEMPT_EVENTS = ("login_ok", "login_failed")  # a device's log of a login, either way
# kinds a person logs in from; every other device is embedded and never a login's client
INTERACTIVE_KINDS = ("workstation", "bms")


class Identity(Detector):
    """Holds every device to what the inventory (plus the warm-up) says it is.

    - Firmware attestation: a `firmware_report` whose version or hash is neither the
      inventory's nor one the device attested in the warm-up is critical (T0839, module
      firmware; T0857 when only the hash changed); once per image, re-armed by a clean report.
    - Rogue devices (T0848): a switch's `new_device` or `port_security_violation` for an
      address or MAC the inventory does not hold (or a MAC claiming another device's
      address); traffic from, or answered by, an address in a site zone that the inventory
      does not list. Each address once.
    - Changed fingerprint (`check_services`): a device using, as a client, a destination port
      it never used in the warm-up and no documented conduit covers, or answering on a
      port it does not serve (a session carrying data, not a probe). Once per device and
      port with `learn_online`, else every batch.
    - Login bursts (T1110): `max_failures` failed logins at one device within `window_s`, or
      an account lockout; once per burst (until the device has been quiet for `window_s`).
    - Logins from embedded devices (T0886, remote services): a login, good or bad, whose
      client is a camera, controller, sensor, recorder or gateway of the inventory (a kind
      no person logs in from) that was not a login client in the warm-up; each client and
      device once. An intruder pivoting from a device it took logs in from it, over paths
      the site allows.
    """

    name = "identity"
    summary = "firmware attestation against the inventory, rogue devices, changed fingerprints, login bursts, logins from embedded devices"
    reference_scenario = "office-night-entry"

    def __init__(
        self,
        window_s: float = 3600.0,
        max_failures: int = 5,
        check_services: bool = True,
        learn_online: bool = True,
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        self.window_s = window_s
        self.max_failures = max_failures
        self.check_services = check_services
        self.learn_online = learn_online

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        fac = site.facility
        self.site_ = site
        self.macs_ = {d.mac.lower(): d for d in fac.devices}
        self.images_ = {d.name: {(d.firmware, d.firmware_hash)} for d in fac.devices}
        for r in _reports(baseline.events).itertuples():
            self.images_.setdefault(r.device, set()).add((r.version, r.digest))
        self.site_zones_ = {z.name for z in fac.zones.values() if z.purpose != "internet"}
        f = baseline.flows
        c = Columns(f)
        self.client_ = {
            (s, int(p)) for s, p in set(zip(c.src, c.port, strict=True)) if s in fac.by_ip
        }
        self.server_ = {(d.ip, p) for d in fac.devices for p in d.ports}
        served = _sessions(f)
        self.server_ |= set(zip(served["dst_ip"], served["dst_port"].astype(int), strict=True))
        self.documented_: dict[tuple[str, str, int], bool] = {}
        self.flagged_: set[tuple[str, ...]] = set()
        # device -> recent (t, source, event id)
        self.failures_: dict[str, list[tuple[float, str, int]]] = {}
        self.burst_: dict[str, float] = {}  # device -> last failure of an alerted burst
        self.embedded_ = {ip: d for ip, d in fac.by_ip.items() if d.kind not in INTERACTIVE_KINDS}
        ev = baseline.events
        tried = ev[ev["kind"].isin(ATTEMPT_EVENTS)] if len(ev) else ev
        self.login_clients_ = set(tried["src_ip"].astype(str)) if len(tried) else set()
        self.pivots_: set[tuple[str, str]] = set()  # (client, device) alerted
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        alerts: list[Alert] = []
        ev = batch.events
        if len(ev):
            kind = ev["kind"].to_numpy(dtype=object)
            checks = [(FIRMWARE_EVENTS, self._firmware), (ROGUE_EVENTS, self._newcomers),
                      (LOGIN_EVENTS, self._logins), (ATTEMPT_EVENTS, self._pivots)]  # fmt: skip
            for kinds, check in checks:
                mask = np.isin(kind, kinds)
                if mask.any():
                    alerts += check(ev[mask])
        f = batch.flows
        if len(f):
            cols = Columns(f)
            alerts += self._strangers(cols)
            if self.check_services:
                alerts += self._fingerprint(f, cols)
        return sorted(alerts, key=lambda a: (a.t, a.device, a.reason))

    def _alert(
        self,
        t: float,
        severity: str,
        technique: str,
        device: str,
        src: str,
        dst: str,
        why: str,
        cited: tuple[str, ...],
    ) -> Alert:
        return Alert(
            float(t), self.name, severity, device, src, dst, technique, why, evidence=cited
        )

    def _firmware(self, events: pd.DataFrame) -> list[Alert]:
        out = []
        for r in _reports(events).itertuples():
            images = self.images_.get(r.device)
            if images is not None and (r.version, r.digest) in images:
                self.flagged_ = {k for k in self.flagged_ if k[:2] != ("fw", r.device)}  # clean
                continue
            key = ("fw", r.device, r.version, r.digest)
            if key in self.flagged_:
                continue
            self.flagged_.add(key)
            if images is None:
                why = f"firmware report from {r.device} ({r.ip}), which the inventory does not list"
                out.append(
                    self._alert(
                        r.t,
                        "high",
                        "T0848",
                        r.device,
                        r.ip,
                        "",
                        why,
                        evidence.events((r.event_id,)),
                    )
                )
                continue
            want = ", ".join(sorted(f"{v} {h[:12]}" for v, h in images))
            same = any(v == r.version for v, _ in images)  # a doctored build under a known name
            why = f"{r.device} attests firmware {r.version} {r.digest[:12]}; inventory: {want}"
            why += " (same version, different image)" if same else ""
            technique = "T0857" if same else "T0839"
            cited = evidence.events((r.event_id,)) + evidence.signals([evidence.firmware(r.device)])
            out.append(self._alert(r.t, "critical", technique, r.device, "", r.ip, why, cited))
        return out

    def _newcomers(self, ev: pd.DataFrame) -> list[Alert]:
        out = []
        for r in ev.itertuples():
            mac, ip = str(r.detail).lower(), str(r.src_ip)
            owner = self.macs_.get(mac)
            if owner is not None and owner.ip == ip:
                continue  # a known device reconnected
            key = ("new", ip, mac)
            if key in self.flagged_:
                continue
            self.flagged_.add(key)
            claimed = self.site_.device(ip)
            who = claimed.name if claimed is not None else ip
            why = (
                f"MAC {mac} claims the address of {who}"
                if claimed
                else f"unknown device {mac} at {ip}"
            )
            refused = r.kind == "port_security_violation"
            why += f" on {r.device}" + (" (refused by port security)" if refused else "")
            severity = "medium" if refused else "high"
            cited = evidence.events((r.event_id,))
            out.append(self._alert(r.t, severity, "T0848", who, ip, "", why, cited))
        return out

    def _strangers(self, c: Columns) -> list[Alert]:
        """Addresses in site zones that the inventory does not list, talking or answering."""
        by_ip, out = self.site_.facility.by_ip, []
        talking = set(c.src) - by_ip.keys()
        answering = set(c.dst[(c.packets_rev > 0) & ~c.blocked]) - by_ip.keys()
        for how, ips, col in (("sends traffic", talking, c.src), ("answers", answering, c.dst)):
            for ip in sorted(ips):
                zone = self.site_.zone(ip)
                if ("ip", ip) in self.flagged_ or zone not in self.site_zones_:
                    continue
                self.flagged_.add(("ip", ip))
                why = f"{ip} in zone {zone} {how} but is not in the inventory"
                cited = evidence.flows(c.ids[col == ip])
                out.append(
                    self._alert(c.t[col == ip].min(), "high", "T0848", ip, ip, "", why, cited)
                )
        return out

    def _documented(self, src: str, dst: str, port: int) -> bool:
        key = (src, dst, port)
        if key not in self.documented_:
            self.documented_[key] = self.site_.policy.conduit_for(src, dst, port) is not None
        return self.documented_[key]

    def _fingerprint(self, f: pd.DataFrame, c: Columns) -> list[Alert]:
        """New client ports no conduit documents, and new served ports, per inventory device."""
        by_ip, out = self.site_.facility.by_ip, []
        paths = set(zip(c.src, c.port, c.dst, strict=True))
        new = sorted(
            (s, p, d)
            for s, p, d in paths
            if s in by_ip and (s, p) not in self.client_ and not self._documented(s, d, p)
        )
        for src in sorted({s for s, _, _ in new}):
            mine = [(p, d) for s, p, d in new if s == src]
            ports = sorted({p for p, _ in mine})
            peers = list(dict.fromkeys(self.site_.name(d) for _, d in mine))
            used_now = (c.src == src) & np.isin(c.port, ports)
            t = c.t[used_now].min()
            dst = mine[0][1] if len(peers) == 1 else ""
            name, used = by_ip[src].name, summarise([str(p) for p in ports])
            why = f"{name} now uses port{'s' * (len(ports) > 1)} {used} (never in the warm-up, no conduit) to {summarise(peers)}"
            out.append(
                self._alert(
                    t, "medium", "T0869", name, src, dst, why, evidence.flows(c.ids[used_now])
                )
            )
        offers = {
            (d, p) for d, p in set(zip(c.dst, c.port, strict=True)) if d in by_ip
        } - self.server_
        if offers:  # only then look at whether data flowed: a probe's SYN/RST is not a service
            rows = np.array([(d, p) in offers for d, p in zip(c.dst, c.port, strict=True)])
            served = _sessions(f[rows])
            offers = set(zip(served["dst_ip"], served["dst_port"].astype(int), strict=True))
            for dst in sorted({d for d, _ in offers}):
                ports = sorted(p for d, p in offers if d == dst)
                mine = served["dst_ip"] == dst
                t = served["t_export"][mine].min()
                name, on = by_ip[dst].name, summarise([str(p) for p in ports])
                why = f"{name} answers on port {on}, a service it does not offer"
                cited = evidence.flows(served["flow_id"][mine])
                out.append(self._alert(t, "medium", "T0839", name, "", dst, why, cited))
        if self.learn_online:
            self.client_.update((s, p) for s, p, _ in new)
            self.server_.update(offers)
        return out

    def _logins(self, ev: pd.DataFrame) -> list[Alert]:
        """Bursts of failed logins (or a lockout) per device, once per burst."""
        out = []
        for r in ev.sort_values("t", kind="stable").itertuples():
            t, device = float(r.t), str(r.device)
            recent = [x for x in self.failures_.get(device, []) if x[0] > t - self.window_s]
            recent.append((t, str(r.src_ip), int(r.event_id)))
            self.failures_[device] = recent
            if t - self.burst_.get(device, -np.inf) <= self.window_s:
                self.burst_[device] = t  # the same burst goes on
                continue
            if r.kind != "account_locked" and len(recent) < self.max_failures:
                continue
            self.burst_[device] = t
            sources = pd.Series([s for _, s, _ in recent if s]).value_counts()
            src = str(sources.index[0]) if len(sources) else ""
            what = "account locked out" if r.kind == "account_locked" else "failed logins"
            why = f"{what} at {device}: {len(recent)} failures in {self.window_s:g} s"
            why += f", mostly from {self.site_.name(src)}" if src else ""
            cited = evidence.events(e for _, _, e in recent)
            out.append(self._alert(t, "high", "T1110", device, src, str(r.ip), why, cited))
        return out

    def _pivots(self, ev: pd.DataFrame) -> list[Alert]:
        """Logins whose client is an embedded device that never logged in anywhere before."""
        src = ev["src_ip"].astype(str).to_numpy(dtype=object)
        mask = np.array([s in self.embedded_ and s not in self.login_clients_ for s in src])
        out = []
        for r in ev[mask].sort_values("t", kind="stable").itertuples():
            client, device = str(r.src_ip), str(r.device)
            if (client, device) in self.pivots_:
                continue
            self.pivots_.add((client, device))
            c = self.embedded_[client]
            how = "logged in" if r.kind == "login_ok" else "tried to log in"
            user = f" as {r.user}" if isinstance(r.user, str) and r.user else ""
            why = (
                f"{c.name} ({c.kind}) {how} to {device}{user} over {r.detail}: a {c.kind} is "
                "never a login's client (none in the warm-up)"
            )
            cited = evidence.events((int(r.event_id),))
            out.append(self._alert(r.t, "high", "T0886", device, client, str(r.ip), why, cited))
        return out


class Columns:
    """The flow columns this detector reads, as numpy arrays (cheap on small batches)."""

    def __init__(self, f: pd.DataFrame) -> None:
        self.src = f["src_ip"].to_numpy(dtype=object)
        self.dst = f["dst_ip"].to_numpy(dtype=object)
        self.port = f["dst_port"].to_numpy(dtype=np.int64)
        self.t = f["t_export"].to_numpy(dtype=float)
        self.packets_rev = f["packets_rev"].to_numpy()
        self.blocked = f["blocked"].to_numpy(dtype=bool)
        self.ids = f["flow_id"].to_numpy(dtype=np.int64)


def _reports(events: pd.DataFrame) -> pd.DataFrame:
    """Firmware reports as (t, device, ip, version, digest)."""
    r = events[events["kind"] == "firmware_report"]
    parts = r["detail"].astype(str).str.rsplit(" ", n=1)
    return pd.DataFrame({
        "t": r["t"], "event_id": r["event_id"], "device": r["device"].astype(str), "ip": r["ip"].astype(str),
        "version": parts.str[0], "digest": parts.str[-1],
    })  # fmt: skip


def _sessions(f: pd.DataFrame) -> pd.DataFrame:
    """Flows in which the destination answered with data (not a probe's SYN/RST)."""
    if f.empty:
        return f
    return f[(f["packets_rev"] > 0) & ~f["blocked"] & f["tcp_flags"].str.contains("P", regex=False)]
