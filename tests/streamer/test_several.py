"""Several streamers on one ledger: leases, reclaiming dead owners only, reclaimed parts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tenpo.bus import OBJECT_REGISTERED
from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import PartsReclaimed
from tenpo.core.ids import utcnow
from tenpo.lake import Lake, LandingZone
from tenpo.streamer import CONSUMER, Streamer, read_table
from tenpo.streamer._ledger import owners_table
from tenpo.streamer._streamer import _HOST, _gone
from tests.streamer._fakes import TABLE, body

D1 = date(2026, 10, 5)


def parts(lake: Lake) -> list[str]:
    return sorted(k for k in lake.list("tables/") if k.endswith(".parquet"))


def txn_ids(lake: Lake) -> list[str]:
    return sorted(read_table(lake, TABLE)["transaction_id"].to_pylist())


def test_a_live_streamers_pending_parts_survive_another_ones_reclaim(
    landing: LandingZone,
    lake: Lake,
    bus: MemoryBus,
    make_streamer: Callable[..., Streamer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(3):
        landing.land("test_json", "t1", body(("S1", f"T{i}", "2026-10-05", "1")), "json", day=D1)
    a, b = make_streamer(), make_streamer()
    real_commit = a.ledger.commit
    seen: dict[str, object] = {}

    def commit_after_b_reclaims(*args: object) -> None:
        # A has written its part and not committed it yet: B starts and recovers.
        seen["pending"] = a.ledger.pending_parts()
        seen["reclaimed"] = b.reclaim_dead()
        seen["files"] = parts(lake)
        real_commit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(a.ledger, "commit", commit_after_b_reclaims)
    stats = a.run_once()
    assert stats.objects == 3
    assert seen["reclaimed"] == 0
    assert seen["files"] == seen["pending"] and len(seen["pending"]) == 1  # type: ignore[arg-type]
    assert b.run_until_idle(0.1).objects == 0
    assert txn_ids(lake) == ["T0", "T1", "T2"]
    assert a.ledger.counts() == {"objects": 3, "parts_committed": 1}
    assert set(a.ledger.owners()) == {a.owner, b.owner}
    a.close()
    assert set(b.ledger.owners()) == {b.owner}  # a clean stop ends the lease


def test_a_dead_streamers_parts_are_reclaimed_after_its_lease(
    landing: LandingZone,
    lake: Lake,
    bus: MemoryBus,
    make_streamer: Callable[..., Streamer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing.land("test_json", "t1", body(("S1", "A", "2026-10-05", "1")), "json", day=D1)
    dead = make_streamer(streamer_lease_s=30.0)

    class Crash(BaseException):
        pass

    monkeypatch.setattr(dead.ledger, "commit", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        dead.run_once()
    assert len(parts(lake)) == 1
    other = make_streamer(streamer_lease_s=30.0)
    assert other.reclaim_dead() == 0  # the lease is still fresh
    assert len(parts(lake)) == 1
    with other.ledger.engine.begin() as conn:  # 31 s pass (the dead one renews no more)
        conn.execute(
            sa.update(owners_table)
            .where(owners_table.c.owner == dead.owner)
            .values(heartbeat_at=utcnow() - timedelta(seconds=31))
        )
    assert other.reclaim_dead() == 1
    assert parts(lake) == []
    assert dead.owner not in other.ledger.owners()  # its lease row is forgotten too
    assert other.run_until_idle(0.2).objects == 1  # the redelivery loads once
    assert txn_ids(lake) == ["A"]
    assert other.ledger.counts() == {"objects": 1, "parts_committed": 1}


def test_a_streamer_whose_parts_were_reclaimed_cannot_commit_them(
    landing: LandingZone,
    lake: Lake,
    bus: MemoryBus,
    make_streamer: Callable[..., Streamer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(2):
        landing.land("test_json", "t1", body(("S1", f"T{i}", f"2026-10-0{i + 5}", "1")), "json")
    slow, other = make_streamer(streamer_lease_s=0.2), make_streamer(streamer_lease_s=0.2)
    real_commit = slow.ledger.commit
    late_files: list[str] = []

    def pause_longer_than_the_lease(part_keys: list[str], objects: object) -> None:
        time.sleep(0.3)  # e.g. a long GC pause or a stalled disk
        assert other.reclaim_dead() == 2
        assert parts(lake) == []
        # The paused streamer's writes may land after the reclaimer deleted them.
        for key in part_keys:
            lake.put(key, b"late bytes")
        late_files.extend(part_keys)
        real_commit(part_keys, objects)  # type: ignore[arg-type]

    monkeypatch.setattr(slow.ledger, "commit", pause_longer_than_the_lease)
    with pytest.raises(PartsReclaimed, match="2 of 2 part"):
        slow.run_once()
    assert len(late_files) == 2
    assert parts(lake) == []  # the paused streamer deleted its own late files
    assert slow.ledger.counts() == {"objects": 0}
    assert bus.pending(OBJECT_REGISTERED, CONSUMER) == 2  # nothing acked: redelivered
    monkeypatch.undo()
    stats = other.run_until_idle(0.2)
    assert stats.objects == 2
    assert txn_ids(lake) == ["T0", "T1"]
    assert other.ledger.counts() == {"objects": 2, "parts_committed": 2}
    assert len(parts(lake)) == 2


def test_run_until_idle_leaves_a_reclaimed_batch_to_its_redelivery(
    landing: LandingZone,
    lake: Lake,
    make_streamer: Callable[..., Streamer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing.land("test_json", "t1", body(("S1", "A", "2026-10-05", "1")), "json", day=D1)
    slow, other = make_streamer(streamer_lease_s=0.2), make_streamer(streamer_lease_s=0.2)
    real_commit = slow.ledger.commit
    calls: list[int] = []

    def first_commit_after_a_pause(part_keys: list[str], objects: object) -> None:
        calls.append(len(part_keys))
        if len(calls) == 1:
            time.sleep(0.3)
            other.reclaim_dead()
        real_commit(part_keys, objects)  # type: ignore[arg-type]

    monkeypatch.setattr(slow.ledger, "commit", first_commit_after_a_pause)
    stats = slow.run_until_idle(0.2, max_seconds=10)
    assert calls == [1, 1]  # refused once, loaded on the redelivery
    assert stats.objects == 1
    assert txn_ids(lake) == ["A"] and len(parts(lake)) == 1
    assert slow.ledger.counts() == {"objects": 1, "parts_committed": 1}


def test_an_owner_whose_process_exited_on_this_host_is_dead_at_once(
    make_streamer: Callable[..., Streamer],
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = f"{_HOST}:{int(child.stdout)}:abc"
    streamer = make_streamer()  # 60 s lease
    assert _gone(gone)
    assert not _gone(streamer.owner)  # this process
    assert not _gone(f"other-host:{int(child.stdout)}:abc")  # only its own host's pids
    assert not _gone("not an owner id")
    streamer.ledger.heartbeat(gone)  # fresh lease, but the process is gone
    streamer.ledger.begin_parts(["tables/x/tenant=t1/date=2026-10-05/p.parquet"], gone)
    streamer.lake.put("tables/x/tenant=t1/date=2026-10-05/p.parquet", b"orphan")
    assert streamer.reclaim_dead() == 1
    assert streamer.ledger.counts() == {"objects": 0}
    assert not streamer.lake.exists("tables/x/tenant=t1/date=2026-10-05/p.parquet")
