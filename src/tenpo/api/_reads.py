"""Read models the API needs beyond :mod:`tenpo.datamart.read`, each scoped to one caller.

Everything takes the caller's :class:`Principal`: its tenant filters every query, and a
store manager's ``store_ids`` hide the other stores exactly like another tenant's (404).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.control import Principal
from tenpo.core.errors import BadInput, NotFound
from tenpo.datamart import KpiPeriod, StoreRecord, dm_stores, mart_store_daily, rollup
from tenpo.datamart.kpis import RATIOS

logger = logging.getLogger(__name__)

ApiGrain = Literal["hour", "day", "week", "month", "total"]
API_GRAINS: tuple[str, ...] = get_args(ApiGrain)
HOURLY_TABLE = "mart_store_hourly"
_HOUR_COLUMNS = ("hour", "hour_start", "hour_local", "ts_hour", "interval_start")


@dataclass(frozen=True)
class Row:
    """A KPI period, with its hour of day (0-23) at the ``hour`` grain."""

    period: KpiPeriod
    hour: int | None = None
    utc_offset_s: int | None = None  # at the hour grain: tells the repeated hour's two rows apart


def visible_store(engine: Engine, caller: Principal, store_id: str) -> StoreRecord:
    """The caller's store ``store_id``; :class:`NotFound` for any store it may not see."""
    if caller.sees_store(store_id):
        query = sa.select(dm_stores).where(
            dm_stores.c.tenant_id == caller.tenant_id, dm_stores.c.store_id == store_id
        )
        with engine.connect() as conn:
            row = conn.execute(query).mappings().one_or_none()
        if row is not None:
            return StoreRecord(**row)
    # One answer for unknown, other tenant's and unassigned stores: existence never leaks.
    raise NotFound(f"store {store_id!r} not found", store_id=store_id)


def visible_stores(
    engine: Engine,
    caller: Principal,
    *,
    store_ids: Sequence[str] | None = None,
    industry: str | None = None,
    region: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[StoreRecord], int]:
    """One page of the caller's stores (by code) matching the filters, and the total matching."""
    where = [dm_stores.c.tenant_id == caller.tenant_id]
    if caller.store_ids is not None:
        where.append(dm_stores.c.store_id.in_(sorted(caller.store_ids)))
    if store_ids is not None:
        where.append(dm_stores.c.store_id.in_(list(store_ids)))
    if industry is not None:
        where.append(dm_stores.c.industry == industry)
    if region is not None:
        where.append(dm_stores.c.region == region)
    page = (
        sa.select(dm_stores)
        .where(*where)
        .order_by(dm_stores.c.code, dm_stores.c.store_id)
        .limit(limit)
        .offset(offset)
    )
    count = sa.select(sa.func.count()).select_from(dm_stores).where(*where)
    with engine.connect() as conn:
        total = conn.execute(count).scalar_one()
        rows = conn.execute(page).mappings().all()
    return [StoreRecord(**row) for row in rows], int(total)


_CENT = Decimal("0.01")


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value  # the datamart's Money type already reads exact cents
    return Decimal(str(value)).quantize(_CENT)  # a reflected table's text or float


def _period(row: Any, day: date) -> KpiPeriod:
    def get(name: str) -> Any:
        return row.get(name)

    sales = get("net_sales")
    counter = get("has_counter")
    pos = get("has_pos")
    return KpiPeriod(
        period_start=day,
        period_end=day,
        days=1,
        net_sales=_decimal(sales),
        net_sales_incl_tax=_decimal(get("net_sales_incl_tax")),
        transactions=get("transactions"),
        units=get("units"),
        atv=get("atv"),
        upt=get("upt"),
        visitors=get("visitors"),
        passersby=get("passersby"),
        capture_rate=get("capture_rate"),
        conversion_rate=get("conversion_rate"),
        sales_per_visitor=get("sales_per_visitor"),
        has_pos=bool(pos) if pos is not None else sales is not None,
        has_counter=bool(counter) if counter is not None else get("visitors") is not None,
    )


