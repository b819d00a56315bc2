"""The load ledger on SQLite and PostgreSQL, and the default Pre-ETL registry."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tenpo.core.errors import ConfigError, LedgerConflict, PartsReclaimed
from tenpo.core.ids import utcnow
from tenpo.core.settings import Settings
from tenpo.streamer import LoadedObject, LoadLedger, _registry, default_pre_etls
from tenpo.streamer._ledger import ReplayedObject, owners_table


def _exercise(ledger: LoadLedger) -> None:
    a = LoadedObject("src", "t1", "obj-a", "landing/a", ("tables/x/p1.parquet",), 3, 1)
    ledger.begin_parts(["tables/x/p1.parquet", "tables/x/p2.parquet"], owner="me")
    assert ledger.pending_parts() == ["tables/x/p1.parquet", "tables/x/p2.parquet"]
    assert ledger.pending_parts("someone-else") == []
    ledger.commit(["tables/x/p1.parquet"], [a])
    assert ledger.pending_parts("me") == ["tables/x/p2.parquet"]
    found = ledger.loaded([("src", "t1", "obj-a"), ("src", "t2", "obj-a"), ("src", "t1", "b")])
    assert list(found) == [("src", "t1", "obj-a")]
    got = found[("src", "t1", "obj-a")]
    assert (got.part_keys, got.rows, got.rejects) == (("tables/x/p1.parquet",), 3, 1)
    assert got.loaded_at is not None
    ledger.drop_pending(["tables/x/p1.parquet", "tables/x/p2.parquet"])  # p1 is committed
    assert ledger.counts() == {"objects": 1, "parts_committed": 1}
    # Loading an object twice is refused by the primary key, so a racing batch rolls back.
    ledger.begin_parts(["tables/x/p3.parquet"], owner="me")
    with pytest.raises(LedgerConflict, match="(?i)duplicate"):
        ledger.commit(["tables/x/p3.parquet"], [a])
    assert ledger.counts() == {"objects": 1, "parts_committed": 1, "parts_pending": 1}
    ledger.drop_pending(["tables/x/p3.parquet"])
    _exercise_leases(ledger)
    _exercise_replay_conflict(ledger)


def _exercise_leases(ledger: LoadLedger) -> None:
    """Two live owners and a dead one: only the dead one's pending parts are reclaimed."""
    ledger.heartbeat("alive-1")
    ledger.heartbeat("alive-2")
    ledger.heartbeat("dead")
    ledger.begin_parts(["tables/x/a1.parquet"], owner="alive-1")
    ledger.begin_parts(["tables/x/a2.parquet"], owner="alive-2")
    ledger.begin_parts(["tables/x/d1.parquet", "tables/x/d2.parquet"], owner="dead")
    ledger.begin_parts(["tables/x/n1.parquet"], owner="never-heartbeat")
    owners = ledger.pending_owners()
    assert set(owners) == {"alive-1", "alive-2", "dead", "never-heartbeat"}
    assert owners["never-heartbeat"] is None and owners["dead"] is not None
    assert owners["dead"].tzinfo is not None
    # Everyone is fresh within a long lease: only the owner without a lease is dead.
    assert ledger.reclaim_dead(60.0) == ["tables/x/n1.parquet"]
    ledger.drop_reclaimed(["tables/x/n1.parquet"])
    _silent_since(ledger, "dead", seconds=120)  # as if "dead" stopped renewing 2 min ago
    assert ledger.reclaim_dead(60.0) == ["tables/x/d1.parquet", "tables/x/d2.parquet"]
    assert ledger.pending_parts() == ["tables/x/a1.parquet", "tables/x/a2.parquet"]
    # The dead owner comes back (a long pause): its parts can never be committed.
    with pytest.raises(PartsReclaimed, match="2 of 2 part"):
        ledger.commit(["tables/x/d1.parquet", "tables/x/d2.parquet"], [])
    # A reclaimer that died before deleting the files: the next one gets the keys again.
    assert ledger.reclaim_dead(60.0) == ["tables/x/d1.parquet", "tables/x/d2.parquet"]
    ledger.drop_reclaimed(["tables/x/d1.parquet", "tables/x/d2.parquet", "tables/x/a1.parquet"])
    assert ledger.reclaim_dead(60.0) == []
    # ``besides`` names owners known dead although their lease is still fresh.
    assert ledger.reclaim_dead(60.0, besides=["alive-2"]) == ["tables/x/a2.parquet"]
    ledger.drop_reclaimed(["tables/x/a2.parquet"])
    ledger.commit(["tables/x/a1.parquet"], [])  # alive-1 commits as usual
    assert ledger.forget_dead_owners(60.0) == 1  # "dead"
    assert set(ledger.owners()) == {"alive-1", "alive-2"}
    ledger.release("alive-2")
    assert set(ledger.owners()) == {"alive-1"}
    # ``reclaim`` with explicit owners (the operator's recovery) ignores leases.
    ledger.begin_parts(["tables/x/a3.parquet"], owner="alive-1")
    assert ledger.reclaim() == ["tables/x/a3.parquet"]
    ledger.drop_reclaimed(["tables/x/a3.parquet"])
    assert ledger.counts() == {"objects": 1, "parts_committed": 2}


