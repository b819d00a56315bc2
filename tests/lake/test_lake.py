"""Lake keys, atomic puts and the landing zone's idempotency."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from tenpo.bus import OBJECT_REGISTERED
from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import Conflict, LakeError
from tenpo.lake import (
    LandingZone,
    ObjectRegistered,
    landing_key,
    open_lake,
    parse_partition,
    quarantine_key,
    table_key,
    video_key,
)

D = date(2026, 10, 5)


def test_key_layout_matches_architecture() -> None:
    assert landing_key("pos_vendor_b", "t1", D, "abc", "json") == (
        "landing/pos_vendor_b/tenant=t1/date=2026-10-05/abc.json"
    )
    assert quarantine_key("raw_pos_lines", "t1", D, "abc") == (
        "quarantine/raw_pos_lines/tenant=t1/date=2026-10-05/abc.jsonl"
    )
    assert table_key("raw_iot_counts", "t1", D, "p1") == (
        "tables/raw_iot_counts/tenant=t1/date=2026-10-05/p1.parquet"
    )
    assert video_key("t1", "cam-1", D, "20261005T100000") == (
        "video/tenant=t1/camera=cam-1/date=2026-10-05/20261005T100000.mp4"
    )
    assert parse_partition("tables/x/tenant=t9/date=2026-01-02/p.parquet") == (
        "t9",
        date(2026, 1, 2),
    )
    with pytest.raises(ValueError):
        parse_partition("landing/x/y.json")


def test_put_get_list_delete(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.put("tables/a/tenant=t/date=2026-10-05/p.parquet", b"one")
    lake.put("tables/a/tenant=t/date=2026-10-05/p.parquet", b"two")
    assert lake.get("tables/a/tenant=t/date=2026-10-05/p.parquet") == b"two"
    assert lake.list("tables/a/") == ["tables/a/tenant=t/date=2026-10-05/p.parquet"]
    assert lake.list("nothing/") == []
    # No temporary file is left behind by atomic puts.
    assert [n for _, _, files in os.walk(tmp_path) for n in files if n.startswith(".tmp")] == []
    lake.delete("tables/a/tenant=t/date=2026-10-05/p.parquet")
    lake.delete("tables/a/tenant=t/date=2026-10-05/p.parquet")
    assert not lake.exists("tables/a/tenant=t/date=2026-10-05/p.parquet")
    with pytest.raises(LakeError, match="no object"):
        lake.get("missing")


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    with pytest.raises(LakeError, match="invalid lake key"):
        lake.put("../outside", b"x")
    with pytest.raises(LakeError, match="invalid lake key"):
        lake.put("/abs", b"x")


def test_memory_filesystem_url_selects_fsspec_backend() -> None:
    lake = open_lake("memory://tenpo-test-lake")
    lake.put("landing/x/tenant=t/date=2026-10-05/a.json", b"{}")
    assert lake.get("landing/x/tenant=t/date=2026-10-05/a.json") == b"{}"
    assert lake.path("a/b").startswith("memory://")


def test_landing_same_bytes_twice_stores_once_and_publishes_once(tmp_path: Path) -> None:
    bus = MemoryBus()
    zone = LandingZone(open_lake(str(tmp_path)), bus)
    first = zone.land("pos_vendor_b", "t1", b'{"a": 1}', "json", day=D)
    again = zone.land("pos_vendor_b", "t1", b'{"a": 1}', "json", day=D)
    assert first.created and not again.created
    assert first.event.key == again.event.key
    assert zone.lake.list("landing/") == [first.event.key]
    deliveries = bus.fetch(OBJECT_REGISTERED, "c", timeout=0)
    assert len(deliveries) == 1
    event = ObjectRegistered.model_validate(deliveries[0].payload)
    assert event.object_id == first.event.object_id and event.size == 8


def test_idempotency_key_names_the_object_and_detects_reuse(tmp_path: Path) -> None:
    zone = LandingZone(open_lake(str(tmp_path)), MemoryBus())
    landed = zone.land("iot", "t1", b"payload", "json", idempotency_key="batch-42", day=D)
    assert landed.event.object_id == "k-batch-42"
    assert not zone.land("iot", "t1", b"payload", "json", idempotency_key="batch-42", day=D).created
    with pytest.raises(Conflict, match="batch-42"):
        zone.land("iot", "t1", b"other", "json", idempotency_key="batch-42", day=D)
    # Unsafe characters are hashed, never used as a path.
    odd = zone.land("iot", "t1", b"p", "json", idempotency_key="../../etc", day=D)
    assert "/" not in odd.event.object_id and ".." not in odd.event.object_id
