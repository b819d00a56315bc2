"""Industry benchmarks: KPI distributions across tenants, published only when anonymous.

Per industry and size band (and ``all`` sizes), per KPI and period: p25, median, p75 and
mean of the store-level values. A cell is published only when at least
``benchmark_min_stores`` stores of at least ``benchmark_min_tenants`` tenants contribute
(k-anonymity, ARCHITECTURE principle 4); otherwise its statistics are null, ``published`` is
false and ``suppressed_reason`` says why. Rows never name a tenant or a store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from tenpo.core.errors import BadInput
from tenpo.ml.params import MlParams

__all__ = ["BENCHMARK_KPIS", "ALL_SIZES", "industry_benchmarks", "period_label", "size_band"]

log = logging.getLogger(__name__)

BENCHMARK_KPIS: tuple[str, ...] = (
    "visitors_per_open_hour",
    "capture_rate",
    "conversion_rate",
    "atv",
    "upt",
    "sales_per_visitor",
    "sales_per_m2",
    "weekend_share",
    "repeat_rate",
)
ALL_SIZES = "all"
_BANDS = ("S", "M", "L", "XL", "XXL", "XXXL")


def size_band(floor_area_m2: float | None, limits: Sequence[float]) -> str | None:
    """The size band (S, M, L, ...) of a floor area; None when the area is unknown."""
    if floor_area_m2 is None or not np.isfinite(floor_area_m2):
        return None
    if len(limits) >= len(_BANDS):
        raise BadInput(f"at most {len(_BANDS) - 1} size-band limits are supported")
    index = int(np.searchsorted(np.asarray(limits, dtype=float), floor_area_m2, side="right"))
    return _BANDS[index]


def period_label(end: date) -> str:
    """The benchmark period named by the ISO week of the window's last day: ``2026-W43``."""
    year, week, _ = end.isocalendar()
    return f"{year}-W{week:02d}"


def industry_benchmarks(
    features: pd.DataFrame,
    params: MlParams | None = None,
    *,
    period: str,
    period_start: date,
    period_end: date,
) -> pd.DataFrame:
    """Benchmark rows per (industry, size band, KPI) over ``features`` of every tenant.

    Columns: period, period_start, period_end, industry, size_band, kpi, stores, tenants,
    published, suppressed_reason, p25, median, p75, mean.
    """
    params = params or MlParams()
    needed = {"tenant_id", "industry", "floor_area_m2", *BENCHMARK_KPIS}
    if missing := sorted(needed - set(features.columns)):
        raise BadInput(f"store features lack column(s) {missing}")
    frame = features[features["industry"].notna()].copy()
    frame["size_band"] = [size_band(a, params.size_bands_m2) for a in frame["floor_area_m2"]]
    cells: list[tuple[str, str, pd.DataFrame]] = []
    for industry, stores in frame.groupby("industry", sort=True):
        cells.append((str(industry), ALL_SIZES, stores))
        for band, banded in stores[stores["size_band"].notna()].groupby("size_band", sort=True):
            cells.append((str(industry), str(band), banded))
    rows: list[dict[str, Any]] = []
    for industry, band, stores in cells:
        for kpi in BENCHMARK_KPIS:
            have = stores[stores[kpi].notna()]
            n_stores, n_tenants = len(have), int(have["tenant_id"].nunique())
            reason = None
            if n_stores < params.benchmark_min_stores:
                reason = f"fewer than {params.benchmark_min_stores} stores ({n_stores})"
            elif n_tenants < params.benchmark_min_tenants:
                reason = f"fewer than {params.benchmark_min_tenants} tenants ({n_tenants})"
            values = have[kpi].astype(float).to_numpy()
            stats: dict[str, float | None] = dict.fromkeys(("p25", "median", "p75", "mean"))
            if reason is None:
                stats = {
                    "p25": float(np.quantile(values, 0.25)),
                    "median": float(np.quantile(values, 0.5)),
                    "p75": float(np.quantile(values, 0.75)),
                    "mean": float(values.mean()),
                }
            rows.append(
                {
                    "period": period,
                    "period_start": period_start,
                    "period_end": period_end,
                    "industry": industry,
                    "size_band": band,
                    "kpi": kpi,
                    # Counts of a suppressed cell are hidden too: "3 stores" is itself a leak.
                    "stores": n_stores if reason is None else None,
                    "tenants": n_tenants if reason is None else None,
                    "published": reason is None,
                    "suppressed_reason": reason,
                    **stats,
                }
            )
    out = pd.DataFrame(rows)
    if not out.empty:
        log.info(
            "benchmarks %s: %d cells, %d published",
            period,
            len(out),
            int(out["published"].sum()),
        )
    return out
