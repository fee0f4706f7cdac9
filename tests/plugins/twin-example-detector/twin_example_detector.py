"""A third-party detector: admin logins over cleartext protocols, and failed logins."""

from __future__ import annotations

from detectors import Detector
from twin.telemetry import Alert


class CleartextAdmin(Detector):
    name = "cleartext_admin"
    summary = "telnet/HTTP admin sessions to devices, and failed logins"

    def __init__(self, ports: tuple[int, ...] = (23, 80), min_failures: int = 1) -> None:
        self.ports = tuple(ports)
        self.min_failures = min_failures

    def fit(self, baseline, site):  # type: ignore[no-untyped-def]
        f = baseline.flows
        self.seen_ = set(zip(f["src_ip"], f["dst_ip"], f["dst_port"], strict=True))
        self.site_ = site
        return self

    def observe(self, batch):  # type: ignore[no-untyped-def]
        f = batch.flows
        hits = f[f["dst_port"].isin(self.ports) | (f["auth_failures"] >= self.min_failures)]
        alerts = []
        for (src, dst, port), g in hits.groupby(["src_ip", "dst_ip", "dst_port"]):
            if (src, dst, port) in self.seen_ and g["auth_failures"].sum() < self.min_failures:
                continue
            device = self.site_.name(dst)
            alerts.append(
                Alert(
                    float(g["t_export"].min()),
                    self.name,
                    "medium",
                    device,
                    src,
                    dst,
                    "T0812",
                    f"admin session {src} -> {device}:{port}",
                    evidence=tuple(f"flow:{i}" for i in g["flow_id"]),
                )
            )
        return alerts
