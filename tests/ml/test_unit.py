"""Hand-checked features, targets and uplift; suppression; tenant isolation; bad inputs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tenpo.core.errors import BadInput
from tenpo.ml import (
    FEATURES,
    MlParams,
    cluster_stores,
    describe_centre,
    estimate_targets,
    feature_window,
    industry_benchmarks,
    size_band,
    store_features,
    uplift,
)
from tenpo.ml.benchmarks import BENCHMARK_KPIS, count_band, suppressed_reason
from tenpo.ml.clustering import group_key
from tenpo.ml.tables import to_arrow

SAT = date(2026, 10, 10)
MON = date(2026, 10, 12)
HOURS = {d: ["10:00", "20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _day(store: str, day: date, **kw: Any) -> dict[str, Any]:
    row = {
        "tenant_id": "t1",
        "store_id": store,
        "business_date": day,
        "net_sales": Decimal("0"),
        "transactions": 0,
        "units": 0,
        "visitors": None,
        "passersby": None,
        "has_pos": True,
        "has_counter": False,
    }
    return row | kw


def test_features_by_hand() -> None:
    daily = pd.DataFrame(
        [
            # Saturday: 1000 passers-by, 100 visitors, 20 receipts, 50 units, ¥60,000.
            _day("a", SAT, net_sales=Decimal("60000"), transactions=20, units=50,
                 visitors=100, passersby=1000, has_counter=True),
            # Monday: 1000 passers-by, 100 visitors, 30 receipts, 40 units, ¥40,000.
            _day("a", MON, net_sales=Decimal("40000"), transactions=30, units=40,
                 visitors=100, passersby=1000, has_counter=True),
            # A store without a counter.
            _day("b", MON, net_sales=Decimal("5000"), transactions=5, units=5),
        ]
    )  # fmt: skip
    stores = [
        {"tenant_id": "t1", "store_id": "a", "industry": "cafe", "floor_area_m2": 50,
         "opening_hours": HOURS},
        {"tenant_id": "t1", "store_id": "b", "industry": "cafe", "floor_area_m2": None},
    ]  # fmt: skip
    f = store_features(daily, stores, end=MON, weeks=1, min_open_days=1).set_index("store_id")
    a = f.loc["a"]
    assert a.open_days == 2
    assert a.capture_rate == pytest.approx(200 / 2000)
    assert a.conversion_rate == pytest.approx(50 / 200)
    assert a.atv == pytest.approx(100000 / 50)
    assert a.upt == pytest.approx(90 / 50)
    assert a.sales_per_visitor == pytest.approx(100000 / 200)
    assert a.sales_per_m2 == pytest.approx(100000 / 2 / 50)  # per open day and m²
    assert a.weekend_share == pytest.approx(0.6)
    assert a.visitors_per_open_hour == pytest.approx(200 / 20)  # 10 h a day
    assert a.missing == ["repeat_rate", "morning_share", "lunch_share", "evening_share"]
    b = f.loc["b"]
    assert b.atv == pytest.approx(1000)
    assert np.isnan(b.capture_rate) and np.isnan(b.conversion_rate)
    assert {"capture_rate", "conversion_rate", "sales_per_m2"} <= set(b.missing)


def test_hourly_shape_and_open_hours_from_the_hourly_mart() -> None:
    daily = pd.DataFrame(
        [_day("a", MON, net_sales=Decimal("100"), transactions=10, units=10, visitors=40,
              passersby=400, has_counter=True)]
    )  # fmt: skip
    hourly = pd.DataFrame(
        [
            {"tenant_id": "t1", "store_id": "a", "business_date": MON, "hour": h,
             "transactions": n, "visitors": 10}
            for h, n in ((9, 2), (12, 3), (15, 1), (18, 4))
        ]
    )  # fmt: skip
    stores = [{"tenant_id": "t1", "store_id": "a", "industry": "cafe", "floor_area_m2": 40}]
    f = store_features(daily, stores, end=MON, weeks=1, hourly=hourly, min_open_days=1).iloc[0]
    assert (f.morning_share, f.lunch_share, f.evening_share) == pytest.approx((0.2, 0.3, 0.4))
    assert f.visitors_per_open_hour == pytest.approx(40 / 4)  # 4 active hours, no master hours


def test_feature_inputs_are_checked() -> None:
    with pytest.raises(BadInput, match="lacks column"):
        store_features(pd.DataFrame({"tenant_id": ["t1"]}), [], end=MON)
    with pytest.raises(BadInput, match="at least one week"):
        feature_window(MON, 0)
    assert feature_window(MON, 8) == (MON - timedelta(days=55), MON)


def _features(rows: list[tuple[str, str, float, float, float, float, float]]) -> pd.DataFrame:
    """(tenant, store, capture, conversion, atv, upt, daily sales) → a features frame."""
    out = []
    for tenant, store, capture, conversion, atv, upt, daily in rows:
        row: dict[str, Any] = dict.fromkeys((f.name for f in FEATURES), np.nan)
        row |= {
            "tenant_id": tenant,
            "store_id": store,
            "industry": "cafe",
            "floor_area_m2": 100.0,
            "open_days": 28,
            "capture_rate": capture,
            "conversion_rate": conversion,
            "atv": atv,
            "upt": upt,
            "visitors_per_open_hour": 10.0,
            "daily_net_sales": daily,
            "passersby_per_day": 1000.0,
            "missing": [],
        }
        out.append(row)
    return pd.DataFrame(out)


TINY = _features(
    [
        ("t1", "s1", 0.10, 0.50, 1000.0, 1.0, 50_000.0),
        ("t1", "s2", 0.20, 0.60, 1200.0, 1.2, 60_000.0),
        ("t1", "s3", 0.30, 0.70, 1400.0, 1.4, 70_000.0),
        ("t1", "s4", 0.40, 0.80, 1600.0, 1.6, 80_000.0),
    ]
)


def test_targets_and_uplift_by_hand() -> None:
    params = MlParams(min_group_stores=10)  # 4 stores: one cluster, the whole group
    clusters = cluster_stores(TINY, params).assignments
    assert set(clusters.cluster) == {0}
    t = estimate_targets(TINY, clusters, params, as_of=MON)
    s1 = t[t.store_id == "s1"].set_index("kpi")
    # P75 of (0.1, 0.2, 0.3, 0.4) with linear interpolation = 0.325.
    assert s1.loc["capture_rate", "target"] == pytest.approx(0.325)
    assert s1.loc["capture_rate", "headroom"] == pytest.approx(0.225)
    # ¥50,000/day × (0.325 / 0.1 − 1) = ¥112,500/day.
    assert s1.loc["capture_rate", "uplift_per_day"] == Decimal("112500")
    # conversion: P75 = 0.725 → 50,000 × (0.725/0.5 − 1) = 22,500.
    assert s1.loc["conversion_rate", "uplift_per_day"] == Decimal("22500")
    # ATV: P75 = 1450 → 50,000 × 0.45 = 22,500; UPT: P75 = 1.45 → 22,500.
    assert s1.loc["atv", "uplift_per_day"] == Decimal("22500")
    assert s1.loc["upt", "uplift_per_day"] == Decimal("22500")
    assert s1.loc["capture_rate", "is_primary"] and s1.is_primary.sum() == 1
    # Every tree lever at its target: 50,000 × 3.25 × 1.45 × 1.45 = 341,656.25 → 341,656.
    total = s1.loc["net_sales"]
    assert total.target == pytest.approx(50_000 * 3.25 * 1.45 * 1.45)
    assert total.uplift_per_day == Decimal("291656")
    assert "× (0.325 / 0.1 − 1) = ¥112,500/day" in s1.loc["capture_rate", "explanation"]
    assert json.loads(s1.loc["capture_rate", "peers"]) == {
        "stores": ["s2", "s3", "s4"],
        "other_tenants_stores": 0,
        "n": 4,
    }
    # The best store is at or above every P75: target = actual, no headroom, no lever.
    s4 = t[t.store_id == "s4"].set_index("kpi")
    assert (s4.loc[["capture_rate", "atv"], "headroom"] == 0).all()
    assert not s4.is_primary.any()
    assert s4.loc["net_sales", "uplift_per_day"] == Decimal("0")


def test_quantile_is_configurable_and_missing_kpis_are_explicit() -> None:
    features = TINY.copy()
    features.loc[0, "conversion_rate"] = np.nan  # s1 has no counter
    params = MlParams(min_group_stores=10, target_quantile=0.5)
    t = estimate_targets(features, cluster_stores(features, params).assignments, params, as_of=MON)
    s1 = t[t.store_id == "s1"].set_index("kpi")
    assert s1.loc["capture_rate", "target"] == pytest.approx(0.25)
    conv = s1.loc["conversion_rate"]
    assert np.isnan(conv.actual) and conv.target == pytest.approx(0.7)
    assert conv.uplift_per_day is None and "unknown" in conv.explanation


def test_uplift_refuses_a_non_positive_factor() -> None:
    assert uplift(1000.0, 0.5, 0.6) == pytest.approx(200.0)
    assert uplift(1000.0, 0.5, 0.4) == 0.0
    with pytest.raises(BadInput, match="positive"):
        uplift(1000.0, 0.0, 0.5)


def test_descriptions_name_the_extreme_features() -> None:
    assert describe_centre({"visitors_per_open_hour": 1.2, "conversion_rate": -1.7}) == (
        "very low conversion, high traffic"
    )
    assert describe_centre({"atv": 0.1}) == "typical"


def test_stores_without_a_counter_are_clustered_on_what_they_have() -> None:
    rng = np.random.default_rng(0)
    rows = [
        ("t1", f"s{i:02d}", *(rng.lognormal(np.log(v), 0.05) for v in base), 50_000.0)
        for i, base in enumerate([(0.1, 0.5, 1000, 1.2)] * 6 + [(0.3, 0.8, 2000, 2.0)] * 6)
    ]
    features = _features(rows)  # type: ignore[arg-type]
    features.loc[[0, 6], ["capture_rate", "conversion_rate", "visitors_per_open_hour"]] = np.nan
    levers = ("visitors_per_open_hour", "capture_rate", "conversion_rate", "atv", "upt")
    params = MlParams(k_max=4, cluster_features=levers)
    a = cluster_stores(features, params).assignments.set_index("store_id")
    assert a.loc["s00", "imputed"] == ["visitors_per_open_hour", "capture_rate", "conversion_rate"]
    assert a.loc["s01", "imputed"] == []
    # ATV and UPT still place the counter-less stores with their kind.
    assert a.loc["s00", "cluster"] == a.loc["s03", "cluster"] != a.loc["s06", "cluster"]
    assert a.loc["s06", "cluster"] == a.loc["s09", "cluster"]


def test_tenants_are_clustered_apart_unless_both_share() -> None:
    default = MlParams()
    assert group_key("t1", "cafe", default) != group_key("t2", "cafe", default)
    shared = MlParams(scope="industry", sharing_tenants=("t1", "t2"), min_group_stores=10)
    assert group_key("t1", "cafe", shared) == group_key("t2", "cafe", shared) == "industry/cafe"
    assert group_key("t3", "cafe", shared) == "t3/cafe"  # t3 did not opt in
    two = pd.concat([TINY, TINY.assign(tenant_id="t2")], ignore_index=True)
    a = cluster_stores(two, MlParams(min_group_stores=10)).assignments
    assert set(a[a.tenant_id == "t1"].group_id) == {"t1/cafe"}
    # Across tenants, another tenant's peers are counted, never named.
    t = estimate_targets(two, cluster_stores(two, shared).assignments, shared, as_of=MON)
    peers = [json.loads(p) for p in t[(t.tenant_id == "t1") & (t.kpi == "atv")].peers]
    assert all(
        p["other_tenants_stores"] == 4 and set(p["stores"]) <= {"s1", "s2", "s3", "s4"}
        for p in peers
    )


def _bench_features(stores_per_tenant: dict[str, int]) -> pd.DataFrame:
    rows = [
        (tenant, f"{tenant}-s{i}", 0.1 + 0.01 * i, 0.5, 1000.0 + 100 * i, 1.5, 1.0)
        for tenant, n in stores_per_tenant.items()
        for i in range(n)
    ]
    return _features(rows)


def _bench(features: pd.DataFrame) -> pd.DataFrame:
    out = industry_benchmarks(
        features, MlParams(), period="2026-W42", period_start=MON - timedelta(days=6),
        period_end=MON,
    )  # fmt: skip
    return out[(out.kpi == "atv") & (out.size_band == "all")].iloc[0]


def test_benchmarks_are_published_only_over_ten_stores_none_dominating() -> None:
    reason = suppressed_reason(MlParams())
    few = _bench(_bench_features({"t1": 5, "t2": 4}))
    assert not few.published and few.suppressed_reason == reason  # no count in the reason
    assert few.p25 is None and few.stores_band is None and few.tenants_band is None
    one = _bench(_bench_features({"t1": 12}))
    assert not one.published and one.suppressed_reason == reason
    dominated = _bench(_bench_features({"t1": 8, "t2": 4}))  # t1 sees only 4 others
    assert not dominated.published and dominated.suppressed_reason == reason
    ok = _bench(_bench_features({"t1": 6, "t2": 5}))
    values = np.array([1000.0 + 100 * i for i in range(6)] + [1000.0 + 100 * i for i in range(5)])
    assert ok.published and (ok.stores_band, ok.tenants_band) == ("10-19", "1-4")
    exact = np.quantile(values, (0.25, 0.5, 0.75))
    iqr = exact[2] - exact[0]
    noisy = np.array([ok.p25, ok["median"], ok.p75])
    assert ok.p25 <= ok["median"] <= ok.p75
    assert np.all(np.abs(noisy - exact) < 8 * 0.1 * iqr + 10)  # near, not equal
    assert not set(noisy) & set(exact)  # the exact quartiles are not published
    assert all(float(f"{v:.3g}") == v for v in noisy)  # rounded to 3 digits
    assert "mean" not in ok.index and "stores" not in ok.index
    assert "tenant_id" not in ok.index and "store_id" not in ok.index
    # The same inputs give the same numbers (re-runs cannot average the noise away).
    again = _bench(_bench_features({"t1": 6, "t2": 5}))
    assert (again.p25, again["median"], again.p75) == (ok.p25, ok["median"], ok.p75)


def test_every_band_is_listed_for_every_industry() -> None:
    out = industry_benchmarks(
        _bench_features({"t1": 6, "t2": 5}), MlParams(), period="2026-W42",
        period_start=MON - timedelta(days=6), period_end=MON,
    )  # fmt: skip
    assert set(out.size_band) == {"all", "S", "M", "L", "XL"}
    assert len(out) == 5 * len(BENCHMARK_KPIS)


def test_count_bands() -> None:
    assert [count_band(n) for n in (1, 4, 5, 10, 19, 20, 99, 100, 5000)] == [
        "1-4", "1-4", "5-9", "10-19", "10-19", "20-49", "50-99", "100+", "100+",
    ]  # fmt: skip


def test_size_bands() -> None:
    assert [size_band(a, (100, 300)) for a in (50, 100, 299, 300, None)] == [
        "S", "M", "M", "L", None,
    ]  # fmt: skip


def test_params_and_tables_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="k_max"):
        MlParams(k_min=5, k_max=3)
    with pytest.raises(ValueError, match="unknown cluster feature"):
        MlParams(cluster_features=("footfall",))
    with pytest.raises(BadInput, match="lack column"):
        cluster_stores(TINY.drop(columns=["atv"]))
    with pytest.raises(BadInput, match="twice"):
        cluster_stores(pd.concat([TINY, TINY]))
    with pytest.raises(BadInput, match="unknown ML mart"):
        to_arrow(TINY, "mart_nope")


def test_definitions_register_the_ml_assets_and_weekly_schedule() -> None:
    from tenpo.pipelines.definitions import defs
    from tenpo.pipelines.ml import DATAMART_ML_KEY, ML_ASSET_KEYS, ML_JOB

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {*ML_ASSET_KEYS, DATAMART_ML_KEY} <= keys
    schedule = defs.resolve_schedule_def("ml_weekly_schedule")
    assert schedule.cron_schedule == "0 3 * * 1" and schedule.job_name == ML_JOB


def test_no_store_gives_empty_results_not_an_error() -> None:
    empty = store_features(pd.DataFrame(columns=TINY_DAILY_COLUMNS), [], end=MON)
    result = cluster_stores(empty)
    assert result.assignments.empty and "cluster_id" in result.assignments.columns
    targets = estimate_targets(empty, result.assignments, as_of=MON)
    assert targets.empty and "uplift_per_day" in targets.columns
    assert to_arrow(targets, "mart_store_targets").num_rows == 0


TINY_DAILY_COLUMNS = [
    "tenant_id", "store_id", "business_date", "net_sales", "transactions", "units",
    "visitors", "passersby", "has_pos", "has_counter",
]  # fmt: skip
