"""Simulated chains turned into store features straight from the simulator's truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from tenpo.ml import store_features
from tenpo.simulate import Chain, SimConfig, daily_truth, simulate_chain


@dataclass
class SimFeatures:
    """A simulated chain and the features of its stores."""

    chain: Chain
    features: pd.DataFrame

    def archetype(self, tenant_id: str, store_id: str) -> str:
        return self.chain.store(tenant_id, store_id).archetype

    def potential(self, tenant_id: str, store_id: str) -> float:
        return self.chain.store(tenant_id, store_id).potential


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


def master(chain: Chain) -> list[dict[str, Any]]:
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


@pytest.fixture(scope="session")
def planted() -> SimFeatures:
    """80 supermarkets of one tenant over 4 weeks, every store with a counter and a camera.

    Why this size: the simulator draws each store's capture, conversion and basket with
    8-20 % log-normal noise around its archetype, so the archetypes overlap on sales and
    traffic alone (ARI ≈ 0.6-0.8 whatever the algorithm); the repeat rate seen by the
    cameras (regulars) separates them, and needs a few weeks to build up.
    """
    config = SimConfig(
        seed=7,
        tenants=1,
        stores=80,
        days=28,
        industries=("supermarket",),
        traffic_scale=0.05,
        rgb_camera_share=1.0,
        tof_camera_share=0.0,
        move_register=False,
    )
    chain = simulate_chain(config)
    features = store_features(truth_daily(chain), master(chain), end=chain.dates[-1], weeks=4)
    return SimFeatures(chain, features)
