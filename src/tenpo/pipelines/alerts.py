"""Alert evaluation: the ``alerts`` asset, run by a sensor every five minutes.

Each run evaluates every tenant's rules (the control plane's ``alert_rules``) on the latest
business date of ``mart_store_daily`` (the week before it too, for missing sources), that
date's hourly rows, the datamart's forecasts and the device-health mart's ``last_seen``,
records the alerts not seen before and delivers every undelivered alert to its rule's
webhook (URL and secret from the control plane), except those the control plane's
``alert_deliveries`` says the webhook already received (before a datamart rebuild).
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations.
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    asset,
    define_asset_job,
    sensor,
)

from tenpo.alerts import evaluate
from tenpo.core.errors import NotFound
from tenpo.pipelines.kpis import MART_STORE_DAILY_KEY
from tenpo.pipelines.ml import latest_business_date
from tenpo.pipelines.resources import TenpoResource
from tenpo.warehouse.partitions import list_partitions

__all__ = ["ALERTS_JOB", "ALERTS_KEY", "alert_assets", "alert_sensors", "evaluate_alerts"]

log = logging.getLogger(__name__)

ALERTS_KEY = "alerts"
ALERTS_JOB = "alerts_every_5_minutes"


def _frame(tenpo: TenpoResource, table: str, days: list[date]) -> pd.DataFrame | None:
    present = {d for _, d in list_partitions(tenpo.open_lake(), table)}
    wanted = [d for d in days if d in present]
    if not wanted:
        return None
    with tenpo.open_warehouse() as wh:
        try:
            return wh.to_arrow(wh.table(table, dates=wanted)).to_pandas()
        except NotFound:
            return None


def _forecast(engine: sa.Engine, day: date) -> pd.DataFrame | None:
    from tenpo.datamart.forecast import ensure_forecast_schema, mart_store_forecast

    ensure_forecast_schema(engine)
    t = mart_store_forecast
    query = sa.select(t).where(t.c.grain == "day", t.c.business_date == day)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    return pd.DataFrame(rows) if rows else None


def evaluate_alerts(
    tenpo: TenpoResource, *, now: datetime | None = None, client: httpx.Client | None = None
) -> dict[str, Any]:
    """One evaluation and delivery round (the asset's body); counts of what it did."""
    from tenpo.datamart import get_engine
    from tenpo.datamart.alerts import (
        deliver_pending,
        drop_legacy_rules,
        legacy_rules,
        record_alerts,
        restore_acks,
    )

    now = now or datetime.now(UTC)
    settings = tenpo.get_settings()
    engine = get_engine(settings.datamart_db_url)
    legacy = legacy_rules(engine)  # rules kept in the datamart before they moved
    rules, targets = tenpo.alert_rules(legacy)
    if legacy:
        drop_legacy_rules(engine)
    day = latest_business_date(tenpo.open_lake())
    new: list[str] = []
    if rules and day is not None:
        week = [day - timedelta(days=i) for i in range(8)]
        daily = _frame(tenpo, MART_STORE_DAILY_KEY, week)
        health = _frame(tenpo, "mart_device_health", [day])
        devices = None
        if health is not None and len(health):
            devices = (
                health.sort_values("last_seen")
                .groupby(["tenant_id", "store_id", "device_id"], as_index=False)
                .last()[["tenant_id", "store_id", "device_id", "last_seen"]]
            )
        found = evaluate(
            rules,
            day,
            daily=daily if daily is not None else pd.DataFrame(columns=["tenant_id"]),
            hourly=_frame(tenpo, "mart_store_hourly", [day]),
            forecast=_forecast(engine, day),
            devices=devices,
            now=now,
        )
        new = record_alerts(engine, found, now)
    own = client is None
    client = client or httpx.Client(timeout=10)
    try:
        with tenpo.control_plane() as control:  # deliveries and acks outlive a datamart drop
            if control is not None and new:
                restore_acks(engine, control.alert_acks())
            counts = deliver_pending(
                engine,
                client,
                targets,
                control,
                allow_private=settings.alert_webhook_allow_private,
            )
    finally:
        if own:
            client.close()
    return {
        "business_date": day.isoformat() if day else None,
        "rules": len(rules),
        "raised": len(new),
        **counts,
    }


def alert_assets() -> list[AssetsDefinition]:
    """The alert evaluation asset."""

    @asset(
        name=ALERTS_KEY,
        deps=[MART_STORE_DAILY_KEY, "datamart_forecast"],
        group_name="alerts",
        kinds={"python"},
        # No writer tag: it writes no mart (its alert rows are idempotent by id), and every
        # 5 minutes it must neither wait behind a long mart run nor hold one up.
        description="Tenants' alert rules evaluated on the latest date; new alerts recorded "
        "in the datamart and delivered to the rules' webhooks (signed, retried, idempotent).",
    )
    def alerts(context: AssetExecutionContext, tenpo: TenpoResource) -> MaterializeResult:
        result = evaluate_alerts(tenpo)
        context.log.info("alerts: %s", result)
        return MaterializeResult(metadata=result)

    return [alerts]


def alert_sensors() -> list[SensorDefinition]:
    """Runs the alerts asset every five minutes (device silence is a matter of minutes)."""
    job = define_asset_job(ALERTS_JOB, selection=[ALERTS_KEY])

    @sensor(
        name="alerts_sensor",
        job=job,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def alerts_sensor(context: SensorEvaluationContext) -> RunRequest:
        return RunRequest(run_key=None)

    return [alerts_sensor]
