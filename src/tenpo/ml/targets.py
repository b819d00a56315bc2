"""Targets with growth headroom, judged against each store's peers, through the sales tree.

**Cluster on context, compare on levers.** A store's peers are the stores of similar
*context* — what it cannot change: street traffic, weekly and hourly demand shape (and,
optionally, floor area and opening hours; ``MlParams.cluster_features``) — never of similar
performance. Clustering on the levers themselves made an underperformer's peers other
underperformers, so its headroom vanished (Spearman −0.075 against the truth). Within a
context cluster, what separates stores is how well each lever is run, so the peers' P75 of
a lever is what top-quartile execution reaches there. Back-test on the simulator (240
stores with planted context and execution, ``tests/ml/test_recovery.py``): Spearman of the
relative headroom against the truth 0.87 for net sales, 0.84-0.91 per lever.

For a store and a KPI, the peers are the stores of its cluster that have the KPI (the whole
group when fewer than ``min_peers`` do, or always with ``target_peers="group"``). The target
is the peers' ``target_quantile`` (P75) when the store is below it, else the store's own
value (it is already there): headroom = target − actual ≥ 0.

The sales tree (ARCHITECTURE.md) turns a KPI's headroom into money:
net sales = passers-by × capture rate × conversion rate × ATV, and ATV = UPT × price per unit.
Reaching the target of one lever, the others unchanged, multiplies sales by target/actual:
uplift per day = daily net sales × (target / actual − 1). The ``net_sales`` row combines the
three tree levers (capture × conversion × ATV; UPT is inside ATV, so not counted twice).
The primary lever is the KPI with the largest uplift. Every row carries its peers and the
figures behind it (``explanation``, ``peers``), so a target can be checked by hand.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

from tenpo.core.errors import BadInput
from tenpo.ml.params import MlParams

__all__ = ["LEVERS", "TREE_LEVERS", "Lever", "estimate_targets", "uplift"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lever:
    """A KPI a store can act on, and how it reads in an explanation."""

    kpi: str
    label: str
    fmt: str


LEVERS: tuple[Lever, ...] = (
    Lever("capture_rate", "capture rate", "{:.1%}"),
    Lever("conversion_rate", "conversion rate", "{:.1%}"),
    Lever("atv", "ATV", "¥{:,.0f}"),
    Lever("upt", "UPT", "{:.2f}"),
)
"""KPIs that get a target, in output order."""

TREE_LEVERS = ("capture_rate", "conversion_rate", "atv")
"""The multiplicative factors of net sales below passers-by."""

SALES_KPI = "net_sales"
_COLUMNS = (
    "tenant_id store_id business_date kpi cluster_id actual target headroom quantile "
    "peer_basis peers_n peer_p25 peer_median peer_target uplift_per_day uplift_share "
    "is_primary explanation peers"
).split()
_YEN = Decimal("1")


def uplift(daily_sales: float, actual: float, target: float) -> float:
    """Sales per day gained when a tree factor moves from ``actual`` to ``target``.

    daily_sales × (target / actual − 1); 0 when the store is at or above its target.
    ``BadInput`` for a non-positive actual value (a ratio of the tree cannot be 0 or below).
    """
    if not actual > 0:
        raise BadInput(f"a sales-tree factor must be positive to scale sales, got {actual}")
    return max(0.0, daily_sales * (target / actual - 1.0))


def _yen(value: float | None) -> Decimal | None:
    if value is None or not math.isfinite(value):
        return None
    return Decimal(str(value)).quantize(_YEN, rounding=ROUND_HALF_UP)


def _fmt(kpi: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    lever = next((lv for lv in LEVERS if lv.kpi == kpi), None)
    return lever.fmt.format(value) if lever else f"¥{value:,.0f}"


def estimate_targets(
    features: pd.DataFrame,
    assignments: pd.DataFrame,
    params: MlParams | None = None,
    *,
    as_of: date,
) -> pd.DataFrame:
    """One row per (store, KPI of LEVERS) plus a ``net_sales`` row per store.

    ``features`` come from :func:`store_features`, ``assignments`` from
    :func:`cluster_stores`. Columns: tenant_id, store_id, business_date (``as_of``), kpi,
    cluster_id, actual, target, headroom, quantile, peer_basis (cluster | group), peers_n,
    peer_p25, peer_median, peer_target, uplift_per_day (Decimal yen), uplift_share (of daily
    sales), is_primary, explanation, peers (JSON: the tenant's own peer stores, and how
    many peers belong to other tenants).
    """
    params = params or MlParams()
    merged = features.merge(
        assignments[["tenant_id", "store_id", "group_id", "cluster_id"]],
        on=["tenant_id", "store_id"],
        how="inner",
        validate="one_to_one",
    )
    if len(merged) != len(features):
        raise BadInput(
            f"{len(features) - len(merged)} store(s) with features have no cluster assignment"
        )
    rows: list[dict[str, Any]] = []
    index = _PeerIndex(merged, params)
    for _, store in merged.sort_values(["tenant_id", "store_id"]).iterrows():
        rows.extend(_store_targets(store, index, params, as_of))
    out = pd.DataFrame(rows, columns=_COLUMNS)
    log.info("targets: %d rows for %d stores", len(out), len(merged))
    return out


@dataclass(frozen=True)
class _Peers:
    """A peer set of one (group, cluster, KPI) with its statistics, computed once."""

    basis: str
    n: int
    p25: float
    median: float
    target: float
    by_tenant: dict[str, list[str]]  # tenant → its peer store ids


class _PeerIndex:
    """Peer sets per (group, cluster, KPI): computed once per cluster, not once per store."""

    def __init__(self, merged: pd.DataFrame, params: MlParams) -> None:
        self._groups = {str(g): frame for g, frame in merged.groupby("group_id")}
        self._params = params
        self._cache: dict[tuple[str, str, str], _Peers] = {}

    def get(self, store: pd.Series, kpi: str) -> _Peers:
        """The peers with a value for ``kpi`` of ``store``'s cluster (or group)."""
        key = (str(store["group_id"]), str(store["cluster_id"]), kpi)
        if key not in self._cache:
            group = self._groups[key[0]]
            group = group[group[kpi].notna()]
            cluster = group[group["cluster_id"] == key[1]]
            peers, basis = group, "group"
            if self._params.target_peers == "cluster" and len(cluster) >= self._params.min_peers:
                peers, basis = cluster, "cluster"
            values = peers[kpi].astype(float).to_numpy()
            q = (0.25, 0.5, self._params.target_quantile)
            p25, median, target = (
                (float(v) for v in np.quantile(values, q)) if len(values) else (np.nan,) * 3
            )
            by_tenant: dict[str, list[str]] = {}
            for tenant, store_id in zip(peers["tenant_id"], peers["store_id"], strict=True):
                by_tenant.setdefault(str(tenant), []).append(str(store_id))
            self._cache[key] = _Peers(basis, len(peers), p25, median, target, by_tenant)
        return self._cache[key]


