"""Store forecasts: visitors, transactions and net sales, daily and hourly, with intervals.

A pure function of the daily and hourly marts. Per store and KPI, on the log scale:

1. **Calendar.** The daily series is laid on every date from its first to ``as_of``; a date
   without a row, with a non-positive value or (visitors) with an incomplete counter is
   *missing* (outage), except on a weekday the store keeps closed (missing or zero on at least
   3 of its last 4 ordinary occurrences), whose forecast is 0.
2. **Calendar effects** by robust (Huber) least squares over the last two years: day type
   (weekday, or public holiday of the store's country: ``jpholiday`` for Japan, ``holidays``
   elsewhere; with fewer than 3 holidays seen a holiday trades like a Sunday) and the
   optional weather regressors (precipitation, temperature anomalies); a second fit adds a
   yearly cycle (two Fourier pairs) once a year of history is there. Residuals beyond 4
   robust σ are outliers.
3. **Level.** The series less its calendar effects (outliers and missing days interpolated)
   goes to ``statsforecast``'s ``AutoETS`` (simple exponential smoothing: additive errors, no
   trend), shifted back by the calendar effects. That gives the candidates ``flat`` and
   ``seasonal`` (with the yearly cycle); ``revert`` is ``flat`` with the level going back to
   its mean of the last year (an AR(1) with a mean, by least squares: a level pushed up or
   down by a few weeks' weather or events does not stay there); ``recent`` is the median of
   the last 8 same-weekday values; ``peers`` is ``flat`` plus the path its peer stores (same tenant,
   country and region) took over the same weeks a year earlier, relative to their level then
   (the median over the peers: one store's own anomaly or level shift does not make a
   season, and a store with a short history borrows its peers'), and ``peers2`` the same
   two years earlier.
4. **Multi-origin hold-out.** Four origins inside the history (the horizon, then 28 days
   apart, before ``as_of``), each forecast from its own past only, score every candidate on
   the days observed after them: those within twice the least absolute error (recent
   origins weigh more) are averaged on the log scale with equal weights into the forecast,
   and the combination's hold-out errors, over the level's own standard deviation,
   calibrate the 80 % and 95 % intervals (at least 0.65 of that deviation's width). So a
   yearly cycle learnt from a one-off anomaly, or a level shift, is dropped unless it
   forecast well, and the intervals are as wide as the forecast's real errors (the point is
   the median; intervals are multiplicative).
5. **Hours** are the day split by the store's own hour profile per day type (last 8 weeks of
   complete days), with the empirical spread of each hour's share added to the day's: local
   hours of the store's timezone, so a spring-forward date has no skipped hour and a fall-back
   date two rows (one per UTC offset, half the hour's share each).

:func:`backtest` measures it against the seasonal-naive forecast (same weekday last week;
same local hour last week) on rolling origins, in the same run.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "DAILY_HORIZON",
    "FORECAST_KEY",
    "GRAINS",
    "HOURLY_HORIZON",
    "KPIS",
    "LEVELS",
    "MART_STORE_FORECAST",
    "BacktestScore",
    "PeerPanel",
    "backtest",
    "country_of",
    "forecast_daily",
    "forecast_hourly",
    "forecast_rows",
    "forecast_store",
    "holiday_calendar",
    "local_hours",
    "peer_panel",
    "peer_panels",
    "seasonal_naive_daily",
    "seasonal_naive_hourly",
]

logger = logging.getLogger(__name__)

KPIS: tuple[str, ...] = ("visitors", "transactions", "net_sales")
"""KPIs forecast, named as in the marts."""
LEVELS: tuple[int, ...] = (80, 95)
"""Nominal coverage of the intervals, in percent."""
DAILY_HORIZON = 90
HOURLY_HORIZON = 14
INTERVAL_COLUMNS: tuple[str, ...] = ("lo_80", "hi_80", "lo_95", "hi_95")
GRAINS: tuple[str, ...] = ("day", "hour")

MART_STORE_FORECAST = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("kpi", pa.string()),  # visitors | transactions | net_sales
        ("grain", pa.string()),  # day | hour
        ("business_date", pa.date32()),  # the date forecast
        ("hour", pa.int32()),  # local hour; -1 on day rows
        ("utc_offset_s", pa.int32()),  # offset in force (hour rows; 0 on day rows)
        ("as_of", pa.date32()),  # last business date of the history
        ("mean", pa.float64()),  # median forecast (net sales: yen)
        ("lo_80", pa.float64()),
        ("hi_80", pa.float64()),
        ("lo_95", pa.float64()),
        ("hi_95", pa.float64()),
    ]
)
"""One row per store, KPI, grain and future date (and local hour): the latest forecast."""
FORECAST_KEY: tuple[str, ...] = (
    "tenant_id",
    "store_id",
    "kpi",
    "grain",
    "business_date",
    "hour",
    "utc_offset_s",
)

_HISTORY_DAYS = 730  # calendar-effect fit window
_MIN_OBSERVED = 21  # fewer observed days: no forecast
_HOLIDAY = 7  # day type of a public holiday (0-6: Monday-Sunday)
_PROFILE_DAYS = 56
_HOLDOUT_ORIGINS = 4  # origins of the hold-out that weighs the candidates and the intervals
_HOLDOUT_STEP = 28  # days between them
_ETS_MODEL = "ANN"
_RECENCY = 0.5
_TRIM = 2.0  # candidates within twice the best hold-out error are averaged (equal weights)
_WIDEN = (0.65, 3.0)  # the intervals' hold-out widening, bounds (times the level's own width)
_REVERT_DAYS = 365  # the mean-reverting level's AR(1) is fit on the last year
_WEATHER = ("precipitation_mm", "temperature_c")
_PEER_LAG = 364  # a year back on the same weekday
_PEER_LAGS = {"peers": _PEER_LAG, "peers2": 2 * _PEER_LAG}  # candidate → lag (1 and 2 years)
_PEER_BASE_DAYS = 14  # the peers' level a year before the origin: the 14 days up to it
_PEER_SMOOTH = 7  # days of the centred mean that takes the weekday pattern out of the path
_MIN_PEERS = 3


# --- calendars ---------------------------------------------------------------------------
@functools.cache
def _zone_countries() -> dict[str, str]:
    text = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    zones: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            zones[parts[2]] = parts[0]
    return zones


def country_of(timezone: str) -> str:
    """ISO 3166 country of an IANA timezone (``Asia/Tokyo`` → ``JP``); ``JP`` when unknown."""
    return _zone_countries().get(timezone, "JP")


@functools.cache
def holiday_calendar(country: str) -> Callable[[date], bool]:
    """``is_holiday(day)`` for the public holidays of ``country`` (ISO code)."""
    if country == "JP":
        import jpholiday

        return lambda day: bool(jpholiday.is_holiday(day))
    import holidays

    try:
        calendar = holidays.country_holidays(country)
    except NotImplementedError:
        logger.warning("no public-holiday calendar for %s: forecasting without holidays", country)
        return lambda day: False
    return lambda day: day in calendar


def _day_types(days: pd.DatetimeIndex, is_holiday: Callable[[date], bool]) -> np.ndarray:
    types = np.asarray(days.dayofweek, dtype=np.int64)
    holiday = np.fromiter((is_holiday(d.date()) for d in days), dtype=bool, count=len(days))
    types[holiday] = _HOLIDAY
    return types


# --- daily -------------------------------------------------------------------------------
def _design(
    days: pd.DatetimeIndex,
    types: np.ndarray,
    origin: pd.Timestamp,
    *,
    holiday_own: bool,
    yearly: bool,
    weather: np.ndarray | None,
) -> tuple[np.ndarray, int]:
    """Regressors (intercept and trend first, then ``n_fixed``.. the calendar effects)."""
    t = np.asarray((days - origin).days, dtype=float) / 365.25
    cols = [np.ones(len(days)), t]
    effective = types if holiday_own else np.where(types == _HOLIDAY, 6, types)
    for k in range(1, 8 if holiday_own else 7):
        cols.append((effective == k).astype(float))
    if yearly:
        doy = np.asarray(days.dayofyear, dtype=float)
        for harmonic in (1, 2):
            angle = 2 * np.pi * harmonic * doy / 365.25
            cols += [np.sin(angle), np.cos(angle)]
    if weather is not None:
        cols += list(weather.T)
    return np.column_stack(cols), 2


def _huber_fit(x: np.ndarray, z: np.ndarray, iterations: int = 6) -> np.ndarray:
    beta = np.linalg.lstsq(x, z, rcond=None)[0]
    for _ in range(iterations):
        resid = z - x @ beta
        scale = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) or 1e-6
        u = np.abs(resid) / (1.345 * scale)
        w = np.sqrt(np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12)))
        beta = np.linalg.lstsq(x * w[:, None], z * w, rcond=None)[0]
    return beta


def _closed_weekdays(days: pd.DatetimeIndex, y: np.ndarray, types: np.ndarray) -> set[int]:
    closed: set[int] = set()
    for weekday in range(7):
        idx = np.flatnonzero((np.asarray(days.dayofweek) == weekday) & (types != _HOLIDAY))[-4:]
        if len(idx) >= 3 and np.sum(np.isnan(y[idx])) >= 3:
            closed.add(weekday)
    return closed


def _ets(series: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    from statsforecast.models import AutoETS

    model = AutoETS(season_length=1, model=_ETS_MODEL)
    return model.forecast(y=series.astype(np.float64), h=horizon, level=[95])


def _reverting(series: np.ndarray, horizon: int) -> np.ndarray | None:
    """The level's path from its last value back to its mean of the last year: an AR(1) with
    a mean, fit by least squares (0 ≤ φ ≤ 1); None on a constant or too short series."""
    recent = series[-_REVERT_DAYS:]
    if len(recent) < 2 * _MIN_OBSERVED:
        return None
    dev = recent - recent.mean()
    spread = float(dev[:-1] @ dev[:-1])
    if spread <= 1e-12:
        return None
    phi = float(np.clip(dev[:-1] @ dev[1:] / spread, 0.0, 1.0))
    return recent.mean() + phi ** np.arange(1, horizon + 1) * dev[-1]


@dataclass(frozen=True)
class PeerPanel:
    """One KPI's daily values of a group of peer stores (the store's tenant and region, the
    store included), for the peers' path of the same season a year earlier: log values with
    holidays and missing days blank, and their centred 7-day mean (the weekday pattern out)."""

    first: date
    logs: np.ndarray  # (days, stores)
    smooth: np.ndarray  # (days, stores)

    def shape(self, as_of: date, horizon: int, lag: int = _PEER_LAG) -> np.ndarray | None:
        """Per future date of ``as_of``, the peers' median log change from their level just
        before ``as_of`` ``lag`` days (52 weeks) back to the same date ``lag`` days back; None
        with fewer than 3 peers observed then. Only days up to ``as_of - lag + horizon + 3``
        are read."""
        if horizon > _PEER_LAG - _PEER_SMOOTH:
            return None
        end = (as_of - self.first).days - lag  # row of as_of a lag back
        if end - _PEER_BASE_DAYS + 1 < 0 or end + horizon >= len(self.logs):
            return None
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns and rows
            window = self.logs[end - _PEER_BASE_DAYS + 1 : end + 1]
            seen = np.sum(~np.isnan(window), axis=0) >= _PEER_BASE_DAYS // 2
            if int(seen.sum()) < _MIN_PEERS:
                return None
            base = np.nanmean(window[:, seen], axis=0)
            path = self.smooth[end + 1 : end + 1 + horizon, seen] - base
            enough = np.sum(~np.isnan(path), axis=1) >= _MIN_PEERS
            median = np.where(enough, np.nanmedian(path, axis=1), np.nan)
        if not enough.any():
            return None
        return pd.Series(median).interpolate(limit_direction="both").to_numpy()


def peer_panel(series: Iterable[pd.Series], is_holiday: Callable[[date], bool]) -> PeerPanel | None:
    """The :class:`PeerPanel` of peer stores' daily series of one KPI (date index → value,
    NaN or ≤ 0 = missing); None with fewer than 3 stores."""
    frames = [s[s > 0] for s in series]
    frames = [s for s in frames if len(s)]
    if len(frames) < _MIN_PEERS:
        return None
    first = min(min(s.index) for s in frames)
    last = max(max(s.index) for s in frames)
    days = pd.date_range(first, last, freq="D")
    wide = pd.concat(
        [s[~s.index.duplicated()].reindex(days.date) for s in frames], axis=1, ignore_index=True
    ).to_numpy(dtype=float)
    holiday = np.fromiter((is_holiday(d.date()) for d in days), dtype=bool, count=len(days))
    logs = np.log(wide)
    logs[holiday] = np.nan
    smooth = (
        pd.DataFrame(logs)
        .rolling(_PEER_SMOOTH, center=True, min_periods=_PEER_SMOOTH // 2)
        .mean()
        .to_numpy()
    )
    return PeerPanel(first, logs, smooth)


@dataclass
class _Components:
    """The candidate forecasts of one history, on the log scale, for ``future``."""

    future: pd.DatetimeIndex
    shut: np.ndarray  # future dates on a weekday the store keeps closed
    mean: dict[str, np.ndarray]  # candidate → log median per future date
    sigma: np.ndarray  # log-scale standard deviation of the level per future date


def _components(
    obs: pd.Series,
    as_of: date,
    horizon: int,
    is_holiday: Callable[[date], bool],
    weather: pd.DataFrame | None,
    peers: PeerPanel | None = None,
    *,
    allow_yearly: bool = True,
) -> _Components | None:
    """The candidates from the history up to ``as_of``: ``flat`` (day-type, holiday and
    weather effects, and the ETS level), ``seasonal`` (the same plus a yearly cycle, once
    a year is observed), ``revert`` (``flat``'s calendar with its level going back to the
    last year's mean: an AR(1)), ``recent`` (the median of the last 8 same-weekday values),
    ``peers`` and ``peers2`` (``flat`` plus the peers' path one and two years earlier)."""
    if obs.empty:
        return None
    first = max(min(obs.index), as_of - timedelta(days=_HISTORY_DAYS - 1))
    days = pd.date_range(first, as_of, freq="D")
    y = obs.reindex(days.date).to_numpy(dtype=float, copy=True)
    y[~(y > 0)] = np.nan
    seen = ~np.isnan(y)
    if int(np.sum(seen)) < _MIN_OBSERVED:
        return None
    future = pd.date_range(as_of + timedelta(days=1), periods=horizon, freq="D")
    types, future_types = _day_types(days, is_holiday), _day_types(future, is_holiday)
    closed = _closed_weekdays(days, y, types)
    holiday_own = int(np.sum(seen & (types == _HOLIDAY))) >= 3
    hist_w, fut_w = _weather_columns(weather, days, future, seen)
    open_day = ~np.isin(np.asarray(days.dayofweek), list(closed)) | (types == _HOLIDAY)
    fit = seen & open_day
    z = np.log(y)
    means: dict[str, np.ndarray] = {}
    sigma = np.zeros(horizon)
    variants = ["flat"] + (["seasonal"] if allow_yearly and int(np.sum(seen)) >= 365 else [])
    for name in variants:
        yearly = name == "seasonal"
        x, n_fixed = _design(
            days, types, days[0], holiday_own=holiday_own, yearly=yearly, weather=hist_w
        )
        xf, _ = _design(
            future, future_types, days[0], holiday_own=holiday_own, yearly=yearly, weather=fut_w
        )
        beta = _huber_fit(x[fit], z[fit])
        resid = z - x @ beta
        scale = 1.4826 * float(np.nanmedian(np.abs(resid[fit] - np.nanmedian(resid[fit]))))
        outlier = fit & (np.abs(resid) > 4 * max(scale, 1e-6))
        calendar = x[:, n_fixed:] @ beta[n_fixed:]
        level = np.where(fit & ~outlier, z - calendar, np.nan)
        level = pd.Series(level).interpolate(limit_direction="both").to_numpy()
        start = int(np.flatnonzero(fit)[0])
        fc = _ets(level[start:], horizon)
        means[name] = fc["mean"] + xf[:, n_fixed:] @ beta[n_fixed:]
        if name == "flat":
            sigma = np.maximum((fc["hi-95"] - fc["mean"]) / _quantile_z(95), 1e-6)
            reverting = _reverting(level[start:], horizon)
            if reverting is not None:
                means["revert"] = reverting + xf[:, n_fixed:] @ beta[n_fixed:]
    means["recent"] = _recent_median(z, types, future_types, means["flat"])
    for name, lag in _PEER_LAGS.items():
        path = peers.shape(as_of, horizon, lag) if peers is not None else None
        if path is not None:
            means[name] = means["flat"] + path
    shut = np.isin(np.asarray(future.dayofweek), list(closed)) & (future_types != _HOLIDAY)
    return _Components(future, shut, means, sigma)


def _recent_median(
    z: np.ndarray, types: np.ndarray, future_types: np.ndarray, fallback: np.ndarray
) -> np.ndarray:
    """Per future date, the median of the last 8 observed days of its weekday in the last 16
    weeks (the ``fallback`` on holidays and where fewer than 3 are there)."""
    out = fallback.copy()
    window = slice(max(0, len(z) - 16 * 7), len(z))
    zw, tw = z[window], types[window]
    for t in range(7):
        vals = zw[(tw == t) & ~np.isnan(zw)][-8:]
        if len(vals) >= 3:
            out[future_types == t] = float(np.median(vals))
    return out


def _blend(comp: _Components, weights: dict[str, float]) -> np.ndarray:
    # A candidate missing at a hold-out origin (no yearly cycle yet) stands in as ``flat``.
    return sum(
        (w * comp.mean.get(name, comp.mean["flat"]) for name, w in weights.items()),
        start=np.zeros(len(comp.future)),
    )


def _choose(
    obs: pd.Series,
    as_of: date,
    horizon: int,
    is_holiday: Callable[[date], bool],
    weather: pd.DataFrame | None,
    peers: PeerPanel | None,
    names: Sequence[str],
) -> tuple[dict[str, float], dict[int, float]]:
    """The candidates' weights and the intervals' widening per level, from a multi-origin
    hold-out inside the history: forecasts of ``horizon`` days from several origins before
    ``as_of`` (each from its own history only), scored on the days observed after them.

    Every candidate whose hold-out absolute error (recent origins weigh more) is within
    ``_TRIM`` times the best one's is averaged on the log scale with equal weights: on real
    series a combination beats picking the hold-out's best (whose choice is mostly noise),
    and equal weights beat weighting by the hold-out error, while the trim still drops a
    candidate that forecast badly (a yearly cycle learnt from a one-off anomaly). The
    widening makes the intervals cover the combination's hold-out errors at each level
    (between 0.65 and 3 times the model's own width: a few hold-out origins understate the
    errors to come)."""
    errors: list[np.ndarray] = []  # per origin: (n candidates, n scored days) absolute errors
    logs: list[np.ndarray] = []  # per origin: (n candidates, n scored days) log errors
    sigmas: list[np.ndarray] = []
    recency: list[np.ndarray] = []
    for i in range(_HOLDOUT_ORIGINS):
        origin = as_of - timedelta(days=horizon + _HOLDOUT_STEP * i)
        comp = _components(obs[obs.index <= origin], origin, horizon, is_holiday, weather, peers)
        if comp is None:
            break
        actual = obs.reindex(comp.future.date).to_numpy(dtype=float)
        ok = (actual > 0) & ~comp.shut
        if not ok.any():
            continue
        stack = np.array([_blend(comp, {name: 1.0})[ok] for name in names])
        errors.append(np.abs(np.exp(stack) - actual[ok]))
        logs.append(np.log(actual[ok]) - stack)
        sigmas.append(comp.sigma[ok])
        recency.append(np.full(int(ok.sum()), _RECENCY**i))
    default = {name: float(name == "flat") for name in names}
    if not errors or sum(len(s) for s in sigmas) < 20:
        return default, dict.fromkeys(LEVELS, 1.0)
    weight = np.concatenate(recency)
    mae = np.concatenate(errors, axis=1) @ weight / weight.sum()
    share = (mae <= _TRIM * mae.min()).astype(float)
    share /= share.sum()
    weights = {name: float(w) for name, w in zip(names, share, strict=True)}
    combined = share @ np.concatenate(logs, axis=1)
    ratios = np.abs(combined) / np.concatenate(sigmas)
    widen = {
        lvl: float(
            np.clip(_weighted_quantile(ratios, weight, lvl / 100) / _quantile_z(lvl), *_WIDEN)
        )
        for lvl in LEVELS
    }
    return weights, widen


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def forecast_daily(
    observed: pd.Series,
    *,
    as_of: date,
    horizon: int = DAILY_HORIZON,
    is_holiday: Callable[[date], bool] | None = None,
    weather: pd.DataFrame | None = None,
    peers: PeerPanel | None = None,
) -> pd.DataFrame | None:
    """Forecast of the dates after ``as_of`` from ``observed`` (date index → value, NaN =
    missing): columns business_date, mean, lo_80, hi_80, lo_95, hi_95 (``mean`` is the
    median forecast). None with fewer than 21 observed days.

    ``weather`` (date index; precipitation_mm, temperature_c) is used when it covers at least
    28 observed days; future dates it does not cover get the history's average weather.
    ``peers`` (:func:`peer_panel` of the store's peers, the same KPI) adds the ``peers``
    candidate once they have a year of history.
    """
    is_holiday = is_holiday or holiday_calendar("JP")
    obs = observed[observed.index <= as_of].astype(float)
    comp = _components(obs, as_of, horizon, is_holiday, weather, peers)
    if comp is None:
        return None
    weights, widen = _choose(obs, as_of, horizon, is_holiday, weather, peers, sorted(comp.mean))
    mean = _blend(comp, weights)
    out = pd.DataFrame({"business_date": comp.future.date, "mean": np.exp(mean)})
    for lvl in LEVELS:
        half = widen[lvl] * _quantile_z(lvl) * comp.sigma
        out[f"lo_{lvl}"] = np.exp(mean - half)
        out[f"hi_{lvl}"] = np.exp(mean + half)
    out.loc[comp.shut, ["mean", *INTERVAL_COLUMNS]] = 0.0
    return out


def _weather_columns(
    weather: pd.DataFrame | None,
    days: pd.DatetimeIndex,
    future: pd.DatetimeIndex,
    seen: np.ndarray,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if weather is None or weather.empty:
        return None, None
    frame = weather.reindex(columns=list(_WEATHER)).astype(float)
    hist = frame.reindex(days.date).to_numpy()
    covered = ~np.isnan(hist).any(axis=1)
    if int(np.sum(covered & seen)) < 28:
        return None, None
    mean = np.nanmean(hist[covered], axis=0)
    std = np.nanstd(hist[covered], axis=0)
    std[std == 0] = 1.0
    # Unknown weather (history gaps, beyond the feed's horizon) is the average: anomaly 0.
    hist_a = np.nan_to_num((hist - mean) / std)
    fut_a = np.nan_to_num((frame.reindex(future.date).to_numpy() - mean) / std)
    return hist_a, fut_a


def _items(series: pd.Series) -> list[tuple[date, float]]:
    """(date, value) pairs of a date-indexed series."""
    return [(d, float(v)) for d, v in zip(series.index, series.to_numpy(), strict=True)]


def seasonal_naive_daily(observed: pd.Series, *, as_of: date, horizon: int) -> np.ndarray:
    """Same weekday of the last week with a value (NaN when none in 8 weeks), per future date."""
    values = observed[observed.index <= as_of]
    lookup = {d: float(v) for d, v in values.items() if v > 0}
    out = np.full(horizon, np.nan)
    for k in range(1, horizon + 1):
        day = as_of + timedelta(days=k)
        back = 7 * math.ceil(k / 7)
        for week in range(8):
            source = day - timedelta(days=back + 7 * week)
            if source in lookup:
                out[k - 1] = lookup[source]
                break
    return out


# --- hourly ------------------------------------------------------------------------------
def local_hours(day: date, timezone: str) -> list[tuple[int, int]]:
    """The (local hour, UTC offset in seconds) pairs of ``day`` in ``timezone``."""
    zone = ZoneInfo(timezone)
    pairs: list[tuple[int, int]] = []
    for hour in range(24):
        seen: set[int] = set()
        for fold in (0, 1):
            local = datetime(day.year, day.month, day.day, hour, tzinfo=zone, fold=fold)
            back = local.astimezone(ZoneInfo("UTC")).astimezone(zone)
            offset = local.utcoffset()
            if back.hour != hour or offset is None:
                continue  # skipped by a spring-forward change
            seconds = int(offset.total_seconds())
            if seconds not in seen:
                seen.add(seconds)
                pairs.append((hour, seconds))
    return pairs


@dataclass
class _Profile:
    share: np.ndarray  # (8 day types, 24 hours)
    spread: list[np.ndarray]  # per hour: log residuals of the hour given the day


def _hour_profile(
    hourly: pd.DataFrame, daily_obs: pd.Series, as_of: date, is_holiday: Callable[[date], bool]
) -> _Profile | None:
    start = as_of - timedelta(days=_PROFILE_DAYS - 1)
    recent = hourly[(hourly["business_date"] >= start) & (hourly["business_date"] <= as_of)]
    valid = {d for d, v in _items(daily_obs) if start <= d <= as_of and v > 0}
    recent = recent[recent["business_date"].isin(valid)]
    if recent.empty:
        return None
    grid = (recent.groupby(["business_date", "hour"])["y"].sum().unstack(fill_value=0)).reindex(
        columns=range(24), fill_value=0.0
    )
    totals = grid.sum(axis=1).to_numpy()
    keep = totals > 0
    grid, totals = grid[keep], totals[keep]
    if len(grid) < 7:
        return None
    days = pd.DatetimeIndex(pd.to_datetime(grid.index))
    types = _day_types(days, is_holiday)
    shares = grid.to_numpy() / totals[:, None]
    share = np.zeros((8, 24))
    n_days = np.zeros(8)
    overall = shares.mean(axis=0)
    for t in range(8):
        rows = shares[types == t]
        if t == _HOLIDAY and len(rows) < 2:
            rows = shares[types == 6]
        share[t] = rows.mean(axis=0) if len(rows) else overall
        n_days[t] = len(rows) if len(rows) else len(shares)
    expected = share[types] * totals[:, None]
    # A residual from a mean over n days understates a new day's by √((n-1)/n), and the mean
    # itself errs by σ/√n: together √((n+1)/(n-1)).
    n = np.maximum(n_days[types], 2.0)
    inflate = np.sqrt((n + 1) / (n - 1))[:, None]
    # Standardized by the hour's expected noise (counting noise ~ 1/√count on the log scale
    # plus a multiplicative part), so that quiet and busy days of one hour pool fairly.
    resid = inflate * np.log((grid.to_numpy() + 0.5) / (expected + 0.5)) / _noise_scale(expected)
    spread = [resid[:, h] for h in range(24)]
    return _Profile(share, spread)


# The day's own uncertainty, as 20 equally likely standard-normal quantiles.
def _noise_scale(expected: np.ndarray) -> np.ndarray:
    return np.sqrt(1.0 / (expected + 0.5) + 0.01)


_NORMAL = np.array([NormalDist().inv_cdf((i + 0.5) / 20) for i in range(20)])


def forecast_hourly(
    daily: pd.DataFrame,
    hourly: pd.DataFrame,
    daily_obs: pd.Series,
    *,
    as_of: date,
    timezone: str,
    horizon_days: int = HOURLY_HORIZON,
    is_holiday: Callable[[date], bool] | None = None,
) -> pd.DataFrame | None:
    """Hourly forecast of the first ``horizon_days`` of ``daily`` (from :func:`forecast_daily`)
    split by the store's hour profile; ``hourly`` has business_date, hour, utc_offset_s, y.
    Columns business_date, hour, utc_offset_s, mean, lo_80, hi_80, lo_95, hi_95; hours the
    store never trades on that day type (and closed days) have no row."""
    is_holiday = is_holiday or holiday_calendar("JP")
    profile = _hour_profile(hourly, daily_obs, as_of, is_holiday)
    if profile is None:
        return None
    z = {lvl: _quantile_z(lvl) for lvl in LEVELS}
    rows: list[tuple[object, ...]] = []
    quantiles = [0.5] + [
        q for lvl in LEVELS for q in ((1 - lvl / 100) / 2, 1 - (1 - lvl / 100) / 2)
    ]
    for rec in daily.head(horizon_days).itertuples(index=False):
        day: date = rec.business_date  # type: ignore[assignment]
        day_type = _HOLIDAY if is_holiday(day) else day.weekday()
        median = float(rec.mean)  # type: ignore[arg-type]
        sigma = 0.0
        if median > 0:
            sigma = max(0.0, math.log(float(rec.hi_95) / median) / z[95])  # type: ignore[arg-type]
        pairs = local_hours(day, timezone)
        counts: dict[int, int] = {}
        for hour, _ in pairs:
            counts[hour] = counts.get(hour, 0) + 1
        for hour, offset in pairs:
            part = profile.share[day_type, hour] / counts[hour]
            expected = median * part
            if expected <= 0:
                continue  # an hour the store never trades: no row
            hour_noise = profile.spread[hour] * _noise_scale(np.array(expected))
            noise = (hour_noise[:, None] + sigma * _NORMAL[None, :]).ravel()
            values = np.maximum((expected + 0.5) * np.exp(noise) - 0.5, 0.0)
            q = np.quantile(values, quantiles)
            rows.append((day, hour, offset, *q.tolist()))
    columns = ["business_date", "hour", "utc_offset_s", "mean", "lo_80", "hi_80", "lo_95", "hi_95"]
    return pd.DataFrame(rows, columns=columns)


def _quantile_z(level: int) -> float:
    return NormalDist().inv_cdf(0.5 + level / 200)


def seasonal_naive_hourly(
    hourly: pd.DataFrame, *, as_of: date, targets: pd.DataFrame
) -> np.ndarray:
    """Same local hour of the same weekday a week (k ≤ 7 days ahead) or more before, per row
    of ``targets`` (business_date, hour); 0 when the store had no row that hour."""
    by_day = hourly.groupby(["business_date", "hour"])["y"].sum().to_dict()
    days_seen = set(hourly["business_date"])
    out = np.zeros(len(targets))
    for i, (day, hour) in enumerate(zip(targets["business_date"], targets["hour"], strict=True)):
        k = (day - as_of).days
        back = 7 * math.ceil(k / 7)
        for week in range(8):
            source = day - timedelta(days=back + 7 * week)
            if source in days_seen:
                out[i] = by_day.get((source, hour), 0.0)
                break
    return out


# --- per store ---------------------------------------------------------------------------
def _daily_series(daily: pd.DataFrame, kpi: str) -> pd.Series:
    values = pd.to_numeric(daily[kpi], errors="coerce").astype(float)
    if kpi == "visitors" and "counter_complete" in daily:
        values = values.where(daily["counter_complete"].fillna(True).astype(bool))
    if kpi in ("transactions", "net_sales") and "has_pos" in daily:
        values = values.where(daily["has_pos"].fillna(True).astype(bool))
    series = pd.Series(values.to_numpy(), index=list(daily["business_date"]))
    return series[~series.index.duplicated()]


def forecast_store(
    daily: pd.DataFrame,
    hourly: pd.DataFrame,
    *,
    as_of: date,
    timezone: str = "Asia/Tokyo",
    kpis: Sequence[str] = KPIS,
    daily_horizon: int = DAILY_HORIZON,
    hourly_horizon: int = HOURLY_HORIZON,
    weather: pd.DataFrame | None = None,
    peers: Mapping[str, PeerPanel] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily and hourly forecasts of one store from its mart rows (up to ``as_of``).

    ``daily``: business_date and the KPI columns (plus has_pos / counter_complete flags when
    known); ``hourly``: business_date, hour, utc_offset_s and the KPI columns; ``peers``:
    per KPI, the :func:`peer_panel` of the store's peers (see :func:`peer_panels`). Returns
    (daily: kpi, business_date, mean, lo_80..hi_95; hourly: kpi, business_date, hour,
    utc_offset_s, mean, ...); a KPI with too little history is left out.
    """
    is_holiday = holiday_calendar(country_of(timezone))
    days_out: list[pd.DataFrame] = []
    hours_out: list[pd.DataFrame] = []
    for kpi in kpis:
        obs = _daily_series(daily, kpi)
        fc = forecast_daily(
            obs,
            as_of=as_of,
            horizon=daily_horizon,
            is_holiday=is_holiday,
            weather=weather,
            peers=(peers or {}).get(kpi),
        )
        if fc is None:
            logger.info("forecast: %s has too little history at %s", kpi, as_of)
            continue
        days_out.append(fc.assign(kpi=kpi))
        if hourly_horizon and not hourly.empty and kpi in hourly:
            hist = hourly[["business_date", "hour", "utc_offset_s"]].assign(
                y=pd.to_numeric(hourly[kpi], errors="coerce").astype(float).fillna(0.0)
            )
            hfc = forecast_hourly(
                fc,
                hist,
                obs,
                as_of=as_of,
                timezone=timezone,
                horizon_days=hourly_horizon,
                is_holiday=is_holiday,
            )
            if hfc is not None:
                hours_out.append(hfc.assign(kpi=kpi))
    daily_cols = ["kpi", "business_date", "mean", *INTERVAL_COLUMNS]
    hourly_cols = ["kpi", "business_date", "hour", "utc_offset_s", "mean", *INTERVAL_COLUMNS]
    d = (
        pd.concat(days_out, ignore_index=True)[daily_cols]
        if days_out
        else pd.DataFrame(columns=daily_cols)
    )
    h = (
        pd.concat(hours_out, ignore_index=True)[hourly_cols]
        if hours_out
        else pd.DataFrame(columns=hourly_cols)
    )
    return d, h


def forecast_rows(
    daily: pd.DataFrame,
    hourly: pd.DataFrame | None,
    stores: Iterable[dict[str, object]],
    *,
    as_of: date,
    weather: pd.DataFrame | None = None,
    daily_horizon: int = DAILY_HORIZON,
    hourly_horizon: int = HOURLY_HORIZON,
) -> pa.Table:
    """Forecasts of every store in ``daily`` (mart_store_daily rows) as ``MART_STORE_FORECAST``.

    ``stores`` give each store's ``timezone`` (default Asia/Tokyo) and ``region``; ``weather``
    (tenant_id, region, business_date, precipitation_mm, temperature_c) is used per store when
    its region has enough of it; a store's peers are the stores of its tenant, country and
    region, itself included (of its tenant and country when its region has fewer than 3).
    Rows after ``as_of`` are ignored.
    """
    zones = {(str(s["tenant_id"]), str(s.get("store_id") or s.get("id"))): s for s in stores}
    hourly = hourly if hourly is not None else pd.DataFrame(columns=["tenant_id", "store_id"])
    daily = daily[daily["business_date"] <= as_of]
    peers = peer_panels(daily, zones)
    frames: list[pd.DataFrame] = []
    for key, rows in daily.groupby(["tenant_id", "store_id"], sort=True):
        tenant, store = str(key[0]), str(key[1])
        info = zones.get((tenant, store), {})
        timezone = str(info.get("timezone") or "Asia/Tokyo")
        hours = hourly[(hourly["tenant_id"] == tenant) & (hourly["store_id"] == store)]
        local = _store_weather(weather, str(tenant), info.get("region"))
        try:
            d, h = forecast_store(
                rows,
                hours[hours["business_date"] <= as_of] if len(hours) else hours,
                as_of=as_of,
                timezone=timezone,
                daily_horizon=daily_horizon,
                hourly_horizon=hourly_horizon,
                weather=local,
                peers=peers.get((tenant, store)),
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            logger.warning("forecast: store %s/%s failed: %s", tenant, store, exc)
            continue
        if len(d):
            frames.append(
                d.assign(grain="day", hour=-1, utc_offset_s=0, tenant_id=tenant, store_id=store)
            )
        if len(h):
            frames.append(h.assign(grain="hour", tenant_id=tenant, store_id=store))
    if not frames:
        return MART_STORE_FORECAST.empty_table()
    out = pd.concat(frames, ignore_index=True).assign(as_of=as_of)
    for name in ("mean", *INTERVAL_COLUMNS):
        out[name] = out[name].astype(float).round(2)
    finite = np.isfinite(out[["mean", *INTERVAL_COLUMNS]].to_numpy()).all(axis=1)
    if not finite.all():  # a degenerate series (e.g. an overflowing level): no such rows
        logger.warning("forecast: %d non-finite rows dropped", int((~finite).sum()))
        out = out[finite]
    return pa.Table.from_pandas(
        out[MART_STORE_FORECAST.names], schema=MART_STORE_FORECAST, preserve_index=False
    )


def peer_panels(
    daily: pd.DataFrame,
    stores: Mapping[tuple[str, str], Mapping[str, object]],
    kpis: Sequence[str] = KPIS,
) -> dict[tuple[str, str], dict[str, PeerPanel]]:
    """Per (tenant, store) of ``daily`` (mart_store_daily rows), its peers' :class:`PeerPanel`
    per KPI: the stores of the same tenant, country (by timezone) and region (``stores``:
    timezone and region per (tenant, store)); when the region has fewer than 3 stores, those
    of the tenant and country. Stores whose group has fewer than 3 stores get none."""
    keys = [(str(t), str(s)) for t, s in daily[["tenant_id", "store_id"]].drop_duplicates().values]

    def info(key: tuple[str, str], name: str) -> object:
        return (stores.get(key) or {}).get(name)

    country = {k: country_of(str(info(k, "timezone") or "Asia/Tokyo")) for k in keys}
    regional: dict[tuple[str, str, object], list[tuple[str, str]]] = {}
    national: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for k in keys:
        regional.setdefault((k[0], country[k], info(k, "region")), []).append(k)
        national.setdefault((k[0], country[k]), []).append(k)
    rows = {
        (str(t), str(s)): g for (t, s), g in daily.groupby(["tenant_id", "store_id"], sort=False)
    }
    built: dict[tuple[tuple[str, str], ...], dict[str, PeerPanel]] = {}
    out: dict[tuple[str, str], dict[str, PeerPanel]] = {}
    for k in keys:
        group = regional[(k[0], country[k], info(k, "region"))]
        if len(group) < _MIN_PEERS:
            group = national[(k[0], country[k])]
        if len(group) < _MIN_PEERS:
            continue
        members = tuple(group)
        if members not in built:
            is_holiday = holiday_calendar(country[k])
            panels = {}
            for kpi in kpis:
                if kpi not in daily:
                    continue
                panel = peer_panel((_daily_series(rows[m], kpi) for m in members), is_holiday)
                if panel is not None:
                    panels[kpi] = panel
            built[members] = panels
        out[k] = built[members]
    return out


def _store_weather(
    weather: pd.DataFrame | None, tenant: str, region: object
) -> pd.DataFrame | None:
    if weather is None or weather.empty or region is None:
        return None
    rows = weather[(weather["tenant_id"] == tenant) & (weather["region"] == region)]
    if rows.empty:
        return None
    return rows.set_index("business_date")[list(_WEATHER)]


# --- back-test ---------------------------------------------------------------------------
@dataclass
class BacktestScore:
    """Accuracy of one KPI at one grain over every store and origin of a back-test."""

    kpi: str
    grain: str
    points: int = 0
    mae: float = 0.0
    mae_naive: float = 0.0
    mase: float = 0.0  # mean over (store, origin) of MAE / in-sample seasonal-naive MAE
    mase_naive: float = 0.0
    coverage: dict[int, float] = field(default_factory=dict)

    @property
    def relative_mase(self) -> float:
        """MASE of the forecast over MASE of the seasonal-naive forecast (< 1: better)."""
        return self.mase / self.mase_naive if self.mase_naive else math.nan


@dataclass
class _Acc:
    err: list[float] = field(default_factory=list)
    err_naive: list[float] = field(default_factory=list)
    scaled: list[float] = field(default_factory=list)
    scaled_naive: list[float] = field(default_factory=list)
    inside: dict[int, list[bool]] = field(default_factory=lambda: {lvl: [] for lvl in LEVELS})


def _in_sample_scale(obs: pd.Series, as_of: date) -> float:
    hist = obs[obs.index <= as_of]
    lookup = {d: v for d, v in _items(hist) if v > 0}
    diffs = [
        abs(v - lookup[d - timedelta(days=7)])
        for d, v in lookup.items()
        if d - timedelta(days=7) in lookup
    ]
    return float(np.mean(diffs)) if diffs else math.nan


def backtest(
    daily: pd.DataFrame,
    hourly: pd.DataFrame,
    origins: Iterable[date],
    *,
    timezone: str = "Asia/Tokyo",
    daily_horizon: int = DAILY_HORIZON,
    hourly_horizon: int = HOURLY_HORIZON,
    kpis: Sequence[str] = KPIS,
) -> list[BacktestScore]:
    """Rolling-origin back-test over the stores of the marts (tenant_id, store_id columns):
    per KPI and grain, forecast vs seasonal-naive errors on the observed actuals after each
    origin (missing days and incomplete counter days are not scored) and interval coverage.
    Each store's peers are its tenant's stores (one region), read up to each origin only."""
    accs = {(k, g): _Acc() for k in kpis for g in ("day", "hour")}
    origins = list(origins)
    zones = {
        (str(t), str(s)): {"timezone": timezone}
        for t, s in daily[["tenant_id", "store_id"]].drop_duplicates().values
    }
    peers = {o: peer_panels(daily[daily["business_date"] <= o], zones, kpis) for o in origins}
    for (_, _), store_daily in daily.groupby(["tenant_id", "store_id"]):
        key = (store_daily["tenant_id"].iat[0], store_daily["store_id"].iat[0])
        store_hourly = hourly[(hourly["tenant_id"] == key[0]) & (hourly["store_id"] == key[1])]
        for as_of in origins:
            train_d = store_daily[store_daily["business_date"] <= as_of]
            train_h = store_hourly[store_hourly["business_date"] <= as_of]
            d_fc, h_fc = forecast_store(
                train_d,
                train_h,
                as_of=as_of,
                timezone=timezone,
                kpis=kpis,
                daily_horizon=daily_horizon,
                hourly_horizon=hourly_horizon,
                peers=peers[as_of].get((str(key[0]), str(key[1]))),
            )
            for kpi in kpis:
                obs = _daily_series(store_daily, kpi)
                scale = _in_sample_scale(obs, as_of)
                _score_daily(accs[(kpi, "day")], d_fc[d_fc["kpi"] == kpi], obs, as_of, scale)
                _score_hourly(
                    accs[(kpi, "hour")],
                    h_fc[h_fc["kpi"] == kpi],
                    store_hourly.assign(y=store_hourly[kpi].astype(float)),
                    obs,
                    as_of,
                )
    return [_summary(k, g, acc) for (k, g), acc in accs.items() if acc.err]


def _score_daily(acc: _Acc, fc: pd.DataFrame, obs: pd.Series, as_of: date, scale: float) -> None:
    if fc.empty:
        return
    naive = seasonal_naive_daily(obs, as_of=as_of, horizon=len(fc))
    actual = obs.reindex(list(fc["business_date"])).to_numpy(dtype=float)
    ok = (actual > 0) & ~np.isnan(naive)
    _add(acc, fc[ok], actual[ok], naive[ok], scale)


def _score_hourly(
    acc: _Acc, fc: pd.DataFrame, hourly: pd.DataFrame, obs: pd.Series, as_of: date
) -> None:
    if fc.empty:
        return
    valid_days = {d for d, v in obs.items() if v > 0}
    fc = fc[fc["business_date"].isin(valid_days)]
    merged = fc.merge(
        hourly[["business_date", "hour", "utc_offset_s", "y"]],
        on=["business_date", "hour", "utc_offset_s"],
        how="left",
    )
    merged["y"] = merged["y"].fillna(0.0)
    history = hourly[hourly["business_date"] <= as_of]
    naive = seasonal_naive_hourly(history, as_of=as_of, targets=merged)
    hour_scale = _hourly_scale(history)
    _add(acc, merged, merged["y"].to_numpy(dtype=float), naive, hour_scale)


def _hourly_scale(history: pd.DataFrame) -> float:
    grid = history.groupby(["business_date", "hour"], as_index=False)["y"].sum()
    lagged = grid.assign(business_date=grid["business_date"] + timedelta(days=7))
    pairs = grid.merge(lagged, on=["business_date", "hour"], suffixes=("", "_lag"))
    return float((pairs["y"] - pairs["y_lag"]).abs().mean()) if len(pairs) else math.nan


def _add(acc: _Acc, fc: pd.DataFrame, actual: np.ndarray, naive: np.ndarray, scale: float) -> None:
    if len(actual) == 0:
        return
    point = fc["mean"].to_numpy(dtype=float)
    err = np.abs(point - actual)
    err_n = np.abs(naive - actual)
    acc.err += err.tolist()
    acc.err_naive += err_n.tolist()
    if scale and not math.isnan(scale):
        acc.scaled.append(float(err.mean() / scale))
        acc.scaled_naive.append(float(err_n.mean() / scale))
    for lvl in LEVELS:
        lo = fc[f"lo_{lvl}"].to_numpy(dtype=float)
        hi = fc[f"hi_{lvl}"].to_numpy(dtype=float)
        acc.inside[lvl] += ((actual >= lo) & (actual <= hi)).tolist()


def _summary(kpi: str, grain: str, acc: _Acc) -> BacktestScore:
    return BacktestScore(
        kpi=kpi,
        grain=grain,
        points=len(acc.err),
        mae=float(np.mean(acc.err)),
        mae_naive=float(np.mean(acc.err_naive)),
        mase=float(np.mean(acc.scaled)) if acc.scaled else math.nan,
        mase_naive=float(np.mean(acc.scaled_naive)) if acc.scaled_naive else math.nan,
        coverage={lvl: float(np.mean(v)) for lvl, v in acc.inside.items()},
    )
