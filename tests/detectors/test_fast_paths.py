"""The members' integer-keyed fast paths give what the plain pandas groupings give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.allowed_path import CHANNEL, OUTSIDE, intervals
from detectors.base import first_seen, flow_codes
from twin.network.flows import FLOW_COLUMNS


def _flows(n: int, seed: int) -> pd.DataFrame:
    """Random flows over a few addresses and ports, some blocked, exported out of order."""
    rng = np.random.default_rng(seed)
    ips = np.array([f"10.0.{i // 10}.{i}" for i in range(12)] + ["198.51.100.7"])
    f = pd.DataFrame({c: np.zeros(n) for c in FLOW_COLUMNS})
    f["flow_id"] = np.arange(1, n + 1)
    f["t_export"] = rng.choice([60.0, 120.0, 180.0], n)
    f["src_ip"] = rng.choice(ips, n)
    f["dst_ip"] = rng.choice(ips, n)
    f["dst_port"] = rng.choice([22, 80, 502, 1883, 8080], n)
    f["app"] = rng.choice(["modbus", "http", "mqtt"], n)
    f["modbus_fc_set"] = rng.choice(["", "1,3", "15,3", "6"], n)
    for c in ("bytes", "bytes_rev", "packets", "packets_rev"):
        f[c] = rng.integers(0, 5000, n)
    f["blocked"] = rng.random(n) < 0.1
    f["encrypted"] = False
    for c in ("proto", "tcp_flags"):
        f[c] = ""
    return f.astype(FLOW_COLUMNS)


def test_first_seen_is_the_sorted_groupby_it_replaces() -> None:
    """One row per key group in key order, with the earliest export and the flow count, as
    a sorted pandas groupby gives (three and two keys, strings and integers)."""
    for seed in range(5):
        f = _flows(400, seed)
        for keys in (["src_ip", "dst_ip", "dst_port"], ["src_ip", "dst_ip"], ["modbus_fc_set"]):
            want = f.groupby(keys, sort=True, observed=True)["t_export"].agg(["min", "size"])
            want = want.rename(columns={"min": "t", "size": "flows"}).reset_index()
            pd.testing.assert_frame_equal(first_seen(f, keys), want, check_dtype=False)


def test_flow_codes_are_shared_for_one_frame_and_rebuilt_for_another() -> None:
    """Members asking about the same batch get the same codes; a new frame gets its own,
    and the codes name each flow's addresses."""
    f = _flows(50, 1)
    codes = flow_codes(f)
    assert flow_codes(f) is codes
    assert list(codes.ips[codes.src]) == list(f["src_ip"])
    assert list(codes.ips[codes.dst]) == list(f["dst_ip"])
    g = f.iloc[::-1].reset_index(drop=True)
    assert list(flow_codes(g).ips[flow_codes(g).src]) == list(g["src_ip"])


def test_channel_intervals_sum_each_channels_flows_per_export() -> None:
    """allowed_path's intervals: one row per (device, peer, port, app, export) in order of
    appearance, summing bytes of unblocked flows from the site's own devices; outside peers
    are one peer; each flow points at its row."""
    f = _flows(300, 3)
    devices = {f"10.0.{i // 10}.{i}" for i in range(12)}
    rows, member = intervals(f, devices)
    keep = ~f["blocked"] & f["src_ip"].isin(devices)
    ref = f[keep].assign(peer=f["dst_ip"].where(f["dst_ip"].isin(devices), OUTSIDE))
    want = ref.groupby([*CHANNEL, "t_export"], sort=False)["bytes"].sum()
    got = rows.set_index([*CHANNEL, "t_export"])["up"]
    assert len(got) == len(want)
    assert np.allclose(np.expm1(got.loc[want.index].to_numpy()), want.to_numpy())
    assert (member[~keep.to_numpy()] == -1).all()
    picked = rows.iloc[member[keep.to_numpy()]]
    assert list(picked["src_ip"]) == list(ref["src_ip"])
    assert list(picked["t_export"]) == list(ref["t_export"])
