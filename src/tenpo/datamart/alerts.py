"""Raised alerts and their delivery state, in the serving database.

``dm_alerts`` (one row per alert id: what was found, when it was raised, delivered and
acknowledged): derived data, raised again by the next evaluation if the datamart is
dropped. The rules and their webhook URL and signing secret are configuration and live in
the control plane (:meth:`tenpo.control.ControlPlane.put_alert_rule`); no secret is ever
written here. Recording is idempotent: an alert id already stored is left as it is, so a
re-evaluation neither duplicates an alert nor re-delivers it. Which ids a webhook has
received is also kept in the control plane (:class:`DeliveryLedger`), so an alert raised
again after a datamart drop is marked delivered there and not sent a second time. Reads are
scoped to the caller's tenant and stores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.alerts import Alert, deliver
from tenpo.core.errors import NotFound
from tenpo.datamart._memo import SchemaMemo
from tenpo.datamart.read import Caller

__all__ = [
    "AlertRecord",
    "DeliveryLedger",
    "LEGACY_RULES_TABLE",
    "acknowledge",
    "deliver_pending",
    "drop_legacy_rules",
    "ensure_alert_schema",
    "legacy_rules",
    "list_alerts",
    "record_alerts",
    "restore_acks",
]

logger = logging.getLogger(__name__)

alert_metadata = sa.MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s"})

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


def ensure_alert_schema(engine: Engine) -> None:
    """Create the alert tables missing on ``engine``."""
    _schema.ensure(engine)


def _create_alert_schema(engine: Engine) -> None:
    alert_metadata.create_all(engine)


_schema = SchemaMemo([t.name for t in alert_metadata.sorted_tables], _create_alert_schema)

LEGACY_RULES_TABLE = "dm_alert_rules"
"""Where rules (and webhook secrets) were kept before they moved to the control plane."""


def legacy_rules(engine: Engine) -> list[dict[str, Any]]:
    """The rows of a legacy ``dm_alert_rules`` table (empty when there is none)."""
    if not sa.inspect(engine).has_table(LEGACY_RULES_TABLE):
        return []
    table = sa.Table(LEGACY_RULES_TABLE, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def drop_legacy_rules(engine: Engine) -> None:
    """Drop the legacy ``dm_alert_rules`` table (once its rules are in the control plane)."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {LEGACY_RULES_TABLE}"))
    logger.warning("dropped the legacy datamart table %s", LEGACY_RULES_TABLE)


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


class DeliveryLedger(Protocol):
    """Where delivered alert ids outlive the datamart (:class:`tenpo.control.ControlPlane`)."""

    def delivered_alerts(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]: ...

    def record_alert_delivery(self, alert: Alert, delivered_at: datetime) -> None: ...


def restore_acks(engine: Engine, acks: Mapping[tuple[str, str], tuple[datetime, str]]) -> int:
    """Mark acknowledged the stored alerts that ``acks`` ((tenant, alert id) → (when, by
    whom), from the control plane) name and that are not yet here (a rebuilt datamart);
    how many."""
    ensure_alert_schema(engine)
    a = dm_alerts
    if not acks:
        return 0
    with engine.connect() as conn:
        open_ = {
            (t, i)
            for t, i in conn.execute(
                sa.select(a.c.tenant_id, a.c.alert_id).where(a.c.acknowledged_at.is_(None))
            )
        }
    restored = 0
    for key in sorted(open_ & set(acks)):
        at, by = acks[key]
        with engine.begin() as conn:
            conn.execute(
                a.update()
                .where(a.c.tenant_id == key[0], a.c.alert_id == key[1])
                .values(acknowledged_at=at, acknowledged_by=by)
            )
        restored += 1
    return restored


def deliver_pending(
    engine: Engine,
    client: httpx.Client,
    targets: Mapping[tuple[str, str], tuple[str, str]],
    ledger: DeliveryLedger | None = None,
    *,
    allow_private: bool = False,
    **retry: Any,
) -> dict[str, int]:
    """Deliver every undelivered alert whose rule has a webhook in ``targets`` ((tenant, rule
    id) → (URL, secret), from :meth:`tenpo.control.ControlPlane.webhook_targets`); counts
    delivered/failed.

    With a ``ledger``, an alert it already holds (delivered before the datamart was dropped
    and rebuilt) is only marked delivered here, with the ledger's time, and not sent again;
    each new delivery is written to the ledger before the datamart row. ``allow_private``
    (the setting ``alert_webhook_allow_private``) lets webhooks target non-public addresses.
    """
    ensure_alert_schema(engine)
    a = dm_alerts
    if not targets:
        return {"delivered": 0, "failed": 0}
    query = (
        sa.select(a)
        .where(
            a.c.delivered_at.is_(None),
            a.c.tenant_id.in_(sorted({t for t, _ in targets})),
            a.c.rule_id.in_(sorted({r for _, r in targets})),
        )
        .order_by(a.c.raised_at, a.c.alert_id)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    rows = [r for r in rows if (r["tenant_id"], r["rule_id"]) in targets]  # others: API only
    before = (
        ledger.delivered_alerts((r["tenant_id"], r["alert_id"]) for r in rows) if ledger else {}
    )
    counts = {"delivered": 0, "failed": 0}
    for row in rows:
        alert = _alert(row)
        where = sa.and_(a.c.tenant_id == alert.tenant_id, a.c.alert_id == alert.alert_id)
        earlier = before.get((alert.tenant_id, alert.alert_id))
        if earlier is not None:
            logger.info("alert %s was delivered at %s: not sent again", alert.alert_id, earlier)
            with engine.begin() as conn:
                conn.execute(a.update().where(where).values(delivered_at=earlier))
            continue
        url, secret = targets[(alert.tenant_id, alert.rule_id)]
        result = deliver(alert, url, secret, client=client, allow_private=allow_private, **retry)
        counts["delivered" if result.delivered else "failed"] += 1
        delivered_at = datetime.now(UTC) if result.delivered else None
        if ledger is not None and delivered_at is not None:
            ledger.record_alert_delivery(alert, delivered_at)
        with engine.begin() as conn:
            conn.execute(
                a.update()
                .where(where)
                .values(
                    delivered_at=delivered_at,
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
