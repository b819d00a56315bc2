"""The KPI read hot path on PostgreSQL, async: asyncpg connections of the serving loop, one
prepared statement each, one round trip.

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
from collections import defaultdict, deque
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine

from tenpo.datamart.devices import StoreDayHealth, ensure_device_health, mart_device_health
from tenpo.datamart.kpis import KPI_COLUMNS, KpiPeriod
from tenpo.datamart.read import Caller, StoreRecord, day_period, not_found
from tenpo.datamart.schema import dm_stores, mart_store_daily

log = logging.getLogger(__name__)

_KPIS = len(KPI_COLUMNS)
_NO_DAY = date(1, 1, 1)

_STORE_COLUMNS = tuple(c.name for c in dm_stores.c)

_STORE_PART, _DAYS_PART, _HEALTH_PART = 0, 1, 2
_NULL_STORE = ", ".join(["NULL"] * len(_STORE_COLUMNS))
_NULL_KPIS = ", ".join(["NULL"] * len(KPI_COLUMNS))
_STORE_DAYS_HEALTH_SQL = (
    # Part 0: the store, once (no row: the caller's tenant has no such store).
    f"SELECT {_STORE_PART}, {', '.join(_STORE_COLUMNS)}, NULL::date, {_NULL_KPIS}, "
    f"NULL::text, NULL::text FROM {dm_stores.name} "
    "WHERE tenant_id = $1 AND store_id = $2 "
    # Part 1: its daily rows of those dates (the store's columns are not repeated on each).
    f"UNION ALL SELECT {_DAYS_PART}, {_NULL_STORE}, business_date, {', '.join(KPI_COLUMNS)}, "
    f"NULL, NULL FROM {mart_store_daily.name} "
    "WHERE tenant_id = $1 AND store_id = $2 "
    "AND business_date >= $3 AND business_date <= $4 "
    # Part 2: the device health of those dates, one row per device and date.
    f"UNION ALL SELECT {_HEALTH_PART}, {_NULL_STORE}, business_date, {_NULL_KPIS}, flags, "
    f"incomplete_hours FROM {mart_device_health.name} "
    "WHERE tenant_id = $1 AND store_id = $2 "
    "AND business_date >= $3 AND business_date <= $4 "
    # A healthy device-day (no flag, no incomplete hour) flags nothing: not sent.
    "AND (flags <> '' OR COALESCE(incomplete_hours, '') <> '') "
    f"ORDER BY 1, {len(_STORE_COLUMNS) + 2}"
)
"""One statement (one parse, bind, execute and fetch; no pipeline) for the store, its days
and their device health: the rows' first column says which part a row belongs to.
Parameters: $1 tenant, $2 store, $3 first and $4 last business date."""


def is_postgres(engine: Engine) -> bool:
    """Whether ``engine`` is a PostgreSQL datamart (the async path serves only those)."""
    return engine.dialect.name == "postgresql"


def conninfo(engine: Engine) -> str:
    """A ``postgresql://`` URL of ``engine``'s database (driver name dropped)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class AsyncKpiReader:
    """Pooled asyncpg connections over a PostgreSQL datamart, for the loop that serves the app.

    :meth:`serve` (the app's lifespan) names the serving loop; connections are opened on it
    as requests need them, up to ``max_size``, each with the KPI statement prepared once. A
    request on any other loop — the app driven without its lifespan, e.g. a test client
    outside ``with`` that runs every request on a loop of its own — gets a connection of its
    own, closed after the request: a pool left on a loop that ends would keep its sockets
    there.

    The pool is a list of idle connections and a queue of waiting requests, no more: at
    100 concurrent requests on 8 connections nearly every request waits, and a general
    pool's wait (a condition, a timeout task, a check per hand-out) cost the event loop as
    much CPU as the read itself. asyncpg rather than psycopg: its protocol decodes the rows
    in C without a cursor object and without adding and removing a reader on the loop per
    query (half the CPU per read of the psycopg path, reused cursor and all). A connection
    that broke, or whose read was cancelled mid-flight, is dropped; the next request opens
    one.
    """

    def __init__(self, engine: Engine, *, max_size: int = 8) -> None:
        self._engine = engine
        self._conninfo = conninfo(engine)
        self._max = max_size
        self._idle: list[_Pooled] = []
        self._waiters: deque[asyncio.Future[_Pooled | None]] = deque()
        self._opened = 0
        self._served = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False

    def serve(self) -> None:
        """Make the running loop the serving loop (connections are opened as reads need them)."""
        self._loop = asyncio.get_running_loop()

    async def start(self) -> None:
        """Make the running loop the serving loop and open the pool on it warm (the app's
        lifespan, before the server reports ready): the device-health table checked and
        ``max_size`` connections opened, each with the statement prepared, so the first
        requests under load neither wait for connections being opened nor queue a table
        check each. Raises what connecting raises (nothing is left open then)."""
        self.serve()
        await self._ensure_ready()
        opened = await asyncio.gather(
            *(self._connect() for _ in range(self._max - self._opened)), return_exceptions=True
        )
        failed = [c for c in opened if isinstance(c, BaseException)]
        for pooled in opened:
            if not isinstance(pooled, BaseException):
                if failed:
                    await pooled.conn.close()
                else:
                    self._opened += 1
                    self._hand(pooled)
        if failed:
            raise failed[0]

    @property
    def served(self) -> int:
        """Reads answered on pooled connections (the others had a connection of their own)."""
        return self._served

    @property
    def connections(self) -> int:
        """Pooled connections open now (idle or in use)."""
        return self._opened

    async def _ensure_ready(self) -> None:
        if not self._ready:  # the device-health table may be missing in an older datamart
            await asyncio.get_running_loop().run_in_executor(
                None, ensure_device_health, self._engine
            )
            self._ready = True

    async def _connect(self) -> _Pooled:
        import asyncpg

        # Each query prepared once per connection (the pool's statement, and asyncpg's own
        # cache for anything else); no transaction: one statement, one snapshot.
        conn = await asyncpg.connect(self._conninfo)
        try:
            # Money (numeric) read as text and made a Decimal by the C decimal module:
            # asyncpg's binary numeric decoder took a third of a store-month's decoding
            # (108 -> 90 us of client CPU per read); the values, scales included, are the same.
            await conn.set_type_codec(
                "numeric", schema="pg_catalog", encoder=str, decoder=Decimal, format="text"
            )
            statement = await conn.prepare(_STORE_DAYS_HEALTH_SQL)
            # Run once on a tenant that cannot exist: asyncpg's prepare ends without a Sync,
            # so until its first execution the connection sits in an open transaction holding
            # its tables' locks (a warm pool's idle connections blocked a DROP TABLE).
            await statement.fetch("", "", _NO_DAY, _NO_DAY)
            return _Pooled(conn, statement)
        except BaseException:
            conn.terminate()
            raise

    async def _fetch(self, params: tuple[Any, ...]) -> list[Any]:
        """The rows of the KPI statement, on a pooled connection of the serving loop."""
        await self._ensure_ready()
        if self._loop is not asyncio.get_running_loop():
            own = await self._connect()
            try:
                return await own.statement.fetch(*params)
            finally:
                await own.conn.close()
        pooled = await self._get()
        try:
            rows = await pooled.statement.fetch(*params)
        except asyncio.CancelledError:
            self._drop(pooled)  # its answer may still be on the way: no other read gets it
            raise
        except BaseException:
            if pooled.conn.is_closed():
                self._drop(pooled)
            else:
                self._hand(pooled)
            raise
        self._hand(pooled)
        self._served += 1
        return rows

    async def _get(self) -> _Pooled:
        if self._idle:
            return self._idle.pop()
        if self._opened < self._max:
            self._opened += 1
            try:
                return await self._connect()
            except BaseException:
                self._opened -= 1
                raise
        waiter: asyncio.Future[_Pooled | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            pooled = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one just as it was cancelled
                self._hand(waiter.result())
            raise
        return pooled if pooled is not None else await self._get()

    def _drop(self, pooled: _Pooled) -> None:
        """Close ``pooled`` for good; a waiting read opens one in its place."""
        self._opened -= 1
        if not pooled.conn.is_closed():
            pooled.conn.terminate()
        self._hand(None)

    def _hand(self, pooled: _Pooled | None) -> None:
        """``pooled`` to the longest waiting read, else kept idle; None (a connection was
        dropped) tells that read to open one in its place."""
        if pooled is not None and self._loop is None:  # closed meanwhile
            self._drop(pooled)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(pooled)
                return
        if pooled is not None:
            self._idle.append(pooled)

    async def close(self) -> None:
        """Close the idle connections (on the serving loop, from the app's lifespan); one
        still in use is closed when its read hands it back."""
        self._loop = None
        idle, self._idle = self._idle, []
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()
        for pooled in idle:
            self._opened -= 1
            await pooled.conn.close()

    async def store_with_days(
        self, caller: Caller, store_id: str, start: date, end: date
    ) -> tuple[StoreRecord, list[KpiPeriod], dict[tuple[str, date], StoreDayHealth]]:
        """The caller's store, its daily rows over ``start..end`` and the device health of
        those dates (the dates with a flag or an incomplete hour: a healthy one flags nothing),
        in one statement; :class:`NotFound` like
        :func:`tenpo.datamart.read.store_with_days` for a store the caller may not see."""
        if not caller.sees_store(store_id):
            raise not_found(store_id)
        rows = await self._fetch((caller.tenant_id, store_id, start, end))
        if not rows or rows[0][0] != _STORE_PART:
            raise not_found(store_id)
        n = len(_STORE_COLUMNS) + 1  # the part, then the store's columns
        record = StoreRecord(**dict(zip(_STORE_COLUMNS, rows[0][1:n], strict=True)))
        days = [day_period(r[n], r[n + 1 : n + 1 + _KPIS]) for r in rows if r[0] == _DAYS_PART]
        health_rows = [(r[n], r[-2], r[-1]) for r in rows if r[0] == _HEALTH_PART]
        return record, days, _health(store_id, health_rows)


class _Pooled(NamedTuple):
    """A pooled connection and the KPI statement prepared on it."""

    conn: Any
    statement: Any


def _health(store_id: str, rows: list[tuple[Any, ...]]) -> dict[tuple[str, date], StoreDayHealth]:
    flags: dict[tuple[str, date], set[str]] = defaultdict(set)
    hours: dict[tuple[str, date], set[str]] = defaultdict(set)
    for day, day_flags, incomplete in rows:
        key = (store_id, day)
        flags[key].update(f for f in (day_flags or "").split(",") if f)
        hours[key].update(h for h in (incomplete or "").split(",") if h)
    return {k: StoreDayHealth(frozenset(flags[k]), frozenset(hours[k])) for k in flags}
