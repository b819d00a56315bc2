"""The KPI read hot path on PostgreSQL, async: a psycopg pool, prepared statements, one
round trip.

:class:`AsyncKpiReader` serves :func:`tenpo.datamart.read.store_with_days` plus the store's
device health (:func:`tenpo.datamart.devices.store_day_health`) for an event loop: one
statement (a UNION ALL of both) prepared on each pooled connection, one network round trip,
and no worker thread is involved. The rows become the same
:class:`~tenpo.datamart.kpis.KpiPeriod` objects the sync read side makes, so roll-ups, flags
and missing dates stay in :mod:`tenpo.datamart.read`. SQLite datamarts keep the sync path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine

from tenpo.datamart.devices import StoreDayHealth, ensure_device_health, mart_device_health
from tenpo.datamart.kpis import KPI_COLUMNS, KpiPeriod
from tenpo.datamart.read import Caller, StoreRecord, day_period, not_found
from tenpo.datamart.schema import dm_stores, mart_store_daily

log = logging.getLogger(__name__)

_KPIS = len(KPI_COLUMNS)

_STORE_COLUMNS = tuple(c.name for c in dm_stores.c)

_DAYS_PART, _HEALTH_PART = 0, 1
_STORE_DAYS_HEALTH_SQL = (
    # Part 0: the store (once, even without rows) with its daily rows, by date.
    f"SELECT {_DAYS_PART}, {', '.join('s.' + c for c in _STORE_COLUMNS)}, m.business_date, "
    f"{', '.join('m.' + c for c in KPI_COLUMNS)}, NULL::text, NULL::text "
    f"FROM {dm_stores.name} s LEFT JOIN {mart_store_daily.name} m "
    "ON m.tenant_id = s.tenant_id AND m.store_id = s.store_id "
    "AND m.business_date >= %(start)s AND m.business_date <= %(end)s "
    "WHERE s.tenant_id = %(tenant_id)s AND s.store_id = %(store_id)s "
    # Part 1: the device health of those dates, one row per device and date.
    f"UNION ALL SELECT {_HEALTH_PART}, {', '.join(['NULL'] * len(_STORE_COLUMNS))}, "
    f"business_date, {', '.join(['NULL'] * len(KPI_COLUMNS))}, flags, incomplete_hours "
    f"FROM {mart_device_health.name} "
    "WHERE tenant_id = %(tenant_id)s AND store_id = %(store_id)s "
    "AND business_date >= %(start)s AND business_date <= %(end)s "
    f"ORDER BY 1, {len(_STORE_COLUMNS) + 2}"
)
"""One statement (one parse, bind, execute and fetch; no pipeline) for the store, its days
and their device health: the rows' first column says which part a row belongs to."""


def is_postgres(engine: Engine) -> bool:
    """Whether ``engine`` is a PostgreSQL datamart (the async path serves only those)."""
    return engine.dialect.name == "postgresql"


def conninfo(engine: Engine) -> str:
    """A libpq connection string for ``engine``'s database (driver name dropped)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class AsyncKpiReader:
    """A psycopg ``AsyncConnectionPool`` over a PostgreSQL datamart, for the loop that serves
    the app.

    :meth:`serve` (the app's lifespan) names the serving loop; the pool is opened lazily on
    it. A request on any other loop — the app driven without its lifespan, e.g. a test client
    outside ``with`` that runs every request on a loop of its own — gets a connection of its
    own, closed after the request: a pool left on a loop that ends would keep reconnecting
    there and hang that loop's shutdown.
    """

    def __init__(self, engine: Engine, *, min_size: int = 2, max_size: int = 8) -> None:
        self._engine = engine
        self._conninfo = conninfo(engine)
        self._min, self._max = min_size, max_size
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._ready = False

    def serve(self) -> None:
        """Make the running loop the serving loop (called from the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        self._opening = None  # a lock belongs to the loop that made it

    async def _ensure_ready(self) -> None:
        if not self._ready:  # the device-health table may be missing in an older datamart
            await asyncio.get_running_loop().run_in_executor(
                None, ensure_device_health, self._engine
            )
            self._ready = True

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of one prepared statement, on a pooled connection of the serving loop.

        The pool's ``getconn``/``putconn`` are called directly: the ``connection()`` context
        manager (and the connection's own, a no-op commit in autocommit) cost as much CPU as
        a fetch of the store-month's rows."""
        await self._ensure_ready()
        if self._loop is not asyncio.get_running_loop():
            import psycopg

            async with await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True
            ) as conn:
                cur = await conn.execute(sql, params, prepare=True)
                return await cur.fetchall()
        pool = self._pool if self._pool is not None else await self._open_pool()
        conn = await pool.getconn()
        try:
            cur = await conn.execute(sql, params, prepare=True)
            return await cur.fetchall()
        finally:
            await pool.putconn(conn)

    async def _open_pool(self) -> Any:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # the first burst of requests opens one pool, not many
            if self._pool is None:
                from psycopg_pool import AsyncConnectionPool

                pool = AsyncConnectionPool(
                    self._conninfo,
                    min_size=self._min,
                    max_size=self._max,
                    open=False,
                    # Every statement prepared on first use. Autocommit: no BEGIN before and
                    # no COMMIT round trip after each read (one statement, one snapshot).
                    kwargs={"prepare_threshold": 0, "autocommit": True},
                )
                await pool.open()
                self._pool = pool
                log.info("async KPI reader: pool of %d-%d connections", self._min, self._max)
        return self._pool

    async def close(self) -> None:
        """Close the pool (on the serving loop, from the app's lifespan)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def store_with_days(
        self, caller: Caller, store_id: str, start: date, end: date
    ) -> tuple[StoreRecord, list[KpiPeriod], dict[tuple[str, date], StoreDayHealth]]:
        """The caller's store, its daily rows over ``start..end`` and the device health of
        those dates, in one statement; :class:`NotFound` like
        :func:`tenpo.datamart.read.store_with_days` for a store the caller may not see."""
        if not caller.sees_store(store_id):
            raise not_found(store_id)
        params = {"tenant_id": caller.tenant_id, "store_id": store_id, "start": start, "end": end}
        rows = await self._fetch(_STORE_DAYS_HEALTH_SQL, params)
        n = len(_STORE_COLUMNS) + 1  # the part, then the store's columns
        day_rows = [r for r in rows if r[0] == _DAYS_PART]
        if not day_rows:
            raise not_found(store_id)
        record = StoreRecord(**dict(zip(_STORE_COLUMNS, day_rows[0][1:n], strict=True)))
        days = [day_period(r[n], r[n + 1 : n + 1 + _KPIS]) for r in day_rows if r[n] is not None]
        health_rows = [(r[n], r[-2], r[-1]) for r in rows if r[0] == _HEALTH_PART]
        return record, days, _health(store_id, health_rows)


def _health(store_id: str, rows: list[tuple[Any, ...]]) -> dict[tuple[str, date], StoreDayHealth]:
    flags: dict[tuple[str, date], set[str]] = defaultdict(set)
    hours: dict[tuple[str, date], set[str]] = defaultdict(set)
    for day, day_flags, incomplete in rows:
        key = (store_id, day)
        flags[key].update(f for f in (day_flags or "").split(",") if f)
        hours[key].update(h for h in (incomplete or "").split(",") if h)
    return {k: StoreDayHealth(frozenset(flags[k]), frozenset(hours[k])) for k in flags}
