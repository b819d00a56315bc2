"""Read API routes of the forecasts, and the optional weather feed they use.

Thin wiring of :mod:`tenpo.datamart.forecast` to HTTP: ``GET /v1/stores/{id}/forecast``
(``read`` scope, the caller's tenant and stores only) and ``POST /v1/weather`` (``admin``
scope, the key's own tenant).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tenpo.api._problems import problem, problem_doc, rows_rejected
from tenpo.api._routes import StoreId
from tenpo.api.deps import ADMIN_ERRORS, READER_ERRORS, Admin, Datamart, Reader
from tenpo.control import ImportRejected, RowError
from tenpo.core.checks import media_type, read_body
from tenpo.core.errors import BadInput
from tenpo.datamart.forecast import store_forecast, write_weather
from tenpo.ml.forecast import GRAINS, KPIS, LEVELS

__all__ = ["forecast_router"]


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForecastPoint(_Public):
    """One future date (and local hour): the median forecast and its intervals."""

    date: date
    hour: int | None = Field(description="Local hour (grain=hour), else null.")
    utc_offset: str | None = Field(
        description="UTC offset in force, `+09:00` (grain=hour; a fall-back hour has two)."
    )
    mean: float = Field(description="Median forecast (net sales: yen excl. tax).")
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float


class StoreForecast(_Public):
    """A store's latest forecast of one KPI (no points until the forecast asset has run)."""

    store_id: str
    kpi: str
    grain: str
    as_of: date | None = Field(description="Last business date of the history it used.")
    levels: list[int] = Field(description="Nominal coverage of the intervals, in percent.")
    points: list[ForecastPoint]


class WeatherDay(_Public):
    """Observed or forecast weather of one region on one date."""

    region: str = Field(min_length=1, max_length=64, description="Store region, e.g. `kanto`.")
    date: date
    precipitation_mm: float = Field(ge=0, le=2000, description="Daily precipitation, mm.")
    temperature_c: float = Field(ge=-60, le=60, description="Mean temperature, °C.")


class WeatherBatch(_Public):
    """Up to 5000 region-days; a re-sent (region, date) replaces the earlier one."""

    items: list[WeatherDay] = Field(min_length=1, max_length=5000)


class WeatherReceipt(_Public):
    """What the weather feed accepted."""

    tenant_id: str
    written: int


def _offset(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}"


forecast_router = APIRouter()

# Enumerated in the schema, checked in tenpo.datamart.forecast (a problem naming the choices).
_KPI = Annotated[
    str,
    Query(
        description="`visitors`, `transactions` or `net_sales`.",
        json_schema_extra={"enum": list(KPIS)},
    ),
]
_GRAIN = Annotated[
    str,
    Query(
        description="`day` (90 days) or `hour` (14 days).",
        json_schema_extra={"enum": list(GRAINS)},
    ),
]


@forecast_router.get(
    "/v1/stores/{store_id}/forecast",
    response_model=StoreForecast,
    responses=READER_ERRORS
    | {
        404: problem_doc("No such store for the caller."),
        422: problem_doc("Bad kpi or grain."),
    },
    tags=["forecast"],
)
def forecast(
    caller: Reader,
    engine: Datamart,
    store_id: StoreId,
    kpi: _KPI = "visitors",
    grain: _GRAIN = "day",
) -> StoreForecast:
    """The store's latest forecast of ``kpi``: daily for 90 days or hourly for 14, with 80 %
    and 95 % intervals (weekday, holidays of the store's country, season, weather if fed)."""
    found = store_forecast(engine, caller, store_id, kpi, grain)
    return StoreForecast(
        store_id=store_id,
        kpi=kpi,
        grain=grain,
        as_of=found.as_of,
        levels=list(LEVELS),
        points=[
            ForecastPoint(
                date=p.business_date,
                hour=p.hour,
                utc_offset=_offset(p.utc_offset_s),
                mean=p.mean,
                lo_80=p.lo_80,
                hi_80=p.hi_80,
                lo_95=p.lo_95,
                hi_95=p.hi_95,
            )
            for p in found.points
        ],
    )


_ADMIN = ADMIN_ERRORS | {422: problem_doc("Invalid body.")}


