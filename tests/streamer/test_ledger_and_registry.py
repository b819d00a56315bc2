"""The load ledger on SQLite and PostgreSQL, and the default Pre-ETL registry."""

from __future__ import annotations

import pytest

from tenpo.core.errors import ConfigError
from tenpo.core.settings import Settings
from tenpo.streamer import LoadedObject, LoadLedger, _registry, default_pre_etls


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
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        ledger.commit([], [a])
    assert ledger.counts()["objects"] == 1


def test_ledger_on_sqlite(settings: Settings) -> None:
    ledger = LoadLedger(settings.streamer_db_url)
    _exercise(ledger)
    ledger.close()
    assert LoadLedger(settings.streamer_db_url).counts()["objects"] == 1  # durable


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
