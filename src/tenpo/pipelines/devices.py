"""Device health assets: ``mart_device_health`` in the lake and its copy in the datamart.

Partitioned by business date like the KPI marts and back-filled in a single run. The health
of each device and date is :func:`tenpo.iot.health.device_health` over the deduplicated raw
IoT tables; registered people counters and ToF cameras that sent nothing get a ``no_data`` row.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations.
import logging
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from tenpo.core.settings import Settings
from tenpo.iot.health import RegisteredDevice, device_health
from tenpo.pipelines._compat import beta_features
from tenpo.pipelines.partitions import partition_dates
from tenpo.pipelines.resources import TenpoResource
from tenpo.warehouse.partitions import write_dates

__all__ = ["DATAMART_DEVICE_HEALTH_KEY", "MART_DEVICE_HEALTH_KEY", "device_assets"]

log = logging.getLogger(__name__)

MART_DEVICE_HEALTH_KEY = "mart_device_health"
DATAMART_DEVICE_HEALTH_KEY = "datamart_device_health"
_REPORTING_KINDS = ("people_counter", "tof_camera")


def registered_devices(settings: Settings) -> list[RegisteredDevice]:
    """Active counters and ToF cameras of every tenant, from the control plane."""
    from tenpo.control import ControlPlane

    control = ControlPlane.open(settings.control_db_url)
    try:
        return [
            RegisteredDevice(d.tenant_id, d.store_id, d.device_id, since=d.created_at.date())
            for t in control.list_tenants()
            for d in control.list_devices(t.tenant_id)
            if d.active and d.kind in _REPORTING_KINDS
        ]
    finally:
        control.dispose()


def device_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    """``mart_device_health`` and ``datamart_device_health`` over ``partitions``."""
    with beta_features():
        return _device_assets(partitions)


def _device_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    @asset(
        name=MART_DEVICE_HEALTH_KEY,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        deps=["raw_iot_counts", "raw_device_heartbeats"],
        group_name="devices",
        kinds={"duckdb", "parquet"},
        description="Device health per device and business date (tables/mart_device_health/).",
    )
    def mart_device_health(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        days = partition_dates(context.partition_keys)
        devices = registered_devices(tenpo.get_settings())
        with tenpo.open_warehouse() as wh:
            counts = wh.to_arrow(wh.table("raw_iot_counts", dates=days))
            beats = wh.to_arrow(wh.table("raw_device_heartbeats", dates=days))
            rows = device_health(counts, beats, days, devices=devices)
            written = write_dates(wh.lake, MART_DEVICE_HEALTH_KEY, days, rows)
        flagged = sum(1 for f in rows["flags"].to_pylist() if f)
        context.log.info(
            "mart_device_health: %d device-days over %d date(s), %d flagged",
            rows.num_rows, len(days), flagged,
        )  # fmt: skip
        return MaterializeResult(
            metadata={"rows": rows.num_rows, "flagged": flagged, "partitions": len(written)}
        )

    @asset(
        name=DATAMART_DEVICE_HEALTH_KEY,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        deps=[mart_device_health],
        group_name="datamart",
        kinds={"sql"},
        description="mart_device_health copied into the datamart (GET /v1/devices/health).",
    )
    def datamart_device_health(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        from tenpo.datamart import get_engine
        from tenpo.datamart.devices import export_device_health

        days = partition_dates(context.partition_keys)
        engine = get_engine(tenpo.get_settings().datamart_db_url)
        with tenpo.open_warehouse() as wh:
            rows = wh.to_arrow(wh.table(MART_DEVICE_HEALTH_KEY, dates=days))
        exported: dict[date, int] = {}
        for day in days:
            day_rows = rows.filter(pc.equal(rows["business_date"], pa.scalar(day, pa.date32())))
            exported[day] = export_device_health(engine, day, day_rows)
        context.log.info("datamart_device_health: %d rows", sum(exported.values()))
        return MaterializeResult(metadata={"rows": sum(exported.values())})

    return [mart_device_health, datamart_device_health]
