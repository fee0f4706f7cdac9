"""control_context: writes judged by how the writer was reached and how much it writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors import SiteView
from detectors.control_context import ControlContext
from tests.conftest import SCENARIOS
from twin.engine import Engine
from twin.network.flows import FLOW_COLUMNS
from twin.scenario import load_scenario
from twin.scoring import score_alerts
from twin.telemetry import EVENT_COLUMNS, Alert, TelemetryBatch, alerts_frame


def watched(spec: Any) -> tuple[pd.DataFrame, list[Alert], Any]:
    """The scenario run with ControlContext fitted on its warm-up: truth, alerts, score."""
    e = Engine(spec)
    warm = [e.run_until(t) for t in np.arange(300.0, spec.warmup + 1, 300.0)]
    rest = [e.run_until(t) for t in np.arange(spec.warmup + 300.0, spec.duration + 1, 300.0)]
    det = ControlContext().fit(TelemetryBatch.concat(warm), SiteView(e.facility, e.net.policy))
    alerts = [a for b in rest for a in det.observe(b)]
    truth = e.truth()
    return (
        truth,
        alerts,
        score_alerts(truth, alerts_frame(alerts), spec.duration - spec.warmup, "cc"),
    )


@pytest.mark.slow
def test_setpoints_moved_from_the_real_workstation_are_seen_within_two_minutes() -> None:
    """plant-integrator-pivot: the workstation, reached by a login from the gate camera, writes
    the rinse tank's setpoints; the write is detected by its flows within 120 s."""
    spec = load_scenario(SCENARIOS / "plant-integrator-pivot.yaml")
    truth, alerts, score = watched(spec)
    step = truth.set_index("step_id").loc["move-setpoints"]
    hits = [a.t for a in alerts if a.dst_ip == step["target_ip"]]
    assert score.precision == 1.0 and hits and min(hits) - step["t_start"] <= 120.0


def _flow(i: int, src: str, writes: int, t: float) -> dict[str, Any]:
    row: dict[str, Any] = {c: 0 for c in FLOW_COLUMNS}
    row.update(flow_id=i, t_start=t - 60, t_end=t, t_export=t, src_ip=src, dst_ip="10.0.0.9",
               src_port=40000 + i, dst_port=502, proto="tcp", app="modbus", tcp_flags="SAP",
               modbus_fc_set="6", modbus_writes=writes, blocked=False, encrypted=False)  # fmt: skip
    return row


def _batch(rows: list[dict[str, Any]], t0: float, t1: float) -> TelemetryBatch:
    flows = pd.DataFrame(rows, columns=list(FLOW_COLUMNS)).astype(FLOW_COLUMNS)
    return TelemetryBatch(
        t0, t1, flows=flows, events=pd.DataFrame(columns=list(EVENT_COLUMNS)).astype(EVENT_COLUMNS)
    )


def test_more_writes_than_the_writers_routine_is_changed_control() -> None:
    """A writer that wrote at most once per session in the warm-up writing three times is
    alerted once (citing that flow); writing once again is routine."""
    from tests.detectors.test_physics import site

    det = ControlContext().fit(_batch([_flow(1, "10.0.0.5", 1, 100.0)], 0.0, 3600.0), site())
    alerts = det.observe(
        _batch([_flow(2, "10.0.0.5", 1, 4000.0), _flow(3, "10.0.0.5", 3, 4060.0)], 3600.0, 4200.0)
    )
    assert [(a.technique, a.evidence) for a in alerts] == [("T0831", ("flow:3",))]


def _writes(rows: list[tuple[int, float, str, str, str]]) -> TelemetryBatch:
    """register_write events (id, t, writer ip, device name, 'point: before -> after')."""
    from tests.detectors.test_physics import site

    fac = site().facility
    ev = pd.DataFrame(
        [
            {
                "event_id": i,
                "t": t,
                "device": dev,
                "ip": fac.by_name[dev].ip,
                "kind": "register_write",
                "user": "",
                "src_ip": src,
                "detail": detail,
                "value": float(detail.rsplit(" ", 1)[1]),
            }
            for i, t, src, dev, detail in rows
        ],
        columns=list(EVENT_COLUMNS),
    ).astype(EVENT_COLUMNS)
    empty = pd.DataFrame(columns=list(FLOW_COLUMNS)).astype(FLOW_COLUMNS)
    return TelemetryBatch(min(r[1] for r in rows), max(r[1] for r in rows) + 60, empty, events=ev)


def test_a_point_its_writer_never_wrote_changed_is_alerted_at_the_write() -> None:
    """The engineering workstation turning a PLC's interlock off is alerted at the write,
    citing it; the BMS moving the setpoint it commands every hour, and the workstation
    re-writing a value it holds (no change), are not."""
    from tests.detectors.test_physics import site

    bms, ws = "10.20.10.10", "10.20.10.11"
    det = ControlContext().fit(
        _writes([(1, 600.0, bms, "vav-1", "room_setpoint: 21 -> 21")]), site()
    )
    alerts = det.observe(
        _writes(
            [
                (2, 4000.0, bms, "vav-2", "room_setpoint: 21 -> 16"),
                (3, 4010.0, ws, "plc", "level_low_sp: 1.5 -> 1.5"),
                (4, 4020.0, ws, "plc", "interlock_enable: 1 -> 0"),
            ]
        )
    )
    assert [(a.t, a.technique, a.device, a.evidence) for a in alerts] == [
        (4020.0, "T0836", "plc", ("event:4",))
    ]
    assert "interlock_enable: 1 -> 0" in alerts[0].reason


def test_a_modbus_write_is_logged_by_the_device_with_its_writer_and_values() -> None:
    """A write a device accepts is in the events as register_write: the writer, the point,
    what it held and what it holds now, caused by the step that sent it (its evidence)."""
    from twin.devices import KINDS
    from twin.network.transactions import ModbusWrite

    e = Engine(load_scenario(SCENARIOS / "flagship.yaml"))
    plc = e.facility.by_name["plc"]
    reg = KINDS["plc"].registers.get("interlock_enable")
    assert reg is not None
    reply = e.faces.answer(
        ModbusWrite("10.20.10.11", plc.ip, "coil", reg.address, (0,), cause="defeat")
    )
    assert reply.ok
    ev = e.events.drain()
    w = ev[ev["kind"] == "register_write"]
    assert list(zip(w["device"], w["src_ip"], w["detail"], w["value"], strict=True)) == [
        ("plc", "10.20.10.11", "interlock_enable: 1 -> 0", 0.0)
    ]
    assert e.events.caused["defeat"] == [int(w["event_id"].iloc[0])]


@pytest.mark.slow
def test_an_input_overridden_from_the_real_workstation_is_seen_at_the_write() -> None:
    """plant-insider-lie: from the engineering workstation, over the conduit engineers use
    daily, the MCC room's VAV input is overridden; the alert comes at the write itself,
    citing the device's log of it, and nothing else in the run is a false alarm."""
    spec = load_scenario(SCENARIOS / "plant-insider-lie.yaml")
    truth, alerts, score = watched(spec)
    step = truth.set_index("step_id").loc["lie-to-mcc"]
    at_write = [a for a in alerts if set(a.evidence) & {f"event:{i}" for i in step["event_ids"]}]
    assert score.precision == 1.0 and at_write
    assert (
        at_write[0].t - step["t_start"] <= 1.0 and "override_enable: 0 -> 1" in at_write[0].reason
    )
