"""Budget methods of ``ControlPlane``: a chain's own daily net-sales budget per store.

:meth:`BudgetMethods.put_budgets` validates every row first (store code or id of the
tenant, a date, a non-negative amount in yen with at most 2 decimals) and then writes all
of them in one transaction, replacing the budget of a (store, date) already held: a
corrected budget file is simply sent again. Nothing is written when any row is bad
(:class:`~tenpo.control._admin.ImportRejected` lists each one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control._admin import ImportRejected, RowError
from tenpo.control.models import Budget, Store
from tenpo.core.ids import utcnow

__all__ = ["MAX_BUDGET_ROWS", "BudgetMethods", "BudgetReport"]

logger = logging.getLogger(__name__)

MAX_BUDGET_ROWS = 100_000
"""Rows accepted in one call (a year of 270 stores)."""

_MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12, 2)


@dataclass(frozen=True)
class BudgetReport:
    """What a budget upload did."""

    created: int
    updated: int
    unchanged: int


class BudgetMethods:
    """Mixed into ``ControlPlane``; relies on its sessions and helpers (see ``plane``)."""

    _sessions: sessionmaker[Session]
    _write: Callable[[str], AbstractContextManager[Session]]
    _require_tenant: Callable[[Session, str], None]

    def put_budgets(self, tenant_id: str, rows: Iterable[Mapping[str, Any]]) -> BudgetReport:
        """Store daily budgets ``{store_code | store_id, date, net_sales}``; all or nothing."""
        items = list(rows)
        if not items:
            raise ImportRejected([RowError("budgets", 0, "no rows")])
        if len(items) > MAX_BUDGET_ROWS:
            raise ImportRejected(
                [RowError("budgets", 0, f"more than {MAX_BUDGET_ROWS} rows in one upload")]
            )
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            stores = session.execute(
                sa.select(Store.id, Store.code).where(Store.tenant_id == tenant_id)
            ).all()
        by_code = {code: sid for sid, code in stores}
        ids = {sid for sid, _ in stores}
        errors: list[RowError] = []
        wanted: dict[tuple[str, date], Decimal] = {}
        for n, row in enumerate(items, start=1):
            problem, key, amount = _parse(row, by_code, ids)
            if problem is None and key in wanted and wanted[key] != amount:
                problem = f"store {key[0]} date {key[1]} given twice with different amounts"
            if problem is not None:
                errors.append(RowError("budgets", n, problem))
                continue
            assert key is not None and amount is not None
            wanted[key] = amount
        if errors:
            raise ImportRejected(errors)
        created = updated = unchanged = 0
        now = utcnow()
        with self._write("budget upload raced another") as session:
            held = {
                (r.store_id, r.business_date): r
                for r in session.scalars(
                    sa.select(Budget).where(
                        Budget.tenant_id == tenant_id,
                        Budget.business_date >= min(d for _, d in wanted),
                        Budget.business_date <= max(d for _, d in wanted),
                    )
                )
            }
            for (store, day), amount in wanted.items():
                existing = held.get((store, day))
                if existing is None:
                    session.add(
                        Budget(
                            tenant_id=tenant_id,
                            store_id=store,
                            business_date=day,
                            net_sales=amount,
                            updated_at=now,
                        )
                    )
                    created += 1
                elif existing.net_sales != amount:
                    existing.net_sales = amount
                    existing.updated_at = now
                    updated += 1
                else:
                    unchanged += 1
        logger.info(
            "budgets of %s: %d created, %d updated, %d unchanged",
            tenant_id,
            created,
            updated,
            unchanged,
        )
        return BudgetReport(created, updated, unchanged)

    def budgets(
        self, tenant_id: str, store_id: str, first: date, last: date
    ) -> dict[date, Decimal]:
        """The store's daily budgets from ``first`` to ``last`` (dates without one absent)."""
        with self._sessions() as session:
            rows = session.execute(
                sa.select(Budget.business_date, Budget.net_sales).where(
                    Budget.tenant_id == tenant_id,
                    Budget.store_id == store_id,
                    Budget.business_date >= first,
                    Budget.business_date <= last,
                )
            ).all()
        return {d: v for d, v in rows}


def _parse(
    row: Mapping[str, Any], by_code: Mapping[str, str], ids: set[str]
) -> tuple[str | None, tuple[str, date] | None, Decimal | None]:
    if not isinstance(row, Mapping):
        return "a row must be an object", None, None
    code, sid = row.get("store_code"), row.get("store_id")
    if (code is None) == (sid is None):
        return "give one of store_code or store_id", None, None
    if code is not None:
        store = by_code.get(str(code).strip())
        if store is None:
            return f"unknown store code {code!r}", None, None
    else:
        store = str(sid)
        if store not in ids:
            return f"unknown store id {sid!r}", None, None
    raw_day = row.get("date")
    try:
        day = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day).strip())
    except ValueError:
        return f"bad date {raw_day!r} (expected YYYY-MM-DD)", None, None
    raw = row.get("net_sales")
    if isinstance(raw, bool) or isinstance(raw, float) or raw is None:
        return "net_sales must be a decimal number (a string or an integer)", None, None
    try:
        amount = Decimal(str(raw).strip().replace(",", ""))
    except InvalidOperation:
        return f"bad net_sales {raw!r}", None, None
    if not amount.is_finite() or amount < 0 or amount > _MAX_AMOUNT:
        return f"net_sales {raw!r} must be between 0 and {_MAX_AMOUNT}", None, None
    if amount != amount.quantize(Decimal("0.01")):
        return f"net_sales {raw!r} has more than 2 decimals", None, None
    return None, (store, day), amount.quantize(Decimal("0.01"))