def _store_targets(
    store: pd.Series, index: _PeerIndex, params: MlParams, as_of: date
) -> list[dict[str, Any]]:
    daily = float(store["daily_net_sales"])
    q = params.target_quantile
    rows: list[dict[str, Any]] = []
    factors: dict[str, tuple[float, float]] = {}
    for lever in LEVERS:
        peers = index.get(store, lever.kpi)
        if peers.n < 2:
            continue  # nobody to compare with
        basis, p25, median, peer_target = peers.basis, peers.p25, peers.median, peers.target
        actual = store[lever.kpi]
        actual = None if pd.isna(actual) else float(actual)
        own = peers.by_tenant.get(str(store["tenant_id"]), [])
        peer_info = {
            "stores": sorted(s for s in own if s != store["store_id"]),
            "other_tenants_stores": peers.n - len(own),
            "n": peers.n,
        }
        if actual is None or actual <= 0:
            target, headroom, gain = peer_target, None, None
            why = (
                f"{lever.label} unknown at this store (missing source); peers' "
                f"P{round(q * 100)} is {_fmt(lever.kpi, peer_target)}"
            )
        else:
            target = max(actual, peer_target)
            headroom = target - actual
            gain = uplift(daily, actual, target)
            if lever.kpi in TREE_LEVERS:
                factors[lever.kpi] = (actual, target)
            why = (
                f"{lever.label} {_fmt(lever.kpi, actual)} vs P{round(q * 100)} "
                f"{_fmt(lever.kpi, peer_target)} of {peers.n} {basis} peers"
                f" (median {_fmt(lever.kpi, median)}): "
                + (
                    f"¥{daily:,.0f}/day × ({target:.4g} / {actual:.4g} − 1) = ¥{gain:,.0f}/day"
                    if headroom > 0
                    else "already at or above target"
                )
            )
        rows.append(
            {
                "tenant_id": store["tenant_id"],
                "store_id": store["store_id"],
                "business_date": as_of,
                "kpi": lever.kpi,
                "cluster_id": store["cluster_id"],
                "actual": actual,
                "target": target,
                "headroom": headroom,
                "quantile": q,
                "peer_basis": basis,
                "peers_n": peers.n,
                "peer_p25": p25,
                "peer_median": median,
                "peer_target": peer_target,
                "uplift_per_day": _yen(gain),
                "uplift_share": None if gain is None or daily <= 0 else gain / daily,
                "is_primary": False,
                "explanation": why,
                "peers": json.dumps(peer_info, ensure_ascii=False),
            }
        )
    gains = [(r["uplift_per_day"], r["kpi"]) for r in rows if r["uplift_per_day"]]
    if gains:
        best = max(gains)[1]
        for r in rows:
            r["is_primary"] = r["kpi"] == best
    combined = math.prod(t / a for a, t in factors.values()) if factors else 1.0
    total = daily * (combined - 1.0)
    rows.append(
        {
            "tenant_id": store["tenant_id"],
            "store_id": store["store_id"],
            "business_date": as_of,
            "kpi": SALES_KPI,
            "cluster_id": store["cluster_id"],
            "actual": daily,
            "target": daily * combined,
            "headroom": total,
            "quantile": q,
            "peer_basis": rows[0]["peer_basis"] if rows else "group",
            "peers_n": max((r["peers_n"] for r in rows), default=0),
            "peer_p25": None,
            "peer_median": None,
            "peer_target": None,
            "uplift_per_day": _yen(total),
            "uplift_share": total / daily if daily > 0 else None,
            "is_primary": False,
            "explanation": (
                f"net sales/day ¥{daily:,.0f} × "
                + " × ".join(f"({t:.4g}/{a:.4g})" for a, t in factors.values())
                + f" = ¥{daily * combined:,.0f} with every tree lever "
                + f"({', '.join(factors) or 'none known'}) at its target"
            ),
            "peers": json.dumps({}),
        }
    )
    return rows
