"""Routes of the read API: thin wiring of the datamart read models to HTTP."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Protocol

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from tenpo.api._problems import PROBLEM_JSON
from tenpo.api.models import Health, KpiRow, KpiSeries, Problem, Store, StorePage
from tenpo.control import Principal
from tenpo.core.errors import AuthError, BadInput
from tenpo.datamart import Grain, KpiPeriod, StoreRecord, get_store, list_stores, store_kpis

READ_SCOPE = "read"
KPI_CACHE_CONTROL = "private, max-age=60"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Authenticator(Protocol):
    """Turns an API token into a principal (``tenpo.control.ControlPlane`` is one)."""

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``; raises AuthError when it is not valid."""
        ...


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("Missing, malformed, unknown or revoked API key."),
    403: _problem("The API key lacks the `read` scope."),
}
_STORE_ERRORS = _AUTH_ERRORS | {404: _problem("No such store for the caller's tenant.")}

_bearer = HTTPBearer(auto_error=False, description="An API key with the `read` scope.")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.datamart
    return engine


def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``, holding the ``read`` scope."""
    if credentials is None:
        raise AuthError("missing API key: send 'Authorization: Bearer <api key>'")
    authenticator: Authenticator = request.app.state.control
    principal = authenticator.authenticate(credentials.credentials)
    principal.require(READ_SCOPE)
    return principal


Reader = Annotated[Principal, Depends(reader)]
Datamart = Annotated[Engine, Depends(_engine)]
StoreId = Annotated[str, Path(description="tenpo's store id.", max_length=64)]

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["health"])
def healthz(engine: Datamart) -> Health:
    """Liveness: 200 when the datamart answers a trivial query, 503 problem otherwise."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return Health(status="ok")


@router.get("/v1/stores", response_model=StorePage, responses=_AUTH_ERRORS, tags=["stores"])
def stores(
    caller: Reader,
    engine: Datamart,
    industry: Annotated[str | None, Query(description="Only stores of this industry.")] = None,
    region: Annotated[str | None, Query(description="Only stores in this region.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Stores to skip.")] = 0,
) -> StorePage:
    """The caller's stores, by code, one page at a time."""
    records, total = list_stores(
        engine, caller.tenant_id, industry=industry, region=region, limit=limit, offset=offset
    )
    return StorePage(items=[_store(r) for r in records], total=total, limit=limit, offset=offset)


@router.get("/v1/stores/{store_id}", response_model=Store, responses=_STORE_ERRORS, tags=["stores"])
def store(caller: Reader, engine: Datamart, store_id: StoreId) -> Store:
    """One of the caller's stores (404 for any other id, including other tenants' stores)."""
    return _store(get_store(engine, caller.tenant_id, store_id))


@router.get(
    "/v1/stores/{store_id}/kpis",
    response_model=KpiSeries,
    responses=_STORE_ERRORS
    | {
        304: {"description": "Not modified (the `If-None-Match` ETag still matches)."},
        422: _problem("Bad date, reversed or too long range, or unknown grain."),
    },
    tags=["kpis"],
)
def kpis(
    request: Request,
    caller: Reader,
    engine: Datamart,
    store_id: StoreId,
    from_: Annotated[
        str,
        Query(
            alias="from",
            description="First business date, YYYY-MM-DD.",
            json_schema_extra={"format": "date"},
            examples=["2026-10-05"],
        ),
    ],
    to: Annotated[
        str,
        Query(
            description="Last business date (inclusive), YYYY-MM-DD.",
            json_schema_extra={"format": "date"},
            examples=["2026-10-18"],
        ),
    ],
    grain: Annotated[
        Grain,
        Query(description="`day`, or `week` (ISO, Monday first) / `month` rolled up from days."),
    ] = "day",
) -> Response:
    """The store's KPIs per period; weekly and monthly ratios are recomputed from sums.

    Answers carry an ETag and ``Cache-Control: private, max-age=60``; a matching
    ``If-None-Match`` gets 304.
    """
    start, end = _parse_date("from", from_), _parse_date("to", to)
    if start > end:
        raise BadInput(f"'from' ({start}) is after 'to' ({end})", param="from")
    limit = request.app.state.max_kpi_days
    span = (end - start).days + 1
    if span > limit:
        raise BadInput(
            f"the range {start}..{end} spans {span} days; at most {limit} are allowed",
            param="to",
        )
    get_store(engine, caller.tenant_id, store_id)  # 404 before any data is read
    periods = store_kpis(engine, caller.tenant_id, store_id, start, end, grain)
    series = KpiSeries(
        store_id=store_id, grain=grain, from_=start, to=end, items=[_kpi_row(p) for p in periods]
    )
    body = series.model_dump_json(by_alias=True).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": KPI_CACHE_CONTROL, "Vary": "Authorization"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


def _parse_date(param: str, value: str) -> date:
    try:
        if not _ISO_DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"query parameter {param!r} must be a date as YYYY-MM-DD, got {value!r}", param=param
        ) from None


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


def _kpi_row(p: KpiPeriod) -> KpiRow:
    return KpiRow(
        business_date=p.period_start,
        period_end=p.period_end,
        days=p.days,
        net_sales=_money(p.net_sales),
        net_sales_incl_tax=_money(p.net_sales_incl_tax),
        transactions=p.transactions,
        units=p.units,
        atv=p.atv,
        upt=p.upt,
        visitors=p.visitors,
        passersby=p.passersby,
        capture_rate=p.capture_rate,
        conversion_rate=p.conversion_rate,
        sales_per_visitor=p.sales_per_visitor,
        has_pos=p.has_pos,
        has_counter=p.has_counter,
    )
