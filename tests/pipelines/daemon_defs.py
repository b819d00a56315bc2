"""The code location of the dagster-daemon test: tenpo's definitions with the
``partitions_changed`` sensor running and ticking every second, and the daily KPI schedule
running and ticking every minute (the shipped location, ``tenpo.pipelines.definitions``,
ticks every 30 s and at 04:00, both stopped until turned on). Runs execute in
one process: the test is about the daemon, the sensor and PostgreSQL storage, and a process
per step (Dagster's default) costs an interpreter start per asset."""

from datetime import date

from dagster import in_process_executor

from tenpo.pipelines.definitions import build_definitions

defs = build_definitions(
    date(2026, 1, 1),
    sensor_interval_s=1,
    sensor_running=True,
    executor=in_process_executor,
    daily_cron="* * * * *",
    daily_running=True,
)
