"""Routes of the read API: thin wiring of the datamart read models to HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine

from tenpo.api import _export
from tenpo.api._problems import problem_doc
from tenpo.api._state import api_state
from tenpo.api.deps import (
    READER_ERRORS,
    ApiState,
    Datamart,
    FromDate,
    Reader,
    ToDate,
    parse_date,
)
from tenpo.api.models import (
    Coverage,
    Health,
    KpiRow,
    KpiSeries,
    MultiSeries,
    SalesTree,
    Store,
    StorePage,
    StoreSeries,
    TreeChange,
    TreeNode,
)
from tenpo.control.auth import Principal
from tenpo.core.errors import BadInput
from tenpo.core.ids import utcnow
from tenpo.datamart import StoreRecord
from tenpo.datamart import read as dm
from tenpo.datamart.aread import AsyncKpiReader
from tenpo.datamart.devices import StoreDayHealth, store_day_health
from tenpo.datamart.kpis import KPI_COLUMNS, MONEY_KPIS, KpiPeriod
from tenpo.datamart.read import (
    ApiGrain,
    Row,
    coverage,
    rollup_rows,
    series,
    store_with_days,
    visible_store,
    visible_stores,
)

__all__ = ["StoreId", "router"]

KPI_CACHE_CONTROL = "private, max-age=60"
MAX_OFFSET = 1_000_000
"""Largest ``offset`` of a page (beyond it the database's integers overflow)."""


_STORE_ERRORS = READER_ERRORS | {404: problem_doc("No such store for the caller's tenant.")}
_KPI_ERRORS = _STORE_ERRORS | {
    304: {"description": "Not modified (the `If-None-Match` ETag still matches)."},
    422: problem_doc(
        "Bad date, reversed or too long range, unknown grain, or grain `hour` without the "
        "hourly mart."
    ),
}
_EXPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    _export.PARQUET_TYPES[0]: {"schema": {"type": "string", "format": "binary"}},
}


StoreId = Annotated[str, Path(description="tenpo's store id.", max_length=64)]

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["health"])
def healthz(engine: Datamart) -> Health:
    """Liveness: 200 when the datamart answers a trivial query, 503 problem otherwise."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return Health(status="ok")


@router.get("/v1/stores", response_model=StorePage, responses=READER_ERRORS, tags=["stores"])
def stores(
    caller: Reader,
    engine: Datamart,
    industry: Annotated[str | None, Query(description="Only stores of this industry.")] = None,
    region: Annotated[str | None, Query(description="Only stores in this region.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Stores to skip.")] = 0,
) -> StorePage:
    """The caller's stores (a store manager's assigned ones), by code, one page at a time."""
    records, total = visible_stores(
        engine, caller, industry=industry, region=region, limit=limit, offset=offset
    )
    return StorePage(items=[_store(r) for r in records], total=total, limit=limit, offset=offset)


@router.get("/v1/stores/{store_id}", response_model=Store, responses=_STORE_ERRORS, tags=["stores"])
def store(caller: Reader, engine: Datamart, store_id: StoreId) -> Store:
    """One of the caller's stores (404 for any other id, including other tenants' stores)."""
    return _store(visible_store(engine, caller, store_id))


@router.get("/v1/coverage", response_model=Coverage, responses=READER_ERRORS, tags=["kpis"])
def data_coverage(caller: Reader, engine: Datamart) -> Coverage:
    """First and last business date with KPIs among the caller's stores (for date pickers)."""
    first, last = coverage(engine, caller)
    return Coverage(first=first, last=last)


GrainParam = Annotated[
    ApiGrain,
    Query(
        description="`hour` (needs the hourly mart), `day`, `week` (ISO, Monday first), "
        "`month`, or `total` (one row for the whole range); ratios are recomputed from sums."
    ),
]
FormatParam = Annotated[
    _export.ExportFormat | None,
    Query(
        alias="format",
        description="`json` (default), `csv` or `parquet`; without it the `Accept` header "
        "decides (`text/csv`, `application/vnd.apache.parquet`).",
    ),
]


