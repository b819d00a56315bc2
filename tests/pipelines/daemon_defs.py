"""The code location of the dagster-daemon test: tenpo's definitions with the
``partitions_changed`` sensor running and ticking every second (the shipped location,
``tenpo.pipelines.definitions``, ticks every 30 s and starts stopped)."""

from datetime import date

from tenpo.pipelines.definitions import build_definitions

defs = build_definitions(date(2026, 1, 1), sensor_interval_s=1, sensor_running=True)
