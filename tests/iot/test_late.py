"""Late data: buffered intervals of past days land in their dates and raise partitions.late."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from tenpo.bus import PARTITIONS_CHANGED
from tenpo.bus.base import PARTITIONS_LATE
from tenpo.bus.memory import MemoryBus
from tenpo.iot.late import LateDataMonitor, late_event
from tenpo.iot.mqtt import MqttSubscriber
from tenpo.streamer import Streamer, read_table
from tests.iot.conftest import Chain, count_event

NOW = datetime(2026, 11, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo on 2026-11-05


def test_late_event_payload() -> None:
    changed = {"table": "raw_iot_counts", "tenant_id": "t1", "business_date": "2026-11-02"}
    late = late_event(changed, "tables/x.parquet", date(2026, 11, 5), NOW)
    assert late == {
        "table": "raw_iot_counts", "tenant_id": "t1", "business_date": "2026-11-02",
        "part_key": "tables/x.parquet", "days_late": 3, "detected_at": NOW.isoformat(),
    }  # fmt: skip
    today = {**changed, "business_date": "2026-11-05"}
    assert late_event(today, "k", date(2026, 11, 5), NOW) is None
    mart = {**changed, "table": "mart_store_daily"}
    assert late_event(mart, "k", date(2026, 11, 5), NOW) is None
    with pytest.raises(ValueError):
        late_event({"table": "raw_iot_counts", "tenant_id": "t1"}, "k", date(2026, 11, 5), NOW)


def test_monitor_skips_malformed_and_publishes_once() -> None:
    bus = MemoryBus()
    payload = {"table": "raw_iot_counts", "tenant_id": "t1", "business_date": "2026-11-01"}
    bus.publish(PARTITIONS_CHANGED, payload, event_id="tables/a.parquet")
    bus.publish(PARTITIONS_CHANGED, {"table": 3}, event_id="bad")
    monitor = LateDataMonitor(bus, clock=lambda: NOW)
    assert monitor.run_once(timeout=0.05) == 1
    assert (monitor.stats.changed, monitor.stats.malformed) == (2, 1)
    # The same change announced again (streamer redelivery) does not produce a second event.
    bus.publish(PARTITIONS_CHANGED, payload, event_id="tables/a.parquet")
    assert monitor.run_once(timeout=0.05) == 0
    (late,) = bus.fetch(PARTITIONS_LATE, "orchestrator", timeout=0.05)
    assert late.event_id == "late:tables/a.parquet" and late.payload["days_late"] == 4


def test_buffered_days_land_in_their_partitions_and_are_announced(chain: Chain) -> None:
    sub = MqttSubscriber(chain.settings, chain.lake, chain.landing(), chain.control.directory())
    sub.clock = lambda: NOW
    topic = chain.topic("t1", "pc-001")
    # A counter back online after three days sends its buffer, then a live interval.
    buffered = [
        count_event("pc-001", seq, interval_start=f"2026-11-0{day}T10:00:00+09:00",
                    interval_end=f"2026-11-0{day}T10:15:00+09:00")
        for seq, day in ((1, 2), (2, 3), (3, 4))
    ]  # fmt: skip
    live = count_event("pc-001", 4, interval_start="2026-11-05T11:45:00+09:00",
                       interval_end="2026-11-05T12:00:00+09:00")  # fmt: skip
    sub.receive(1, topic, json.dumps(buffered).encode())
    sub.receive(2, topic, json.dumps(live).encode())
    sub.flush()
    Streamer(chain.settings, chain.lake, chain.bus, chain.control.directory()).run_until_idle(
        timeout=0.3
    )
    rows = read_table(chain.lake, "raw_iot_counts").to_pylist()
    assert sorted((r["seq"], r["business_date"]) for r in rows) == [
        (1, date(2026, 11, 2)), (2, date(2026, 11, 3)), (3, date(2026, 11, 4)),
        (4, date(2026, 11, 5)),
    ]  # fmt: skip
    monitor = LateDataMonitor(chain.bus, chain.settings.default_timezone, clock=lambda: NOW)
    assert monitor.run_once(timeout=0.2) == 3
    late = chain.bus.fetch(PARTITIONS_LATE, "orchestrator", max_events=10, timeout=0.2)
    assert sorted((d.payload["business_date"], d.payload["days_late"]) for d in late) == [
        ("2026-11-02", 3), ("2026-11-03", 2), ("2026-11-04", 1),
    ]  # fmt: skip
    assert all(d.payload["table"] == "raw_iot_counts" for d in late)
    assert all(str(d.payload["part_key"]).startswith("tables/raw_iot_counts/") for d in late)
