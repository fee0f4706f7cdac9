"""Conduit-policy and signature rules: forbidden crossings, unexpected writers, scans."""

from __future__ import annotations

from typing import Self

import pandas as pd

from detectors.base import Detector, SiteView, cite, first_seen, summarise
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

        denied = f[f["blocked"]]
        held = self.site_.policy.quarantined  # the SOC's own containment: denials it expects
        if held and not denied.empty:
            denied = denied[~(denied["src_ip"].isin(held) | denied["dst_ip"].isin(held))]
        alerts += self._grouped(denied, "medium", "T0886", "denied by the firewall")

        allowed = f[~f["blocked"]]
        paths = allowed[["src_ip", "dst_ip", "dst_port"]].drop_duplicates()
        undocumented = [
            not self._documented(s, d, int(p)) for s, d, p in paths.itertuples(index=False)
        ]
        bad = paths[undocumented]
        if not bad.empty:
            hits = allowed.merge(bad, on=["src_ip", "dst_ip", "dst_port"])
            alerts += self._grouped(hits, "medium", "T0886", "no conduit allows")

        if self.check_writes:
            writes = f[f["modbus_writes"] > 0]
            if not writes.empty:
                roles = writes["src_ip"].map(
                    {ip: site.role(ip) for ip in writes["src_ip"].unique()}
                )
                rogue = writes[~roles.isin(WRITER_ROLES)]
                for row in first_seen(rogue, ["src_ip", "dst_ip"]).itertuples():
                    alerts.append(self._alert(
                        float(row.t), "high", "T0836", row.src_ip, row.dst_ip,
                        f"Modbus write from non-engineering host {site.name(row.src_ip)} to {site.name(row.dst_ip)}",
                        cite(rogue, src_ip=row.src_ip, dst_ip=row.dst_ip),
                    ))  # fmt: skip

        # a scan is many probe-like flows (a SYN or two, at most one packet back); fan-out
        # over real sessions, such as a BMS polling fifty controllers, is not
        probes = f[(f["packets"] <= PROBE_PACKETS) & (f["packets_rev"] <= 1)]
        pairs = probes[["src_ip", "dst_ip", "dst_port", "t_export"]].drop_duplicates(
            ["src_ip", "dst_ip", "dst_port"]
        )
        fanout = pairs.groupby("src_ip", observed=True).agg(
            pairs=("dst_port", "size"), hosts=("dst_ip", "nunique"), t=("t_export", "min")
        )
        for src, info in fanout[fanout["pairs"] >= self.scan_threshold].iterrows():
            alerts.append(self._alert(
                float(info["t"]), "high", "T0846", str(src), "",
                f"scan: {site.name(str(src))} touched {int(info['pairs'])} address/port pairs on {int(info['hosts'])} hosts",
                cite(probes, src_ip=str(src)),
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
