"""Simulated chains turned into store features straight from the simulator's truth."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tenpo.simulate import Chain, daily_truth
from tenpo.simulate.daily import StoreDays


def truth_daily(chain: Chain) -> pd.DataFrame:
    """mart_store_daily-shaped rows from the simulator's true daily KPIs (store_id = code)."""
    return pd.DataFrame(
        [
            {
                "tenant_id": r.tenant_id,
                "store_id": r.store_code,
                "business_date": r.business_date,
                "net_sales": r.net_sales,
                "transactions": r.transactions,
                "units": r.units,
                "visitors": r.visitors,
                "passersby": r.passersby,
                "has_pos": True,
                "has_counter": True,
                "unique_visitors": r.unique_visitors,
                "repeat_visitors": r.repeat_visitors,
            }
            for r in daily_truth(chain)
        ]
    )


def master(chain: Chain | StoreDays) -> list[dict[str, Any]]:
    """The store list as the control plane holds it (store_id = code)."""
    return [
        {
            "tenant_id": s.tenant_id,
            "store_id": s.code,
            "industry": s.industry,
            "floor_area_m2": s.floor_area_m2,
            "opening_hours": {d: list(h) if h else None for d, h in s.opening_hours.items()},
        }
        for s in chain.stores
    ]
