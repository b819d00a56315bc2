"""Forecasts and the weather feed in the datamart.

``mart_store_forecast`` holds each store's latest forecast (:data:`MART_STORE_FORECAST`):
an export replaces, per store it carries, all of that store's rows. ``dm_weather`` holds the
optional weather feed (``POST /v1/weather``) per tenant, region and date; the forecast asset
reads it back as a regressor. Both live in their own :class:`~sqlalchemy.MetaData`, created
on first use, so the KPI tables are untouched. Reads are scoped by the caller's tenant and
stores (:func:`tenpo.datamart.read.visible_store`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import BadInput, ConfigError
from tenpo.core.settings import Settings
from tenpo.datamart._engine import get_engine
from tenpo.datamart._memo import SchemaMemo
from tenpo.datamart.read import Caller, visible_store
from tenpo.datamart.schema import column_type
from tenpo.ml.forecast import FORECAST_KEY, GRAINS, KPIS, MART_STORE_FORECAST

__all__ = [
    "ForecastPoint",
    "StoreForecast",
    "ensure_forecast_schema",
    "export_forecasts",
    "read_weather",
    "store_forecast",
    "write_weather",
]

logger = logging.getLogger(__name__)

forecast_metadata = sa.MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s"})

mart_store_forecast = sa.Table(
    "mart_store_forecast",
    forecast_metadata,
    *(
        sa.Column(
            f.name,
            column_type(f.name, f.type, f.name in FORECAST_KEY),
            primary_key=f.name in FORECAST_KEY,
            nullable=f.name not in FORECAST_KEY,
        )
        for f in MART_STORE_FORECAST
    ),
)

dm_weather = sa.Table(
    "dm_weather",
    forecast_metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(64), primary_key=True),
    sa.Column("business_date", sa.Date(), primary_key=True),
    sa.Column("precipitation_mm", sa.Float(), nullable=False),
    sa.Column("temperature_c", sa.Float(), nullable=False),
)

_KEEP_PAST_DAYS = 35


def ensure_forecast_schema(engine: Engine) -> None:
    """Create the forecast and weather tables missing on ``engine``; refuse older layouts."""
    _schema.ensure(engine)


def _create_forecast_schema(engine: Engine) -> None:
    forecast_metadata.create_all(engine)
    inspector = sa.inspect(engine)
    for table in forecast_metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        if missing := [c.name for c in table.columns if c.name not in present]:
            raise ConfigError(
                f"datamart table {table.name} lacks columns {missing}: drop it and re-run "
                "the forecast assets to rebuild it",
                table=table.name,
            )


_schema = SchemaMemo([t.name for t in forecast_metadata.sorted_tables], _create_forecast_schema)


def export_forecasts(settings: Settings, rows: pa.Table) -> int:
    """Replace, for every store in ``rows``, its forecast rows from the first date forecast on
    with these; rows written. The rows of earlier dates stay 35 days (the forecast each date
    had the day before it came, which the alert rules compare the actuals with)."""
    if set(rows.column_names) != set(MART_STORE_FORECAST.names):
        raise BadInput(f"forecast rows do not match their schema ({sorted(rows.column_names)})")
    records = rows.select(MART_STORE_FORECAST.names).cast(MART_STORE_FORECAST).to_pylist()
    first: dict[tuple[str, str], date] = {}
    for r in records:
        key = (r["tenant_id"], r["store_id"])
        first[key] = min(first.get(key, r["business_date"]), r["business_date"])
    engine = get_engine(settings.datamart_db_url)
    ensure_forecast_schema(engine)
    t = mart_store_forecast
    with engine.begin() as conn:
        for (tenant, store), start in sorted(first.items()):
            conn.execute(
                t.delete().where(
                    t.c.tenant_id == tenant,
                    t.c.store_id == store,
                    sa.or_(
                        t.c.business_date >= start,
                        t.c.business_date < start - timedelta(days=_KEEP_PAST_DAYS),
                    ),
                )
            )
        for chunk in range(0, len(records), 5000):
            conn.execute(t.insert(), records[chunk : chunk + 5000])
    logger.info("datamart forecasts: %d rows for %d stores", len(records), len(first))
    return len(records)


@dataclass(frozen=True)
class ForecastPoint:
    """One forecast date (and local hour): median and the 80 % / 95 % intervals."""

    business_date: date
    hour: int | None
    utc_offset_s: int | None
    mean: float
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float


@dataclass(frozen=True)
class StoreForecast:
    """A store's latest forecast of one KPI at one grain (no points before the first run)."""

    store_id: str
    kpi: str
    grain: str
    as_of: date | None
    points: list[ForecastPoint]


