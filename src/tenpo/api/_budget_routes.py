"""Budgets: ``POST /v1/budgets`` (a chain's daily net-sales budget per store, CSV or JSON)
and ``GET /v1/stores/{id}/budget`` (budget vs actual vs tenpo's target, per day).

Budgets live in the control plane (:meth:`tenpo.control.ControlPlane.put_budgets`: all rows
checked, then all written, a re-sent (store, date) replaced); actual sales come from the
datamart's ``mart_store_daily``, the target from the latest ``mart_store_targets``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tenpo.api._problems import problem, problem_doc, rows_rejected
from tenpo.api._routes import StoreId
from tenpo.api.deps import (
    ADMIN_TENANT_ERRORS,
    READER_ERRORS,
    Admin,
    Control,
    Datamart,
    FromDate,
    Reader,
    TenantParam,
    ToDate,
    parse_date,
)
from tenpo.api.models import Money
from tenpo.control import ImportRejected
from tenpo.core.checks import media_type, read_body
from tenpo.core.errors import BadInput
from tenpo.datamart import mart_store_daily
from tenpo.datamart.ml import store_targets
from tenpo.datamart.read import visible_store

__all__ = ["budget_router"]

budget_router = APIRouter(tags=["budgets"])

MAX_BUDGET_BYTES = 16 * 1024 * 1024
MAX_BUDGET_DAYS = 366


class BudgetResult(BaseModel):
    """What an upload did: (store, date) budgets new, changed and already identical."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    created: int
    updated: int
    unchanged: int


class BudgetDay(BaseModel):
    """One business date of a store: its budget, its actual net sales and tenpo's target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    budget: Money | None = Field(description="The chain's budget (null: none uploaded).")
    actual: Money | None = Field(description="Net sales excl. tax (null: no POS data).")
    target: Money | None = Field(description="tenpo's daily net-sales target (latest run).")


class StoreBudget(BaseModel):
    """Budget vs actual vs target of a store over a date range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store_id: str
    target_as_of: date | None = Field(description="As-of date of the target (null: none).")
    budget_total: Money = Field(description="Σ budget over the dates that have one.")
    actual_total: Money = Field(description="Σ actual over the dates with a budget.")
    achievement: float | None = Field(
        description="actual_total / budget_total (null when no budget)."
    )
    days: list[BudgetDay]


_UPLOAD_DOC = (
    "Daily net-sales budgets (yen, excl. tax) per store: `text/csv` with a header "
    "`store_code,date,net_sales` (or `store_id` instead of `store_code`), or JSON "
    '`{"items": [{"store_code": "S001", "date": "2026-11-01", "net_sales": "350000"}]}`. '
    "Every row is checked first; any bad row → 422 listing each, nothing written."
)


@budget_router.post(
    "/v1/budgets",
    response_model=BudgetResult,
    responses=ADMIN_TENANT_ERRORS
    | {
        413: problem_doc("Body over 16 MiB."),
        415: problem_doc("Neither text/csv nor application/json."),
        422: problem_doc("Bad rows (each listed in `errors`), or an unreadable body."),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": _UPLOAD_DOC,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
    description=_UPLOAD_DOC,
)
async def upload_budgets(
    request: Request, admin: Admin, control: Control, tenant: TenantParam = None
) -> Any:
    """Store daily budgets (idempotent: the same file again changes nothing)."""
    tenant_id = admin.tenant(tenant)
    body = await read_body(request, MAX_BUDGET_BYTES, "budget body")
    kind = media_type(request.headers.get("content-type"))
    if kind == "text/csv":
        rows = _csv_rows(body)
    elif kind == "application/json":
        rows = _json_rows(body)
    else:
        return problem(
            415,
            f"send text/csv or application/json, not {kind or 'nothing'!r}",
            instance=request.url.path,
        )
    try:
        from starlette.concurrency import run_in_threadpool

        report = await run_in_threadpool(control.put_budgets, tenant_id, rows)
    except ImportRejected as exc:
        return rows_rejected(request, exc)
    return BudgetResult(
        tenant_id=tenant_id,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
    )


def _csv_rows(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"budget CSV is not UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    if not {"date", "net_sales"} <= fields or not fields & {"store_code", "store_id"}:
        raise BadInput(
            "budget CSV needs a header with store_code (or store_id), date and net_sales, "
            f"got {sorted(fields)}"
        )
    return [{k: v for k, v in r.items() if k in fields and v not in (None, "")} for r in reader]


def _json_rows(body: bytes) -> list[Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"budget body is not JSON: {exc}") from exc
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise BadInput('budget JSON must be {"items": [...]}')
    return items


@budget_router.get(
    "/v1/stores/{store_id}/budget",
    response_model=StoreBudget,
    responses=READER_ERRORS
    | {
        404: problem_doc("No such store for the caller's tenant."),
        422: problem_doc("Bad date, reversed or too long range."),
    },
)
def store_budget(
    caller: Reader,
    control: Control,
    engine: Datamart,
    store_id: StoreId,
    from_: FromDate,
    to: ToDate,
) -> StoreBudget:
    """The store's budget, actual net sales and target per day of [from, to]."""
    first, last = parse_date("from", from_), parse_date("to", to)
    if last < first or (last - first).days >= MAX_BUDGET_DAYS:
        raise BadInput(
            f"'to' must be on or after 'from' and within {MAX_BUDGET_DAYS} days of it",
            param="to",
        )
    visible_store(engine, caller, store_id)
    budgets = control.budgets(caller.tenant_id, store_id, first, last)
    t = mart_store_daily.c
    with engine.connect() as conn:
        actual = {
            r.business_date: r.net_sales
            for r in conn.execute(
                sa.select(t.business_date, t.net_sales).where(
                    t.tenant_id == caller.tenant_id,
                    t.store_id == store_id,
                    t.business_date >= first,
                    t.business_date <= last,
                )
            )
        }
    cluster, targets = store_targets(engine, caller.tenant_id, store_id, caller.store_ids)
    sales = next((r for r in targets if r.kpi == "net_sales"), None)
    target = _money(sales.target) if sales is not None and sales.target is not None else None
    days = sorted(set(budgets) | set(actual))
    budget_total = sum(budgets.values(), Decimal(0))
    actual_total = sum(
        (Decimal(str(actual[d])) for d in budgets if actual.get(d) is not None), Decimal(0)
    )
    return StoreBudget(
        store_id=store_id,
        target_as_of=cluster.business_date if cluster and target is not None else None,
        budget_total=f"{budget_total:.2f}",
        actual_total=f"{actual_total:.2f}",
        achievement=float(actual_total / budget_total) if budget_total else None,
        days=[
            BudgetDay(
                date=d,
                budget=f"{budgets[d]:.2f}" if d in budgets else None,
                actual=None if actual.get(d) is None else f"{Decimal(str(actual[d])):.2f}",
                target=target,
            )
            for d in days
        ],
    )


def _money(value: float | Decimal) -> str:
    return f"{Decimal(str(value)).quantize(Decimal('0.01')):.2f}"