def _silent_since(ledger: LoadLedger, owner: str, *, seconds: float) -> None:
    """Backdate ``owner``'s last heartbeat (time passing, without a timing-dependent test)."""
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(owners_table)
            .where(owners_table.c.owner == owner)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def _exercise_replay_conflict(ledger: LoadLedger) -> None:
    """Two streamers replaying one object: the second commit is refused, changing nothing."""
    obj = LoadedObject(
        "src",
        "t1",
        "obj-r",
        "landing/r",
        ("tables/x/r0.parquet",),
        1,
        2,
        replayable=2,
        event_json="{}",
    )
    ledger.begin_parts(["tables/x/r0.parquet"], owner="alive-1")
    ledger.commit(["tables/x/r0.parquet"], [obj])
    (candidate,) = ledger.replay_candidates("t1")
    (read,) = ledger.loaded([obj.key]).values()
    ledger.begin_parts(["tables/x/r1.parquet", "tables/x/r2.parquet"], owner="alive-1")

    def replayed(new_part: str) -> ReplayedObject:
        return ReplayedObject(read, candidate.replays, (*read.part_keys, new_part), 1, 1, 1)

    ledger.commit_replay(["tables/x/r1.parquet"], [replayed("tables/x/r1.parquet")])
    with pytest.raises(LedgerConflict, match="replayed by another streamer"):
        ledger.commit_replay(["tables/x/r2.parquet"], [replayed("tables/x/r2.parquet")])
    (now,) = ledger.loaded([obj.key]).values()
    assert (now.part_keys, now.rows, now.rejects) == (
        ("tables/x/r0.parquet", "tables/x/r1.parquet"),
        2,
        1,
    )
    assert ledger.pending_parts() == ["tables/x/r2.parquet"]  # rolled back, still pending
    status = ledger.replay_status(obj.key)
    assert status is not None and (status.replays, status.replayable) == (1, 1)
    ledger.drop_pending(["tables/x/r2.parquet"])


def test_ledger_on_sqlite(settings: Settings) -> None:
    ledger = LoadLedger(settings.streamer_db_url)
    _exercise(ledger)
    ledger.close()
    assert LoadLedger(settings.streamer_db_url).counts()["objects"] == 2  # durable


@pytest.mark.integration
def test_ledger_on_postgresql(pg_url: str) -> None:
    ledger = LoadLedger(pg_url)
    _exercise(ledger)
    ledger.close()


def test_default_registry_skips_missing_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _registry,
        "DEFAULT_PRE_ETLS",
        {
            "iot": ("tenpo.iot", "IotPreEtl"),
            "nowhere": ("tenpo.no_such_package", "X"),
            "no_class": ("tenpo.core.preetl", "NoSuchPreEtl"),
        },
    )
    found = default_pre_etls()
    # Every vendor plugin's uploads (the vendor registry), then the device adapters found.
    from tenpo.pos.vendors import by_source

    assert set(found) == {*by_source(), "iot"} and list(found)[-1] == "iot"
    assert {"pos_vendor_a", "pos_vendor_a_master", "pos_vendor_b"} <= set(found)
    assert found["pos_vendor_b"].source == "pos_vendor_b"
    assert found["iot"].source == "iot"


def test_default_registry_refuses_a_source_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "DEFAULT_PRE_ETLS", {"iot": ("tenpo.pos", "VendorBPreEtl")})
    with pytest.raises(ConfigError, match="declares source 'pos_vendor_b'"):
        default_pre_etls()


def test_an_injected_ledger_stays_the_callers(settings: Settings) -> None:
    from tenpo.bus import open_bus
    from tenpo.control.directory import StaticDirectory
    from tenpo.lake import open_lake
    from tenpo.streamer import Streamer

    closed: list[str] = []

    class Spy(LoadLedger):
        def close(self) -> None:
            closed.append("closed")
            super().close()

    ledger = Spy(settings.streamer_db_url)
    bus = open_bus(settings)
    lake = open_lake(settings.lake_root)
    streamer = Streamer(settings, lake, bus, StaticDirectory(), ledger=ledger)
    assert streamer.ledger is ledger
    streamer.run_until_idle(0.05)
    streamer.close()
    assert closed == []  # the caller's, left open
    ledger.close()
    assert closed == ["closed"]
    bus.close()
