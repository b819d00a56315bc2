"""UTC offsets of stores per UTC range: the input the jobs use to turn instants into local time.

Offsets are computed here in Python from the zone database (zoneinfo) rather than in SQL,
because engines disagree on time-zone functions (DuckDB needs the ICU extension, Spark's
``from_utc_timestamp`` and BigQuery's ``DATETIME(ts, zone)`` differ in types and names). The
jobs join each timestamp to the row whose ``[valid_from, valid_to)`` range holds it and then
only add seconds, which every engine does the same way.

The table has, per store and business date, the offsets in force from 00:00 UTC the day
before the date to 00:00 UTC two days after it, split at every transition of the store's
zone in that window: one row on most dates, two around a daylight-saving change. Three
days cover every instant of a local business date in any zone (offsets are within ±14 h),
also for stores whose business day runs past midnight. The join therefore stays an
equi-join on (tenant_id, store_id, business_date) plus a range test on one or two rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from tenpo.core.errors import BadInput
from tenpo.warehouse.schemas import TS

__all__ = ["OFFSETS_SCHEMA", "offset_ranges", "store_offsets", "utc_offset_s", "zone"]

OFFSETS_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        ("valid_from", TS),  # inclusive, UTC
        ("valid_to", TS),  # exclusive, UTC
        ("utc_offset_s", pa.int32()),
    ]
)

# Zone transitions are hours apart (none closer than a day in the database); sampling
# every hour and bisecting to the second finds each one exactly.
_STEP = timedelta(hours=1)


def zone(timezone: str) -> ZoneInfo:
    """The ``ZoneInfo`` of an IANA name; ``BadInput`` if unknown."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadInput(f"unknown timezone {timezone!r}") from exc


def utc_offset_s(timezone: str, day: date) -> int:
    """Seconds east of UTC of ``timezone`` at local noon of ``day``; ``BadInput`` if unknown.

    One figure per date, for callers that need a single default (a store missing from the
    offsets table); the jobs themselves use :func:`offset_ranges` per instant.
    """
    offset = datetime.combine(day, time(12), tzinfo=zone(timezone)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _offset_at(tz: ZoneInfo, instant: datetime) -> int:
    offset = instant.astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@lru_cache(maxsize=4096)
def offset_ranges(
    timezone: str, start: datetime, end: datetime
) -> tuple[tuple[datetime, int], ...]:
    """(from, offset_s) pairs covering ``[start, end)`` in ``timezone``, one per offset in force.

    The first pair starts at ``start``; each further one at a transition (exact to the second).
    """
    tz = zone(timezone)
    ranges = [(start, _offset_at(tz, start))]
    t = start
    while t < end:
        nxt = min(t + _STEP, end)
        if _offset_at(tz, nxt) != ranges[-1][1] and nxt < end:
            lo, hi = t, nxt  # offset(lo) == current, offset(hi) differs
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if _offset_at(tz, mid) == ranges[-1][1]:
                    lo = mid
                else:
                    hi = mid
            ranges.append((hi, _offset_at(tz, hi)))
        t = nxt
    return tuple(ranges)


def store_offsets(stores: Iterable[tuple[str, str, str]], days: Iterable[date]) -> pa.Table:
    """Offset ranges (``OFFSETS_SCHEMA``) of each (tenant_id, store_id, timezone) on ``days``.

    ``BadInput`` for an unknown timezone.
    """
    wanted = sorted(set(days))
    cols: dict[str, list[object]] = {name: [] for name in OFFSETS_SCHEMA.names}
    for tenant_id, store_id, timezone in stores:
        for day in wanted:
            start = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
            end = start + timedelta(days=3)
            ranges = offset_ranges(timezone, start, end)
            for i, (valid_from, offset) in enumerate(ranges):
                valid_to = ranges[i + 1][0] if i + 1 < len(ranges) else end
                cols["tenant_id"].append(tenant_id)
                cols["store_id"].append(store_id)
                cols["business_date"].append(day)
                cols["valid_from"].append(valid_from)
                cols["valid_to"].append(valid_to)
                cols["utc_offset_s"].append(offset)
    return pa.table(cols, schema=OFFSETS_SCHEMA)
