"""Webhook delivery of alerts: signed, retried with backoff, idempotent by alert id.

Each POST carries the alert's JSON and the headers ``X-Tenpo-Alert-Id`` (also sent as
``Idempotency-Key``: a receiver keeps the first delivery of an id), ``X-Tenpo-Timestamp``
(Unix seconds) and ``X-Tenpo-Signature: sha256=<hex>``, the HMAC-SHA256 with the rule's
secret of ``{timestamp}.{body}``. Network errors, 408, 429 and 5xx are retried after 0.5 s,
1 s, 2 s... (``Retry-After`` when the receiver sends one, capped at 60 s); other answers end
the delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tenpo.alerts.rules import Alert

__all__ = ["Delivery", "deliver", "sign"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Delivery:
    """Outcome of delivering one alert: ``delivered`` on a 2xx answer."""

    alert_id: str
    delivered: bool
    attempts: int
    status: int | None
    error: str | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of ``{timestamp}.{body}`` with ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def deliver(
    alert: Alert,
    url: str,
    secret: str,
    *,
    client: httpx.Client,
    attempts: int = 5,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Delivery:
    """POST ``alert`` to ``url`` until a 2xx, a final refusal or ``attempts`` are used up."""
    body = json.dumps(alert.payload(), sort_keys=True, separators=(",", ":")).encode()
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        stamp = int(clock())
        headers = {
            "Content-Type": "application/json",
            "X-Tenpo-Alert-Id": alert.alert_id,
            "Idempotency-Key": alert.alert_id,
            "X-Tenpo-Timestamp": str(stamp),
            "X-Tenpo-Signature": sign(secret, stamp, body),
        }
        wait = backoff_s * 2 ** (attempt - 1)
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        else:
            status, error = response.status_code, None
            if 200 <= status < 300:
                return Delivery(alert.alert_id, True, attempt, status)
            if status not in _RETRY_STATUS:
                return Delivery(alert.alert_id, False, attempt, status, f"refused with {status}")
            wait = max(wait, _retry_after(response))
        logger.info("webhook %s attempt %d failed (%s)", alert.alert_id, attempt, error or status)
        if attempt < attempts:
            sleep(min(wait, 60.0))
    return Delivery(alert.alert_id, False, attempts, status, error or f"last answer {status}")


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", "0"))
    except ValueError:
        return 0.0
