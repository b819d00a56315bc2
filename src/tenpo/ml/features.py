"""Store features over a trailing window, computed from the KPI marts.

One row per store with enough open days in the window. Ratios are ratios of sums over the
window (never a mean of daily ratios), over the days on which both of their sources were
present: conversion only over days with a people counter *and* POS, for instance. A feature
whose source is missing at a store (no counter, no floor area, no hourly mart) is null, and
the ``missing`` column names it, so clustering can impute it explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tenpo.core.errors import BadInput

__all__ = [
    "FEATURES",
    "Feature",
    "feature_window",
    "store_features",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feature:
    """A store feature: its name, the words describing a high/low value, and its scale.

    ``role``: ``context`` is what the store cannot change (where it stands, its size, its
    hours, when its customers come), ``lever`` what it can (the sales-tree ratios),
    ``outcome`` a composite of both (sales per visitor, per m²).
    """

    name: str
    label: str  # "traffic" → "high traffic" / "low traffic"
    log_scale: bool  # clustered on log(value): multiplicative spread
    source: str  # what it needs: pos | counter | area | hours | hourly
    role: str = "lever"  # context | lever | outcome


FEATURES: tuple[Feature, ...] = (
    Feature("visitors_per_open_hour", "traffic", True, "counter", "outcome"),
    Feature("capture_rate", "capture", True, "counter"),
    Feature("conversion_rate", "conversion", True, "counter"),
    Feature("atv", "basket value", True, "pos"),
    Feature("upt", "units per basket", True, "pos"),
    Feature("sales_per_visitor", "sales per visitor", True, "counter", "outcome"),
    Feature("sales_per_m2", "sales density", True, "area", "outcome"),
    Feature("repeat_rate", "repeat visitors", False, "video", "context"),
    Feature("weekend_share", "weekend share", False, "pos", "context"),
    Feature("morning_share", "morning trade", False, "hourly", "context"),
    Feature("lunch_share", "lunchtime trade", False, "hourly", "context"),
    Feature("evening_share", "evening trade", False, "hourly", "context"),
    Feature("passersby_per_day", "street traffic", True, "counter", "context"),
    Feature("floor_area_m2", "floor area", True, "area", "context"),
    Feature("open_hours_per_week", "opening hours", False, "hours", "context"),
)
"""Every feature, in column order."""

_NAMES = tuple(f.name for f in FEATURES)
_DAILY_COLUMNS = (
    "tenant_id",
    "store_id",
    "business_date",
    "net_sales",
    "transactions",
    "units",
    "visitors",
    "passersby",
    "has_pos",
    "has_counter",
)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Local hours [start, end) of the hourly-shape buckets; the afternoon is the rest.
_MORNING, _LUNCH, _EVENING = (0, 11), (11, 14), (17, 24)


def feature_window(end: date, weeks: int) -> tuple[date, date]:
    """The first and last business date (inclusive) of ``weeks`` weeks ending on ``end``."""
    if weeks < 1:
        raise BadInput(f"the feature window must be at least one week, got {weeks}")
    return end - timedelta(days=7 * weeks - 1), end


def _frame(table: pa.Table | pd.DataFrame, what: str, needed: Sequence[str]) -> pd.DataFrame:
    frame = table.to_pandas() if isinstance(table, pa.Table) else table.copy()
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BadInput(f"{what} lacks column(s) {missing}")
    return frame


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, null where the denominator is zero or unknown (never inf)."""
    out = num.astype(float) / den.astype(float).where(den > 0)
    return out.where(np.isfinite(out))


def _optional(frame: pd.DataFrame, column: str) -> pd.Series:
    """A count column that older marts or stores without the source lack: 0 where absent."""
    if column not in frame.columns:
        return pd.Series(0.0, index=frame.index)
    return frame[column].astype(float).fillna(0.0)


def _open_hours(hours: Mapping[str, Any] | None, day: date) -> float | None:
    if not hours:
        return None
    span = hours.get(_WEEKDAYS[day.weekday()])
    if not span:
        return 0.0
    (oh, om), (ch, cm) = (map(int, str(t).split(":")) for t in span[:2])
    minutes = (ch * 60 + cm) - (oh * 60 + om)
    return (minutes if minutes > 0 else minutes + 24 * 60) / 60


