"""Staffing to traffic: visitors per staff hour, the store's conversion curve, a recommendation.

Pure functions of a store's staffed hours (business_date, hour, staff) joined to its hourly
marts (visitors, transactions):

- **load** = visitors per staff hour of each staffed, trading hour;
- the **curve**: conversion (Σ transactions / Σ visitors) per load band (quintiles of the
  store's own loads), so that conversion falling as load rises shows in the store's data;
- the **target load**: the highest band whose conversion stays within 5 % of the best band's;
- **strained hours**: local hours of the day whose average load is above the target load;
- the **recommendation** for the forecast hours: ``ceil(visitors / target load)`` staff (at
  least 1), and the expected extra transactions if the hours now above the target load
  converted at the target band's rate instead of at their own band's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CurveBand", "StaffingPlan", "plan_staffing"]

_BANDS = 5
_TOLERANCE = 0.95


@dataclass(frozen=True)
class CurveBand:
    """Conversion of the hours whose load fell in ``[load_from, load_to]``."""

    load_from: float
    load_to: float
    hours: int
    visitors: int
    conversion: float | None


@dataclass(frozen=True)
class StaffingPlan:
    """The store's staffing analysis and recommendation."""

    staffed_hours: int
    visitors_per_staff_hour: float | None
    curve: list[CurveBand]
    target_load: float | None
    strained_hours: list[int]  # local hours of the day above the target load on average
    recommendation: pd.DataFrame  # business_date, hour, utc_offset_s, visitors, staff
    expected_extra_transactions: float


def plan_staffing(
    staff: pd.DataFrame, hourly: pd.DataFrame, forecast: pd.DataFrame | None = None
) -> StaffingPlan:
    """Analyse ``staff`` (business_date, hour, staff) against ``hourly`` (business_date, hour,
    visitors, transactions; repeated DST hours summed) and staff the ``forecast`` hours
    (business_date, hour, utc_offset_s, mean: visitors)."""
    actual = hourly.groupby(["business_date", "hour"], as_index=False)[
        ["visitors", "transactions"]
    ].sum()
    staffed = staff.groupby(["business_date", "hour"], as_index=False)["staff"].sum()
    joined = staffed.merge(actual, on=["business_date", "hour"])
    joined = joined[(joined["staff"] > 0) & (joined["visitors"] > 0)].copy()
    empty = pd.DataFrame(columns=["business_date", "hour", "utc_offset_s", "visitors", "staff"])
    if joined.empty:
        return StaffingPlan(0, None, [], None, [], empty, 0.0)
    joined["load"] = joined["visitors"] / joined["staff"]
    overall = float(joined["visitors"].sum() / joined["staff"].sum())
    edges = np.unique(np.quantile(joined["load"], np.linspace(0, 1, _BANDS + 1)))
    if len(edges) < 2:
        edges = np.array([joined["load"].min(), joined["load"].max()])
    band = np.clip(np.searchsorted(edges, joined["load"], side="right") - 1, 0, len(edges) - 2)
    joined["band"] = band
    curve: list[CurveBand] = []
    for b in range(len(edges) - 1):
        rows = joined[joined["band"] == b]
        visitors = int(rows["visitors"].sum())
        conv = float(rows["transactions"].sum() / visitors) if visitors else None
        curve.append(CurveBand(float(edges[b]), float(edges[b + 1]), len(rows), visitors, conv))
    rates = [c.conversion for c in curve if c.conversion is not None]
    best = max(rates) if rates else None
    target_band = max(
        (i for i, c in enumerate(curve) if c.conversion is not None and best is not None
         and c.conversion >= _TOLERANCE * best),
        default=0,
    )  # fmt: skip
    target = curve[target_band].load_to
    by_hour = joined.groupby("hour")["load"].mean()
    strained = sorted(int(h) for h, load in by_hour.items() if load > target)
    target_conv = curve[target_band].conversion or 0.0
    gain = 0.0
    for c_index, c in enumerate(curve):
        if c_index > target_band and c.conversion is not None:
            gain += c.visitors * max(0.0, target_conv - c.conversion)
    recommendation = empty
    if forecast is not None and len(forecast) and target > 0:
        recommendation = forecast.assign(
            visitors=forecast["mean"].astype(float).round(1),
            staff=[max(1, math.ceil(v / target)) for v in forecast["mean"].astype(float)],
        )[["business_date", "hour", "utc_offset_s", "visitors", "staff"]]
    days = max(1, joined["business_date"].nunique())
    weeks = days / 7.0
    return StaffingPlan(
        staffed_hours=len(joined),
        visitors_per_staff_hour=overall,
        curve=curve,
        target_load=target,
        strained_hours=strained,
        recommendation=recommendation.reset_index(drop=True),
        # Per week of the staffed history: what one week staffed to the target would add.
        expected_extra_transactions=round(gain / weeks, 1),
    )
