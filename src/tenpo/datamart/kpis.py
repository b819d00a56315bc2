"""KPI periods and their roll-up from days to weeks and months (pure functions).

Additive KPIs (sales, transactions, units, visitors, passers-by) are summed. Ratios are
recomputed from the summed numerator and denominator, never averaged: a week's ATV is the
week's net sales over the week's transactions. Each ratio only sums the days on which both
of its terms are known, so a day without a people counter does not dilute the conversion
rate. A ratio with a zero (or unknown) denominator is ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Literal, get_args

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


@dataclass(frozen=True)
class KpiPeriod:
    """A store's KPIs over ``period_start``..``period_end`` (one day at the day grain).

    ``days`` counts the days with data that went into the row; ``has_pos`` and
    ``has_counter`` are true only when every one of those days had that source.
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


def _combine(bounds: tuple[date, date], rows: list[KpiPeriod]) -> KpiPeriod:
    def ratio(name: str) -> float | None:
        numerator, denominator = RATIOS[name]
        return _ratio(rows, numerator, denominator)

    return KpiPeriod(
        period_start=bounds[0],
        period_end=bounds[1],
        days=sum(r.days for r in rows),
        net_sales=_sum_money(r.net_sales for r in rows),
        net_sales_incl_tax=_sum_money(r.net_sales_incl_tax for r in rows),
        transactions=_sum_count(r.transactions for r in rows),
        units=_sum_count(r.units for r in rows),
        atv=ratio("atv"),
        upt=ratio("upt"),
        visitors=_sum_count(r.visitors for r in rows),
        passersby=_sum_count(r.passersby for r in rows),
        capture_rate=ratio("capture_rate"),
        conversion_rate=ratio("conversion_rate"),
        sales_per_visitor=ratio("sales_per_visitor"),
        has_pos=all(r.has_pos for r in rows),
        has_counter=all(r.has_counter for r in rows),
    )


def _sum_money(values: Iterable[Decimal | None]) -> Decimal | None:
    known = [v for v in values if v is not None]
    return sum(known, Decimal(0)) if known else None


def _sum_count(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ratio(rows: list[KpiPeriod], numerator: str, denominator: str) -> float | None:
    num, den = Decimal(0), Decimal(0)
    for row in rows:
        n, d = getattr(row, numerator), getattr(row, denominator)
        if n is not None and d is not None:
            num += Decimal(n)
            den += Decimal(d)
    return float(num / den) if den else None
