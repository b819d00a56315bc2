"""Alerts: per-tenant rules evaluated on the marts and forecasts, delivered by webhook.

:mod:`tenpo.alerts.rules` evaluates rules (pure functions of data frames) into
:class:`~tenpo.alerts.rules.Alert` records whose id is a hash of what they are about, so a
re-evaluation finds the same alert again instead of raising a new one.
:mod:`tenpo.alerts.webhook` delivers them: HMAC-SHA256 signed, retried with exponential
backoff on network errors, 408, 429 and 5xx, the alert id as the idempotency key.
"""

from tenpo.alerts.rules import RULE_KINDS, Alert, Rule, alert_id, evaluate
from tenpo.alerts.webhook import Delivery, deliver, sign

__all__ = [
    "RULE_KINDS",
    "Alert",
    "Delivery",
    "Rule",
    "alert_id",
    "deliver",
    "evaluate",
    "sign",
]
