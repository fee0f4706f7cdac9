"""Behavioural allowlist: peers, ports and Modbus functions learned on the attack-free warm-up."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from detectors.base import Detector, FlowCodes, SiteView, cite, flow_codes, summarise
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
        codes = flow_codes(f)
        ips = codes.ips
        who = [self._who(ip) for ip in ips]
        # each distinct path once, in (src_ip, dst_ip, dst_port) order: the codes sort so
        path = codes.path()
        uniq, first, inverse = np.unique(path, return_index=True, return_inverse=True)
        when = np.full(len(uniq), np.inf)
        np.minimum.at(when, inverse, codes.t)
        src, dst, port = codes.src[first], codes.dst[first], codes.port[first]
        known = self.paths_
        new = np.flatnonzero(
            [
                (who[s], who[d], p) not in known and not self._documented(ips[s], ips[d], p)
                for s, d, p in zip(src.tolist(), dst.tolist(), port.tolist(), strict=True)
            ]
        )
        for s in dict.fromkeys(src[new].tolist()):
            g = new[src[new] == s]
            source = str(ips[s])
            dsts = [str(ips[d]) for d in dict.fromkeys(dst[g].tolist())]
            owner = site.device(source) or (site.device(dsts[0]) if len(dsts) == 1 else None)
            said = [f"{site.name(str(ips[x]))}:{p}" for x, p in zip(dst[g], port[g], strict=True)]
            alerts.append(Alert(
                float(when[g].min()), self.name, "medium", owner.name if owner else source, source,
                dsts[0] if len(dsts) == 1 else "", "T0886",
                f"{len(said)} new path{'s' if len(said) > 1 else ''} from {site.name(source)}: {summarise(said)}",
                evidence=cite(f, src_ip=source, dst_ip=dsts, dst_port=set(port[g].tolist())),
            ))  # fmt: skip
        if self.check_functions:
            novel = [
                (s, d, fc, t)
                for s, d, fc, t in self._functions(f, codes)
                if (who[s], who[d], fc) not in self.functions_
            ]
            for s, d, fc, t in novel:
                source, target = str(ips[s]), str(ips[d])
                write = int(fc) in WRITE_FUNCTIONS
                recon = int(fc) in RECON_FUNCTIONS
                if not write and not recon and (who[s], who[d]) not in self.pairs_:
                    continue  # a read on a new path: the path alert above covers it
                engineer = site.role(source) == "engineering"
                if write and engineer and self._documented(source, target, 502):
                    continue  # an engineer writing on a documented conduit is their job
                dev = site.device(source) or site.device(target)
                alerts.append(Alert(
                    t, self.name, "high" if write else "medium", dev.name if dev else source,
                    source, target, "T0836" if write else "T0888",
                    f"new Modbus function {fc} from {site.name(source)} to {site.name(target)}",
                    evidence=_cite_function(f, source, target, fc),
                ))  # fmt: skip
            if self.learn_online:
                self.functions_.update((who[s], who[d], fc) for s, d, fc, _ in novel)
        if self.learn_online:
            for s, d, p in zip(
                src[new].tolist(), dst[new].tolist(), port[new].tolist(), strict=True
            ):
                self.paths_.add((who[s], who[d], p))
                self.pairs_.add((who[s], who[d]))
        return alerts

    def _functions(self, f: pd.DataFrame, codes: FlowCodes) -> list[tuple[int, int, str, float]]:
        """(src code, dst code, function code, first export) per function seen on each pair,
        in (src_ip, dst_ip, function) order; each distinct function set is split once."""
        fc_code, fc_sets = pd.factorize(f["modbus_fc_set"], sort=True)
        sets = [str(x) for x in fc_sets]
        functions = sorted({fc for x in sets if x for fc in x.split(",")})
        if not functions:
            return []
        carries = np.zeros((len(sets) + 1, len(functions)), dtype=bool)  # last row: missing
        for i, x in enumerate(sets):
            for fc in x.split(",") if x else ():
                carries[i, functions.index(fc)] = True
        pair = codes.src * len(codes.ips) + codes.dst
        row, fn = np.nonzero(carries[fc_code])
        key = pair[row] * len(functions) + fn
        uniq, inverse = np.unique(key, return_inverse=True)
        when = np.full(len(uniq), np.inf)
        np.minimum.at(when, inverse, codes.t[row])
        pairs, fns = np.divmod(uniq, len(functions))
        s, d = np.divmod(pairs, len(codes.ips))
        return [
            (a, b, functions[c], t)
            for a, b, c, t in zip(s.tolist(), d.tolist(), fns.tolist(), when.tolist(), strict=True)
        ]