@forecast_router.post(
    "/v1/weather", response_model=WeatherReceipt, responses=_ADMIN, tags=["forecast"]
)
def weather(caller: Admin, engine: Datamart, batch: WeatherBatch) -> WeatherReceipt:
    """Feed the tenant's weather per region and date; the next forecast run uses it."""
    tenant = caller.principal.tenant_id
    written = write_weather(
        engine,
        tenant,
        (
            {
                "region": w.region,
                "business_date": w.date,
                "precipitation_mm": w.precipitation_mm,
                "temperature_c": w.temperature_c,
            }
            for w in batch.items
        ),
    )
    return WeatherReceipt(tenant_id=tenant, written=written)


class StaffHour(_Public):
    """Staff on the floor in one local hour."""

    date: date
    hour: int = Field(ge=0, le=23)
    staff: float = Field(ge=0, le=500, description="Staff hours worked in that hour.")


class StaffingRequest(_Public):
    """A store's staffed hours (up to 10 000), e.g. from the rota of the last weeks."""

    store_id: str = Field(min_length=1, max_length=64)
    items: list[StaffHour] = Field(min_length=1, max_length=10_000)


class CurveBandOut(_Public):
    """Conversion of the hours whose visitors per staff hour fell in the band."""

    load_from: float
    load_to: float
    hours: int
    visitors: int
    conversion: float | None


class StaffedHour(_Public):
    """Recommended staff for one forecast hour."""

    date: date
    hour: int
    utc_offset: str | None
    visitors: float = Field(description="Forecast visitors (median).")
    staff: int


class StaffingPlanOut(_Public):
    """Visitors per staff hour, the store's own conversion curve and a staffing proposal."""

    store_id: str
    staffed_hours: int = Field(description="Posted hours with staff and visitors.")
    visitors_per_staff_hour: float | None
    curve: list[CurveBandOut]
    target_load: float | None = Field(
        description="Highest visitors per staff hour whose conversion stays within 5 % of the "
        "best band's."
    )
    strained_hours: list[int] = Field(description="Local hours above the target load on average.")
    recommendation: list[StaffedHour] = Field(description="The next 14 days' forecast hours.")
    expected_extra_transactions_per_week: float


MAX_STAFFING_BYTES = 2 * 1024 * 1024
MAX_STAFF_ROWS = 10_000

_STAFFING_DOC = (
    "A store's staffed hours: `application/json` "
    '`{"store_id": "s1", "items": [{"date": "2026-10-05", "hour": 10, "staff": 2}]}` or '
    "`text/csv` with the header `store_id,date,hour,staff` (one store per upload; hour 0-23 "
    "local, staff 0-500). Every CSV row is checked first: any bad row answers 422 listing "
    "each in `errors` (`{kind, row, message}`, row 1 = the first data row); nothing is stored."
)


def _staffing_schema() -> dict[str, Any]:
    """StaffingRequest's JSON schema with its item model inlined (no ``$defs``)."""
    schema = StaffingRequest.model_json_schema()
    defs = schema.pop("$defs", {})
    items = schema["properties"]["items"]
    ref = items["items"].get("$ref", "")
    if ref:
        items["items"] = defs[ref.rsplit("/", 1)[-1]]
    return schema


