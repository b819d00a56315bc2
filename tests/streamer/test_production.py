"""Integration: the streamer on the production adapters (NATS JetStream bus, PostgreSQL ledger)."""

from __future__ import annotations

import uuid

import pytest

from tenpo.bus import OBJECT_REGISTERED, PARTITIONS_CHANGED, open_bus
from tenpo.control.directory import StaticDirectory
from tenpo.core.settings import Settings
from tenpo.lake import LandingZone, open_lake
from tenpo.streamer import CONSUMER, Streamer, read_table
from tests.streamer._fakes import TABLE, JsonPreEtl, body

pytestmark = pytest.mark.integration


def test_streamer_over_nats_and_postgresql(settings: Settings, nats_url: str, pg_url: str) -> None:
    cfg = settings.model_copy(
        update={
            "bus": "nats",
            "nats_url": nats_url,
            "bus_stream": f"t{uuid.uuid4().hex[:10]}",
            "bus_ack_wait_s": 1.0,
            "streamer_state_url": pg_url,
        }
    )
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    try:
        landing = LandingZone(lake, bus)
        data = body(("S1", "A", "2026-10-05", "10"), ("S1", "B", "2026-10-06", "20"))
        landing.land("test_json", "t1", data, "json")
        landing.land("test_json", "t1", data, "json")  # a re-send: one object
        landing.land("test_json", "t2", body(("S7", "A", "2026-10-05", "1")), "json")
        streamer = Streamer(cfg, lake, bus, StaticDirectory(), {"test_json": JsonPreEtl()})
        stats = streamer.run_until_idle(0.5, max_seconds=30)
        assert stats.objects == 2
        assert sorted(read_table(lake, TABLE, "t1")["transaction_id"].to_pylist()) == ["A", "B"]
        assert read_table(lake, TABLE, "t2")["store_id"].to_pylist() == ["S7"]
        assert streamer.ledger.counts() == {"objects": 2, "parts_committed": 3}
        assert bus.pending(OBJECT_REGISTERED, CONSUMER) == 0
        changed = bus.fetch(PARTITIONS_CHANGED, "observer", 10, timeout=2.0)
        assert sorted((d.payload["tenant_id"], d.payload["business_date"]) for d in changed) == [
            ("t1", "2026-10-05"),
            ("t1", "2026-10-06"),
            ("t2", "2026-10-05"),
        ]
        streamer.close()
    finally:
        bus.close()
