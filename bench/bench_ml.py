"""ML throughput: stores per second through features → clusters → targets → benchmarks.

Builds eight weeks of mart_store_daily rows for 360 stores (3 tenants × 4 industries,
five planted kinds of store per industry, log-normal noise) and runs the whole ML step as
the Dagster asset does. The baseline, measured in the same run on the same features, is the
naive target estimation that filters the peers out of the whole frame again for every
store and KPI (what tenpo.ml did first); the target is 3x its rate over the target step.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from bench._common import report
from tenpo.ml import (
    MlParams,
    cluster_stores,
    estimate_targets,
    feature_window,
    industry_benchmarks,
    store_features,
)
from tenpo.ml import targets as targets_module

END = date(2026, 11, 29)
WEEKS = 8
KINDS = ((1.0, 1.0, 1.0, 1.0), (2.0, 0.9, 0.6, 0.9), (0.55, 1.6, 1.05, 1.35), (0.8, 1.3, 1.1, 0.95))


def _chain(tenants: int = 3, per_tenant: int = 120) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    rng = np.random.default_rng(0)
    industries = ("apparel", "drugstore", "supermarket", "cafe")
    start, _ = feature_window(END, WEEKS)
    days = [start + timedelta(days=i) for i in range(7 * WEEKS)]
    rows: list[dict[str, Any]] = []
    stores: list[dict[str, Any]] = []
    for t in range(tenants):
        for i in range(per_tenant):
            tenant, store = f"t{t + 1}", f"s{i:04d}"
            traffic, capture, conversion, basket = KINDS[int(rng.integers(0, len(KINDS)))]
            passersby = 3000 * traffic * rng.lognormal(0, 0.2)
            cap, conv = (
                0.1 * capture * rng.lognormal(0, 0.1),
                0.5 * conversion * rng.lognormal(0, 0.08),
            )
            atv = 1500 * basket * rng.lognormal(0, 0.08)
            stores.append(
                {"tenant_id": tenant, "store_id": store, "industry": industries[i % 4],
                 "floor_area_m2": float(rng.integers(50, 1500))}
            )  # fmt: skip
            for day in days:
                p = int(rng.poisson(passersby))
                v = int(rng.binomial(p, min(cap, 0.9)))
                tx = int(rng.binomial(v, min(conv, 0.97)))
                rows.append(
                    {"tenant_id": tenant, "store_id": store, "business_date": day,
                     "net_sales": Decimal(int(tx * atv)), "transactions": tx,
                     "units": int(tx * 1.5), "visitors": v, "passersby": p,
                     "has_pos": True, "has_counter": True}
                )  # fmt: skip
    return pd.DataFrame(rows), stores


def _naive_targets(features: pd.DataFrame, assignments: pd.DataFrame, params: MlParams) -> int:
    """The first implementation: peers filtered from the whole frame per store and KPI."""
    merged = features.merge(assignments[["tenant_id", "store_id", "group_id", "cluster_id"]])
    count = 0
    for _, store in merged.iterrows():
        for lever in targets_module.LEVERS:
            group = merged[(merged["group_id"] == store["group_id"]) & merged[lever.kpi].notna()]
            cluster = group[group["cluster_id"] == store["cluster_id"]]
            peers = cluster if len(cluster) >= params.min_peers else group
            np.quantile(peers[lever.kpi].to_numpy(float), params.target_quantile)
            count += 1
    return count


def main() -> None:
    """Run the benchmark and report stores/s of the target step against the naive baseline."""
    daily, stores = _chain()
    params = MlParams(window_weeks=WEEKS)
    start, end = feature_window(END, WEEKS)
    t0 = time.perf_counter()
    features = store_features(daily, stores, end=END, weeks=WEEKS)
    t1 = time.perf_counter()
    result = cluster_stores(features, params)
    t2 = time.perf_counter()
    estimate_targets(features, result.assignments, params, as_of=END)
    t3 = time.perf_counter()
    industry_benchmarks(features, params, period="2026-W48", period_start=start, period_end=end)
    t4 = time.perf_counter()
    _naive_targets(features, result.assignments, params)
    t5 = time.perf_counter()
    n = len(features)
    report(
        "ml_targets",
        n / (t3 - t2),
        "stores/s",
        baseline=n / (t5 - t4),
        target=3.0,
        stores=n,
        daily_rows=len(daily),
        features_s=round(t1 - t0, 2),
        clustering_s=round(t2 - t1, 2),
        targets_s=round(t3 - t2, 2),
        benchmarks_s=round(t4 - t3, 2),
        end_to_end_stores_per_s=round(n / (t4 - t0), 1),
    )


if __name__ == "__main__":
    main()
