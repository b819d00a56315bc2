"""Planted initiatives (施策): measures with a known effect, for the effect estimator to find.

Each tenant gets ``initiatives_per_tenant`` initiatives. An initiative runs at 1-3 stores of
one industry for 7-28 days, after a pre-period of at least half the simulation (≤ 28 days),
and lifts one KPI by a relative ``true_effect`` of 3-12 %: net sales and visitors through
the capture rate, the conversion rate, or ATV through the lines per basket. A store is in at
most one initiative, and at least half of a tenant's stores are in none (controls).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from tenpo.simulate.config import SimConfig
from tenpo.simulate.model import INITIATIVE_KPIS, Initiative, Store

__all__ = ["MIN_DAYS", "lever_lifts", "plant_initiatives"]

MIN_DAYS = 14
"""Fewer simulated days than this: no initiative (no room for a pre-period)."""

_KINDS = {
    "net_sales": ("promotion", "店頭プロモーション"),
    "visitors": ("signage", "店頭サイネージ"),
    "conversion_rate": ("staffing", "接客強化"),
    "atv": ("cross_sell", "セット販売"),
}
_LEVER = {"net_sales": "capture", "visitors": "capture", "conversion_rate": "conversion"}


def plant_initiatives(
    config: SimConfig, rng: np.random.Generator, stores: list[Store], dates: list[date]
) -> list[Initiative]:
    """Initiatives of one tenant (``stores`` are its stores), deterministic in ``rng``."""
    if len(dates) < MIN_DAYS or not stores or config.initiatives_per_tenant == 0:
        return []
    pre = min(28, len(dates) // 2)
    longest = min(28, len(dates) - pre)
    free = [s for s in stores]
    budget = len(stores) // 2  # stores that may be treated; the rest stay controls
    out: list[Initiative] = []
    for k in range(config.initiatives_per_tenant):
        kpi = INITIATIVE_KPIS[int(rng.integers(0, len(INITIATIVE_KPIS)))]
        effect = round(float(rng.uniform(0.03, 0.12)), 3)
        length = int(rng.integers(7, longest + 1))
        first = int(rng.integers(pre, len(dates) - length + 1))
        size = int(rng.integers(1, 4))
        if not free or budget <= 0:
            break
        anchor = free[int(rng.integers(0, len(free)))]
        eligible = [
            s
            for s in free
            if s.industry == anchor.industry
            and (kpi != "conversion_rate" or s.conversion_rate * (1 + effect) <= 0.97)
        ]
        if not eligible:
            continue
        picked = [eligible[i] for i in rng.permutation(len(eligible))[: min(size, budget)]]
        budget -= len(picked)
        free = [s for s in free if s not in picked]
        kind, name = _KINDS[kpi]
        out.append(
            Initiative(
                tenant_id=stores[0].tenant_id,
                initiative_id=f"{stores[0].tenant_id}-i{k + 1:03d}",
                name=f"{name} {k + 1}",
                kind=kind,
                store_codes=tuple(sorted(s.code for s in picked)),
                start=dates[first],
                end=dates[first] + timedelta(days=length - 1),
                kpi=kpi,
                true_effect=effect,
            )
        )
    return out


def lever_lifts(
    initiatives: list[Initiative], tenant_id: str, store_code: str, day: date
) -> dict[str, float]:
    """Multipliers of capture, conversion and basket lines at a tenant's store on a day
    (store codes repeat across tenants: an initiative lifts its own tenant's stores only)."""
    lifts = {"capture": 1.0, "conversion": 1.0, "basket": 1.0}
    for initiative in initiatives:
        if initiative.tenant_id != tenant_id:
            continue
        lift = initiative.lift(store_code, day)
        if lift != 1.0:
            lever = _LEVER.get(initiative.kpi, "basket")
            lifts[lever] *= lift
    return lifts
