"""Aggregation jobs: KPI marts as pure Ibis functions of raw tables (no I/O)."""

from tenpo.jobs.kpis import store_daily

__all__ = ["store_daily"]
