"""Schedules. The daily one: yesterday's business date, every mart and export, each morning.

The streamer sensor already recomputes what changed during the day; the schedule is the
nightly safety net that rebuilds the closed business date once all sources have reported.
:func:`asset_job_schedule` is the one way the unpartitioned asset groups (ML, forecasts,
initiative effects) are scheduled.
"""

# No `from __future__ import annotations`: Dagster inspects the schedule function's annotations.
from collections.abc import Sequence
from datetime import datetime, timedelta

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)
from dagster._core.storage.tags import RUN_KEY_TAG, SCHEDULE_NAME_TAG

from tenpo.pipelines.devices import DATAMART_DEVICE_HEALTH_KEY, MART_DEVICE_HEALTH_KEY
from tenpo.pipelines.kpis import DATAMART_KEYS, MART_KEYS, WRITER_TAG
from tenpo.pipelines.stores import DATAMART_STORES_KEY

__all__ = ["BUSINESS_TIMEZONE", "DAILY_JOB", "asset_job_schedule", "daily_kpis_schedule"]

DAILY_JOB = "daily_kpis"
DAILY_SCHEDULE = "daily_kpis_schedule"
BUSINESS_TIMEZONE = "Asia/Tokyo"
"""Where the schedules' wall-clock times are (the stores' business day)."""


def asset_job_schedule(
    name: str, job: str, selection: Sequence[str], *, cron: str = "0 4 * * *"
) -> ScheduleDefinition:
    """Schedule ``name`` running the writer-tagged asset job ``job`` (``selection``) at
    ``cron`` in :data:`BUSINESS_TIMEZONE` (default 04:00, after the night's KPIs); it is off
    until turned on, like Dagster's own default."""
    return ScheduleDefinition(
        name=name,
        job=define_asset_job(job, selection=list(selection), tags=WRITER_TAG),
        cron_schedule=cron,
        execution_timezone=BUSINESS_TIMEZONE,
    )


def daily_kpis_schedule(
    partitions: DailyPartitionsDefinition,
    *,
    hour: int = 4,
    timezone: str = BUSINESS_TIMEZONE,
    running: bool = False,
    cron: str | None = None,
) -> ScheduleDefinition:
    """At ``hour``:00 ``timezone`` (or at ``cron`` there), materialize every mart for the
    previous business date; one run per date, however often it ticks.

    Dagster de-duplicates a schedule's run keys only within one tick (unlike a sensor's), so
    a tick whose date already has a run of this schedule, in any state, launches nothing: with
    a cron more frequent than daily, a run that fails is not retried every tick (re-run it, or
    backfill the date)."""
    job = define_asset_job(
        DAILY_JOB,
        selection=AssetSelection.assets(
            DATAMART_STORES_KEY,
            *MART_KEYS,
            *DATAMART_KEYS,
            MART_DEVICE_HEALTH_KEY,
            DATAMART_DEVICE_HEALTH_KEY,
        ),
        partitions_def=partitions,
        tags=WRITER_TAG,
        description="KPI and device-health marts, their exports, the store list: one date.",
    )

    @schedule(
        name=DAILY_SCHEDULE,
        job=job,
        cron_schedule=cron or f"0 {hour} * * *",
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        description="Nightly rebuild of yesterday's business date.",
    )
    def daily(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        tick = context.scheduled_execution_time or datetime.now()
        day = (tick - timedelta(days=1)).date().isoformat()
        key = f"daily-{day}"
        earlier = context.instance.get_run_ids(
            RunsFilter(tags={SCHEDULE_NAME_TAG: DAILY_SCHEDULE, RUN_KEY_TAG: key}),
            limit=1,
        )
        if earlier:
            return SkipReason(f"{day} already has run {earlier[0]} of this schedule")
        return RunRequest(run_key=key, partition_key=day)

    return daily
