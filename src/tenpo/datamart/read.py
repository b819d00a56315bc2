"""The datamart's read side: every read the API (or anybody) makes, scoped to one caller.

Each function takes a :class:`Caller` (``tenpo.control.Principal`` is one, and so is
:class:`Scope`): its tenant filters every query, and a store manager's ``store_ids`` hide the
other stores exactly like another tenant's (one :class:`NotFound` for both). Daily rows come
from ``mart_store_daily`` and are rolled up here (weeks, months, a range total), hourly rows
from ``mart_store_hourly`` (keyed by local ``hour`` and ``utc_offset_s``); the sales tree and
each row's data-quality flags are computed here too, so routes only parse and serialise.
"""

from __future__ import annotations

import math
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Protocol, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import BadInput, NotFound
from tenpo.datamart.devices import StoreDayHealth
from tenpo.datamart.kpis import KPI_COLUMNS, MONEY_KPIS, Grain, KpiPeriod, combine, rollup
from tenpo.datamart.schema import dm_stores, mart_store_daily, mart_store_hourly

__all__ = [
    "API_GRAINS",
    "TREE_FACTORS",
    "ApiGrain",
    "Caller",
    "Row",
    "Scope",
    "StoreRecord",
    "TreeChange",
    "TreeNode",
    "coverage",
    "daily_rows",
    "day_period",
    "expected_days",
    "get_store",
    "hour_key",
    "hourly_rows",
    "list_stores",
    "missing_dates",
    "period_health",
    "row_flags",
    "rollup_rows",
    "sales_tree",
    "series",
    "store_kpis",
    "store_with_days",
    "tree",
    "tree_change",
    "visible_store",
    "visible_stores",
]

ApiGrain = Literal["hour", "day", "week", "month", "total"]
API_GRAINS: tuple[str, ...] = get_args(ApiGrain)
TREE_FACTORS = ("passersby", "capture_rate", "conversion_rate", "atv")
"""The sales tree: net_sales = passersby × capture_rate × conversion_rate × atv."""


class Caller(Protocol):
    """Whose data a read may return: one tenant, and maybe only some of its stores."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def store_ids(self) -> frozenset[str] | None: ...

    def sees_store(self, store_id: str) -> bool:
        """Whether the caller may see ``store_id`` of its tenant."""
        ...


@dataclass(frozen=True)
class Scope:
    """A :class:`Caller` for code that is not an API request (a tenant, all its stores)."""

    tenant_id: str
    store_ids: frozenset[str] | None = None

    def sees_store(self, store_id: str) -> bool:
        """Whether ``store_id`` is inside this scope (its tenant is checked by the query)."""
        return self.store_ids is None or store_id in self.store_ids


@dataclass(frozen=True)
class StoreRecord:
    """A store as the datamart lists it."""

    tenant_id: str
    store_id: str
    code: str
    name: str
    industry: str | None
    region: str | None
    timezone: str
    floor_area_m2: float | None


class Row(NamedTuple):
    """A KPI period, with its hour of day (0-23) at the ``hour`` grain."""

    period: KpiPeriod
    hour: int | None = None
    utc_offset_s: int | None = None  # at the hour grain: tells the repeated hour's two rows apart


# -- stores ------------------------------------------------------------------------------


def not_found(store_id: str) -> NotFound:
    # One answer for unknown, other tenant's and unassigned stores: existence never leaks.
    return NotFound(f"store {store_id!r} not found", store_id=store_id)


def visible_store(engine: Engine, caller: Caller, store_id: str) -> StoreRecord:
    """The caller's store ``store_id``; :class:`NotFound` for any store it may not see."""
    if caller.sees_store(store_id):
        query = sa.select(dm_stores).where(
            dm_stores.c.tenant_id == caller.tenant_id, dm_stores.c.store_id == store_id
        )
        with engine.connect() as conn:
            row = conn.execute(query).mappings().one_or_none()
        if row is not None:
            return StoreRecord(**row)
    raise not_found(store_id)