def _weekly_hours(hours: Mapping[str, Any] | None) -> float:
    """Open hours per week from the master's opening hours (NaN when unknown)."""
    if not hours:
        return float("nan")
    week = date(2024, 1, 1)  # a Monday
    return float(sum(_open_hours(hours, week + timedelta(days=i)) or 0.0 for i in range(7)))


def store_features(
    daily: pa.Table | pd.DataFrame,
    stores: Iterable[Mapping[str, Any]],
    *,
    end: date,
    weeks: int = 8,
    hourly: pa.Table | pd.DataFrame | None = None,
    min_open_days: int = 7,
) -> pd.DataFrame:
    """Features of every store with ≥ ``min_open_days`` daily rows in the window ending ``end``.

    ``daily`` has mart_store_daily's columns; ``stores`` are mappings with tenant_id,
    store_id, industry, floor_area_m2 and optionally opening_hours (weekday → [open, close]);
    ``hourly`` (mart_store_hourly, optional) gives the hourly shape and, for stores without
    opening hours, the open hours (hours with a visitor or a receipt). Stores missing from
    ``stores`` are dropped with a warning. Returns one row per (tenant_id, store_id) with
    the FEATURES columns, context columns and ``missing`` (the null features' names).
    """
    start, end = feature_window(end, weeks)
    frame = _frame(daily, "daily KPI rows", _DAILY_COLUMNS)
    frame = frame[(frame["business_date"] >= start) & (frame["business_date"] <= end)]
    master = {(str(s["tenant_id"]), str(s["store_id"])): s for s in stores}
    columns = ["tenant_id", "store_id", "industry", "open_days", *_NAMES]
    if frame.empty:
        return pd.DataFrame(columns=[*columns, "daily_net_sales", "missing"])
    frame = frame.assign(
        net_sales=frame["net_sales"].map(lambda v: float(v) if v is not None else 0.0),
        transactions=frame["transactions"].fillna(0).astype(float),
        units=frame["units"].fillna(0).astype(float),
        visitors=frame["visitors"].astype(float),
        passersby=frame["passersby"].astype(float),
        counted=frame["has_counter"].fillna(False).astype(bool),
        pos=frame["has_pos"].fillna(False).astype(bool),
        weekend=[d.weekday() >= 5 for d in frame["business_date"]],
    )
    both = frame["counted"] & frame["pos"]
    frame = frame.assign(
        c_visitors=frame["visitors"].where(frame["counted"], 0.0).fillna(0.0),
        c_passersby=frame["passersby"].where(frame["counted"], 0.0).fillna(0.0),
        b_visitors=frame["visitors"].where(both, 0.0).fillna(0.0),
        b_sales=frame["net_sales"].where(both, 0.0),
        b_transactions=frame["transactions"].where(both, 0.0),
        weekend_sales=frame["net_sales"].where(frame["weekend"], 0.0),
        unique=_optional(frame, "unique_visitors"),
        repeat=_optional(frame, "repeat_visitors").where(
            _optional(frame, "unique_visitors") > 0, 0.0
        ),
        hours=pd.Series(
            [
                _open_hours((master.get((t, s)) or {}).get("opening_hours"), d)
                for t, s, d in zip(
                    frame["tenant_id"], frame["store_id"], frame["business_date"], strict=True
                )
            ],
            index=frame.index,
            dtype=float,
        ),
    )
    frame["h_visitors"] = frame["c_visitors"].where(frame["hours"].notna() & frame["counted"], 0.0)
    sums = frame.groupby(["tenant_id", "store_id"], sort=True).agg(
        open_days=("business_date", "nunique"),
        counter_days=("counted", "sum"),
        pos_days=("pos", "sum"),
        net_sales=("net_sales", "sum"),
        transactions=("transactions", "sum"),
        units=("units", "sum"),
        c_visitors=("c_visitors", "sum"),
        c_passersby=("c_passersby", "sum"),
        b_visitors=("b_visitors", "sum"),
        b_sales=("b_sales", "sum"),
        b_transactions=("b_transactions", "sum"),
        weekend_sales=("weekend_sales", "sum"),
        hours=("hours", lambda h: h.sum(min_count=1)),
        h_visitors=("h_visitors", "sum"),
        unique=("unique", "sum"),
        repeat=("repeat", "sum"),
    )
    out = pd.DataFrame(index=sums.index)
    out["open_days"] = sums["open_days"].astype(int)
    out["capture_rate"] = _ratio(sums["c_visitors"], sums["c_passersby"])
    out["conversion_rate"] = _ratio(sums["b_transactions"], sums["b_visitors"])
    out["atv"] = _ratio(sums["net_sales"], sums["transactions"])
    out["upt"] = _ratio(sums["units"], sums["transactions"])
    out["sales_per_visitor"] = _ratio(sums["b_sales"], sums["b_visitors"])
    out["weekend_share"] = _ratio(sums["weekend_sales"], sums["net_sales"])
    out["repeat_rate"] = _ratio(sums["repeat"], sums["unique"])
    out["visitors_per_open_hour"] = _ratio(sums["h_visitors"], sums["hours"])
    out["daily_net_sales"] = sums["net_sales"] / sums["open_days"]
    out["passersby_per_day"] = _ratio(sums["c_passersby"], sums["counter_days"])
    out.loc[sums["counter_days"] == 0, "passersby_per_day"] = np.nan
    for name in ("capture_rate", "conversion_rate", "sales_per_visitor", "visitors_per_open_hour"):
        out.loc[sums["counter_days"] == 0, name] = np.nan
    out = _with_hourly(out, hourly, start, end)
    out = out[out["open_days"] >= min_open_days]
    unknown = [k for k in out.index if k not in master]
    if unknown:
        log.warning(
            "features: %d store(s) not in the store list, skipped: %s", len(unknown), unknown[:5]
        )
        out = out.drop(index=unknown)
    out["industry"] = [master[k].get("industry") for k in out.index]
    area = [master[k].get("floor_area_m2") for k in out.index]
    out["floor_area_m2"] = [float(a) if a is not None and float(a) > 0 else np.nan for a in area]
    out["sales_per_m2"] = out["daily_net_sales"] / out["floor_area_m2"]
    out["open_hours_per_week"] = [
        _weekly_hours((master[k] or {}).get("opening_hours")) for k in out.index
    ]
    out = out.reset_index()
    out["missing"] = [
        [n for n in _NAMES if pd.isna(row[n])] for row in out[list(_NAMES)].to_dict("records")
    ]
    log.info(
        "features: %d stores over %s..%s (%d with a gap)",
        len(out),
        start,
        end,
        sum(1 for m in out["missing"] if m),
    )
    return out[[*columns, "daily_net_sales", "missing"]]


