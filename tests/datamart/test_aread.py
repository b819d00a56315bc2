"""The async KPI reader's pool on a real PostgreSQL: hand-over to waiting reads, a broken
connection dropped and replaced, reads after a cancelled one still answered."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import asyncpg
import pytest
import sqlalchemy as sa

from tenpo.core.errors import NotFound
from tenpo.datamart import ensure_schema, get_engine
from tenpo.datamart.aread import AsyncKpiReader
from tenpo.datamart.read import Scope
from tenpo.datamart.schema import dm_stores, mart_store_daily

DAYS = [date(2026, 10, d) for d in (5, 6, 7)]


@pytest.fixture
def reader(pg_url: str) -> AsyncKpiReader:
    engine = get_engine(pg_url)
    ensure_schema(engine)
    store = {"store_id": "s1", "code": "001", "name": "One", "timezone": "Asia/Tokyo"}
    with engine.begin() as conn:
        conn.execute(
            dm_stores.insert(), [{"tenant_id": "t1", **store}, {"tenant_id": "t2", **store}]
        )
        conn.execute(
            mart_store_daily.insert(),
            [
                {"tenant_id": "t1", "store_id": "s1", "business_date": d, "net_sales": 100 * i,
                 "transactions": i, "has_pos": True, "has_counter": False}
                for i, d in enumerate(DAYS, 1)
            ],
        )  # fmt: skip
    return AsyncKpiReader(engine, max_size=1)


def _read(reader: AsyncKpiReader, tenant: str = "t1") -> object:
    return reader.store_with_days(Scope(tenant), "s1", DAYS[0], DAYS[-1])


def _kill_backends(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    engine.dispose()


def _states(url: str) -> list[str]:
    """The states of the database's other backends."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        states = conn.scalars(
            sa.text(
                "SELECT state FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    engine.dispose()
    return sorted(states)


def test_reads_wait_for_the_one_connection_and_see_their_tenant(reader: AsyncKpiReader) -> None:
    async def main() -> list[object]:
        reader.serve()
        try:
            return await asyncio.gather(*(_read(reader) for _ in range(5)), _read(reader, "t2"))
        finally:
            await reader.close()

    *t1, t2 = asyncio.run(main())
    record, days, health = t1[0]  # type: ignore[misc]
    assert record.store_id == "s1" and record.tenant_id == "t1" and health == {}
    assert [(d.period_start, d.net_sales, d.transactions) for d in days] == [
        (DAYS[0], Decimal("100.00"), 1),
        (DAYS[1], Decimal("200.00"), 2),
        (DAYS[2], Decimal("300.00"), 3),
    ]
    assert all(r == t1[0] for r in t1)
    assert t2[0].tenant_id == "t2" and t2[1] == []  # type: ignore[index]
    assert reader.served == 6


def test_a_broken_connection_is_replaced_and_a_cancelled_read_harms_none_after(
    reader: AsyncKpiReader, pg_url: str
) -> None:
    async def main() -> None:
        reader.serve()
        try:
            await _read(reader)
            _kill_backends(pg_url)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
                await _read(reader)  # the pooled connection was cut: this read fails ...
            await _read(reader)  # ... and the next opens a new one
            for delay in (0.0, 0.001, 0.005):  # cancelled before, while and after it is sent
                task = asyncio.ensure_future(_read(reader))
                await asyncio.sleep(delay)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                record, days, _ = await _read(reader)
                assert record.store_id == "s1" and len(days) == 3
            with pytest.raises(NotFound):
                await reader.store_with_days(Scope("t3"), "s1", DAYS[0], DAYS[-1])
        finally:
            await reader.close()

    asyncio.run(main())


def test_start_opens_the_pool_warm(pg_url: str, reader: AsyncKpiReader) -> None:
    """The lifespan's start opens every pooled connection with its statement prepared
    before the first read, and the reads are then served on them."""
    warm = AsyncKpiReader(get_engine(pg_url), max_size=3)

    async def main() -> int:
        await warm.start()
        try:
            opened = warm.connections
            assert set(_states(pg_url)) == {"idle"}  # no transaction (and lock) left open
            await asyncio.gather(*(_read(warm) for _ in range(6)))
            assert warm.connections == 3  # none opened on demand
            return opened
        finally:
            await warm.close()

    assert asyncio.run(main()) == 3
    assert warm.served == 6 and warm.connections == 0


def test_money_reads_as_the_sync_read_side_reads_it(pg_url: str, reader: AsyncKpiReader) -> None:
    """Money (numeric, read as text by the pool's connections) comes back as the same
    Decimals, scale included, as the sync read side's: cents, negatives (returns), large
    amounts, null; every other value and type the same too."""
    from tenpo.datamart.read import store_with_days

    engine = get_engine(pg_url)
    amounts = [Decimal("-1234.50"), Decimal("0.05"), Decimal("9999999999999999.99")]
    with engine.begin() as conn:
        for day, amount in zip(DAYS, amounts, strict=True):
            conn.execute(
                mart_store_daily.update()
                .where(mart_store_daily.c.business_date == day)
                .values(net_sales=amount, net_sales_incl_tax=None, atv=0.1 + 0.2)
            )

    async def main() -> object:
        reader.serve()
        try:
            return await _read(reader)
        finally:
            await reader.close()

    record, days, _ = asyncio.run(main())  # type: ignore[misc]
    sync_record, sync_days = store_with_days(engine, Scope("t1"), "s1", DAYS[0], DAYS[-1])
    assert [d.net_sales for d in days] == amounts
    assert record == sync_record and days == sync_days
    assert [tuple(map(repr, d)) for d in days] == [tuple(map(repr, d)) for d in sync_days]
    assert repr(days[1].net_sales) == "Decimal('0.05')" and days[0].net_sales_incl_tax is None