@router.get(
    "/v1/stores/{store_id}/kpis",
    response_model=KpiSeries,
    responses=_KPI_ERRORS | {200: {"content": _EXPORT_CONTENT}},
    tags=["kpis"],
)
async def kpis(
    request: Request,
    caller: Reader,
    store_id: StoreId,
    from_: FromDate,
    to: ToDate,
    grain: GrainParam = "day",
    fmt: FormatParam = None,
) -> Response:
    """The store's KPIs per period, with data-quality flags; also as CSV or Parquet.

    Answers carry an ETag and ``Cache-Control: private, max-age=60``; a matching
    ``If-None-Match`` gets 304.
    """
    start, end = _date_range(request, from_, to)
    negotiated = _export.negotiate(fmt, request.headers.get("accept"))
    etags = request.headers.get("if-none-match")
    state = api_state(request.app)
    return await kpi_response(state, etags, caller, store_id, start, end, grain, negotiated)


async def kpi_response(
    state: ApiState,
    etags: str | None,
    caller: Principal,
    store_id: str,
    start: date,
    end: date,
    grain: ApiGrain,
    fmt: _export.ExportFormat,
) -> Response:
    """The answer of ``GET /v1/stores/{id}/kpis`` once its parameters are read and its caller
    checked: the one read and encoding behind the route and :mod:`tenpo.api._kpi_fast`
    (``etags``: the request's ``If-None-Match``). :class:`NotFound` for a store the caller
    may not see."""
    fast: AsyncKpiReader | None = state.kpi_reader
    if fast is None or grain == "hour":  # SQLite, or the hourly mart: the sync read side
        return await run_in_threadpool(
            _kpis_sync, etags, caller, state.datamart, store_id, start, end, grain, fmt
        )
    # PostgreSQL: store, days and device health in one async round trip, no thread.
    record, days, health = await fast.store_with_days(caller, store_id, start, end)
    return kpi_answer(etags, record, days, health, store_id, start, end, grain, fmt)


def _kpis_sync(
    etags: str | None,
    caller: Principal,
    engine: Engine,
    store_id: str,
    start: date,
    end: date,
    grain: ApiGrain,
    fmt: _export.ExportFormat,
) -> Response:
    if grain == "hour":
        record = visible_store(engine, caller, store_id)  # 404 before any data is read
        rows = series(engine, caller, [store_id], start, end, grain)[store_id]
        health = store_day_health(engine, caller.tenant_id, [store_id], start, end)
        return _kpi_response(etags, record, rows, health, store_id, start, end, grain, fmt)
    record, days = store_with_days(engine, caller, store_id, start, end)
    health = store_day_health(engine, caller.tenant_id, [store_id], start, end)
    return kpi_answer(etags, record, days, health, store_id, start, end, grain, fmt)


def kpi_answer(
    etags: str | None,
    record: StoreRecord,
    days: list[KpiPeriod],
    health: dict[tuple[str, date], StoreDayHealth],
    store_id: str,
    start: date,
    end: date,
    grain: ApiGrain,
    fmt: _export.ExportFormat,
) -> Response:
    """The answer of ``GET /v1/stores/{id}/kpis`` at a day-based ``grain`` from the store's
    daily rows and device health (``etags``: the request's ``If-None-Match``)."""
    rows = rollup_rows(days, grain, start, end)
    return _kpi_response(etags, record, rows, health, store_id, start, end, grain, fmt)


def _kpi_response(
    etags: str | None,
    record: StoreRecord,
    rows: list[Row],
    health: dict[tuple[str, date], StoreDayHealth],
    store_id: str,
    start: date,
    end: date,
    grain: ApiGrain,
    fmt: _export.ExportFormat,
) -> Response:
    today = _today(record.timezone)
    filename = f"kpis_{store_id}_{start}_{end}_{grain}"
    missing = dm.series_missing(rows, grain, start, end, today)
    if fmt == "json":  # plain dicts in KpiRow's field order, encoded once by orjson
        content = orjson.dumps(
            {
                "store_id": store_id,
                "grain": grain,
                "from": start,
                "to": end,
                "items": _kpi_items(rows, grain, start, end, today, health, store_id),
                "missing_dates": missing,
            }
        )
        return _respond_bytes(etags, content, fmt, filename)
    items = _kpi_rows(rows, grain, start, end, today, health, store_id)
    body = KpiSeries(
        store_id=store_id, grain=grain, from_=start, to=end, items=items, missing_dates=missing
    )
    return _respond(etags, body, [(store_id, i) for i in items], fmt, filename)


