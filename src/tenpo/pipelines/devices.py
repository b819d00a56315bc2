"""Device health assets: ``mart_device_health`` in the lake and its copy in the datamart.

Partitioned by business date like the KPI marts and back-filled in a single run. The health
of each device and date is :func:`tenpo.iot.health.device_health` over the deduplicated raw
IoT tables, against each registered people counter's and ToF camera's expected schedule: its
store's timezone and opening hours, and the device config's ``interval_s`` (seconds) and
``start_date`` (``YYYY-MM-DD``). Silent dates get a ``no_data`` row from the start date, else
from the first date the device ever reported (looked up in the raw history before the dates
built, so history loaded later is judged too), else from its registration.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations.
import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

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

from tenpo.core.ids import utcnow
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
_KEY_COLUMNS = ("tenant_id", "store_id", "device_id", "business_date")
_COUNT_COLUMNS = (*_KEY_COLUMNS, "line", "interval_start", "interval_end")
_HEARTBEAT_COLUMNS = (*_KEY_COLUMNS, "ts", "status", "battery", "received_at")


def registered_devices(settings: Settings) -> list[RegisteredDevice]:
    """Active counters and ToF cameras of every tenant with their schedule, from the control
    plane."""
    from tenpo.control import ControlPlane

    control = ControlPlane.open(settings.control_db_url)
    try:
        out: list[RegisteredDevice] = []
        for t in control.list_tenants():
            stores = {s.store_id: s for s in control.list_stores(t.tenant_id)}
            for d in control.list_devices(t.tenant_id):
                store = stores.get(d.store_id)
                if not d.active or d.kind not in _REPORTING_KINDS or store is None:
                    continue
                out.append(
                    RegisteredDevice(
                        d.tenant_id, d.store_id, d.device_id,
                        since=_config_date(d.config, d.device_id),
                        timezone=store.timezone, opening_hours=store.opening_hours,
                        interval_s=_config_interval(d.config, d.device_id),
                        registered=d.created_at.date(),
                        lines=tuple(dict.fromkeys((*d.lines, *d.zones))),
                    )
                )  # fmt: skip
        return out
    finally:
        control.dispose()


def _config_interval(config: Mapping[str, Any], device_id: str) -> int | None:
    value = config.get("interval_s")
    if value is None and config.get("interval_minutes") is not None:
        value = (
            config["interval_minutes"] * 60 if isinstance(config["interval_minutes"], int) else 0
        )
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        log.warning(
            "device %s: config interval %r is not a positive integer; ignored", device_id, value
        )
        return None
    return value


def _config_date(config: Mapping[str, Any], device_id: str) -> date | None:
    value = config.get("start_date")
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        log.warning("device %s: config start_date %r is not YYYY-MM-DD; ignored", device_id, value)
        return None


def first_reported(wh: Any, last: date) -> dict[tuple[str, str], date]:
    """(tenant_id, device_id) → first business date with a count or heartbeat, up to ``last``.

    Reads every date up to ``last`` (only the tenant and device columns); a materialization
    uses :func:`reported_before`, which stops at the devices it needs."""
    first: dict[tuple[str, str], date] = {}
    for name in ("raw_iot_counts", "raw_device_heartbeats"):
        days = [d for d in wh.partition_dates(name) if d <= last]
        if not days:
            continue
        t = wh.raw_scan(name, dates=days)
        expr = t.group_by(["tenant_id", "device_id"]).aggregate(first=t.business_date.min())
        for r in wh.to_arrow(expr).to_pylist():
            key = (r["tenant_id"], r["device_id"])
            first[key] = min(first.get(key, r["first"]), r["first"])
    return first


_WALK_DAYS = 7
"""Dates read per step when looking back for devices' earlier reports."""


def reported_before(
    wh: Any, day: date, devices: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], date]:
    """(tenant_id, device_id) of ``devices`` → the latest business date before ``day`` with a
    count or heartbeat row (devices without one are absent).

    For :func:`tenpo.iot.health.device_health`'s ``first_seen`` this is as good as the first
    date ever (only whether a device reported before the dates built matters), and it is
    found by walking back from ``day`` a week at a time, reading only tenant and device ids,
    until every device is found: a run costs the days it builds, not the history.
    """
    wanted = set(devices)
    found: dict[tuple[str, str], date] = {}
    names = ("raw_iot_counts", "raw_device_heartbeats")
    earlier = sorted({d for n in names for d in wh.partition_dates(n) if d < day}, reverse=True)
    for i in range(0, len(earlier), _WALK_DAYS):
        if not wanted - found.keys():
            break
        chunk = earlier[i : i + _WALK_DAYS]
        for name in names:
            t = wh.raw_scan(name, dates=chunk)
            expr = t.group_by(["tenant_id", "device_id"]).aggregate(last=t.business_date.max())
            for r in wh.to_arrow(expr).to_pylist():
                key = (r["tenant_id"], r["device_id"])
                if key in wanted and key not in found:
                    found[key] = r["last"]
                elif key in found and r["last"] > found[key]:
                    found[key] = r["last"]
    return found


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
        kinds={"ibis", "parquet"},
        description="Device health per device and business date (tables/mart_device_health/).",
    )
    def mart_device_health(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        days = partition_dates(context.partition_keys)
        devices = registered_devices(tenpo.get_settings())
        with tenpo.open_warehouse() as wh:
            # Only the columns device_health reads (the warehouse still deduplicates by key).
            counts = wh.to_arrow(wh.table("raw_iot_counts", dates=days).select(*_COUNT_COLUMNS))
            beats = wh.to_arrow(
                wh.table("raw_device_heartbeats", dates=days).select(*_HEARTBEAT_COLUMNS)
            )
            rows = device_health(
                counts, beats, days, devices=devices,
                first_seen=reported_before(
                    wh, min(days), [(d.tenant_id, d.device_id) for d in devices if not d.since]
                ),
                now=utcnow(),
            )  # fmt: skip
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
