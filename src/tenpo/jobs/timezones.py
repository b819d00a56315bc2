"""UTC offsets of stores per business date: the input the jobs use for local hours.

Offsets are computed here in Python (zoneinfo) rather than in SQL because engines disagree on
time-zone functions; the jobs then only add seconds, which every engine does the same way.
A store's offset is taken at local noon of the business date: on a daylight-saving change
day, hours before the change (at night, outside opening hours) are off by the shift.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from tenpo.core.errors import BadInput

__all__ = ["OFFSETS_SCHEMA", "store_offsets", "utc_offset_s"]

OFFSETS_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        ("utc_offset_s", pa.int32()),
    ]
)


def utc_offset_s(timezone: str, day: date) -> int:
    """Seconds east of UTC of ``timezone`` at local noon of ``day``; ``BadInput`` if unknown."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadInput(f"unknown timezone {timezone!r}") from exc
    offset = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def store_offsets(stores: Iterable[tuple[str, str, str]], days: Iterable[date]) -> pa.Table:
    """One row per (tenant_id, store_id, timezone) of ``stores`` and date of ``days``."""
    wanted = sorted(set(days))
    cols: dict[str, list[object]] = {name: [] for name in OFFSETS_SCHEMA.names}
    cache: dict[tuple[str, date], int] = {}
    for tenant_id, store_id, timezone in stores:
        for day in wanted:
            key = (timezone, day)
            if key not in cache:
                cache[key] = utc_offset_s(timezone, day)
            cols["tenant_id"].append(tenant_id)
            cols["store_id"].append(store_id)
            cols["business_date"].append(day)
            cols["utc_offset_s"].append(cache[key])
    return pa.table(cols, schema=OFFSETS_SCHEMA)
