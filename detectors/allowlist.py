"""Behavioural allowlist: peers, ports and Modbus functions learned on the attack-free warm-up."""

from __future__ import annotations

from typing import Self

import pandas as pd

from detectors.base import Detector, SiteView, cite, first_seen, summarise
from twin import evidence
from twin.telemetry import Alert, TelemetryBatch

WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})
# diagnostics, report server id, device identification: reconnaissance, not operation
RECON_FUNCTIONS = frozenset({8, 17, 43})


def _fc_pairs(flows: pd.DataFrame) -> pd.DataFrame:
    """(src_ip, dst_ip, fc) for every Modbus function code seen on each flow."""
    m = flows[flows["modbus_fc_set"].str.len() > 0][
        ["src_ip", "dst_ip", "modbus_fc_set", "t_export"]
    ]
    if m.empty:
        return pd.DataFrame(columns=["src_ip", "dst_ip", "fc", "t_export"])
    m = m.assign(fc=m["modbus_fc_set"].str.split(",")).explode("fc")
    return m[["src_ip", "dst_ip", "fc", "t_export"]]


def _cite_function(flows: pd.DataFrame, src: str, dst: str, fc: str) -> tuple[str, ...]:
    """The flows from `src` to `dst` that carried Modbus function `fc`."""
    pair = flows[(flows["src_ip"] == src) & (flows["dst_ip"] == dst)]
    used = pair["modbus_fc_set"].astype(str).str.split(",").map(lambda fcs: fc in fcs)
    return evidence.flows(pair["flow_id"][used.astype(bool)])


