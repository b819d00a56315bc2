"""Device health: hand-computed intervals, skew, battery, status and flags."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from tenpo.iot.health import HealthRules, RegisteredDevice, device_health
from tenpo.warehouse.schemas import MART_DEVICE_HEALTH, RAW_DEVICE_HEARTBEATS, RAW_IOT_COUNTS

DAY = date(2026, 11, 2)
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 10:00 JST


def count(device: str, line: str, k: int, step_min: int = 15) -> dict[str, Any]:
    start = T0 + timedelta(minutes=k * step_min)
    return {
        "tenant_id": "t1", "store_id": "s1", "device_id": device, "line": line,
        "business_date": DAY, "interval_start": start,
        "interval_end": start + timedelta(minutes=step_min), "count_in": 1, "count_out": 1,
        "seq": k, "source_object_id": "o1",
    }  # fmt: skip


def beat(device: str, minute: int, *, delay_s: float = 5, battery: float | None = 0.9,
         status: str = "ok") -> dict[str, Any]:  # fmt: skip
    ts = T0 + timedelta(minutes=minute)
    return {
        "tenant_id": "t1", "store_id": "s1", "device_id": device, "business_date": DAY,
        "ts": ts, "status": status, "firmware": "1", "battery": battery, "seq": minute,
        "source_object_id": "o1", "received_at": ts + timedelta(seconds=delay_s),
    }  # fmt: skip


def test_health_per_device_and_day() -> None:
    counts = [count("pc-1", "entrance", k) for k in range(8) if k not in (2, 3)]
    counts += [count("pc-1", "passby", k) for k in range(8)]
    counts.append(count("pc-1", "entrance", 0) | {"business_date": date(2026, 11, 3)})  # ignored
    beats = [
        beat("pc-1", 0, battery=0.5),
        beat("pc-1", 15, delay_s=-200),  # its clock runs 200 s ahead (at least)
        beat("pc-1", 90, battery=0.15, status="degraded"),  # 75 min after the previous one
        beat("pc-3", 0, delay_s=7200),
        beat("pc-3", 15, delay_s=7300),
    ]
    devices = [RegisteredDevice("t1", "s1", d) for d in ("pc-1", "pc-2", "pc-3")]
    out = device_health(
        pa.Table.from_pylist(counts, schema=RAW_IOT_COUNTS),
        pa.Table.from_pylist(beats, schema=RAW_DEVICE_HEARTBEATS),
        [DAY],
        devices=devices,
    )
    assert out.schema == MART_DEVICE_HEALTH
    pc1, pc2, pc3 = out.to_pylist()
    assert (pc1["device_id"], pc1["interval_s"]) == ("pc-1", 900)
    # entrance: 8 expected (10:00-12:00), 6 received; passby: 8 of 8.
    assert (pc1["intervals_expected"], pc1["intervals_received"], pc1["intervals_missing"]) == (
        16, 14, 2,
    )  # fmt: skip
    assert pc1["last_seen"] == T0 + timedelta(hours=2)  # end of the last interval
    assert (pc1["heartbeats"], pc1["battery_min"], pc1["last_status"]) == (3, 0.15, "degraded")
    assert pc1["clock_skew_s"] == 200.0
    assert pc1["flags"] == "clock_ahead,heartbeat_gap,low_battery,missing_intervals,status_not_ok"
    assert pc2["flags"] == "no_data,no_heartbeat" and pc2["last_seen"] is None
    assert pc2["intervals_expected"] == 0
    assert pc3["clock_skew_s"] == -7200.0 and pc3["flags"] == "delivered_late"
    assert pc3["last_seen"] == T0 + timedelta(minutes=15)


def test_healthy_device_has_no_flags_and_rules_apply() -> None:
    counts = [count("pc-1", "entrance", k, step_min=1) for k in range(60)]
    beats = [beat("pc-1", m) for m in (0, 15, 30, 45)]
    args = (
        pa.Table.from_pylist(counts, schema=RAW_IOT_COUNTS),
        pa.Table.from_pylist(beats, schema=RAW_DEVICE_HEARTBEATS),
        [DAY],
    )
    (row,) = device_health(*args).to_pylist()
    assert (row["interval_s"], row["intervals_expected"], row["intervals_missing"]) == (60, 60, 0)
    assert row["flags"] == "" and row["clock_skew_s"] == -5.0
    (strict,) = device_health(*args, rules=HealthRules(battery_low=0.95)).to_pylist()
    assert strict["flags"] == "low_battery"
    empty = device_health(RAW_IOT_COUNTS.empty_table(), RAW_DEVICE_HEARTBEATS.empty_table(), [DAY])
    assert empty.num_rows == 0 and empty.schema == MART_DEVICE_HEALTH
