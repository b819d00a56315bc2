"""KPI periods and their roll-up from days to weeks and months (pure functions).

Additive KPIs (sales, transactions, units, visitors, passers-by) are summed. Ratios are
recomputed from the summed numerator and denominator, never averaged: a week's ATV is the
week's net sales over the week's transactions. Each ratio only sums the days on which both
of its terms are known, so a day without a people counter does not dilute the conversion
rate. A ratio with a zero (or unknown) denominator is ``None``.

The PersonID (video) KPIs are per day only: the same person visiting on two days is one
unique visitor of the week, not two, and a median or mean of dwell times cannot be combined
from daily medians or means (the mart holds no count of the visits with an exit), so a
period of more than one day has ``None`` for ``unique_visitors``, ``repeat_visitors``,
``repeat_rate`` and both dwell times rather than a wrong figure. ``open_visits`` (visits
are per store-date) is summed. ``has_video`` is true when every day had video;
``counter_complete`` / ``video_complete`` are false when any day was incomplete, true when
every day with that source was complete, ``None`` when no day had it; ``visitors_source``
is the days' common source, ``"mixed"`` when they differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Literal, NamedTuple, get_args

import pyarrow as pa

from tenpo.warehouse.schemas import DAILY_KPIS, DAILY_QUALITY, SALES_TRAFFIC_KPIS, VIDEO_KPIS

Grain = Literal["day", "week", "month"]
GRAINS: tuple[str, ...] = get_args(Grain)

# ratio name → (numerator, denominator)
RATIOS: dict[str, tuple[str, str]] = {
    "atv": ("net_sales", "transactions"),
    "upt": ("units", "transactions"),
    "capture_rate": ("visitors", "passersby"),
    "conversion_rate": ("transactions", "visitors"),
    "sales_per_visitor": ("net_sales", "visitors"),
}

KPI_COLUMNS: tuple[str, ...] = tuple(name for name, _ in DAILY_KPIS)
"""The KPI columns of the daily mart (:data:`~tenpo.warehouse.schemas.DAILY_KPIS`), in the
warehouse schema's order; an hourly row has ``None`` for those its mart lacks."""
DAY_ONLY_KPIS: frozenset[str] = frozenset(name for name, _ in VIDEO_KPIS if name != "open_visits")
"""PersonID KPIs that no sum or ratio of days gives: ``None`` in a period of several days."""
COMPLETE_FLAGS: frozenset[str] = frozenset(
    name for name, kind in DAILY_QUALITY if pa.types.is_boolean(kind) and name != "has_video"
)
"""Per-source completeness (null without that source): false when any day was incomplete."""
MIXED_SOURCE = "mixed"
"""``visitors_source`` of a period whose days took their visitors from different sources."""
MONEY_KPIS: frozenset[str] = frozenset(
    name for name, kind in SALES_TRAFFIC_KPIS if pa.types.is_decimal(kind)
)
"""KPIs in yen (``Decimal``; the API writes them as two-place strings)."""
FLAG_KPIS: frozenset[str] = frozenset(
    name for name, kind in SALES_TRAFFIC_KPIS if pa.types.is_boolean(kind)
)
"""Per-source presence flags (``has_pos``, ``has_counter``): true when every day had it."""
_ALL_DAYS = FLAG_KPIS | {"has_video"}


class KpiPeriod(NamedTuple):
    """A store's KPIs over ``period_start``..``period_end`` (one day at the day grain).

    ``days`` counts the days with data that went into the row; ``has_pos`` and
    ``has_counter`` are true only when every one of those days had that source (the video
    and quality fields as the module docstring says). The fields
    after ``days`` are the warehouse schema's KPI columns (:data:`KPI_COLUMNS`), in its order
    (checked below), so a row of those columns is ``KpiPeriod(start, end, days, *values)``.
    """

    period_start: date
    period_end: date
    days: int
    net_sales: Decimal | None
    net_sales_incl_tax: Decimal | None
    transactions: int | None
    units: int | None
    atv: float | None
    upt: float | None
    visitors: int | None
    passersby: int | None
    capture_rate: float | None
    conversion_rate: float | None
    sales_per_visitor: float | None
    has_pos: bool
    has_counter: bool
    # The daily mart's own columns (None at the hour grain, whose mart lacks them).
    unique_visitors: int | None = None
    repeat_visitors: int | None = None
    repeat_rate: float | None = None
    dwell_time_median_s: float | None = None
    dwell_time_mean_s: float | None = None
    open_visits: int | None = None
    visitors_source: str | None = None
    has_video: bool | None = None
    counter_complete: bool | None = None
    video_complete: bool | None = None