@forecast_router.post(
    "/v1/staffing",
    response_model=StaffingPlanOut,
    responses=READER_ERRORS
    | {
        404: problem_doc("No such store for the caller."),
        413: problem_doc("Body over 2 MiB."),
        415: problem_doc("Neither text/csv nor application/json."),
        422: problem_doc("Bad body (CSV: each bad row listed in `errors`)."),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": _STAFFING_DOC,
            "content": {
                "application/json": {"schema": _staffing_schema()},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
    tags=["forecast"],
)
async def staffing(request: Request, caller: Reader, engine: Datamart) -> Any:
    """Visitors per staff hour, where conversion drops as traffic per staff rises (the
    store's own curve) and the staff the forecast hours need; nothing is stored."""
    from starlette.concurrency import run_in_threadpool

    raw = await read_body(request, MAX_STAFFING_BYTES, "staffing body")
    kind = media_type(request.headers.get("content-type"))
    if kind == "text/csv":
        try:
            body = staffing_from_csv(raw)
        except ImportRejected as exc:
            return rows_rejected(request, exc)
    elif kind == "application/json":
        try:
            body = StaffingRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from exc
    else:
        return problem(
            415,
            f"send text/csv or application/json, not {kind or 'nothing'!r}",
            instance=request.url.path,
        )
    return await run_in_threadpool(_plan, caller, engine, body)


def staffing_from_csv(raw: bytes) -> StaffingRequest:
    """A staffing request from CSV ``store_id,date,hour,staff``; every row is checked first
    and :class:`~tenpo.control._admin.ImportRejected` lists each bad one."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"staffing CSV is not UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    if not {"store_id", "date", "hour", "staff"} <= set(fields):
        raise BadInput(f"staffing CSV needs the header store_id,date,hour,staff, got {fields}")
    reader.fieldnames = fields
    errors: list[RowError] = []
    items: dict[tuple[date, int], float] = {}
    store: str | None = None
    n = 0
    for n, row in enumerate(reader, start=1):
        if n > MAX_STAFF_ROWS:
            errors.append(RowError("staffing", n, f"more than {MAX_STAFF_ROWS} rows"))
            break
        problem_, key, staff = _staff_row(row)
        sid = (row.get("store_id") or "").strip()
        if problem_ is None and not sid:
            problem_ = "store_id is empty"
        if problem_ is None and store is not None and sid != store:
            problem_ = f"store_id {sid!r} differs from the first row's {store!r} (one store)"
        if problem_ is None and key in items and items[key] != staff:
            assert key is not None
            problem_ = f"{key[0]} hour {key[1]} given twice with different staff"
        if problem_ is not None:
            errors.append(RowError("staffing", n, problem_))
            continue
        assert key is not None and staff is not None
        store = store or sid
        items[key] = staff
    if n == 0:
        errors.append(RowError("staffing", 0, "no rows"))
    if errors:
        raise ImportRejected(errors)
    assert store is not None
    return StaffingRequest(
        store_id=store,
        items=[StaffHour(date=d, hour=h, staff=v) for (d, h), v in sorted(items.items())],
    )


def _staff_row(
    row: dict[str | Any, Any],
) -> tuple[str | None, tuple[date, int] | None, float | None]:
    if None in row:
        return "more cells than the header has", None, None
    raw_day, raw_hour, raw_staff = ((row.get(k) or "").strip() for k in ("date", "hour", "staff"))
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        return f"bad date {raw_day!r} (expected YYYY-MM-DD)", None, None
    if not raw_hour.isdigit() or not 0 <= int(raw_hour) <= 23:
        return f"bad hour {raw_hour!r} (expected 0-23)", None, None
    try:
        staff = float(raw_staff)
    except ValueError:
        return f"bad staff {raw_staff!r} (expected a number)", None, None
    if not math.isfinite(staff) or not 0 <= staff <= 500:
        return f"staff {raw_staff!r} must be between 0 and 500", None, None
    return None, (day, int(raw_hour)), staff


def _plan(caller: Any, engine: Any, body: StaffingRequest) -> StaffingPlanOut:
    import pandas as pd

    from tenpo.datamart.read import hourly_rows, visible_store
    from tenpo.ml.staffing import plan_staffing

    visible_store(engine, caller, body.store_id)
    start = min(i.date for i in body.items)
    end = max(i.date for i in body.items)
    rows = hourly_rows(engine, caller, [body.store_id], start, end).get(body.store_id, [])
    hourly = pd.DataFrame(
        [
            (r.period.period_start, r.hour, r.period.visitors or 0, r.period.transactions or 0)
            for r in rows
        ],
        columns=["business_date", "hour", "visitors", "transactions"],
    )
    staff = pd.DataFrame(
        [(i.date, i.hour, i.staff) for i in body.items], columns=["business_date", "hour", "staff"]
    )
    fc = store_forecast(engine, caller, body.store_id, "visitors", "hour")
    forecast = pd.DataFrame(
        [(p.business_date, p.hour, p.utc_offset_s, p.mean) for p in fc.points],
        columns=["business_date", "hour", "utc_offset_s", "mean"],
    )
    plan = plan_staffing(staff, hourly, forecast)
    return StaffingPlanOut(
        store_id=body.store_id,
        staffed_hours=plan.staffed_hours,
        visitors_per_staff_hour=plan.visitors_per_staff_hour,
        curve=[CurveBandOut(**vars(c)) for c in plan.curve],
        target_load=plan.target_load,
        strained_hours=plan.strained_hours,
        recommendation=[_staffed(r) for r in plan.recommendation.to_dict("records")],
        expected_extra_transactions_per_week=plan.expected_extra_transactions,
    )


def _staffed(r: dict[Any, Any]) -> StaffedHour:
    offset = r["utc_offset_s"]
    return StaffedHour(
        date=r["business_date"],
        hour=int(r["hour"]),
        utc_offset=None if offset is None or offset != offset else _offset(int(offset)),
        visitors=float(r["visitors"]),
        staff=int(r["staff"]),
    )
