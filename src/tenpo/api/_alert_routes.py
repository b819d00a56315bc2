"""Alert routes: the caller's alerts, acknowledging one, and the tenant's rules (admin).

Thin wiring of :mod:`tenpo.datamart.alerts` (alerts), the control plane (rules, webhook
secrets) and :mod:`tenpo.alerts` to HTTP.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from tenpo.alerts import RULE_KINDS, Rule
from tenpo.api._problems import problem_doc
from tenpo.api.deps import (
    ADMIN_ERRORS,
    READER_ERRORS,
    Admin,
    Control,
    Datamart,
    Reader,
    SettingsDep,
)
from tenpo.datamart.alerts import AlertRecord, acknowledge, list_alerts

__all__ = ["alert_router"]


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertOut(_Public):
    """An alert a rule raised, with its delivery and acknowledgement state."""

    alert_id: str
    rule_id: str
    kind: str
    store_id: str
    subject: str = Field(description="The KPI, device or source the alert is about.")
    business_date: date
    message: str
    value: float | None
    expected_low: float | None
    expected_high: float | None
    raised_at: datetime
    delivered: bool = Field(description="The rule's webhook answered 2xx.")
    delivery_attempts: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertPage(_Public):
    """Alerts of the caller's tenant and stores, newest business date first."""

    items: list[AlertOut]


class RuleIn(_Public):
    """A tenant's alert rule (replaces the rule of the same id)."""

    rule_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str = Field(description=f"One of {', '.join(RULE_KINDS)}.", max_length=64)
    params: dict[str, str | int | float] = Field(
        default_factory=dict,
        description="kpi_outside_forecast: kpi, level; device_silent: minutes; "
        "receipts_without_visitors: min_hours; source_missing: source (pos|counter).",
    )
    stores: list[str] | None = Field(default=None, description="Only these stores (default all).")
    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2000,
        description="Where alerts are POSTed: http(s) to a public address (a private one only "
        "with the setting alert_webhook_allow_private).",
    )
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=200)


class RuleOut(_Public):
    """A stored rule (the webhook secret is never returned)."""

    rule_id: str
    kind: str
    params: dict[str, Any]
    stores: list[str] | None
    webhook_url: str | None


class RulePage(_Public):
    """The tenant's rules."""

    items: list[RuleOut]


def _out(r: AlertRecord) -> AlertOut:
    a = r.alert
    return AlertOut(
        alert_id=a.alert_id,
        rule_id=a.rule_id,
        kind=a.kind,
        store_id=a.store_id,
        subject=a.subject,
        business_date=a.business_date,
        message=a.message,
        value=a.value,
        expected_low=a.expected_low,
        expected_high=a.expected_high,
        raised_at=r.raised_at,
        delivered=r.delivered,
        delivery_attempts=r.delivery_attempts,
        acknowledged_at=r.acknowledged_at,
        acknowledged_by=r.acknowledged_by,
    )


alert_router = APIRouter()
_ADMIN = ADMIN_ERRORS | {422: problem_doc("Invalid rule.")}


@alert_router.get(
    "/v1/alerts",
    response_model=AlertPage,
    responses=READER_ERRORS | {422: problem_doc("Bad parameters.")},
    tags=["alerts"],
)
def alerts(
    caller: Reader,
    engine: Datamart,
    acknowledged: Annotated[
        bool | None, Query(description="Only acknowledged (true) or open (false) alerts.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AlertPage:
    """The alerts of the caller's stores, newest business date first."""
    return AlertPage(
        items=[_out(r) for r in list_alerts(engine, caller, acknowledged=acknowledged, limit=limit)]
    )


@alert_router.post(
    "/v1/alerts/{alert_id}/ack",
    response_model=AlertOut,
    responses=READER_ERRORS
    | {404: problem_doc("No such alert for the caller."), 422: problem_doc("Bad alert id.")},
    tags=["alerts"],
)
def ack(
    caller: Reader,
    engine: Datamart,
    control: Control,
    alert_id: Annotated[str, Path(max_length=64)],
) -> AlertOut:
    """Acknowledge an alert (idempotent: the first acknowledgement is kept, also in the
    control plane, so a rebuilt datamart shows it acknowledged still)."""
    record = acknowledge(engine, caller, alert_id, caller.key_id)
    at, by = record.acknowledged_at, record.acknowledged_by
    if at is not None and by is not None:
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite reads naive UTC
        control.record_alert_ack(caller.tenant_id, alert_id, at, by)
    return _out(record)


@alert_router.put("/v1/alerts/rules", response_model=RuleOut, responses=_ADMIN, tags=["alerts"])
def put_rule(caller: Admin, control: Control, settings: SettingsDep, rule: RuleIn) -> RuleOut:
    """Create or replace one of the tenant's alert rules (kept in the control plane); a
    webhook URL targeting a non-public address is a 422 unless the settings allow it."""
    tenant = caller.principal.tenant_id
    stored = Rule(
        tenant,
        rule.rule_id,
        rule.kind,
        dict(rule.params),
        None if rule.stores is None else frozenset(rule.stores),
    )  # BadInput (422) for an unknown kind or bad params
    control.put_alert_rule(
        stored,
        rule.webhook_url,
        rule.webhook_secret,
        allow_private_webhook=settings.alert_webhook_allow_private,
    )
    return RuleOut(
        rule_id=rule.rule_id,
        kind=rule.kind,
        params=dict(rule.params),
        stores=rule.stores,
        webhook_url=rule.webhook_url,
    )


@alert_router.get("/v1/alerts/rules", response_model=RulePage, responses=_ADMIN, tags=["alerts"])
def rules(caller: Admin, control: Control) -> RulePage:
    """The tenant's alert rules (never their webhook secret)."""
    found = control.alert_rules(caller.principal.tenant_id)
    return RulePage(
        items=[
            RuleOut(
                rule_id=r.rule_id,
                kind=r.kind,
                params=r.params,
                stores=None if r.stores is None else sorted(r.stores),
                webhook_url=url,
            )
            for r, url in found
        ]
    )
