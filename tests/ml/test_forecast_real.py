"""Forecast back-test on real footfall: Auckland city-centre pedestrian counts (see
``tests/ml/footfall.py``: 4 sensors as stores, 2024-2025, Pacific/Auckland with its DST and
New Zealand's holidays), against the seasonal-naive forecast measured in the same run.

The floors of issue 19 hold on this sample, hourly and daily (relative MASE about 0.80
daily, 0.71 hourly). ``python -m bench.bench_forecast_real`` runs all 21 sensors and 3
origins, where the daily figure is about 0.85.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from tenpo.ml.forecast import LEVELS, BacktestScore, backtest, country_of, holiday_calendar
from tests.ml.footfall import TIMEZONE, auckland_marts

SENSORS = ["1 Courthouse Lane", "107 Quay Street", "150 K Road", "183 K Road"]  # the first 4
ORIGINS = [date(2025, 8, 15), date(2025, 10, 1)]


@pytest.fixture(scope="module")
def marts() -> tuple[pd.DataFrame, pd.DataFrame]:
    return auckland_marts(SENSORS, date(2024, 1, 1), date(2025, 12, 31))


@pytest.fixture(scope="module")
def scores(marts: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, BacktestScore]:
    daily, hourly = marts
    found = backtest(
        daily,
        hourly,
        ORIGINS,
        timezone=TIMEZONE,
        daily_horizon=56,
        hourly_horizon=7,
        kpis=("visitors",),
    )
    return {s.grain: s for s in found}


def test_the_series_are_real_and_irregular(marts: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    daily, hourly = marts
    assert set(daily["store_id"]) == set(SENSORS)
    assert daily["visitors"].gt(1000).mean() > 0.9  # thousands of pedestrians a day
    # DST in the store's timezone: NZST +12 h and NZDT +13 h; 2024-09-29 lost its 02:00.
    assert set(hourly["utc_offset_s"]) == {12 * 3600, 13 * 3600}
    spring = hourly[(hourly["business_date"] == date(2024, 9, 29))]
    assert 2 not in set(spring["hour"]) and spring.groupby("store_id").size().max() == 23
    # Missing hours / outages: not every day is complete.
    assert (~daily["counter_complete"]).sum() > 0
    # Another country's holidays: Labour Day (4th Monday of October) is New Zealand's.
    is_holiday = holiday_calendar(country_of(TIMEZONE))
    assert country_of(TIMEZONE) == "NZ" and is_holiday(date(2025, 10, 27))
    assert not holiday_calendar("JP")(date(2025, 10, 27))


def test_hourly_backtest_beats_seasonal_naive_with_calibrated_intervals(
    scores: dict[str, BacktestScore],
) -> None:
    s = scores["hour"]
    assert s.points > 1000, s
    assert s.relative_mase <= 0.85, s
    for level in LEVELS:
        assert abs(s.coverage[level] - level / 100) <= 0.05, s


def test_daily_backtest_beats_seasonal_naive_with_calibrated_intervals(
    scores: dict[str, BacktestScore],
) -> None:
    s = scores["day"]
    assert s.points > 400, s
    assert s.relative_mase < 0.95 and s.mae < 0.95 * s.mae_naive, s
    for level in LEVELS:
        assert abs(s.coverage[level] - level / 100) <= 0.05, s


def test_daily_backtest_meets_the_issue_mase_floor(scores: dict[str, BacktestScore]) -> None:
    s = scores["day"]
    assert s.relative_mase <= 0.85, s


def test_ignored_dates_are_not_scored(marts: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """A day without counts after an origin is neither forecast-scored nor naive-scored."""
    daily, hourly = marts
    origin = ORIGINS[-1]
    gap = origin + timedelta(days=3)
    holed = daily[~((daily["business_date"] == gap) & (daily["store_id"] == SENSORS[0]))]
    one = holed[holed["store_id"] == SENSORS[0]]
    [score] = backtest(
        one, hourly.iloc[:0], [origin], timezone=TIMEZONE, daily_horizon=7, hourly_horizon=0,
        kpis=("visitors",),
    )  # fmt: skip
    assert score.points == 6
