"""Forecast assets: every store's daily (90 days) and hourly (14 days) forecast, refreshed daily.

``mart_store_forecast`` is computed by :func:`tenpo.ml.forecast.forecast_rows` from the last
two years of ``mart_store_daily`` and the last ten weeks of ``mart_store_hourly`` up to the
run's ``as_of`` (default: the latest daily partition), with the datamart's weather feed as a
regressor when there is one. It is written as the lake partition ``date={as_of}`` per tenant
and ``datamart_forecast`` replaces each store's forecast in the datamart with it.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations.
import logging
from datetime import date, timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    ScheduleDefinition,
    asset,
)
from pydantic import Field

from tenpo.core.errors import NotFound
from tenpo.core.settings import Settings
from tenpo.ml.forecast import MART_STORE_FORECAST, forecast_rows
from tenpo.pipelines.kpis import MART_STORE_DAILY_KEY, WRITER_TAG
from tenpo.pipelines.ml import latest_business_date, read_mart_day, store_master, write_mart
from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.schedules import asset_job_schedule
from tenpo.warehouse.partitions import list_partitions

__all__ = [
    "DATAMART_FORECAST_KEY",
    "FORECAST_JOB",
    "MART_STORE_FORECAST_KEY",
    "ForecastRunConfig",
    "forecast_assets",
    "forecast_schedules",
]

log = logging.getLogger(__name__)

MART_STORE_FORECAST_KEY = "mart_store_forecast"
DATAMART_FORECAST_KEY = "datamart_forecast"
FORECAST_JOB = "forecast_daily"
_HISTORY_DAYS = 730
_HOURLY_DAYS = 70


class ForecastRunConfig(Config):
    """Run configuration of the forecast asset."""

    as_of: str | None = Field(
        default=None, description="Last business date of the history (default: latest in mart)."
    )


def _read_marts(tenpo: TenpoResource, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    lake = tenpo.open_lake()
    present = {d for _, d in list_partitions(lake, MART_STORE_DAILY_KEY)}
    days = sorted(d for d in present if as_of - timedelta(days=_HISTORY_DAYS) < d <= as_of)
    recent = [d for d in days if d > as_of - timedelta(days=_HOURLY_DAYS)]
    with tenpo.open_warehouse() as wh:
        daily = wh.to_arrow(wh.table(MART_STORE_DAILY_KEY, dates=days)).to_pandas()
        try:
            hourly = wh.to_arrow(wh.table("mart_store_hourly", dates=recent)).to_pandas()
        except NotFound:
            hourly = None
    return daily, hourly


def _weather(settings: Settings) -> pd.DataFrame | None:
    from tenpo.datamart import get_engine
    from tenpo.datamart.forecast import read_weather

    frame = read_weather(get_engine(settings.datamart_db_url))
    return frame if len(frame) else None


def forecast_assets() -> list[AssetsDefinition]:
    """The forecast mart and its datamart export."""

    @asset(
        name=MART_STORE_FORECAST_KEY,
        deps=[MART_STORE_DAILY_KEY],
        group_name="ml",
        kinds={"statsforecast", "parquet"},
        op_tags=WRITER_TAG,
        description="Per store: visitors, transactions, net sales forecast daily for 90 days "
        "and hourly for 14, with 80 % and 95 % intervals.",
    )
    def mart_store_forecast(
        context: AssetExecutionContext, config: ForecastRunConfig, tenpo: TenpoResource
    ) -> MaterializeResult:
        lake = tenpo.open_lake()
        as_of = date.fromisoformat(config.as_of) if config.as_of else latest_business_date(lake)
        if as_of is None:
            raise NotFound("mart_store_daily is empty: materialize it before the forecasts")
        daily, hourly = _read_marts(tenpo, as_of)
        settings = tenpo.get_settings()
        rows = forecast_rows(
            daily, hourly, store_master(tenpo), as_of=as_of, weather=_weather(settings)
        )
        write_mart(lake, MART_STORE_FORECAST_KEY, as_of, rows)
        stores = len(
            {
                (t, s)
                for t, s in zip(
                    *(rows[c].to_pylist() for c in ("tenant_id", "store_id")), strict=True
                )
            }
        )
        context.log.info("forecast as of %s: %d rows, %d stores", as_of, rows.num_rows, stores)
        return MaterializeResult(
            metadata={"as_of": as_of.isoformat(), "rows": rows.num_rows, "stores": stores}
        )

    @asset(
        name=DATAMART_FORECAST_KEY,
        deps=[MART_STORE_FORECAST_KEY],
        group_name="datamart",
        kinds={"sql"},
        op_tags=WRITER_TAG,
        description="The latest forecast of every store copied into the datamart.",
    )
    def datamart_forecast(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        from tenpo.datamart.forecast import export_forecasts

        lake = tenpo.open_lake()
        partitions = list_partitions(lake, MART_STORE_FORECAST_KEY)
        if not partitions:
            context.log.warning("datamart forecast: no forecast yet, nothing to export")
            return MaterializeResult(metadata={"rows": 0})
        as_of = max(d for _, d in partitions)
        rows = read_mart_day(lake, MART_STORE_FORECAST_KEY, as_of, MART_STORE_FORECAST)
        written = export_forecasts(tenpo.get_settings(), rows)
        return MaterializeResult(metadata={"as_of": as_of.isoformat(), "rows": written})

    return [mart_store_forecast, datamart_forecast]


def forecast_schedules() -> list[ScheduleDefinition]:
    """Daily refresh of the forecasts (04:00 Asia/Tokyo, after the night's KPIs)."""
    return [
        asset_job_schedule(
            "forecast_daily_schedule",
            FORECAST_JOB,
            [MART_STORE_FORECAST_KEY, DATAMART_FORECAST_KEY],
        )
    ]
