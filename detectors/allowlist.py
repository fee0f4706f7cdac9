"""Behavioural allowlist: peers, ports and Modbus functions learned on the attack-free warm-up."""

from __future__ import annotations

from typing import Self

import pandas as pd

from detectors.base import Detector, SiteView, first_seen, summarise
from twin.telemetry import Alert, TelemetryBatch

WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})


def _fc_pairs(flows: pd.DataFrame) -> pd.DataFrame:
    """(src_ip, dst_ip, fc) for every Modbus function code seen on each flow."""
    m = flows[flows["modbus_fc_set"].str.len() > 0][
        ["src_ip", "dst_ip", "modbus_fc_set", "t_export"]
    ]
    if m.empty:
        return pd.DataFrame(columns=["src_ip", "dst_ip", "fc", "t_export"])
    m = m.assign(fc=m["modbus_fc_set"].str.split(",")).explode("fc")
    return m[["src_ip", "dst_ip", "fc", "t_export"]]


class Allowlist(Detector):
    """Learns who talks to whom, on which port, with which Modbus functions; flags what is new.

    Anything first seen after the warm-up is an alert, once per (source, destination) per
    batch. With `learn_online`, what it has alerted on is not re-alerted later.
    """

    name = "allowlist"
    summary = "flags peers, ports and Modbus function codes not seen during the warm-up"

    def __init__(self, learn_online: bool = True, check_functions: bool = True) -> None:
        self.learn_online = learn_online
        self.check_functions = check_functions

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        f = baseline.flows
        self.paths_ = set(
            f[["src_ip", "dst_ip", "dst_port"]].drop_duplicates().itertuples(index=False, name=None)
        )
        self.pairs_ = {(s, d) for s, d, _ in self.paths_}
        fcs = _fc_pairs(f)
        self.functions_ = set(
            fcs[["src_ip", "dst_ip", "fc"]].drop_duplicates().itertuples(index=False, name=None)
        )
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            return []
        site = self.site_
        alerts: list[Alert] = []
        paths = first_seen(f, ["src_ip", "dst_ip", "dst_port"])
        new = paths[
            [(r.src_ip, r.dst_ip, r.dst_port) not in self.paths_ for r in paths.itertuples()]
        ]
        for src, g in new.groupby("src_ip", sort=True):
            dsts = list(dict.fromkeys(g["dst_ip"]))
            d = site.device(src) or (site.device(dsts[0]) if len(dsts) == 1 else None)
            paths = [f"{site.name(x)}:{p}" for x, p in zip(g["dst_ip"], g["dst_port"], strict=True)]
            alerts.append(Alert(
                float(g["t"].min()), self.name, "medium", d.name if d else src, src,
                dsts[0] if len(dsts) == 1 else "", "T0886",
                f"{len(paths)} new path{'s' if len(paths) > 1 else ''} from {site.name(src)}: {summarise(paths)}",
            ))  # fmt: skip
        if self.check_functions:
            fcs = first_seen(_fc_pairs(f), ["src_ip", "dst_ip", "fc"]) if not f.empty else None
            if fcs is not None and not fcs.empty:
                novel = fcs[
                    [(r.src_ip, r.dst_ip, r.fc) not in self.functions_ for r in fcs.itertuples()]
                ]
                for r in novel.itertuples():
                    write = int(r.fc) in WRITE_FUNCTIONS
                    if not write and (r.src_ip, r.dst_ip) not in self.pairs_:
                        continue  # a read on a new path: the path alert above covers it
                    d = site.device(r.src_ip) or site.device(r.dst_ip)
                    alerts.append(
                        Alert(
                            float(r.t),
                            self.name,
                            "high" if write else "medium",
                            d.name if d else r.src_ip,
                            r.src_ip,
                            r.dst_ip,
                            "T0836" if write else "T0888",
                            f"new Modbus function {r.fc} from {site.name(r.src_ip)} to {site.name(r.dst_ip)}",
                        )
                    )
                if self.learn_online:
                    self.functions_.update((r.src_ip, r.dst_ip, r.fc) for r in novel.itertuples())
        if self.learn_online:
            self.paths_.update((r.src_ip, r.dst_ip, r.dst_port) for r in new.itertuples())
            self.pairs_.update((r.src_ip, r.dst_ip) for r in new.itertuples())
        return alerts
