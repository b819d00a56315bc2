"""Read models of the datamart: every query is scoped to one tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import NotFound
from tenpo.datamart.kpis import Grain, KpiPeriod, rollup
from tenpo.datamart.schema import dm_stores, mart_store_daily


@dataclass(frozen=True)
class StoreRecord:
    """A store as the datamart lists it."""

    tenant_id: str
    store_id: str
    code: str
    name: str
    industry: str | None
    region: str | None
    timezone: str
    floor_area_m2: float | None


def list_stores(
    engine: Engine,
    tenant_id: str,
    *,
    industry: str | None = None,
    region: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[StoreRecord], int]:
    """One page of the tenant's stores (by code) matching the filters, and the total matching."""
    where = [dm_stores.c.tenant_id == tenant_id]
    if industry is not None:
        where.append(dm_stores.c.industry == industry)
    if region is not None:
        where.append(dm_stores.c.region == region)
    page = (
        sa.select(dm_stores)
        .where(*where)
        .order_by(dm_stores.c.code, dm_stores.c.store_id)
        .limit(limit)
        .offset(offset)
    )
    count = sa.select(sa.func.count()).select_from(dm_stores).where(*where)
    with engine.connect() as conn:
        total = conn.execute(count).scalar_one()
        rows = conn.execute(page).mappings().all()
    return [StoreRecord(**row) for row in rows], int(total)


def get_store(engine: Engine, tenant_id: str, store_id: str) -> StoreRecord:
    """The tenant's store ``store_id``; :class:`NotFound` when it is not one of the tenant's."""
    query = sa.select(dm_stores).where(
        dm_stores.c.tenant_id == tenant_id, dm_stores.c.store_id == store_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).mappings().one_or_none()
    if row is None:
        # Same answer whether the store is unknown or another tenant's: existence never leaks.
        raise NotFound(f"store {store_id!r} not found", store_id=store_id)
    return StoreRecord(**row)


def store_kpis(
    engine: Engine, tenant_id: str, store_id: str, start: date, end: date, grain: Grain = "day"
) -> list[KpiPeriod]:
    """The store's KPIs for business dates ``start``..``end`` (inclusive) at ``grain``.

    Only dates with a mart row appear; rows are oldest first.
    """
    m = mart_store_daily.c
    query = (
        sa.select(mart_store_daily)
        .where(
            m.tenant_id == tenant_id,
            m.store_id == store_id,
            m.business_date >= start,
            m.business_date <= end,
        )
        .order_by(m.business_date)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    days = [
        KpiPeriod(
            period_start=row["business_date"],
            period_end=row["business_date"],
            days=1,
            net_sales=row["net_sales"],
            net_sales_incl_tax=row["net_sales_incl_tax"],
            transactions=row["transactions"],
            units=row["units"],
            atv=row["atv"],
            upt=row["upt"],
            visitors=row["visitors"],
            passersby=row["passersby"],
            capture_rate=row["capture_rate"],
            conversion_rate=row["conversion_rate"],
            sales_per_visitor=row["sales_per_visitor"],
            has_pos=bool(row["has_pos"]),
            has_counter=bool(row["has_counter"]),
        )
        for row in rows
    ]
    return rollup(days, grain)
