"""Forecast accuracy: rolling-origin back-test on the store-day simulator.

Eight stores (two tenants, four industries) over two years with weekly, yearly and holiday
effects, one-off demand events, counter gaps and lost store-days; three origins 14 days
apart, each forecasting 90 days (daily) and 14 days (hourly) of visitors, transactions and
net sales. The baseline, measured in the same run on the same points, is the seasonal-naive
forecast (same weekday last week; same local hour last week). ``value`` is the worst MASE of
the forecast over the KPIs and grains and ``baseline`` the seasonal-naive MASE of that same
KPI; the target is 15 % better (ratio ≥ 1/0.85), with every 80 % and 95 % interval's coverage
within 5 points of nominal.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

from bench._common import RESULTS, report
from tenpo.ml.forecast import LEVELS, backtest
from tenpo.simulate.config import SimConfig
from tenpo.simulate.daily import simulate_store_days, store_day_marts

CONFIG = SimConfig(
    tenants=2,
    stores=8,
    days=730,
    start_date=date(2024, 12, 1),
    initiatives_per_tenant=0,
    yearly_amplitude=0.15,
    outlier_rate=0.02,
    device_gap_rate=0.03,
    outage_rate=0.02,
)


def main() -> None:
    """Run the back-test and write bench/results/forecast.json."""
    daily, hourly = store_day_marts(simulate_store_days(CONFIG))
    end = CONFIG.start_date + timedelta(days=CONFIG.days - 1)
    origins = [end - timedelta(days=90 + 14 * i) for i in range(3)]
    started = time.perf_counter()
    scores = backtest(daily, hourly, origins, daily_horizon=90, hourly_horizon=14)
    seconds = time.perf_counter() - started
    per_kpi = {
        f"{s.kpi}_{s.grain}": {
            "points": s.points,
            "mase": round(s.mase, 3),
            "mase_seasonal_naive": round(s.mase_naive, 3),
            "relative_mase": round(s.relative_mase, 3),
            "mae_ratio": round(s.mae / s.mae_naive, 3),
            **{f"coverage_{lvl}": round(s.coverage[lvl], 3) for lvl in LEVELS},
        }
        for s in scores
    }
    coverage_ok = all(abs(s.coverage[lvl] - lvl / 100) <= 0.05 for s in scores for lvl in LEVELS)
    worst = max(scores, key=lambda s: s.relative_mase)
    report(
        "forecast",
        worst.mase,
        "MASE",
        worst.mase_naive,
        round(1 / 0.85, 3),
        higher_is_better=False,
        worst=f"{worst.kpi}_{worst.grain}",
        coverage_within_5_points=coverage_ok,
        backtest_seconds=round(seconds, 1),
        stores=8,
        origins=[d.isoformat() for d in origins],
        kpis=per_kpi,
    )
    if not coverage_ok:  # the figure alone does not meet the target then
        path = RESULTS / "forecast.json"
        result = json.loads(path.read_text())
        result["met"] = False
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
