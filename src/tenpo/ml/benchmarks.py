"""Industry benchmarks: KPI distributions across tenants, released so that no published
number equals or determines one store's figure.

Per industry and size band (and ``all`` sizes), per KPI and period: p25, median and p75 of
the store-level values. The release defends against a tenant that knows its own stores'
figures and combines answers (issue 11 found 18 competitor figures recovered from one
20-store run of the former release: n × mean minus one's own stores, band versus all,
period versus period, and quantiles that were store values):

1. **Cell size.** A cell is published only with at least ``benchmark_min_stores`` stores
   (10) of at least ``benchmark_min_tenants`` tenants (2), and with at least
   ``benchmark_min_other_stores`` (5) stores outside *every* contributing tenant: no
   tenant's own stores dominate a cell so far that the rest is a handful.
2. **No mean, no exact counts.** A mean times a count is a sum, and sums difference
   exactly; store and tenant counts are published as bands (``10-19``).
3. **Noisy, rounded quantiles.** Each quantile (interpolated, numpy's default) gets Laplace
   noise of scale ``benchmark_noise`` × the cell's interquartile range (at least
   ``benchmark_noise`` × 1 % of the median's magnitude) and is rounded to
   ``benchmark_digits`` significant digits; the three are then sorted. The noise is drawn
   from a generator seeded by HMAC-SHA256 of ``benchmark_noise_key`` and the cell's KPI and
   values: asking again, re-running the job, or a band holding the same stores as ``all``
   yields the same numbers (no averaging the noise away), while any change of the inputs
   (another period, one more store) draws fresh, independent noise (no differencing it
   away either).
4. **Suppressed cells say nothing.** Every industry lists every size band and KPI, so the
   list of cells does not reveal which bands have stores; a suppressed cell has no
   statistics, no counts, and one fixed reason.

This is not differential privacy: with cells of 10–50 stores, an ε-DP quantile at a
meaningful ε (below 1 per store and period, over 2 cells × 3 quantiles × 9 KPIs) would be
close to uniform over the KPI's range, i.e. useless. What is promised and tested instead
(``tests/ml/test_benchmark_attacks.py``): no published figure equals a store's figure, and
the differencing attacks above recover none. Rows never name a tenant or a store.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from tenpo.core.errors import BadInput
from tenpo.ml.params import MlParams

__all__ = [
    "ALL_SIZES",
    "BENCHMARK_KPIS",
    "count_band",
    "industry_benchmarks",
    "noisy_quantiles",
    "period_label",
    "size_band",
    "suppressed_reason",
]

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


def count_band(n: int) -> str:
    """A count as a published band: ``10-19``, ``20-49``, ``50-99``, ``100+`` (``1-4`` and
    ``5-9`` below ten, for tenants)."""
    for low, high in ((1, 4), (5, 9), (10, 19), (20, 49), (50, 99)):
        if low <= n <= high:
            return f"{low}-{high}"
    if n >= 100:
        return "100+"
    raise BadInput(f"no published band for a count of {n}")


def suppressed_reason(params: MlParams) -> str:
    """The one reason every suppressed cell gives (counts and causes would leak)."""
    return (
        f"below the anonymity threshold (at least {params.benchmark_min_stores} stores of "
        f"{params.benchmark_min_tenants} tenants, {params.benchmark_min_other_stores} of "
        "them outside any one tenant)"
    )


def _publishable(tenants: pd.Series, params: MlParams) -> bool:
    n = len(tenants)
    per_tenant = tenants.value_counts()
    return (
        n >= params.benchmark_min_stores
        and len(per_tenant) >= params.benchmark_min_tenants
        and n - int(per_tenant.max()) >= params.benchmark_min_other_stores
    )


def _seed(key: bytes, kpi: str, values: np.ndarray) -> int:
    # The cell's KPI and values, not its band or period: identical inputs, identical noise.
    digest = hmac.new(key, kpi.encode() + np.sort(values).tobytes(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def _round(value: float, digits: int) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def noisy_quantiles(values: np.ndarray, kpi: str, params: MlParams) -> tuple[float, float, float]:
    """(p25, median, p75) of ``values`` with keyed Laplace noise, rounded and sorted."""
    exact = np.quantile(values, (0.25, 0.5, 0.75))
    spread = max(float(exact[2] - exact[0]), 0.01 * abs(float(exact[1])), 1e-9)
    key = params.benchmark_noise_key.get_secret_value().encode()
    rng = np.random.default_rng(_seed(key, kpi, values))
    noisy = exact + rng.laplace(0.0, params.benchmark_noise * spread, size=3)
    p25, median, p75 = sorted(_round(float(v), params.benchmark_digits) for v in noisy)
    return p25, median, p75


def industry_benchmarks(
    features: pd.DataFrame,
    params: MlParams | None = None,
    *,
    period: str,
    period_start: date,
    period_end: date,
) -> pd.DataFrame:
    """Benchmark rows per (industry, size band, KPI) over ``features`` of every tenant.

    Columns: period, period_start, period_end, industry, size_band, kpi, stores_band,
    tenants_band, published, suppressed_reason, p25, median, p75 (see the module docstring
    for what is released and why).
    """
    params = params or MlParams()
    needed = {"tenant_id", "industry", "floor_area_m2", *BENCHMARK_KPIS}
    if missing := sorted(needed - set(features.columns)):
        raise BadInput(f"store features lack column(s) {missing}")
    frame = features[features["industry"].notna()].copy()
    frame["size_band"] = [size_band(a, params.size_bands_m2) for a in frame["floor_area_m2"]]
    bands = _BANDS[: len(params.size_bands_m2) + 1]
    cells: list[tuple[str, str, pd.DataFrame]] = []
    for industry, stores in frame.groupby("industry", sort=True):
        cells.append((str(industry), ALL_SIZES, stores))
        # Every band, with stores or not: the list of cells must not say which exist.
        cells += [(str(industry), band, stores[stores["size_band"] == band]) for band in bands]
    reason = suppressed_reason(params)
    rows: list[dict[str, Any]] = []
    for industry, band, stores in cells:
        for kpi in BENCHMARK_KPIS:
            have = stores[stores[kpi].notna()]
            published = _publishable(have["tenant_id"], params)
            stats: dict[str, float | None] = dict.fromkeys(("p25", "median", "p75"))
            if published:
                values = have[kpi].astype(float).to_numpy()
                stats["p25"], stats["median"], stats["p75"] = noisy_quantiles(values, kpi, params)
            rows.append(
                {
                    "period": period,
                    "period_start": period_start,
                    "period_end": period_end,
                    "industry": industry,
                    "size_band": band,
                    "kpi": kpi,
                    "stores_band": count_band(len(have)) if published else None,
                    "tenants_band": count_band(int(have["tenant_id"].nunique()))
                    if published
                    else None,
                    "published": published,
                    "suppressed_reason": None if published else reason,
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
