"""Read API routes of the forecasts, and the optional weather feed they use.

Thin wiring of :mod:`tenpo.datamart.forecast` to HTTP: ``GET /v1/stores/{id}/forecast``
(``read`` scope, the caller's tenant and stores only) and ``POST /v1/weather`` (``admin``
scope, the key's own tenant).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from tenpo.api._admin_routes import Admin
from tenpo.api._auth import Reader
from tenpo.api._ml_routes import _AUTH, Datamart, _problem
from tenpo.api._routes import StoreId
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
    responses=_AUTH
    | {
        404: _problem("No such store for the caller."),
        422: _problem("Bad kpi or grain."),
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


_ADMIN: dict[int | str, dict[str, Any]] = {
    401: _problem("Missing, malformed, unknown or revoked API key."),
    403: _problem("The API key lacks the `admin` scope."),
    422: _problem("Invalid body."),
}


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
