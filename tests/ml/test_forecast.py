"""Forecasts: rolling-origin back-test on the store-day simulator, and irregular series."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from tenpo.ml.forecast import (
    LEVELS,
    backtest,
    country_of,
    forecast_daily,
    forecast_store,
    holiday_calendar,
    local_hours,
    seasonal_naive_daily,
)
from tenpo.simulate.config import SimConfig
from tenpo.simulate.daily import simulate_store_days, store_day_marts

# Weekly, yearly and holiday effects, one-off events, counter gaps and lost store-days. Four
# stores and four origins: with fewer, the coverage of one seed swings by ±5 points.
_SIM = SimConfig(
    tenants=1,
    stores=4,
    days=600,
    start_date=date(2024, 1, 1),
    industries=("supermarket", "apparel", "drugstore", "cafe"),
    initiatives_per_tenant=0,
    yearly_amplitude=0.15,
    outlier_rate=0.02,
    device_gap_rate=0.03,
    outage_rate=0.02,
)


@pytest.fixture(scope="module")
def marts() -> tuple[pd.DataFrame, pd.DataFrame]:
    return store_day_marts(simulate_store_days(_SIM))


def test_backtest_beats_seasonal_naive_with_calibrated_intervals(
    marts: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    daily, hourly = marts
    assert daily["counter_complete"].sum() < len(daily)  # the gaps are there
    end = _SIM.start_date + timedelta(days=_SIM.days - 1)
    origins = [end - timedelta(days=56 + 28 * i) for i in range(4)]
    scores = backtest(daily, hourly, origins, daily_horizon=56, hourly_horizon=7)
    assert {(s.kpi, s.grain) for s in scores} == {
        (k, g) for k in ("visitors", "transactions", "net_sales") for g in ("day", "hour")
    }
    for s in scores:
        assert s.points > 150, s
        assert s.relative_mase <= 0.85, s
        assert s.mae < 0.85 * s.mae_naive, s
        for level in LEVELS:
            assert abs(s.coverage[level] - level / 100) <= 0.05, s


def test_seasonal_naive_is_last_weeks_same_weekday() -> None:
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(14)]
    obs = pd.Series([float(i + 1) for i in range(14)], index=days)
    obs[days[10]] = np.nan  # a missing day falls back one more week
    naive = seasonal_naive_daily(obs, as_of=days[-1], horizon=8)
    # as_of is day 14 (value 14); day 15 ← day 8, ..., day 18 ← day 11 missing → day 4.
    assert naive.tolist() == [8.0, 9.0, 10.0, 4.0, 12.0, 13.0, 14.0, 8.0]


def test_closed_weekday_missing_days_and_outliers() -> None:
    start = date(2025, 1, 6)  # a Monday
    rng = np.random.default_rng(3)
    days = [start + timedelta(days=i) for i in range(120)]
    week = np.array([1.0, 0.0, 1.0, 1.0, 1.2, 1.6, 1.5])  # closed on Tuesdays
    values = 100 * week[[d.weekday() for d in days]] * rng.lognormal(0, 0.05, len(days))
    obs = pd.Series(values, index=days)
    obs = obs[obs > 0]
    obs = obs.drop([days[47], days[48], days[49]])  # an outage (Sat-Mon)
    obs[days[60]] = 1000.0  # a one-off spike
    fc = forecast_daily(obs, as_of=days[-1], horizon=14, is_holiday=lambda d: False)
    assert fc is not None
    tuesday = fc[[d.weekday() == 1 for d in fc["business_date"]]]
    assert (tuesday[["mean", "lo_95", "hi_95"]] == 0).all().all()
    saturday = fc[[d.weekday() == 5 for d in fc["business_date"]]]
    assert saturday["mean"].between(150, 170).all()  # 160, untouched by the spike
    other = fc[[d.weekday() != 1 for d in fc["business_date"]]]
    assert (other["lo_95"] < other["lo_80"]).all()
    assert (other["lo_80"] < other["mean"]).all() and (other["mean"] < other["hi_80"]).all()
    assert forecast_daily(obs.head(10), as_of=days[-1], horizon=7) is None


def test_local_hours_follow_dst_of_the_store_zone() -> None:
    assert len(local_hours(date(2026, 3, 8), "Asia/Tokyo")) == 24
    spring = local_hours(date(2026, 3, 8), "America/New_York")
    assert len(spring) == 23 and 2 not in [h for h, _ in spring]
    fall = local_hours(date(2026, 11, 1), "America/New_York")
    assert [p for p in fall if p[0] == 1] == [(1, -4 * 3600), (1, -5 * 3600)]


def test_holidays_of_the_store_country() -> None:
    assert country_of("Asia/Tokyo") == "JP" and country_of("America/New_York") == "US"
    assert holiday_calendar("JP")(date(2026, 11, 3))  # 文化の日
    assert not holiday_calendar("JP")(date(2026, 7, 4))
    assert holiday_calendar("US")(date(2026, 7, 3))  # Independence Day observed
    assert holiday_calendar("US")(date(2026, 11, 26))  # Thanksgiving


def test_forecast_store_hourly_rows_over_a_fall_back_date() -> None:
    # A New York store open 08-22 with 28 days of history; the forecast spans 2026-11-01.
    days = [date(2026, 10, 4) + timedelta(days=i) for i in range(28)]
    rng = np.random.default_rng(5)
    daily = pd.DataFrame({"business_date": days, "visitors": rng.poisson(300, 28).astype(float)})
    hourly = pd.DataFrame(
        [(d, h, -4 * 3600, 1.0 + (h == 12)) for d in days for h in range(8, 22)],
        columns=["business_date", "hour", "utc_offset_s", "visitors"],
    )
    _, h = forecast_store(
        daily,
        hourly,
        as_of=days[-1],
        timezone="America/New_York",
        kpis=["visitors"],
        daily_horizon=7,
        hourly_horizon=7,
    )
    assert set(h["hour"]) == set(range(8, 22))
    assert len(h) == 7 * 14
    assert set(h[h["business_date"] == date(2026, 11, 2)]["utc_offset_s"]) == {-5 * 3600}


def test_definitions_refresh_the_forecasts_daily() -> None:
    from tenpo.pipelines.definitions import defs
    from tenpo.pipelines.forecast import (
        DATAMART_FORECAST_KEY,
        FORECAST_JOB,
        MART_STORE_FORECAST_KEY,
    )

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {MART_STORE_FORECAST_KEY, DATAMART_FORECAST_KEY} <= keys
    schedule = defs.resolve_schedule_def("forecast_daily_schedule")
    assert schedule.cron_schedule == "0 4 * * *" and schedule.job_name == FORECAST_JOB


def test_weather_feed_is_a_regressor_when_present() -> None:
    # Rain takes 30 % of the traffic; the feed covers the history and the next week.
    days = [date(2025, 3, 3) + timedelta(days=i) for i in range(98)]
    rng = np.random.default_rng(9)
    rain = rng.random(len(days) + 7) < 0.3
    values = 100 * np.where(rain[: len(days)], 0.7, 1.0) * rng.lognormal(0, 0.03, len(days))
    obs = pd.Series(values, index=days)
    future = [days[-1] + timedelta(days=k) for k in range(1, 8)]
    weather = pd.DataFrame(
        {
            "precipitation_mm": np.where(rain, 15.0, 0.0),
            "temperature_c": 15.0,
        },
        index=days + future,
    )
    fc = forecast_daily(obs, as_of=days[-1], horizon=7, is_holiday=lambda d: False, weather=weather)
    assert fc is not None
    expected = np.where(rain[len(days) :], 70.0, 100.0)
    assert np.allclose(fc["mean"], expected, rtol=0.06), fc["mean"].tolist()
    without = forecast_daily(obs, as_of=days[-1], horizon=7, is_holiday=lambda d: False)
    assert without is not None  # without the feed the rainy days are not foreseen
    error = np.abs(fc["mean"] - expected).mean()
    assert np.abs(without["mean"] - expected).mean() > 3 * error


def test_staffing_curve_target_load_and_recommendation() -> None:
    from tenpo.ml.staffing import plan_staffing

    # 50 staffed hours, load L = 1..50 visitors per staff hour (10 staff, 10·L visitors);
    # conversion 0.3 up to a load of 30, 0.15 above.
    base = date(2026, 11, 2)
    loads = range(1, 51)
    when = [(base + timedelta(days=L // 24), L % 24) for L in loads]
    staff = pd.DataFrame([(d, h, 10) for d, h in when], columns=["business_date", "hour", "staff"])
    hourly = pd.DataFrame(
        [
            (d, h, 10 * L, 3 * L if L <= 30 else 1.5 * L)
            for (d, h), L in zip(when, loads, strict=True)
        ],
        columns=["business_date", "hour", "visitors", "transactions"],
    )
    forecast = pd.DataFrame(
        [(date(2026, 11, 16), 12, 32400, 100.0), (date(2026, 11, 16), 13, 32400, 20.0)],
        columns=["business_date", "hour", "utc_offset_s", "mean"],
    )
    plan = plan_staffing(staff, hourly, forecast)
    assert plan.staffed_hours == 50 and plan.visitors_per_staff_hour == pytest.approx(25.5)
    assert [b.conversion for b in plan.curve] == pytest.approx([0.3, 0.3, 0.3, 0.15, 0.15])
    assert plan.target_load == pytest.approx(30.4)  # the 60th percentile of 1..50
    # hour 0: loads 24, 48 (mean 36); hours 19-23: h and h + 24 (mean ≥ 31).
    assert plan.strained_hours == [0, 19, 20, 21, 22, 23]
    # 8100 visitors at loads 31-50 converting 0.15 short, over 3 days: per week × 7/3.
    assert plan.expected_extra_transactions == pytest.approx(8100 * 0.15 * 7 / 3, abs=0.1)
    assert plan.recommendation["staff"].tolist() == [4, 1]  # ceil(100 / 30.4), at least 1


def test_a_one_off_anomaly_last_year_is_not_learnt_as_a_yearly_cycle() -> None:
    # Two years of a store with no yearly cycle; 2024-06-20..09-29 counted 1.7x (a sensor
    # moved, works nearby), as one Auckland sensor did. The yearly fit learns a bump there
    # (the forecast used to be 26 % too high), the multi-origin hold-out sees that the cycle
    # does not forecast, and the forecast of 2025-06..07 stays at the store's level.
    start = date(2023, 7, 3)
    days = [start + timedelta(days=i) for i in range(700)]  # to 2025-06-01
    rng = np.random.default_rng(11)
    week = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 1.4, 1.3])
    values = 1000 * week[[d.weekday() for d in days]] * rng.lognormal(0, 0.08, len(days))
    anomaly = np.array([date(2024, 6, 20) <= d < date(2024, 9, 30) for d in days])
    obs = pd.Series(np.where(anomaly, 1.7 * values, values), index=days)
    fc = forecast_daily(obs, as_of=days[-1], horizon=56, is_holiday=lambda d: False)
    assert fc is not None
    expected = 1000 * week[[d.weekday() for d in fc["business_date"]]]
    assert np.abs(fc["mean"] / expected - 1).mean() < 0.1
    assert (fc["hi_95"] < 1.6 * expected).all()


def test_short_history_forecasts_without_hold_out() -> None:
    days = [date(2026, 1, 5) + timedelta(days=i) for i in range(30)]
    obs = pd.Series(np.full(30, 100.0) * (1 + 0.05 * np.sin(np.arange(30))), index=days)
    fc = forecast_daily(obs, as_of=days[-1], horizon=90, is_holiday=lambda d: False)
    assert fc is not None and len(fc) == 90
    assert fc["mean"].between(90, 110).all() and (fc["lo_95"] < fc["mean"]).all()


def test_peers_path_a_year_earlier_is_their_median_and_needs_three_peers() -> None:
    from tenpo.ml.forecast import peer_panel

    # Three peers, 400 days from 2025-01-01; from 2025-03-01 on
    # two of them trade 20 % up for 60 days, the third 150 % up (its own anomaly).
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(400)]
    lift = np.array([date(2025, 3, 1) <= d < date(2025, 4, 30) for d in days])
    peers = [pd.Series(np.where(lift, k, 1.0) * 100.0, index=days) for k in (1.2, 1.2, 2.5)]
    panel = peer_panel(peers, lambda d: False)
    assert panel is not None
    as_of = date(2026, 2, 27)  # 52 weeks after 2025-02-28
    path = panel.shape(as_of, 28)
    assert path is not None and len(path) == 28
    # Their level the 14 days to 2025-02-28 is 100; the median peer is 20 % up after.
    assert np.allclose(path[3:], np.log(1.2), atol=1e-9)
    assert 0 < path[0] < np.log(1.2)  # the centred 7-day mean starts inside the lift
    assert peer_panel(peers[:2], lambda d: False) is None
    assert panel.shape(date(2025, 6, 1), 28) is None  # no year of history before it


def test_peers_path_two_years_earlier_reads_the_lagged_weeks() -> None:
    from tenpo.ml.forecast import peer_panel

    # Three peers from 2024-01-01; 2024-03-01..04-29 they trade 30 % up, a year later flat.
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(800)]
    lift = np.array([date(2024, 3, 1) <= d < date(2024, 4, 30) for d in days])
    peers = [pd.Series(np.where(lift, 1.3, 1.0) * 100.0 * k, index=days) for k in (1, 2, 3)]
    panel = peer_panel(peers, lambda d: False)
    assert panel is not None
    as_of = date(2024, 2, 29) + timedelta(days=728)  # 104 weeks after the last flat day
    two_years = panel.shape(as_of, 28, lag=728)
    assert two_years is not None and np.allclose(two_years[3:], np.log(1.3), atol=1e-9)
    one_year = panel.shape(as_of, 28)  # 2025-02-27..: no lift that year
    assert one_year is not None and np.allclose(one_year, 0.0, atol=1e-9)
    assert panel.shape(date(2025, 6, 1), 28, lag=728) is None  # no two years before it


def test_reverting_level_goes_back_to_the_last_years_mean() -> None:
    from tenpo.ml.forecast import _reverting

    # An AR(1) around 5.0 with φ = 0.8, ending 0.5 above its mean.
    rng = np.random.default_rng(3)
    level = np.empty(500)
    level[0] = 5.0
    for i in range(1, 500):
        level[i] = 5.0 + 0.8 * (level[i - 1] - 5.0) + rng.normal(0, 0.05)
    level[-1] = level[-365:-1].mean() + 0.5
    path = _reverting(level, 60)
    assert path is not None and len(path) == 60
    mean = level[-365:].mean()
    assert 0.3 < path[0] - mean < 0.45  # about φ · 0.5
    assert np.all(np.diff(path) < 0) and abs(path[-1] - mean) < 1e-3
    assert _reverting(np.full(400, 5.0), 30) is None  # constant: no fit
    assert _reverting(level[:30], 30) is None  # too short


def test_peer_groups_are_tenant_country_and_region() -> None:
    from tenpo.ml.forecast import peer_panels

    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(30)]
    stores = {
        ("t", "a"): {"region": "kanto"},
        ("t", "b"): {"region": "kanto"},
        ("t", "c"): {"region": "kanto"},
        ("t", "d"): {"region": "kansai"},  # alone in its region: the tenant's Japan stores
        ("t", "e"): {"region": "kansai", "timezone": "America/New_York"},  # alone in the US
        ("u", "f"): {"region": "kanto"},  # another tenant
    }
    daily = pd.DataFrame(
        [(t, s, d, 100.0 + i) for i, (t, s) in enumerate(stores) for d in days],
        columns=["tenant_id", "store_id", "business_date", "visitors"],
    )
    panels = peer_panels(daily, stores, kpis=("visitors",))
    assert set(panels) == {("t", "a"), ("t", "b"), ("t", "c"), ("t", "d")}
    assert panels[("t", "a")]["visitors"].logs.shape == (30, 3)  # a, b, c
    assert panels[("t", "d")]["visitors"].logs.shape == (30, 4)  # a, b, c, d
    logs = panels[("t", "d")]["visitors"].logs
    assert np.isnan(logs[0]).all()  # 元日: holidays are no part of a path
    assert np.allclose(logs[5], np.log([100, 101, 102, 103]))
