"""Lake keys, atomic puts and the landing zone's idempotency."""

from __future__ import annotations

import multiprocessing
import os
from datetime import date
from pathlib import Path
from typing import Any

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


def test_the_claim_keeps_what_the_sender_said_beside_the_bytes(tmp_path: Path) -> None:
    """An upload's meta (the store an Airレジ export was sent for) is in its ``ids/`` claim, so
    the lake alone describes the object; a claim without meta stays as it was."""
    import json

    from tenpo.lake.keys import claim_key

    zone = LandingZone(open_lake(str(tmp_path)), MemoryBus())
    sent = zone.land(
        "pos_airregi", "t1", b"csv", "csv", day=D, meta={"store_code": "S01"}, scope="S01"
    )
    claim = json.loads(zone.lake.get(claim_key("pos_airregi", "t1", sent.event.object_id)))
    assert claim == {
        "key": sent.event.key,
        "sha256": sent.event.sha256,
        "size": 3,
        "meta": {"store_code": "S01"},
    }
    plain = zone.land("pos_vendor_b", "t1", b"{}", "json", day=D)
    claim = json.loads(zone.lake.get(claim_key("pos_vendor_b", "t1", plain.event.object_id)))
    assert "meta" not in claim and claim["key"] == plain.event.key


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


def _race_put(root: str, key: str, me: int, go: Any, out: Any) -> None:
    go.wait()
    out.put((me, open_lake(root).put_if_absent(key, f"writer {me} ".encode() * 2000)))


def test_put_if_absent_has_exactly_one_winner_across_processes(tmp_path: Path) -> None:
    """Concurrent creators of one key (separate processes): one True, and its bytes are kept."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(8):
        key = f"landing/x/tenant=t1/date=2026-10-05/race-{round_}.bin"
        go, out = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_race_put, args=(str(tmp_path), key, i, go, out)) for i in range(8)
        ]
        for p in procs:
            p.start()
        go.set()
        results = dict(out.get(timeout=30) for _ in procs)
        for p in procs:
            p.join(30)
        winners = [i for i, won in results.items() if won]
        assert len(winners) == 1, results
        assert open_lake(str(tmp_path)).get(key) == f"writer {winners[0]} ".encode() * 2000
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temporary file left behind


def test_put_if_absent_on_object_store_backend_is_conditional() -> None:
    lake = open_lake(f"memory://tenpo-{os.getpid()}-cond")
    assert lake.put_if_absent("a/b.bin", b"one")
    assert not lake.put_if_absent("a/b.bin", b"two")
    assert lake.get("a/b.bin") == b"one"


def test_idempotency_key_reused_on_another_day_names_the_first_object(tmp_path: Path) -> None:
    """A retry after midnight lands nowhere new: same id, same key, same day (issue 11)."""
    bus = MemoryBus()
    zone = LandingZone(open_lake(str(tmp_path)), bus)
    first = zone.land("iot", "t1", b"payload", "json", idempotency_key="k1", day=D)
    later = date(2026, 10, 6)
    again = zone.land("iot", "t1", b"payload", "json", idempotency_key="k1", day=later)
    assert first.created and not again.created
    assert again.event.key == first.event.key and again.event.business_date == D
    with pytest.raises(Conflict, match="'k1' was already used"):
        zone.land("iot", "t1", b"other", "json", idempotency_key="k1", day=later)
    # Same bytes without a key, on another day: the same content object.
    plain = zone.land("iot", "t1", b"same", "json", day=D)
    assert zone.land("iot", "t1", b"same", "json", day=later).event.key == plain.event.key
    assert [k for k in zone.lake.list("landing/") if "date=2026-10-06" in k] == []
    # Another source or tenant may use the same key: ids are per (source, tenant).
    assert zone.land("iot", "t2", b"other", "json", idempotency_key="k1", day=later).created


def test_a_claim_whose_writer_crashed_is_completed_by_the_retry(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path))
    zone = LandingZone(lake, MemoryBus())
    first = zone.land("iot", "t1", b"payload", "json", idempotency_key="k1", day=D)
    lake.delete(first.event.key)  # as if the writer died between claim and object
    again = zone.land("iot", "t1", b"payload", "json", idempotency_key="k1", day=date(2026, 10, 9))
    assert again.event.key == first.event.key and lake.get(first.event.key) == b"payload"