def daily_rows(
    engine: Engine, tenant_id: str, store_ids: Sequence[str], start: date, end: date
) -> dict[str, list[KpiPeriod]]:
    """Daily KPI rows of ``store_ids`` over ``start..end``, per store, oldest first."""
    m = mart_store_daily.c
    query = (
        sa.select(mart_store_daily)
        .where(
            m.tenant_id == tenant_id,
            m.store_id.in_(list(store_ids)) if len(store_ids) != 1 else m.store_id == store_ids[0],
            m.business_date >= start,
            m.business_date <= end,
        )
        .order_by(m.store_id, m.business_date)
    )
    out: dict[str, list[KpiPeriod]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            out[row["store_id"]].append(_period(row, row["business_date"]))
    return out


_hourly: weakref.WeakKeyDictionary[Engine, sa.Table] = weakref.WeakKeyDictionary()
_hourly_lock = threading.Lock()


def hourly_table(engine: Engine) -> sa.Table:
    """The datamart's ``mart_store_hourly`` (reflected); BadInput when it does not exist yet.

    Checked at request time, so the hour grain appears once the hourly mart is exported.
    """
    with _hourly_lock:
        table = _hourly.get(engine)
    if table is not None:
        return table
    if not sa.inspect(engine).has_table(HOURLY_TABLE):
        raise BadInput(
            f"grain 'hour' needs the datamart table {HOURLY_TABLE}, which this datamart does "
            "not hold (yet); ask for grain day, week, month or total",
            param="grain",
        )
    table = sa.Table(HOURLY_TABLE, sa.MetaData(), autoload_with=engine)
    with _hourly_lock:
        _hourly[engine] = table
    return table


def _hour_of(value: Any) -> int:
    if isinstance(value, datetime):
        return value.hour
    if isinstance(value, str):
        return datetime.fromisoformat(value).hour if ":" in value else int(value)
    return int(value)


def hourly_rows(
    engine: Engine, tenant_id: str, store_ids: Sequence[str], start: date, end: date
) -> dict[str, list[Row]]:
    """Hourly KPI rows of ``store_ids`` over ``start..end``, per store, oldest first."""
    table = hourly_table(engine)
    c = table.c
    hour_col = next((c[n] for n in _HOUR_COLUMNS if n in c), None)
    if hour_col is None:
        raise BadInput(f"{HOURLY_TABLE} has no hour column (one of {', '.join(_HOUR_COLUMNS)})")
    query = (
        sa.select(table)
        .where(
            c.tenant_id == tenant_id,
            c.store_id.in_(list(store_ids)),
            c.business_date >= start,
            c.business_date <= end,
        )
        .order_by(c.store_id, c.business_date, hour_col)
    )
    if "utc_offset_s" in c:
        # The hour repeated when clocks go back: the earlier occurrence (larger offset) first.
        query = query.order_by(c.utc_offset_s.desc())
    out: dict[str, list[Row]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            day = row["business_date"]
            if isinstance(day, str):
                day = date.fromisoformat(day[:10])
            offset = row.get("utc_offset_s")
            out[row["store_id"]].append(
                Row(
                    _period(row, day),
                    _hour_of(row[hour_col.name]),
                    None if offset is None else int(offset),
                )
            )
    return out


def _sum(rows: list[KpiPeriod]) -> KpiPeriod:
    """Combine rows (any dates) into one period, with the same rules as :func:`rollup`."""

    def money(name: str) -> Decimal | None:
        known = [getattr(r, name) for r in rows if getattr(r, name) is not None]
        return sum(known, Decimal(0)) if known else None

    def count(name: str) -> int | None:
        known = [getattr(r, name) for r in rows if getattr(r, name) is not None]
        return int(sum(known)) if known else None

    def ratio(name: str) -> float | None:
        num, den = RATIOS[name]
        n_sum, d_sum = Decimal(0), Decimal(0)
        for r in rows:
            n, d = getattr(r, num), getattr(r, den)
            if n is not None and d is not None:
                n_sum += Decimal(n)
                d_sum += Decimal(d)
        return float(n_sum / d_sum) if d_sum else None

    first = rows[0]
    return KpiPeriod(
        period_start=first.period_start,
        period_end=first.period_end,
        days=sum(r.days for r in rows),
        net_sales=money("net_sales"),
        net_sales_incl_tax=money("net_sales_incl_tax"),
        transactions=count("transactions"),
        units=count("units"),
        atv=ratio("atv"),
        upt=ratio("upt"),
        visitors=count("visitors"),
        passersby=count("passersby"),
        capture_rate=ratio("capture_rate"),
        conversion_rate=ratio("conversion_rate"),
        sales_per_visitor=ratio("sales_per_visitor"),
        has_pos=all(r.has_pos for r in rows),
        has_counter=all(r.has_counter for r in rows),
    )


def series(
    engine: Engine,
    tenant_id: str,
    store_ids: Sequence[str],
    start: date,
    end: date,
    grain: ApiGrain,
) -> dict[str, list[Row]]:
    """KPI rows per store at ``grain`` (stores without data map to an empty list)."""
    if grain == "hour":
        hours = hourly_rows(engine, tenant_id, store_ids, start, end)
        return {s: hours.get(s, []) for s in store_ids}
    days = daily_rows(engine, tenant_id, store_ids, start, end)
    return {s: rollup_rows(days.get(s, []), grain, start, end) for s in store_ids}


def rollup_rows(days: list[KpiPeriod], grain: ApiGrain, start: date, end: date) -> list[Row]:
    """Daily rows of one store at ``grain`` (``total``: one row spanning ``start..end``)."""
    if grain == "hour":
        raise ValueError("hourly rows come from the hourly mart, not from days")
    if grain == "total":
        return [Row(replace(_sum(days), period_start=start, period_end=end))] if days else []
    return [Row(p) for p in rollup(days, grain)]


def missing_dates(rows: Iterable[Row], start: date, end: date, today: date) -> list[date]:
    """Business dates in ``start..end`` before ``today`` that have no daily data at all."""
    last = min(end, today - timedelta(days=1))
    covered: set[date] = set()
    for row in rows:
        p = row.period
        if p.period_start == p.period_end:
            covered.add(p.period_start)
    if any(r.period.period_start != r.period.period_end for r in rows):
        return []  # rolled-up rows: gaps are reported through each period's day count
    days = (last - start).days + 1
    return [d for d in (start + timedelta(days=i) for i in range(max(0, days))) if d not in covered]


def expected_days(period: KpiPeriod, start: date, end: date, today: date) -> int:
    """Calendar days of ``period`` inside ``start..end`` and before ``today``."""
    first = max(period.period_start, start)
    last = min(period.period_end, end, today - timedelta(days=1))
    return max(0, (last - first).days + 1)


def coverage(engine: Engine, caller: Principal) -> tuple[date | None, date | None]:
    """First and last business date with daily KPIs among the caller's stores."""
    m = mart_store_daily.c
    query = sa.select(sa.func.min(m.business_date), sa.func.max(m.business_date)).where(
        m.tenant_id == caller.tenant_id
    )
    if caller.store_ids is not None:
        query = query.where(m.store_id.in_(sorted(caller.store_ids)))
    with engine.connect() as conn:
        first, last = conn.execute(query).one()
    if isinstance(first, str):  # SQLite aggregates lose the column type
        first, last = date.fromisoformat(first), date.fromisoformat(last)
    return first, last


def _store_days_query() -> sa.Select[Any]:
    s, m = dm_stores.c, mart_store_daily.c
    joined = dm_stores.outerjoin(
        mart_store_daily,
        sa.and_(
            m.tenant_id == s.tenant_id,
            m.store_id == s.store_id,
            m.business_date >= sa.bindparam("start", type_=sa.Date()),
            m.business_date <= sa.bindparam("end", type_=sa.Date()),
        ),
    )
    kpi_columns = [c for c in mart_store_daily.c if c.name not in ("tenant_id", "store_id")]
    return (
        sa.select(*dm_stores.c, *kpi_columns)
        .select_from(joined)
        .where(
            s.tenant_id == sa.bindparam("tenant_id", type_=sa.String()),
            s.store_id == sa.bindparam("store_id", type_=sa.String()),
        )
        .order_by(m.business_date)
    )


# Built once: constructing and cache-keying the statement cost more than running it.
_STORE_DAYS = _store_days_query()


def store_with_days(
    engine: Engine, caller: Principal, store_id: str, start: date, end: date
) -> tuple[StoreRecord, list[KpiPeriod]]:
    """The caller's store and its daily rows over ``start..end`` in one round trip.

    :class:`NotFound` (same answer as :func:`visible_store`) when the caller may not see it.
    The hot path of the KPI endpoint: one query instead of a store check and a range read.
    """
    if not caller.sees_store(store_id):
        raise NotFound(f"store {store_id!r} not found", store_id=store_id)
    params = {"tenant_id": caller.tenant_id, "store_id": store_id, "start": start, "end": end}
    with engine.connect() as conn:
        rows = conn.execute(_STORE_DAYS, params).mappings().all()
    if not rows:
        raise NotFound(f"store {store_id!r} not found", store_id=store_id)
    first = rows[0]
    record = StoreRecord(**{c.name: first[c.name] for c in dm_stores.c})
    days = [_period(r, r["business_date"]) for r in rows if r["business_date"] is not None]
    return record, days