@router.get(
    "/v1/kpis",
    response_model=MultiSeries,
    responses=_KPI_ERRORS | {200: {"content": _EXPORT_CONTENT}},
    tags=["kpis"],
)
def kpis_side_by_side(
    request: Request,
    caller: Reader,
    engine: Datamart,
    from_: FromDate,
    to: ToDate,
    store_id: Annotated[
        list[str] | None,
        Query(
            description="Stores to compare (repeat the parameter); default: every store the "
            "caller sees, a page at a time.",
            max_length=200,
        ),
    ] = None,
    grain: GrainParam = "day",
    fmt: FormatParam = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Stores per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Stores to skip.")] = 0,
) -> Response:
    """KPIs of several stores side by side (ratios from sums per store and period)."""
    start, end = _date_range(request, from_, to)
    wanted = list(dict.fromkeys(store_id)) if store_id else None
    if wanted:
        for sid in wanted:
            visible_store(engine, caller, sid)  # 404 naming the first store it may not see
    records, total = visible_stores(engine, caller, store_ids=wanted, limit=limit, offset=offset)
    ids = [r.store_id for r in records]
    by_store = series(engine, caller, ids, start, end, grain) if ids else {}
    health = store_day_health(engine, caller.tenant_id, ids, start, end)
    out: list[StoreSeries] = []
    flat: list[tuple[str, KpiRow]] = []
    for r in records:
        today = _today(r.timezone)
        rows = by_store.get(r.store_id, [])
        items = _kpi_rows(rows, grain, start, end, today, health, r.store_id)
        flat += [(r.store_id, i) for i in items]
        out.append(
            StoreSeries(
                store_id=r.store_id,
                code=r.code,
                name=r.name,
                items=items,
                missing_dates=dm.series_missing(rows, grain, start, end, today),
            )
        )
    body = MultiSeries(
        grain=grain, from_=start, to=end, stores=out, total=total, limit=limit, offset=offset
    )
    return _respond(
        request.headers.get("if-none-match"),
        body,
        flat,
        _export.negotiate(fmt, request.headers.get("accept")),
        f"kpis_{start}_{end}_{grain}",
    )


@router.get(
    "/v1/stores/{store_id}/sales-tree",
    response_model=SalesTree,
    responses=_STORE_ERRORS | {422: problem_doc("Bad date, reversed or too long range.")},
    tags=["kpis"],
)
def sales_tree(
    request: Request,
    caller: Reader,
    engine: Datamart,
    store_id: StoreId,
    from_: FromDate,
    to: ToDate,
) -> SalesTree:
    """net_sales = passersby × capture_rate × conversion_rate × ATV, against the previous
    period of the same length (the days right before ``from``).

    Only days with both POS and people-counter data enter the tree, so the product holds.
    """
    start, end = _date_range(request, from_, to)
    result = dm.sales_tree(engine, caller, store_id, start, end)
    return SalesTree(
        store_id=result.store_id,
        current=_tree_node(result.current),
        previous=_tree_node(result.previous),
        change={
            name: TreeChange(absolute=c.absolute, relative=c.relative, contribution=c.contribution)
            for name, c in result.change.items()
        },
    )


def _tree_node(node: dm.TreeNode) -> TreeNode:
    return TreeNode(
        from_=node.from_,
        to=node.to,
        days=node.days,
        net_sales=_money(node.net_sales),
        passersby=node.passersby,
        visitors=node.visitors,
        transactions=node.transactions,
        capture_rate=node.capture_rate,
        conversion_rate=node.conversion_rate,
        atv=node.atv,
    )


def _date_range(request: Request, from_: str, to: str) -> tuple[date, date]:
    return date_range(from_, to, api_state(request.app).settings.api_max_kpi_days)


def date_range(from_: str, to: str, limit: int) -> tuple[date, date]:
    """The business dates of ``from``..``to``; :class:`BadInput` naming the parameter for a
    malformed date, a reversed range or one longer than ``limit`` days."""
    start, end = parse_date("from", from_), parse_date("to", to)
    if start > end:
        raise BadInput(f"'from' ({start}) is after 'to' ({end})", param="from")
    span = (end - start).days + 1
    if span > limit:
        raise BadInput(
            f"the range {start}..{end} spans {span} days; at most {limit} are allowed",
            param="to",
        )
    return start, end


def _today(timezone: str) -> date:
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.now(zone).date() if zone else utcnow().date()