def _with_hourly(
    out: pd.DataFrame, hourly: pa.Table | pd.DataFrame | None, start: date, end: date
) -> pd.DataFrame:
    """Hourly-shape shares, and open hours from the hourly mart where no hours are known."""
    shape = ("morning_share", "lunch_share", "evening_share")
    if hourly is None:
        for name in shape:
            out[name] = np.nan
        return out
    h = _frame(hourly, "hourly KPI rows", ("tenant_id", "store_id", "business_date", "hour"))
    h = h[(h["business_date"] >= start) & (h["business_date"] <= end)]
    tx = h["transactions"].fillna(0).astype(float) if "transactions" in h else 0.0
    vis = h["visitors"].fillna(0).astype(float) if "visitors" in h else 0.0
    h = h.assign(tx=tx, active=(tx > 0) | (vis > 0), vis=vis)
    hour = h["hour"].astype(int)
    for name, (lo, hi) in zip(shape, (_MORNING, _LUNCH, _EVENING), strict=True):
        h[name] = h["tx"].where((hour >= lo) & (hour < hi), 0.0)
    g = h.groupby(["tenant_id", "store_id"]).agg(
        tx=("tx", "sum"),
        active_hours=("active", "sum"),
        vis=("vis", "sum"),
        **{n: (n, "sum") for n in shape},
    )
    g = g.reindex(out.index)
    for name in shape:
        out[name] = _ratio(g[name], g["tx"])
    # Stores without opening hours in the master: open hours = hours with any activity.
    fill = out["visitors_per_open_hour"].isna() & out["capture_rate"].notna()
    out.loc[fill, "visitors_per_open_hour"] = _ratio(g["vis"], g["active_hours"])[fill]
    return out
