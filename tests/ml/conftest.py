"""Simulated chains as the ML code reads them, straight from the simulator's truth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from tenpo.simulate import Chain
from tenpo.simulate.daily import StoreDays
from tenpo.simulate.truth import DailyTruth

TRUTH_KPIS = ("net_sales", "transactions", "units", "visitors", "passersby")


def truth_frame(
    rows: Iterable[DailyTruth], kpis: Sequence[str] = TRUTH_KPIS, *, flags: bool = True
) -> pd.DataFrame:
    """mart_store_daily-shaped rows of true daily KPIs (store_id = code): the ``kpis`` columns,
    and ``has_pos``/``has_counter`` (always true: the truth misses nothing) when ``flags``."""
    present = {"has_pos": True, "has_counter": True} if flags else {}
    return pd.DataFrame(
        [
            {
                "tenant_id": r.tenant_id,
                "store_id": r.store_code,
                "business_date": r.business_date,
                **{k: getattr(r, k) for k in kpis},
                **present,
            }
            for r in rows
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
