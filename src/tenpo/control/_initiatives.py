"""Initiative methods of ``ControlPlane``: register and list a tenant's initiatives (施策).

An initiative names the tenant's stores it runs at, its first and last date (inclusive), the
KPI it aims at and what it is. Creating is idempotent on the initiative id: the same values
again return the stored initiative (``created`` False); other values under the same id are a
:class:`Conflict` naming the differing fields. A store of another tenant is unknown here
(:class:`BadInput` naming it), exactly like a store that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control import _validate
from tenpo.control.models import Initiative, InitiativeStore, Store
from tenpo.control.records import InitiativeInfo
from tenpo.core.errors import BadInput, Conflict, NotFound
from tenpo.core.ids import new_id, utcnow

__all__ = ["INITIATIVE_KPIS", "MAX_INITIATIVE_DAYS", "InitiativeMethods"]

logger = logging.getLogger(__name__)

INITIATIVE_KPIS = ("net_sales", "visitors", "conversion_rate", "atv")
"""KPIs an initiative may aim at (its effect is measured on all four)."""

MAX_INITIATIVE_DAYS = 366
"""Longest initiative accepted (days, inclusive)."""

MAX_INITIATIVE_STORES = 1000


class InitiativeMethods:
    """Mixed into ``ControlPlane``; relies on its sessions and helpers (see ``plane``)."""

    _sessions: sessionmaker[Session]
    _write: Callable[[str], AbstractContextManager[Session]]
    _require_tenant: Callable[[Session, str], None]

    def ensure_initiative(
        self,
        tenant_id: str,
        *,
        name: str,
        kind: str,
        kpi: str,
        store_ids: Iterable[str],
        start: date,
        end: date,
        description: str = "",
        initiative_id: str | None = None,
    ) -> tuple[InitiativeInfo, bool]:
        """Register an initiative, or return the identical one with this id (else Conflict)."""
        wanted = _initiative_values(name, kind, kpi, start, end, description)
        stores = _store_list(store_ids)
        ident = _validate.safe_id(initiative_id, "initiative id") if initiative_id else None
        ident = ident or new_id("ini_")
        with self._write(f"initiative {ident!r} already exists") as session:
            self._require_tenant(session, tenant_id)
            known = set(
                session.scalars(
                    sa.select(Store.id).where(Store.tenant_id == tenant_id, Store.id.in_(stores))
                )
            )
            if unknown := [s for s in stores if s not in known]:
                raise BadInput(
                    f"unknown store(s) for tenant {tenant_id!r}: {', '.join(unknown[:10])}",
                    field="stores",
                )
            row = session.get(Initiative, (tenant_id, ident))
            if row is not None:
                info = _info(row, _stores_of(session, tenant_id, ident))
                differing = [k for k, v in wanted.items() if getattr(row, k) != v]
                if tuple(stores) != info.store_ids:
                    differing.append("stores")
                if differing:
                    raise Conflict(
                        f"initiative {ident!r} already exists with a different "
                        f"{', '.join(differing)}",
                        fields=differing,
                    )
                return info, False
            row = Initiative(tenant_id=tenant_id, id=ident, created_at=utcnow(), **wanted)
            session.add(row)
            session.flush()
            session.add_all(
                InitiativeStore(tenant_id=tenant_id, initiative_id=ident, store_id=s)
                for s in stores
            )
        logger.info("initiative %s (%d stores) registered for %s", ident, len(stores), tenant_id)
        return _info(row, stores), True

    def list_initiatives(self, tenant_id: str) -> list[InitiativeInfo]:
        """The tenant's initiatives, newest start first (then by id)."""
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            rows = list(
                session.scalars(
                    sa.select(Initiative)
                    .where(Initiative.tenant_id == tenant_id)
                    .order_by(Initiative.start_date.desc(), Initiative.id)
                )
            )
            links = session.execute(
                sa.select(InitiativeStore.initiative_id, InitiativeStore.store_id)
                .where(InitiativeStore.tenant_id == tenant_id)
                .order_by(InitiativeStore.store_id)
            ).all()
        by_id: dict[str, list[str]] = {}
        for ident, store in links:
            by_id.setdefault(ident, []).append(store)
        return [_info(r, by_id.get(r.id, [])) for r in rows]

    def get_initiative(self, tenant_id: str, initiative_id: str) -> InitiativeInfo:
        """The tenant's initiative; :class:`NotFound` also for another tenant's."""
        with self._sessions() as session:
            row = session.get(Initiative, (tenant_id, initiative_id))
            if row is None:
                raise NotFound(f"tenant {tenant_id!r} has no initiative {initiative_id!r}")
            return _info(row, _stores_of(session, tenant_id, initiative_id))


def _initiative_values(
    name: str, kind: str, kpi: str, start: date, end: date, description: str
) -> dict[str, object]:
    if kpi not in INITIATIVE_KPIS:
        raise BadInput(
            f"unknown KPI {kpi!r}; an initiative aims at one of {list(INITIATIVE_KPIS)}",
            field="kpi",
        )
    if not isinstance(start, date) or not isinstance(end, date):
        raise BadInput("start and end must be dates")
    if end < start:
        raise BadInput(f"end {end} is before start {start}", field="end")
    if end - start >= timedelta(days=MAX_INITIATIVE_DAYS):
        raise BadInput(f"an initiative lasts at most {MAX_INITIATIVE_DAYS} days", field="end")
    if not isinstance(description, str) or len(description) > 2000:
        raise BadInput("description must be a text of at most 2000 characters")
    return {
        "name": _validate.text(name, "initiative name"),
        "kind": _validate.text(kind, "initiative kind", max_len=64),
        "kpi": kpi,
        "start_date": start,
        "end_date": end,
        "description": description.strip(),
    }


def _store_list(store_ids: Iterable[str]) -> list[str]:
    if isinstance(store_ids, str):
        raise BadInput("stores must be a list of store ids", field="stores")
    stores = sorted({_validate.safe_id(s, "store id") for s in store_ids})
    if not stores:
        raise BadInput("an initiative needs at least one store", field="stores")
    if len(stores) > MAX_INITIATIVE_STORES:
        raise BadInput(f"an initiative has at most {MAX_INITIATIVE_STORES} stores")
    return stores


def _stores_of(session: Session, tenant_id: str, initiative_id: str) -> list[str]:
    return list(
        session.scalars(
            sa.select(InitiativeStore.store_id)
            .where(
                InitiativeStore.tenant_id == tenant_id,
                InitiativeStore.initiative_id == initiative_id,
            )
            .order_by(InitiativeStore.store_id)
        )
    )


def _info(row: Initiative, stores: Iterable[str]) -> InitiativeInfo:
    return InitiativeInfo(
        tenant_id=row.tenant_id,
        initiative_id=row.id,
        name=row.name,
        kind=row.kind,
        kpi=row.kpi,
        store_ids=tuple(sorted(stores)),
        start=row.start_date,
        end=row.end_date,
        description=row.description,
        created_at=row.created_at,
    )
