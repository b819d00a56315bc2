"""Roll-up of daily KPIs to weeks and months (pure functions)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tenpo.core.errors import ConfigError
from tenpo.datamart import KpiPeriod, ensure_schema, rollup
from tenpo.datamart.kpis import combine, period_of


def day(
    d: date,
    sales: str | None = "100.00",
    tx: int | None = 4,
    visitors: int | None = 8,
    *,
    has_counter: bool = True,
) -> KpiPeriod:
    return KpiPeriod(
        period_start=d,
        period_end=d,
        days=1,
        net_sales=None if sales is None else Decimal(sales),
        net_sales_incl_tax=None,
        transactions=tx,
        units=None if tx is None else tx * 2,
        atv=None,
        upt=None,
        visitors=visitors,
        passersby=None,
        capture_rate=None,
        conversion_rate=None,
        sales_per_visitor=None,
        has_pos=sales is not None,
        has_counter=has_counter,
    )


@pytest.mark.parametrize(
    ("d", "grain", "bounds"),
    [
        (date(2026, 10, 7), "day", (date(2026, 10, 7), date(2026, 10, 7))),
        (date(2026, 10, 7), "week", (date(2026, 10, 5), date(2026, 10, 11))),
        (date(2026, 10, 11), "week", (date(2026, 10, 5), date(2026, 10, 11))),
        (date(2026, 12, 31), "week", (date(2026, 12, 28), date(2027, 1, 3))),
        (date(2028, 2, 15), "month", (date(2028, 2, 1), date(2028, 2, 29))),
        (date(2026, 12, 31), "month", (date(2026, 12, 1), date(2026, 12, 31))),
    ],
)
def test_period_bounds(d: date, grain: str, bounds: tuple[date, date]) -> None:
    assert period_of(d, grain) == bounds  # type: ignore[arg-type]


def test_week_sums_and_ratios_from_sums() -> None:
    rows = [
        day(date(2026, 10, 6), "300.00", 2, 10),
        day(date(2026, 10, 5), "100.00", 4, 8),  # order of input does not matter
        day(date(2026, 10, 12), "50.50", 1, 5),
    ]
    first, second = rollup(rows, "week")
    assert (first.period_start, first.period_end, first.days) == (
        date(2026, 10, 5),
        date(2026, 10, 11),
        2,
    )
    assert first.net_sales == Decimal("400.00")
    assert (first.transactions, first.units, first.visitors) == (6, 12, 18)
    assert first.atv == pytest.approx(400 / 6)  # the mean of daily ATVs would be 62.5
    assert first.upt == 2.0
    assert first.conversion_rate == pytest.approx(6 / 18)
    assert first.sales_per_visitor == pytest.approx(400 / 18)
    assert first.passersby is None and first.capture_rate is None
    assert second.net_sales == Decimal("50.50") and second.atv == 50.5


def test_ratio_only_counts_days_with_both_terms() -> None:
    rows = [
        day(date(2026, 10, 5), "100.00", 4, 8),
        day(date(2026, 10, 6), "100.00", 6, None, has_counter=False),
    ]
    (month,) = rollup(rows, "month")
    assert month.transactions == 10 and month.visitors == 8
    assert month.conversion_rate == 0.5  # 4 / 8, not 10 / 8
    assert month.sales_per_visitor == 12.5  # 100 / 8
    assert month.atv == 20.0  # 200 / 10
    assert (month.has_pos, month.has_counter) == (True, False)


def test_zero_or_unknown_denominators_give_none() -> None:
    rows = [day(date(2026, 10, 5), None, None, 0), day(date(2026, 10, 6), None, None, 0)]
    (week,) = rollup(rows, "week")
    assert week.net_sales is None and week.transactions is None
    assert week.visitors == 0
    assert week.atv is None and week.conversion_rate is None and week.sales_per_visitor is None
    assert week.has_pos is False


def test_day_grain_keeps_rows_and_rejects_bad_input() -> None:
    rows = [day(date(2026, 10, 6)), day(date(2026, 10, 5))]
    assert [r.period_start for r in rollup(rows, "day")] == [date(2026, 10, 5), date(2026, 10, 6)]
    assert rollup([], "week") == []
    with pytest.raises(ValueError, match="unknown grain 'hour'"):
        rollup(rows, "hour")  # type: ignore[arg-type]
    (week,) = rollup(rows, "week")
    with pytest.raises(ValueError, match="expects daily rows"):
        rollup([week], "month")


def test_outdated_datamart_schema_is_refused(tmp_path: object) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/old.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE mart_store_daily (tenant_id TEXT, store_id TEXT)"))
    with pytest.raises(ConfigError, match=r"mart_store_daily lacks columns \['business_date'"):
        ensure_schema(engine)
    engine.dispose()


def video_day(
    d: date, unique: int | None, open_visits: int | None, source: str | None, **kw: object
) -> KpiPeriod:
    """A day with the daily mart's PersonID KPIs (``kw``: its quality flags)."""
    return day(d)._replace(
        unique_visitors=unique,
        repeat_visitors=None if unique is None else unique // 2,
        repeat_rate=None if not unique else (unique // 2) / unique,
        dwell_time_median_s=None if unique is None else 600.0,
        dwell_time_mean_s=None if unique is None else 700.0,
        open_visits=open_visits,
        visitors_source=source,
        has_video=unique is not None,
        **kw,
    )


def test_video_kpis_of_several_days_are_null_not_sums() -> None:
    """The same PersonID on Monday and Tuesday is one unique visitor of the week, so the sum of
    the days (3 + 4 = 7) may be wrong: the week says null. Open visits are per store-date and
    add up; completeness is false when any day was incomplete, null when no day knew."""
    mon, tue, wed = date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)
    rows = [
        video_day(mon, 3, 1, "counter", counter_complete=True, video_complete=False),
        video_day(tue, 4, 0, "video", counter_complete=None, video_complete=True),
    ]
    (week,) = rollup(rows, "week")
    assert (week.unique_visitors, week.repeat_visitors, week.repeat_rate) == (None, None, None)
    assert (week.dwell_time_median_s, week.dwell_time_mean_s) == (None, None)
    assert (week.open_visits, week.has_video) == (1, True)
    assert (week.counter_complete, week.video_complete) == (True, False)
    assert week.visitors_source == "mixed"
    # A day without video makes the period's has_video false; no source known: null.
    (week,) = rollup([*rows, video_day(wed, None, None, None)], "week")
    assert (week.has_video, week.open_visits, week.visitors_source) == (False, 1, "mixed")
    (only,) = rollup([video_day(wed, None, None, None)], "week")
    assert (only.counter_complete, only.video_complete, only.visitors_source) == (None,) * 3
    # The days themselves keep their figures, and so does a one-day range's total.
    assert rollup(rows, "day") == rows
    total = combine([rows[1]], tue, tue)
    assert (total.unique_visitors, total.repeat_visitors, total.repeat_rate) == (4, 2, 0.5)
    assert (total.dwell_time_median_s, total.dwell_time_mean_s) == (600.0, 700.0)
    assert combine(rows, mon, tue).unique_visitors is None
