"""Alert rules, raised alerts and their delivery state, in the serving database.

``dm_alert_rules`` (per tenant: kind, params, optional store list, webhook URL and secret) and
``dm_alerts`` (one row per alert id: what was found, when it was raised, delivered and
acknowledged). Recording is idempotent: an alert id already stored is left as it is, so a
re-evaluation neither duplicates an alert nor re-delivers it. Reads are scoped to the
caller's tenant and stores.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.alerts import Alert, Rule, deliver
from tenpo.core.errors import NotFound
from tenpo.datamart.read import Caller

__all__ = [
    "AlertRecord",
    "acknowledge",
    "deliver_pending",
    "ensure_alert_schema",
    "list_alerts",
    "read_rules",
    "record_alerts",
    "write_rule",
]

logger = logging.getLogger(__name__)

alert_metadata = sa.MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s"})

dm_alert_rules = sa.Table(
    "dm_alert_rules",
    alert_metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("params", sa.Text(), nullable=False),  # JSON object
    sa.Column("stores", sa.Text()),  # JSON list, null: every store
    sa.Column("webhook_url", sa.Text()),
    sa.Column("webhook_secret", sa.Text()),
)

dm_alerts = sa.Table(
    "dm_alerts",
    alert_metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("store_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("business_date", sa.Date(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("value", sa.Float()),
    sa.Column("expected_low", sa.Float()),
    sa.Column("expected_high", sa.Float()),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("delivery_attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("delivery_error", sa.Text()),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("acknowledged_by", sa.String(128)),
)
sa.Index(None, dm_alerts.c.tenant_id, dm_alerts.c.business_date)

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_lock = threading.Lock()


def ensure_alert_schema(engine: Engine) -> None:
    """Create the alert tables missing on ``engine``."""
    with _lock:
        if engine not in _ready:
            alert_metadata.create_all(engine)
            _ready.add(engine)


def write_rule(engine: Engine, rule: Rule, webhook_url: str | None, secret: str | None) -> None:
    """Create or replace the tenant's rule ``rule.rule_id``."""
    ensure_alert_schema(engine)
    r = dm_alert_rules
    with engine.begin() as conn:
        conn.execute(r.delete().where(r.c.tenant_id == rule.tenant_id, r.c.rule_id == rule.rule_id))
        conn.execute(
            r.insert(),
            {
                "tenant_id": rule.tenant_id,
                "rule_id": rule.rule_id,
                "kind": rule.kind,
                "params": json.dumps(rule.params, sort_keys=True),
                "stores": None if rule.stores is None else json.dumps(sorted(rule.stores)),
                "webhook_url": webhook_url,
                "webhook_secret": secret,
            },
        )


def read_rules(engine: Engine, tenant_id: str | None = None) -> list[tuple[Rule, str | None]]:
    """Rules (of one tenant, or all) with their webhook URL."""
    ensure_alert_schema(engine)
    r = dm_alert_rules
    query = sa.select(r).order_by(r.c.tenant_id, r.c.rule_id)
    if tenant_id is not None:
        query = query.where(r.c.tenant_id == tenant_id)
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    return [(_rule(row), row["webhook_url"]) for row in rows]


def _rule(row: Any) -> Rule:
    stores = None if row["stores"] is None else frozenset(json.loads(row["stores"]))
    return Rule(row["tenant_id"], row["rule_id"], row["kind"], json.loads(row["params"]), stores)


def record_alerts(engine: Engine, alerts: Iterable[Alert], now: datetime) -> list[str]:
    """Store the alerts not stored yet; the ids newly raised."""
    ensure_alert_schema(engine)
    a = dm_alerts
    new: list[str] = []
    for alert in alerts:
        with engine.connect() as conn:
            known = conn.execute(
                sa.select(a.c.alert_id).where(
                    a.c.tenant_id == alert.tenant_id, a.c.alert_id == alert.alert_id
                )
            ).first()
        if known is not None:
            continue
        values = {**alert.payload(), "business_date": alert.business_date}
        try:
            with engine.begin() as conn:
                conn.execute(a.insert(), {**values, "raised_at": now, "delivery_attempts": 0})
        except sa.exc.IntegrityError:
            continue  # a concurrent evaluation recorded it first
        new.append(alert.alert_id)
    return new