def visible_stores(
    engine: Engine,
    caller: Caller,
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


def list_stores(
    engine: Engine,
    tenant_id: str,
    *,
    industry: str | None = None,
    region: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[StoreRecord], int]:
    """One page of the tenant's stores (by code) matching the filters, and the total matching."""
    return visible_stores(
        engine, Scope(tenant_id), industry=industry, region=region, limit=limit, offset=offset
    )


def get_store(engine: Engine, tenant_id: str, store_id: str) -> StoreRecord:
    """The tenant's store ``store_id``; :class:`NotFound` when it is not one of the tenant's."""
    return visible_store(engine, Scope(tenant_id), store_id)


# -- KPI rows ----------------------------------------------------------------------------

_CENT = Decimal("0.01")


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value  # the datamart's Money type already reads exact cents
    return Decimal(str(value)).quantize(_CENT)  # a driver's text or float


def _period(row: Any, day: date) -> KpiPeriod:
    """A mart row (a mapping with the schema's KPI columns) as the daily period ``day``;
    a row of an older datamart without the ``has_*`` flags infers them from the data."""
    return day_period(day, [row.get(name) for name in KPI_COLUMNS])


def day_period(day: date, values: Sequence[Any]) -> KpiPeriod:
    """The daily period ``day`` from the values of :data:`KPI_COLUMNS`, in their order, as a
    driver reads them (money as ``Decimal``, text or float; flags as bool, int or null)."""
    v = list(values)
    for i in _MONEY_AT:
        if type(v[i]) is not Decimal:  # a Decimal (asyncpg, the Money type) is kept as read
            v[i] = _decimal(v[i])
    pos, counter = v[_HAS_POS], v[_HAS_COUNTER]
    if type(pos) is not bool:
        v[_HAS_POS] = bool(pos) if pos is not None else v[_NET_SALES] is not None
    if type(counter) is not bool:
        v[_HAS_COUNTER] = bool(counter) if counter is not None else v[_VISITORS] is not None
    return KpiPeriod._make((day, day, 1, *v))


_MONEY_AT = tuple(i for i, name in enumerate(KPI_COLUMNS) if name in MONEY_KPIS)
_HAS_POS, _HAS_COUNTER = KPI_COLUMNS.index("has_pos"), KPI_COLUMNS.index("has_counter")
_NET_SALES, _VISITORS = KPI_COLUMNS.index("net_sales"), KPI_COLUMNS.index("visitors")


def _as_date(value: Any) -> Any:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


def daily_rows(
    engine: Engine, caller: Caller, store_ids: Sequence[str], start: date, end: date
) -> dict[str, list[KpiPeriod]]:
    """Daily KPI rows of the caller's ``store_ids`` over ``start..end``, per store, oldest first.

    Stores the caller may not see are left out (as if they had no rows).
    """
    ids = [s for s in store_ids if caller.sees_store(s)]
    if not ids:
        return {}
    m = mart_store_daily.c
    query = (
        sa.select(mart_store_daily)
        .where(
            m.tenant_id == caller.tenant_id,
            m.store_id.in_(ids) if len(ids) != 1 else m.store_id == ids[0],
            m.business_date >= start,
            m.business_date <= end,
        )
        .order_by(m.store_id, m.business_date)
    )
    out: dict[str, list[KpiPeriod]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            out[row["store_id"]].append(_period(row, _as_date(row["business_date"])))
    return out


_with_hourly: weakref.WeakSet[Engine] = weakref.WeakSet()


def _require_hourly(engine: Engine) -> None:
    """:class:`BadInput` when the datamart lacks ``mart_store_hourly`` (dropped, or a datamart
    made before it); checked until it is there, so the hour grain appears once exported."""
    if engine in _with_hourly:
        return
    if not sa.inspect(engine).has_table(mart_store_hourly.name):
        raise BadInput(
            f"grain 'hour' needs the datamart table {mart_store_hourly.name}, which this "
            "datamart does not hold (yet); ask for grain day, week, month or total",
            param="grain",
        )
    _with_hourly.add(engine)


def hourly_rows(
    engine: Engine, caller: Caller, store_ids: Sequence[str], start: date, end: date
) -> dict[str, list[Row]]:
    """Hourly KPI rows of the caller's ``store_ids`` over ``start..end``, per store, oldest
    first; the hour repeated when clocks go back comes twice, the earlier (larger offset) first.
    """
    ids = [s for s in store_ids if caller.sees_store(s)]
    if not ids:
        return {}
    _require_hourly(engine)
    c = mart_store_hourly.c
    query = (
        sa.select(mart_store_hourly)
        .where(
            c.tenant_id == caller.tenant_id,
            c.store_id.in_(ids),
            c.business_date >= start,
            c.business_date <= end,
        )
        .order_by(c.store_id, c.business_date, c.hour, c.utc_offset_s.desc())
    )
    out: dict[str, list[Row]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            offset = row["utc_offset_s"]
            out[row["store_id"]].append(
                Row(
                    _period(row, _as_date(row["business_date"])),
                    int(row["hour"]),
                    None if offset is None else int(offset),
                )
            )
    return out


def rollup_rows(days: list[KpiPeriod], grain: ApiGrain, start: date, end: date) -> list[Row]:
    """Daily rows of one store at ``grain`` (``total``: one row spanning ``start..end``)."""
    if grain == "hour":
        raise ValueError("hourly rows come from the hourly mart, not from days")
    if grain == "total":
        return [Row(combine(days, start, end))] if days else []
    return [Row(p) for p in rollup(days, grain)]


def series(
    engine: Engine,
    caller: Caller,
    store_ids: Sequence[str],
    start: date,
    end: date,
    grain: ApiGrain,
) -> dict[str, list[Row]]:
    """KPI rows per store at ``grain`` (stores without data, or not the caller's, map to [])."""
    if grain == "hour":
        hours = hourly_rows(engine, caller, store_ids, start, end)
        return {s: hours.get(s, []) for s in store_ids}
    days = daily_rows(engine, caller, store_ids, start, end)
    return {s: rollup_rows(days.get(s, []), grain, start, end) for s in store_ids}


def store_kpis(
    engine: Engine, tenant_id: str, store_id: str, start: date, end: date, grain: Grain = "day"
) -> list[KpiPeriod]:
    """The tenant's store's KPIs for business dates ``start``..``end`` at ``grain``.

    Only dates with a mart row appear; rows are oldest first.
    """
    days = daily_rows(engine, Scope(tenant_id), [store_id], start, end).get(store_id, [])
    return rollup(days, grain)


def missing_dates(rows: Iterable[Row], start: date, end: date, today: date) -> list[date]:
    """Business dates in ``start..end`` before ``today`` that have no daily data at all."""
    covered: set[int] = set()
    for row in rows:
        p = row.period
        if p.period_start != p.period_end:
            return []  # rolled-up rows: gaps are reported through each period's day count
        covered.add(p.period_start.toordinal())
    last = min(end, today - timedelta(days=1)).toordinal()
    days = range(start.toordinal(), last + 1)
    return [date.fromordinal(d) for d in days if d not in covered]


def series_missing(
    rows: list[Row], grain: ApiGrain, start: date, end: date, today: date
) -> list[date]:
    """The ``missing_dates`` of a series at ``grain`` (only day and hour report them)."""
    if grain == "hour":
        return missing_dates([Row(r.period) for r in rows], start, end, today)
    return missing_dates(rows, start, end, today) if grain == "day" else []


def expected_days(period: KpiPeriod, start: date, end: date, today: date) -> int:
    """Calendar days of ``period`` inside ``start..end`` and before ``today``."""
    first = max(period.period_start, start)
    last = min(period.period_end, end, today - timedelta(days=1))
    return max(0, (last - first).days + 1)


def coverage(engine: Engine, caller: Caller) -> tuple[date | None, date | None]:
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
    engine: Engine, caller: Caller, store_id: str, start: date, end: date
) -> tuple[StoreRecord, list[KpiPeriod]]:
    """The caller's store and its daily rows over ``start..end`` in one round trip.

    :class:`NotFound` (same answer as :func:`visible_store`) when the caller may not see it.
    The hot path of the KPI endpoint: one query instead of a store check and a range read.
    """
    if not caller.sees_store(store_id):
        raise not_found(store_id)
    params = {"tenant_id": caller.tenant_id, "store_id": store_id, "start": start, "end": end}
    with engine.connect() as conn:
        rows = conn.execute(_STORE_DAYS, params).mappings().all()
    if not rows:
        raise not_found(store_id)
    first = rows[0]
    record = StoreRecord(**{c.name: first[c.name] for c in dm_stores.c})
    days = [_period(r, r["business_date"]) for r in rows if r["business_date"] is not None]
    return record, days


# -- data-quality flags --------------------------------------------------------------------

_COUNTER_GAPS = frozenset({"no_data", "missing_intervals"})


def hour_key(hour: int, offset_s: int) -> str:
    """The device-health spelling of a local hour: ``HH:00±hh:mm``."""
    sign = "-" if offset_s < 0 else "+"
    minutes = abs(offset_s) // 60
    return f"{hour:02d}:00{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def period_health(
    period: KpiPeriod,
    start: date,
    end: date,
    store_id: str,
    health: Mapping[tuple[str, date], StoreDayHealth],
) -> list[StoreDayHealth]:
    """The device health of the store's dates of ``period`` inside ``start..end``."""
    if not health:
        return []
    first, last = max(period.period_start, start), min(period.period_end, end)
    if first == last:  # a day (the day and hour grains): one look-up
        h = health.get((store_id, first))
        return [] if h is None else [h]
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [h for d in days if (h := health.get((store_id, d))) is not None]


def row_flags(
    row: Row,
    grain: ApiGrain,
    start: date,
    end: date,
    today: date,
    health: Sequence[StoreDayHealth],
) -> list[str]:
    """The row's data-quality flags (``pos_missing``, ``counter_missing``, ``partial_period``,
    ``counter_incomplete``) given the device health of its dates."""
    p = row.period
    flags: list[str] = []
    if not p.has_pos:
        flags.append("pos_missing")
    if not p.has_counter:
        flags.append("counter_missing")
    if grain in ("week", "month", "total") and p.days < expected_days(p, start, end, today):
        flags.append("partial_period")
    if grain == "hour" and row.hour is not None and row.utc_offset_s is not None:
        key = hour_key(row.hour, row.utc_offset_s)
        if any(key in h.incomplete_hours for h in health):
            flags.append("counter_incomplete")
    elif health and any(h.flags & _COUNTER_GAPS for h in health):
        flags.append("counter_incomplete")
    return flags


# -- the sales tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeNode:
    """The sales tree of one period: net_sales = passersby × capture × conversion × ATV."""

    from_: date
    to: date
    days: int
    net_sales: Decimal | None = None
    passersby: int | None = None
    visitors: int | None = None
    transactions: int | None = None
    capture_rate: float | None = None
    conversion_rate: float | None = None
    atv: float | None = None


@dataclass(frozen=True)
class TreeChange:
    """How one factor moved against the previous period (``contribution``: log share)."""

    absolute: float | None = None
    relative: float | None = None
    contribution: float | None = None


@dataclass(frozen=True)
class SalesTree:
    """The tree of a range, of the previous range of the same length, and the change."""

    store_id: str
    current: TreeNode
    previous: TreeNode
    change: dict[str, TreeChange] = field(default_factory=dict)


def tree(days: Sequence[KpiPeriod], start: date, end: date) -> TreeNode:
    """The sales tree of ``days``; only days with POS and both counter inputs enter it, so the
    product of the factors is the net sales."""
    used = [
        d
        for d in days
        if d.net_sales is not None
        and d.transactions is not None
        and d.visitors is not None
        and d.passersby is not None
    ]
    if not used:
        return TreeNode(from_=start, to=end, days=0)
    sales = sum((d.net_sales for d in used if d.net_sales is not None), Decimal(0))
    passersby = sum(d.passersby or 0 for d in used)
    visitors = sum(d.visitors or 0 for d in used)
    transactions = sum(d.transactions or 0 for d in used)
    return TreeNode(
        from_=start,
        to=end,
        days=len(used),
        net_sales=sales,
        passersby=passersby,
        visitors=visitors,
        transactions=transactions,
        capture_rate=visitors / passersby if passersby else None,
        conversion_rate=transactions / visitors if visitors else None,
        atv=float(sales / transactions) if transactions else None,
    )


def tree_change(current: TreeNode, previous: TreeNode) -> dict[str, TreeChange]:
    """Per factor (and ``net_sales``): absolute and relative change, and its share of the
    change in net sales by log decomposition (the four shares add up to 1)."""

    def value(node: TreeNode, name: str) -> float | None:
        v = getattr(node, name)
        return None if v is None else float(v)

    names = ("net_sales", *TREE_FACTORS)
    cur = {n: value(current, n) for n in names}
    prev = {n: value(previous, n) for n in names}
    logs: dict[str, float] | None = None
    if all(v is not None and v > 0 for v in (*cur.values(), *prev.values())):
        logs = {n: math.log(cur[n] / prev[n]) for n in names}  # type: ignore[operator]
        if abs(logs["net_sales"]) < 1e-12:
            logs = None
    out: dict[str, TreeChange] = {}
    for n in names:
        c, p = cur[n], prev[n]
        out[n] = TreeChange(
            absolute=None if c is None or p is None else c - p,
            relative=None if c is None or not p else c / p - 1,
            contribution=None if logs is None else logs[n] / logs["net_sales"],
        )
    return out


def sales_tree(engine: Engine, caller: Caller, store_id: str, start: date, end: date) -> SalesTree:
    """The caller's store's sales tree over ``start..end`` against the days right before.

    :class:`NotFound` for a store the caller may not see.
    """
    visible_store(engine, caller, store_id)
    length = (end - start).days + 1
    prev_start, prev_end = start - timedelta(days=length), start - timedelta(days=1)
    days = daily_rows(engine, caller, [store_id], prev_start, end).get(store_id, [])
    current = tree([d for d in days if d.period_start >= start], start, end)
    previous = tree([d for d in days if d.period_start < start], prev_start, prev_end)
    return SalesTree(store_id, current, previous, tree_change(current, previous))