_HEAD = ("period_start", "period_end", "days")
if KpiPeriod._fields != (*_HEAD, *KPI_COLUMNS):  # a KPI added to the schema needs a field here
    raise RuntimeError(f"KpiPeriod's fields {KpiPeriod._fields} != the schema's {KPI_COLUMNS}")
if set(RATIOS) != {n for n, k in SALES_TRAFFIC_KPIS if pa.types.is_floating(k)}:
    raise RuntimeError("every float KPI of the schema is a ratio with its terms in RATIOS")
if {n for n, k in DAILY_KPIS if pa.types.is_floating(k)} - set(RATIOS) - DAY_ONLY_KPIS:
    raise RuntimeError("a float KPI of the daily mart has no roll-up rule")


def period_of(day: date, grain: Grain) -> tuple[date, date]:
    """First and last calendar day of the ``grain`` period holding ``day`` (ISO weeks)."""
    if grain == "day":
        return day, day
    if grain == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if grain == "month":
        start = day.replace(day=1)
        following = (start + timedelta(days=31)).replace(day=1)
        return start, following - timedelta(days=1)
    raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")


def rollup(days: Sequence[KpiPeriod], grain: Grain) -> list[KpiPeriod]:
    """Daily rows (in any order) rolled up to ``grain`` periods, oldest first.

    A period at the edge of the requested range holds only the days given; its calendar
    bounds are still reported in ``period_start``/``period_end``.
    """
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")
    for row in days:
        if row.period_start != row.period_end:
            raise ValueError(f"rollup expects daily rows, got {row.period_start}..{row.period_end}")
    ordered = sorted(days, key=lambda r: r.period_start)
    if grain == "day":
        return ordered
    return [
        _combine(bounds, list(group))
        for bounds, group in groupby(ordered, key=lambda r: period_of(r.period_start, grain))
    ]


def _combine(bounds: tuple[date, date], rows: Sequence[KpiPeriod]) -> KpiPeriod:
    """``rows`` as one period spanning ``bounds``: each KPI column combined by its kind."""
    one_day = len(rows) == 1 and bounds[0] == bounds[1]  # a one-day range's total: exact
    values: list[object] = []
    for name in KPI_COLUMNS:
        if name in RATIOS:
            values.append(_ratio(rows, *RATIOS[name]))
        elif name in DAY_ONLY_KPIS:
            values.append(getattr(rows[0], name) if one_day else None)
        elif name in _ALL_DAYS:
            values.append(all(getattr(r, name) for r in rows))
        elif name in COMPLETE_FLAGS:
            known = [v for r in rows if (v := getattr(r, name)) is not None]
            values.append(all(known) if known else None)
        elif name == "visitors_source":
            sources = {v for r in rows if (v := r.visitors_source) is not None}
            values.append(sources.pop() if len(sources) == 1 else MIXED_SOURCE if sources else None)
        elif name in MONEY_KPIS:
            values.append(_sum_money(getattr(r, name) for r in rows))
        else:
            values.append(_sum_count(getattr(r, name) for r in rows))
    return KpiPeriod._make((bounds[0], bounds[1], sum(r.days for r in rows), *values))


def combine(rows: Sequence[KpiPeriod], start: date, end: date) -> KpiPeriod:
    """Rows of any dates as one period ``start..end`` (a range's total), by the rules of
    :func:`rollup`."""
    return _combine((start, end), rows)


def _sum_money(values: Iterable[Decimal | None]) -> Decimal | None:
    known = [v for v in values if v is not None]
    return sum(known, Decimal(0)) if known else None


def _sum_count(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ratio(rows: Sequence[KpiPeriod], numerator: str, denominator: str) -> float | None:
    num, den = Decimal(0), Decimal(0)
    for row in rows:
        n, d = getattr(row, numerator), getattr(row, denominator)
        if n is not None and d is not None:
            num += Decimal(n)
            den += Decimal(d)
    return float(num / den) if den else None
