"""Alert-rule methods of ``ControlPlane``: a tenant's alert rules with their webhook.

Rules are configuration, not derived data, so they live here and not in the datamart: a
datamart drop or rebuild keeps them, and the read side (which can read the datamart) never
sees a webhook signing secret. The secret is only handed to the delivery step
(:meth:`AlertRuleMethods.webhook_targets`); :meth:`AlertRuleMethods.alert_rules` leaves it
out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control.models import AlertAck, AlertDelivery, AlertRule, Store
from tenpo.core.errors import BadInput
from tenpo.core.ids import utcnow

if TYPE_CHECKING:
    from tenpo.alerts import Alert, Rule

__all__ = ["AlertRuleMethods", "WebhookTarget"]

logger = logging.getLogger(__name__)

WebhookTarget = tuple[str, str]
"""(URL, signing secret; empty when the rule has none) of a rule's webhook."""


class AlertRuleMethods:
    """Mixed into ``ControlPlane``; relies on its sessions and helpers (see ``plane``)."""

    _sessions: sessionmaker[Session]
    _write: Callable[[str], AbstractContextManager[Session]]
    _require_tenant: Callable[[Session, str], None]

    def put_alert_rule(
        self,
        rule: Rule,
        webhook_url: str | None,
        secret: str | None,
        *,
        check_stores: bool = True,
        allow_private_webhook: bool = False,
    ) -> None:
        """Create or replace the tenant's rule ``rule.rule_id`` (with its webhook); BadInput
        when it names a store the tenant does not have, or a webhook URL that is not http(s)
        or targets a non-public address (unless ``allow_private_webhook``; see
        :func:`tenpo.alerts.webhook.check_webhook_url`)."""
        if webhook_url is not None:
            from tenpo.alerts.webhook import check_webhook_url

            # A host that does not resolve now is stored: each delivery checks it again.
            check_webhook_url(webhook_url, allow_private=allow_private_webhook, unresolved_ok=True)
        with self._write("alert rule written concurrently") as session:
            self._require_tenant(session, rule.tenant_id)
            if check_stores and rule.stores is not None:
                known = set(
                    session.scalars(sa.select(Store.id).where(Store.tenant_id == rule.tenant_id))
                )
                unknown = sorted(rule.stores - known)
                if unknown:
                    raise BadInput(f"unknown store ids {unknown} (the rule's stores)")
            row = session.get(AlertRule, (rule.tenant_id, rule.rule_id))
            values = {
                "kind": rule.kind,
                "params": dict(rule.params),
                "stores": None if rule.stores is None else sorted(rule.stores),
                "webhook_url": webhook_url,
                "webhook_secret": secret,
                "updated_at": utcnow(),
            }
            if row is None:
                session.add(AlertRule(tenant_id=rule.tenant_id, rule_id=rule.rule_id, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
        logger.info("alert rule %s/%s (%s) stored", rule.tenant_id, rule.rule_id, rule.kind)

    def adopt_legacy_rules(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store rules read from the datamart's legacy ``dm_alert_rules`` table (JSON text
        ``params``/``stores``), keeping any rule already held here; how many were added."""
        from tenpo.alerts import Rule

        added = 0
        for row in rows:
            with self._sessions() as session:
                if session.get(AlertRule, (row["tenant_id"], row["rule_id"])) is not None:
                    continue
            stores = None if row["stores"] is None else frozenset(json.loads(row["stores"]))
            rule = Rule(
                row["tenant_id"], row["rule_id"], row["kind"], json.loads(row["params"]), stores
            )
            # As stored before (a store id gone since simply matches nothing; a webhook now
            # refused is kept, and its delivery refused, rather than the rule lost).
            self.put_alert_rule(
                rule,
                row["webhook_url"],
                row["webhook_secret"],
                check_stores=False,
                allow_private_webhook=True,
            )
            added += 1
        return added

    def alert_rules(self, tenant_id: str | None = None) -> list[tuple[Rule, str | None]]:
        """Rules (of one tenant, or of all) with their webhook URL; never the secret."""
        query = sa.select(AlertRule).order_by(AlertRule.tenant_id, AlertRule.rule_id)
        if tenant_id is not None:
            query = query.where(AlertRule.tenant_id == tenant_id)
        with self._sessions() as session:
            rows = list(session.scalars(query))
        return [(_rule(r), r.webhook_url) for r in rows]

    def webhook_targets(self) -> dict[tuple[str, str], WebhookTarget]:
        """(tenant, rule id) → (URL, secret) of every rule with a webhook: for delivery only."""
        query = sa.select(
            AlertRule.tenant_id, AlertRule.rule_id, AlertRule.webhook_url, AlertRule.webhook_secret
        ).where(AlertRule.webhook_url.is_not(None))
        with self._sessions() as session:
            rows = session.execute(query).all()
        return {(t, r): (url, secret or "") for t, r, url, secret in rows if url is not None}

    def delivered_alerts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """(tenant, alert id) → when its webhook received it, for those of ``keys`` it did."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], datetime] = {}
        t = AlertDelivery
        with self._sessions() as session:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                for tenant in sorted({k[0] for k in chunk}):
                    ids = [a for tn, a in chunk if tn == tenant]
                    query = sa.select(t.alert_id, t.delivered_at).where(
                        t.tenant_id == tenant, t.alert_id.in_(ids)
                    )
                    found.update({(tenant, a): at for a, at in session.execute(query)})
        return found

    def record_alert_delivery(self, alert: Alert, delivered_at: datetime) -> None:
        """Remember that ``alert`` reached its rule's webhook (the first record is kept)."""
        with self._sessions() as session:
            if session.get(AlertDelivery, (alert.tenant_id, alert.alert_id)) is not None:
                return
            session.add(
                AlertDelivery(
                    tenant_id=alert.tenant_id,
                    alert_id=alert.alert_id,
                    rule_id=alert.rule_id,
                    kind=alert.kind,
                    store_id=alert.store_id,
                    business_date=alert.business_date,
                    delivered_at=delivered_at,
                )
            )
            try:
                session.commit()
            except sa.exc.IntegrityError:
                session.rollback()  # recorded concurrently: the first record stands

    def record_alert_ack(self, tenant_id: str, alert_id: str, at: datetime, by: str) -> None:
        """Remember that ``by`` acknowledged the tenant's alert at ``at`` (the first is kept)."""
        with self._sessions() as session:
            if session.get(AlertAck, (tenant_id, alert_id)) is not None:
                return
            session.add(
                AlertAck(tenant_id=tenant_id, alert_id=alert_id, acknowledged_at=at,
                         acknowledged_by=by)
            )  # fmt: skip
            try:
                session.commit()
            except sa.exc.IntegrityError:
                session.rollback()  # acknowledged concurrently: the first record stands

    def alert_acks(
        self, tenant_id: str | None = None
    ) -> dict[tuple[str, str], tuple[datetime, str]]:
        """(tenant, alert id) → (when, by whom) of every acknowledgement (of one tenant)."""
        t = AlertAck
        query = sa.select(t.tenant_id, t.alert_id, t.acknowledged_at, t.acknowledged_by)
        if tenant_id is not None:
            query = query.where(t.tenant_id == tenant_id)
        with self._sessions() as session:
            return {(tn, a): (at, by) for tn, a, at, by in session.execute(query)}


def _rule(row: AlertRule) -> Rule:
    from tenpo.alerts import Rule  # pandas: not for every control-plane user

    stores = None if row.stores is None else frozenset(row.stores)
    return Rule(row.tenant_id, row.rule_id, row.kind, dict(row.params), stores)
