"""Conduit-policy and signature rules: forbidden crossings, unexpected writers, scans."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, SiteView, cite, first_seen, flow_codes, summarise
from twin.telemetry import Alert, TelemetryBatch

WRITER_ROLES = frozenset({"engineering"})
PROBE_PACKETS = 3


class ConduitPolicy(Detector):
    """Checks every flow against the design's conduits, whether or not the network enforces them.

    - a flow the firewall denied (someone tried a path the design forbids);
    - a flow crossing zones (or, in micro-segmentation, devices) on a path no conduit documents;
    - a Modbus write from a host that is not an engineering host;
    - a scan: one source probing many (address, port) pairs in a batch.
    """

    name = "conduit_policy"
    summary = "flags flows the design forbids, Modbus writes from non-engineering hosts, and scans"

    def __init__(self, scan_threshold: int = 20, check_writes: bool = True) -> None:
        if scan_threshold < 2:
            raise ValueError(f"scan_threshold must be at least 2, got {scan_threshold}")
        self.scan_threshold = scan_threshold
        self.check_writes = check_writes

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        self.path_cache_: dict[tuple[str, str, int], bool] = {}
        return self

    def _documented(self, src: str, dst: str, port: int) -> bool:
        key = (src, dst, port)
        ok = self.path_cache_.get(key)
        if ok is None:
            site = self.site_
            same_zone = site.zone(src) == site.zone(dst)
            intra_ok = same_zone and site.policy.kind != "micro"
            ok = intra_ok or site.policy.conduit_for(src, dst, port) is not None
            self.path_cache_[key] = ok
        return ok

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            return []
        site = self.site_
        alerts: list[Alert] = []

        codes = flow_codes(f)
        blocked = f["blocked"].to_numpy(dtype=bool)
        if blocked.any():
            denied = f[blocked]
            held = self.site_.policy.quarantined  # the SOC's own containment: denials it expects
            if held:
                denied = denied[~(denied["src_ip"].isin(held) | denied["dst_ip"].isin(held))]
            alerts += self._grouped(denied, "medium", "T0886", "denied by the firewall")

        # each distinct allowed path is judged once, on integer keys
        path = codes.path()
        allowed_path = path[~blocked]
        uniq, first = np.unique(allowed_path, return_index=True)
        rows = np.flatnonzero(~blocked)[first]
        ips = codes.ips
        undocumented = [
            not self._documented(ips[s], ips[d], int(p))
            for s, d, p in zip(codes.src[rows], codes.dst[rows], codes.port[rows], strict=True)
        ]
        bad = uniq[np.array(undocumented, dtype=bool)] if len(uniq) else uniq
        if len(bad):
            hits = f[~blocked & np.isin(path, bad)]
            alerts += self._grouped(hits, "medium", "T0886", "no conduit allows")

        if self.check_writes:
            wrote = f["modbus_writes"].to_numpy() > 0
            if wrote.any():
                writers = np.unique(codes.src[wrote])
                rogue_src = writers[[site.role(ips[s]) not in WRITER_ROLES for s in writers]]
                if len(rogue_src):
                    rogue = f[wrote & np.isin(codes.src, rogue_src)]
                    for row in first_seen(rogue, ["src_ip", "dst_ip"]).itertuples():
                        alerts.append(self._alert(
                            float(row.t), "high", "T0836", row.src_ip, row.dst_ip,
                            f"Modbus write from non-engineering host {site.name(row.src_ip)} to {site.name(row.dst_ip)}",
                            cite(rogue, src_ip=row.src_ip, dst_ip=row.dst_ip),
                        ))  # fmt: skip

        # a scan is many probe-like flows (a SYN or two, at most one packet back); fan-out
        # over real sessions, such as a BMS polling fifty controllers, is not
        probe = (f["packets"].to_numpy() <= PROBE_PACKETS) & (f["packets_rev"].to_numpy() <= 1)
        pairs = np.unique(path[probe])
        per_src = pairs // 65536 // len(ips)
        counted = np.bincount(per_src, minlength=len(ips)) if len(pairs) else np.zeros(0, int)
        for s in np.flatnonzero(counted >= self.scan_threshold):
            src = str(ips[s])
            mine = probe & (codes.src == s)
            hosts = len(np.unique(codes.dst[mine]))
            alerts.append(self._alert(
                float(codes.t[mine].min()), "high", "T0846", src, "",
                f"scan: {site.name(src)} touched {int(counted[s])} address/port pairs on {hosts} hosts",
                cite(f[probe], src_ip=src),
            ))  # fmt: skip
        return alerts

    def _grouped(
        self, flows: pd.DataFrame, severity: str, technique: str, what: str
    ) -> list[Alert]:
        """One alert per source and destination zone, naming the paths it tried."""
        if flows.empty:
            return []
        site = self.site_
        paths = first_seen(flows, ["src_ip", "dst_ip", "dst_port"])
        paths["dst_zone"] = site.zones_of(paths["dst_ip"])
        out = []
        for (src, zone), g in paths.groupby(["src_ip", "dst_zone"], sort=True):
            targets = [
                f"{site.name(d)}:{p}" for d, p in zip(g["dst_ip"], g["dst_port"], strict=True)
            ]
            dst = str(g["dst_ip"].iloc[0]) if g["dst_ip"].nunique() == 1 else ""
            out.append(self._alert(
                float(g["t"].min()), severity, technique, src, dst,
                f"{what}: {site.name(src)} ({site.zone(src)}) -> zone {zone or '?'}: {summarise(targets)}",
                cite(flows, src_ip=src, dst_ip=set(g["dst_ip"]), dst_port=set(g["dst_port"])),
            ))  # fmt: skip
        return out

    def _alert(
        self,
        t: float,
        severity: str,
        technique: str,
        src: str,
        dst: str,
        reason: str,
        cited: tuple[str, ...],
    ) -> Alert:
        d = self.site_.device(src) or (self.site_.device(dst) if dst else None)
        return Alert(
            t, self.name, severity, d.name if d else src, src, dst, technique, reason,
            evidence=cited,
        )  # fmt: skip
