"""Partitions of the pipelines: one per store-local business date."""

from __future__ import annotations

from datetime import date

from dagster import DailyPartitionsDefinition

__all__ = ["DEFAULT_START", "daily_partitions", "partition_dates"]

DEFAULT_START = date(2026, 1, 1)


def daily_partitions(
    start: date = DEFAULT_START, *, end_offset: int = 1
) -> DailyPartitionsDefinition:
    """Daily business-date partitions from ``start``; ``end_offset=1`` includes today."""
    return DailyPartitionsDefinition(start_date=start.isoformat(), end_offset=end_offset)


def partition_dates(keys: list[str] | tuple[str, ...]) -> list[date]:
    """The business dates of partition keys (``YYYY-MM-DD``)."""
    return [date.fromisoformat(k) for k in keys]
