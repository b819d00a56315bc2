"""The marts equal the simulator's ground truth on a small simulated chain.

The chain goes through the real flow (gateway → streamer → Dagster, via ``run_demo``); the
marts are then compared with ``truth/daily_kpis.csv`` store-day by store-day, including the
PersonID KPIs of camera stores (unique and repeat visitors, median dwell). Staff are not
enrolled here: the demo relies on the dwell threshold (a shift is hours, a visit is not).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal

import pytest

from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.flow import run_demo
from tenpo.warehouse import open_warehouse

pytestmark = pytest.mark.slow


def test_marts_equal_ground_truth(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo's ML step is tested in tests/ml; this test is about the KPI marts only.
    monkeypatch.setattr("tenpo.pipelines.run.materialize_ml", lambda *a, **k: None)
    result = run_demo(settings, stores=4, days=4, seed=3, serve=False)
    assert result.mismatches == []
    root = settings.model_copy(update={"data_dir": settings.data_dir / "demo"})
    control = ControlPlane.open(root.control_db_url)
    codes = {
        (t.tenant_id, s.store_id): s.code
        for t in control.list_tenants()
        for s in control.list_stores(t.tenant_id)
    }
    control.dispose()
    with (root.data_dir / "sim" / "truth" / "daily_kpis.csv").open(encoding="utf-8") as fh:
        truth = {
            (r["tenant_id"], r["store_code"], r["business_date"]): r for r in csv.DictReader(fh)
        }
    with open_warehouse(root) as wh:
        daily = wh.to_arrow(wh.table("mart_store_daily")).to_pylist()
        hourly = wh.to_arrow(wh.table("mart_store_hourly")).to_pylist()
    assert len(daily) == len(truth)

    def opt(value: str) -> int | None:
        return int(value) if value else None

    camera_days = 0
    for row in daily:
        key = (row["tenant_id"], codes[(row["tenant_id"], row["store_id"])])
        t = truth[(*key, row["business_date"].isoformat())]
        assert row["net_sales"] == Decimal(t["net_sales"]), key
        assert row["net_sales_incl_tax"] == Decimal(t["net_sales_incl_tax"]), key
        assert (row["transactions"], row["units"]) == (int(t["transactions"]), int(t["units"]))
        assert row["visitors"] == int(t["visitors_counted"]), key
        assert row["passersby"] == int(t["passersby_counted"]), key
        assert row["unique_visitors"] == opt(t["unique_visitors"]), key
        assert row["repeat_visitors"] == opt(t["repeat_visitors"]), key
        median = row["dwell_time_median_s"]
        want = Decimal(t["median_dwell_s"]) if t["median_dwell_s"] else None
        assert (None if median is None else Decimal(str(median))) == want, key
        camera_days += row["unique_visitors"] is not None
    assert camera_days >= 4  # at least one camera store per tenant, every day
    assert any(r["repeat_visitors"] for r in daily)
    # The hours of each store-day add up to the day.
    sums: dict[tuple[str, str, object], list[int]] = defaultdict(lambda: [0, 0])
    for h in hourly:
        s = sums[(h["tenant_id"], h["store_id"], h["business_date"])]
        s[0] += h["transactions"] or 0
        s[1] += h["visitors"] or 0
    for row in daily:
        k = (row["tenant_id"], row["store_id"], row["business_date"])
        assert sums[k] == [row["transactions"], row["visitors"]], k