def store_forecast(
    engine: Engine, caller: Caller, store_id: str, kpi: str, grain: str
) -> StoreForecast:
    """The latest ``kpi`` forecast of a store the caller sees (NotFound otherwise).

    The store is resolved before the parameters are checked, so another tenant's store is a
    404 whatever the query says (as on every store route)."""
    visible_store(engine, caller, store_id)
    if kpi not in KPIS:
        raise BadInput(
            f"query parameter 'kpi' must be one of {', '.join(KPIS)}, got {kpi!r}", param="kpi"
        )
    if grain not in GRAINS:
        raise BadInput(
            f"query parameter 'grain' must be one of {', '.join(GRAINS)}, got {grain!r}",
            param="grain",
        )
    ensure_forecast_schema(engine)
    t = mart_store_forecast
    mine = sa.and_(
        t.c.tenant_id == caller.tenant_id,
        t.c.store_id == store_id,
        t.c.kpi == kpi,
        t.c.grain == grain,
    )
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(t.c.as_of)).where(mine)).scalar()
        rows = []
        if latest is not None:  # the latest run's dates (earlier runs' past dates stay too)
            query = (
                sa.select(t)
                .where(mine, t.c.business_date > latest)
                .order_by(t.c.business_date, t.c.hour, t.c.utc_offset_s.desc())
            )
            rows = list(conn.execute(query).mappings())
    hourly = grain == "hour"
    points = [
        ForecastPoint(
            business_date=_as_date(r["business_date"]),
            hour=r["hour"] if hourly else None,
            utc_offset_s=r["utc_offset_s"] if hourly else None,
            mean=r["mean"],
            lo_80=r["lo_80"],
            hi_80=r["hi_80"],
            lo_95=r["lo_95"],
            hi_95=r["hi_95"],
        )
        for r in rows
    ]
    as_of = _as_date(rows[0]["as_of"]) if rows else None
    return StoreForecast(store_id, kpi, grain, as_of, points)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def write_weather(engine: Engine, tenant_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Upsert the tenant's weather rows (region, business_date, precipitation_mm,
    temperature_c): a re-sent (region, date) replaces the earlier one. Rows written."""
    records = [
        {
            "tenant_id": tenant_id,
            "region": r["region"],
            "business_date": r["business_date"],
            "precipitation_mm": float(r["precipitation_mm"]),
            "temperature_c": float(r["temperature_c"]),
        }
        for r in rows
    ]
    keys = {(r["region"], r["business_date"]) for r in records}
    if len(keys) != len(records):
        raise BadInput("the weather batch names a (region, date) twice")
    ensure_forecast_schema(engine)
    w = dm_weather
    with engine.begin() as conn:
        for region, day in sorted(keys):
            conn.execute(
                w.delete().where(
                    w.c.tenant_id == tenant_id, w.c.region == region, w.c.business_date == day
                )
            )
        if records:
            conn.execute(w.insert(), records)
    return len(records)


def read_weather(engine: Engine) -> pd.DataFrame:
    """Every tenant's weather rows (for the forecast asset, which scopes them per store)."""
    ensure_forecast_schema(engine)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(dm_weather)).mappings()]
    frame = pd.DataFrame(
        rows,
        columns=["tenant_id", "region", "business_date", "precipitation_mm", "temperature_c"],
    )
    frame["business_date"] = [_as_date(d) for d in frame["business_date"]]
    return frame
