"""Aggregation jobs: KPI marts as pure Ibis functions of raw tables (no I/O)."""

from tenpo.jobs.kpis import store_daily, store_hourly
from tenpo.jobs.timezones import store_offsets
from tenpo.jobs.visits import VisitRules, store_visits

__all__ = ["VisitRules", "store_daily", "store_hourly", "store_offsets", "store_visits"]