def _respond(
    etags: str | None,
    body: KpiSeries | MultiSeries,
    flat: list[tuple[str, KpiRow]],
    fmt: _export.ExportFormat,
    filename: str,
) -> Response:
    if fmt == "csv":
        content = _export.to_csv(flat)
    elif fmt == "parquet":
        content = _export.to_parquet(flat)
    else:
        content = body.model_dump_json(by_alias=True).encode()
    return _respond_bytes(etags, content, fmt, filename)


def _respond_bytes(
    etags: str | None, content: bytes, fmt: _export.ExportFormat, filename: str
) -> Response:
    etag = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        "Cache-Control": KPI_CACHE_CONTROL,
        "Vary": "Authorization, Cookie, Accept",
    }
    if fmt != "json":
        ext = "csv" if fmt == "csv" else "parquet"
        headers["Content-Disposition"] = f'attachment; filename="{filename}.{ext}"'
    if _etag_matches(etags, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=content, media_type=_export.MEDIA_TYPES[fmt], headers=headers)


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    # Weak comparison (RFC 9110 §13.1.2): W/ prefixes are ignored.
    candidates = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _store(r: StoreRecord) -> Store:
    return Store(
        store_id=r.store_id,
        code=r.code,
        name=r.name,
        industry=r.industry,
        region=r.region,
        timezone=r.timezone,
        floor_area_m2=r.floor_area_m2,
    )


_ITEM_KEYS = ("business_date", "period_end", "days", *KPI_COLUMNS)
"""The leading keys of a :class:`KpiRow` item: the period's fields, in :class:`KpiPeriod`'s
order (the warehouse schema's KPI columns after the period)."""
if tuple(KpiRow.model_fields)[: len(_ITEM_KEYS)] != _ITEM_KEYS or len(_ITEM_KEYS) != len(
    KpiPeriod._fields
):
    raise RuntimeError("KpiRow's fields must start with the KpiPeriod fields, in their order")
_MONEY_KEYS = tuple(name for name in _ITEM_KEYS if name in MONEY_KPIS)


def _item_maker() -> Callable[[KpiPeriod], dict[str, Any]]:
    """A function making an item's leading keys from a :class:`KpiPeriod`: a dict display of
    :data:`_ITEM_KEYS` (generated from them, as ``namedtuple`` generates its methods), which
    builds a store-month's 31 dicts in half the CPU of ``dict(zip(_ITEM_KEYS, period))``
    (18 vs 35 us: the largest part of the item loop)."""
    fields = ", ".join(f"{key!r}: p[{i}]" for i, key in enumerate(_ITEM_KEYS))
    made: Callable[[KpiPeriod], dict[str, Any]] = eval(f"lambda p: {{{fields}}}")
    return made


_period_item = _item_maker()


def _kpi_items(
    rows: list[Row],
    grain: ApiGrain,
    start: date,
    end: date,
    today: date,
    health: dict[tuple[str, date], StoreDayHealth],
    store_id: str,
) -> list[dict[str, Any]]:
    """The rows as the dicts a :class:`KpiRow` JSON holds (same keys, same order, same
    values), without building and validating the models: the KPI columns come from the
    warehouse schema, money as two-place strings."""
    items: list[dict[str, Any]] = []
    for row in rows:
        p = row.period
        if not health:
            days: list[StoreDayHealth] = []
        elif p.period_start == p.period_end and start <= p.period_start <= end:
            found = health.get((store_id, p.period_start))  # a day: one look-up
            days = [] if found is None else [found]
        else:
            days = dm.period_health(p, start, end, store_id, health)
        item = _period_item(p)
        for name in _MONEY_KEYS:
            if (value := item[name]) is not None:
                text = str(value)  # a cent-exact Decimal's text has its two places
                item[name] = text if text[-3:-2] == "." else f"{value:.2f}"
        item["hour"] = row.hour
        item["utc_offset_s"] = row.utc_offset_s
        item["flags"] = dm.row_flags(row, grain, start, end, today, days)
        item["device_flags"] = sorted({f for h in days for f in h.flags}) if days else []
        items.append(item)
    return items


def _kpi_rows(
    rows: list[Row],
    grain: ApiGrain,
    start: date,
    end: date,
    today: date,
    health: dict[tuple[str, date], StoreDayHealth],
    store_id: str,
) -> list[KpiRow]:
    return [KpiRow(**i) for i in _kpi_items(rows, grain, start, end, today, health, store_id)]
