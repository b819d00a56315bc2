"""The Dagster code location: ``dagster dev -m tenpo.pipelines.definitions``.

Nothing here opens a connection or reads settings: ``TenpoResource`` resolves them from the
environment (``TENPO_*``) when an asset, the sensor or the schedule runs.
"""

from __future__ import annotations

from datetime import date

from dagster import Definitions, ExecutorDefinition

from tenpo.pipelines.alerts import alert_assets, alert_sensors
from tenpo.pipelines.connectors import pull_connectors_job, pull_connectors_schedule
from tenpo.pipelines.devices import device_assets
from tenpo.pipelines.forecast import forecast_assets, forecast_schedules
from tenpo.pipelines.initiatives import initiative_assets, initiative_schedules
from tenpo.pipelines.kpis import kpi_assets
from tenpo.pipelines.ml import ml_assets, ml_schedules
from tenpo.pipelines.partitions import DEFAULT_START, daily_partitions
from tenpo.pipelines.raw import raw_table_assets
from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.schedules import daily_kpis_schedule
from tenpo.pipelines.sensors import partitions_changed_sensor
from tenpo.pipelines.stores import store_assets

__all__ = ["build_definitions", "defs"]


def build_definitions(
    start: date = DEFAULT_START,
    *,
    end_offset: int = 1,
    resource: TenpoResource | None = None,
    sensor_interval_s: int = 30,
    sensor_running: bool = False,
    executor: ExecutorDefinition | None = None,
    daily_cron: str | None = None,
    daily_running: bool = False,
) -> Definitions:
    """tenpo's assets over daily partitions from ``start``, the sensor, the daily schedule.

    ``sensor_interval_s`` is the ``partitions_changed`` sensor's minimum interval between
    ticks; ``sensor_running`` starts it by default (else start it in the UI or with
    ``dagster sensor start``). ``executor`` replaces Dagster's default (one process per
    step, which suits production; a small code location may prefer ``in_process_executor``).
    ``daily_cron`` replaces the daily KPI schedule's 04:00 (Asia/Tokyo) and ``daily_running``
    starts it by default."""
    partitions = daily_partitions(start, end_offset=end_offset)
    return Definitions(
        assets=[
            *raw_table_assets(),
            *store_assets(),
            *kpi_assets(partitions),
            *device_assets(partitions),
            *ml_assets(),
            *forecast_assets(),
            *alert_assets(),
            *initiative_assets(),
        ],
        jobs=[pull_connectors_job],
        sensors=[
            partitions_changed_sensor(
                minimum_interval_seconds=sensor_interval_s, running=sensor_running
            ),
            *alert_sensors(),
        ],
        schedules=[
            daily_kpis_schedule(partitions, cron=daily_cron, running=daily_running),
            *ml_schedules(),
            *forecast_schedules(),
            *initiative_schedules(),
            pull_connectors_schedule(),
        ],
        resources={"tenpo": resource or TenpoResource()},
        executor=executor,
    )


defs = build_definitions()