def deliver_pending(engine: Engine, client: httpx.Client, **retry: Any) -> dict[str, int]:
    """Deliver every undelivered alert whose rule has a webhook; counts delivered/failed."""
    ensure_alert_schema(engine)
    a, r = dm_alerts, dm_alert_rules
    query = (
        sa.select(a, r.c.webhook_url, r.c.webhook_secret)
        .join(r, sa.and_(r.c.tenant_id == a.c.tenant_id, r.c.rule_id == a.c.rule_id))
        .where(a.c.delivered_at.is_(None), r.c.webhook_url.is_not(None))
        .order_by(a.c.raised_at, a.c.alert_id)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    counts = {"delivered": 0, "failed": 0}
    for row in rows:
        alert = _alert(row)
        result = deliver(
            alert, row["webhook_url"], row["webhook_secret"] or "", client=client, **retry
        )
        counts["delivered" if result.delivered else "failed"] += 1
        with engine.begin() as conn:
            conn.execute(
                a.update()
                .where(a.c.tenant_id == alert.tenant_id, a.c.alert_id == alert.alert_id)
                .values(
                    delivered_at=datetime.now(UTC) if result.delivered else None,
                    delivery_attempts=a.c.delivery_attempts + result.attempts,
                    delivery_error=result.error,
                )
            )
    return counts


def _alert(row: Any) -> Alert:
    day = row["business_date"]
    return Alert(
        row["alert_id"],
        row["tenant_id"],
        row["rule_id"],
        row["kind"],
        row["store_id"],
        row["subject"],
        day if isinstance(day, date) else date.fromisoformat(str(day)[:10]),
        row["message"],
        row["value"],
        row["expected_low"],
        row["expected_high"],
    )


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert with its delivery and acknowledgement state."""

    alert: Alert
    raised_at: datetime
    delivered: bool
    delivery_attempts: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def list_alerts(
    engine: Engine, caller: Caller, *, acknowledged: bool | None = None, limit: int = 200
) -> list[AlertRecord]:
    """The caller's alerts (its tenant, the stores it sees), newest first."""
    ensure_alert_schema(engine)
    a = dm_alerts
    query = sa.select(a).where(a.c.tenant_id == caller.tenant_id)
    if caller.store_ids is not None:
        query = query.where(a.c.store_id.in_(sorted(caller.store_ids)))
    if acknowledged is not None:
        query = query.where(
            a.c.acknowledged_at.is_not(None) if acknowledged else a.c.acknowledged_at.is_(None)
        )
    query = query.order_by(a.c.business_date.desc(), a.c.alert_id).limit(limit)
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    return [_record(r) for r in rows]


def _record(row: Any) -> AlertRecord:
    return AlertRecord(
        _alert(row),
        row["raised_at"],
        row["delivered_at"] is not None,
        row["delivery_attempts"],
        row["acknowledged_at"],
        row["acknowledged_by"],
    )


def acknowledge(engine: Engine, caller: Caller, alert_id: str, who: str) -> AlertRecord:
    """Mark the caller's alert acknowledged (once: a second call keeps the first); NotFound
    for another tenant's or an unseen store's alert."""
    ensure_alert_schema(engine)
    a = dm_alerts
    where = sa.and_(a.c.tenant_id == caller.tenant_id, a.c.alert_id == alert_id)
    with engine.begin() as conn:
        row = conn.execute(sa.select(a.c.store_id).where(where)).first()
        if row is None or not caller.sees_store(row[0]):
            raise NotFound(f"no alert {alert_id!r}")
        conn.execute(
            a.update()
            .where(where, a.c.acknowledged_at.is_(None))
            .values(acknowledged_at=datetime.now(UTC), acknowledged_by=who)
        )
        return _record(conn.execute(sa.select(a).where(where)).mappings().one())