class Allowlist(Detector):
    """Learns who talks to whom, on which port, with which Modbus functions; flags what is new.

    With `level="group"` (the default) it learns per device class: a path is known when
    any member of the source's group used it towards any member of the destination's group
    (the engineer who browsed one camera may browse another). Addresses outside the
    inventory stand for themselves. With `trust_conduits`, what the design documents is
    known too, as an NDR is configured with the site's policy as well as learning: a path a
    conduit covers between two known assets inside the site (never the internet edge), and
    Modbus writes on it from an engineering host. Anything else first
    seen after the warm-up is an alert, once per source per batch; with `learn_online`, it
    is not re-alerted later.
    """

    name = "allowlist"
    summary = (
        "flags peers, ports and Modbus function codes not seen (per device class) in the warm-up"
    )

    def __init__(
        self,
        learn_online: bool = True,
        check_functions: bool = True,
        level: str = "group",
        trust_conduits: bool = True,
    ) -> None:
        if level not in ("group", "device"):
            raise ValueError(f"level must be 'group' or 'device', got {level!r}")
        self.learn_online = learn_online
        self.check_functions = check_functions
        self.level = level
        self.trust_conduits = trust_conduits

    def _documented(self, src: str, dst: str, port: int) -> bool:
        if not self.trust_conduits:
            return False
        key = (src, dst, port)
        hit = self.documented_.get(key)
        if hit is None:
            # only between known assets inside the site: the internet edge and addresses
            # that are no device are learned exactly (a port forward admits anyone)
            site = self.site_
            inside = all(
                site.device(ip) is not None and site.zone(ip) not in site.facility.internet_zones()
                for ip in (src, dst)
            )
            hit = inside and site.policy.conduit_for(src, dst, port) is not None
            self.documented_[key] = hit
        return hit

    def _who(self, ip: str) -> str:
        key = self.who_.get(ip)
        if key is None:
            d = self.site_.device(ip)
            key = self.who_[ip] = (d.group if self.level == "group" else d.name) if d else ip
        return key

    def _keyed(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame.assign(src=pd.Series(dtype=str), dst=pd.Series(dtype=str))
        who = {ip: self._who(ip) for ip in pd.unique(pd.concat([frame["src_ip"], frame["dst_ip"]]))}
        return frame.assign(src=frame["src_ip"].map(who), dst=frame["dst_ip"].map(who))

    def _fc_pairs(self, flows: pd.DataFrame) -> pd.DataFrame:
        """(src_ip, dst_ip, fc, t_export) per function code, splitting each distinct set once."""
        m = flows[flows["modbus_fc_set"].str.len() > 0]
        if m.empty:
            return pd.DataFrame(columns=["src_ip", "dst_ip", "fc", "t_export"])
        # the same few sets recur on every poll: explode distinct rows only
        m = (
            m.groupby(["src_ip", "dst_ip", "modbus_fc_set"], sort=False, observed=True)["t_export"]
            .min()
            .reset_index()
        )
        return _fc_pairs(m)

    def fit(self, baseline: TelemetryBatch, site: SiteView) -> Self:
        self.site_ = site
        self.who_: dict[str, str] = {}
        self.documented_: dict[tuple[str, str, int], bool] = {}
        f = self._keyed(baseline.flows)
        self.paths_ = set(
            f[["src", "dst", "dst_port"]].drop_duplicates().itertuples(index=False, name=None)
        )
        self.pairs_ = {(s, d) for s, d, _ in self.paths_}
        fcs = self._keyed(_fc_pairs(baseline.flows))
        self.functions_ = set(
            fcs[["src", "dst", "fc"]].drop_duplicates().itertuples(index=False, name=None)
        )
        return self

    def observe(self, batch: TelemetryBatch) -> list[Alert]:
        f = batch.flows
        if f.empty:
            return []
        site = self.site_
        alerts: list[Alert] = []
        paths = self._keyed(first_seen(f, ["src_ip", "dst_ip", "dst_port"]))
        known = self.paths_
        keys = zip(
            paths["src"].tolist(), paths["dst"].tolist(), paths["dst_port"].tolist(), strict=True
        )
        ips = zip(paths["src_ip"].tolist(), paths["dst_ip"].tolist(), strict=True)
        new = paths[
            [
                k not in known and not self._documented(s, d, int(k[2]))
                for k, (s, d) in zip(keys, ips, strict=True)
            ]
        ]
        for src, g in new.groupby("src_ip", sort=True):
            dsts = list(dict.fromkeys(g["dst_ip"]))
            d = site.device(src) or (site.device(dsts[0]) if len(dsts) == 1 else None)
            said = [f"{site.name(x)}:{p}" for x, p in zip(g["dst_ip"], g["dst_port"], strict=True)]
            alerts.append(Alert(
                float(g["t"].min()), self.name, "medium", d.name if d else src, src,
                dsts[0] if len(dsts) == 1 else "", "T0886",
                f"{len(said)} new path{'s' if len(said) > 1 else ''} from {site.name(src)}: {summarise(said)}",
                evidence=cite(f, src_ip=src, dst_ip=dsts, dst_port=set(g["dst_port"])),
            ))  # fmt: skip
        if self.check_functions:
            fcs = self._keyed(first_seen(self._fc_pairs(f), ["src_ip", "dst_ip", "fc"]))
            seen = self.functions_
            novel = fcs[
                [
                    k not in seen
                    for k in zip(
                        fcs["src"].tolist(), fcs["dst"].tolist(), fcs["fc"].tolist(), strict=True
                    )
                ]
            ]
            for r in novel.itertuples():
                write = int(r.fc) in WRITE_FUNCTIONS
                recon = int(r.fc) in RECON_FUNCTIONS
                if not write and not recon and (r.src, r.dst) not in self.pairs_:
                    continue  # a read on a new path: the path alert above covers it
                engineer = site.role(r.src_ip) == "engineering"
                if write and engineer and self._documented(r.src_ip, r.dst_ip, 502):
                    continue  # an engineer writing on a documented conduit is their job
                d = site.device(r.src_ip) or site.device(r.dst_ip)
                alerts.append(Alert(
                    float(r.t), self.name, "high" if write else "medium", d.name if d else r.src_ip,
                    r.src_ip, r.dst_ip, "T0836" if write else "T0888",
                    f"new Modbus function {r.fc} from {site.name(r.src_ip)} to {site.name(r.dst_ip)}",
                    evidence=_cite_function(f, r.src_ip, r.dst_ip, str(r.fc)),
                ))  # fmt: skip
            if self.learn_online:
                self.functions_.update((r.src, r.dst, r.fc) for r in novel.itertuples())
        if self.learn_online:
            self.paths_.update((r.src, r.dst, r.dst_port) for r in new.itertuples())
            self.pairs_.update((r.src, r.dst) for r in new.itertuples())
        return alerts
