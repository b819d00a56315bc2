"""Read API routes of the ML marts: a store's targets (own tenant) and industry benchmarks.

Thin wiring of :mod:`tenpo.datamart.ml` to HTTP, with the read API's auth (``Reader``) and
problem responses. Benchmarks are aggregates only: no tenant or store is ever named.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from tenpo.api._problems import problem_doc
from tenpo.api._routes import StoreId
from tenpo.api.deps import READER_ERRORS, Datamart, Reader
from tenpo.api.models import Money
from tenpo.core.errors import BadInput
from tenpo.datamart.ml import read_benchmarks, store_targets
from tenpo.datamart.read import visible_store

__all__ = ["ml_router"]

_PERIOD = re.compile(r"^\d{4}-W\d{2}$")


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cluster(_Public):
    """The store's cluster: comparable stores of its tenant and industry."""

    cluster_id: str = Field(description="Group and cluster number, e.g. `t1/cafe#0`.")
    description: str = Field(description="What sets the cluster apart, from centre z-scores.")
    k: int = Field(description="Clusters in the store's group (chosen by silhouette).")
    silhouette: float | None = Field(description="Silhouette of the chosen clustering.")
    features: list[str] = Field(description="Features the group was clustered on.")
    imputed: list[str] = Field(description="Features this store lacked (group median used).")


class PeerInfo(_Public):
    """Who the target was judged against."""

    stores: list[str] = Field(
        description="The peer stores of the caller's tenant that the caller may read (ids)."
    )
    other_tenants_stores: int = Field(description="Peers of other tenants (counted, not named).")
    n: int = Field(description="Peers with a value for this KPI.")


class Target(_Public):
    """One KPI's target with its headroom and what reaching it is worth."""

    kpi: str = Field(description="`capture_rate`, `conversion_rate`, `atv`, `upt` or `net_sales`.")
    actual: float | None = Field(description="The store's value over the window (null: no source).")
    target: float | None = Field(
        description="max(actual, peers' quantile); null, like every peer figure, when the "
        "peers are fewer than 5 and not all stores the caller may read."
    )
    headroom: float | None = Field(description="target − actual.")
    quantile: float = Field(description="Peer quantile used (0.75 = P75).")
    peer_basis: str = Field(description="`cluster`, or `group` when the cluster is too small.")
    peers_n: int
    peer_p25: float | None
    peer_median: float | None
    peer_target: float | None = Field(description="The peers' quantile value.")
    uplift_per_day: Money | None = Field(description="Net sales per day gained at the target.")
    uplift_share: float | None = Field(description="Uplift as a share of current daily sales.")
    is_primary: bool = Field(description="The lever with the largest uplift.")
    explanation: str = Field(description="The figures behind the target, in words.")
    peers: PeerInfo | None = None


class StoreTargets(_Public):
    """A store's latest targets (empty until the ML assets have run)."""

    store_id: str
    as_of: date | None = Field(description="Last business date of the feature window.")
    cluster: Cluster | None
    primary_lever: str | None
    items: list[Target]


class Benchmark(_Public):
    """A KPI's distribution over an industry's stores (statistics null when suppressed)."""

    industry: str
    size_band: str = Field(description="`all`, or S/M/L/XL by floor area.")
    kpi: str
    period_start: date
    period_end: date
    published: bool = Field(
        description="False below the anonymity threshold (≥10 stores of ≥2 tenants, ≥5 of "
        "them outside any one tenant); a suppressed cell has no statistics and no counts."
    )
    suppressed_reason: str | None = Field(description="One fixed text for every suppressed cell.")
    stores_band: str | None = Field(description="Stores in the cell as a band, e.g. `10-19`.")
    tenants_band: str | None = Field(description="Tenants in the cell as a band, e.g. `1-4`.")
    p25: float | None = Field(description="25th percentile, noised and rounded (3 digits).")
    median: float | None = Field(description="Median, noised and rounded.")
    p75: float | None = Field(description="75th percentile, noised and rounded.")


class BenchmarkPage(_Public):
    """Benchmarks of one period."""

    period: str | None = Field(description="ISO week of the window's last day, `2026-W43`.")
    items: list[Benchmark]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


ml_router = APIRouter()


@ml_router.get(
    "/v1/stores/{store_id}/targets",
    response_model=StoreTargets,
    responses=READER_ERRORS | {404: problem_doc("No such store for the caller's tenant.")},
    tags=["ml"],
)
def targets(caller: Reader, engine: Datamart, store_id: StoreId) -> StoreTargets:
    """The store's KPI targets against its peers, headroom and sales uplift per lever."""
    visible_store(engine, caller, store_id)  # 404 for other tenants' (or unassigned) stores
    cluster, rows = store_targets(engine, caller.tenant_id, store_id, caller.store_ids)
    items = [
        Target(
            kpi=r.kpi,
            actual=r.actual,
            target=r.target,
            headroom=r.headroom,
            quantile=r.quantile,
            peer_basis=r.peer_basis,
            peers_n=r.peers_n,
            peer_p25=r.peer_p25,
            peer_median=r.peer_median,
            peer_target=r.peer_target,
            uplift_per_day=_money(r.uplift_per_day),
            uplift_share=r.uplift_share,
            is_primary=r.is_primary,
            explanation=r.explanation,
            peers=PeerInfo(**r.peers) if r.peers else None,
        )
        for r in rows
    ]
    return StoreTargets(
        store_id=store_id,
        as_of=cluster.business_date if cluster else None,
        cluster=None
        if cluster is None
        else Cluster(
            cluster_id=cluster.cluster_id,
            description=cluster.description,
            k=cluster.k,
            silhouette=cluster.silhouette,
            features=cluster.features,
            imputed=cluster.imputed,
        ),
        primary_lever=next((t.kpi for t in items if t.is_primary), None),
        items=items,
    )


@ml_router.get(
    "/v1/benchmarks",
    response_model=BenchmarkPage,
    responses=READER_ERRORS | {422: problem_doc("Bad period (expected YYYY-Www).")},
    tags=["ml"],
)
def benchmarks(
    _caller: Reader,
    engine: Datamart,
    industry: Annotated[str | None, Query(max_length=64, description="Only this industry.")] = None,
    period: Annotated[
        str | None,
        Query(
            description="ISO week `YYYY-Www` (default: the latest).",
            json_schema_extra={"pattern": _PERIOD.pattern},  # checked below, with a message
        ),
    ] = None,
) -> BenchmarkPage:
    """Industry benchmarks per size band and KPI: noisy, rounded quartiles over ≥10 stores of
    ≥2 tenants (docs/security.md); no store or tenant is named or counted exactly."""
    if period is not None and not _PERIOD.match(period):
        raise BadInput(
            f"query parameter 'period' must be an ISO week like 2026-W43, got {period!r}",
            param="period",
        )
    found, rows = read_benchmarks(engine, industry=industry, period=period)
    return BenchmarkPage(
        period=found or period,
        items=[
            Benchmark(
                industry=r.industry,
                size_band=r.size_band,
                kpi=r.kpi,
                period_start=r.period_start,
                period_end=r.period_end,
                published=r.published,
                suppressed_reason=r.suppressed_reason,
                stores_band=r.stores_band,
                tenants_band=r.tenants_band,
                p25=r.p25,
                median=r.median,
                p75=r.p75,
            )
            for r in rows
        ],
    )
