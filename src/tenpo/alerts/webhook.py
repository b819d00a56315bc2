"""Webhook delivery of alerts: signed, retried with backoff, idempotent by alert id.

Each POST carries the alert's JSON and the headers ``X-Tenpo-Alert-Id`` (also sent as
``Idempotency-Key``: a receiver keeps the first delivery of an id), ``X-Tenpo-Timestamp``
(Unix seconds) and ``X-Tenpo-Signature: sha256=<hex>``, the HMAC-SHA256 with the rule's
secret of ``{timestamp}.{body}``. Network errors, 408, 429 and 5xx are retried after 0.5 s,
1 s, 2 s... (``Retry-After`` when the receiver sends one, capped at 60 s); other answers end
the delivery.

Only ``http``/``https`` URLs whose host resolves to public addresses are delivered to (unless
the setting ``alert_webhook_allow_private`` allows private ones): a tenant's rule must not make
tenpo POST into its own network (loopback, RFC 1918, link-local and cloud metadata, unique
local IPv6...). :func:`check_webhook_url` checks a URL (a rule's, when it is stored); every
attempt resolves the host again, checks every address and connects to a checked one (the
``Host`` header and TLS server name stay the URL's), so a DNS answer that changes after the
check (rebinding) cannot redirect it. Redirects are never followed: a 3xx ends the delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tenpo.alerts.rules import Alert
from tenpo.core.errors import BadInput

__all__ = ["Delivery", "WebhookRefused", "check_webhook_url", "deliver", "resolve_host", "sign"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SCHEMES = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]
"""(host, port) → its addresses, in the order to try them; ``OSError`` when it has none."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookRefused(BadInput):
    """A webhook URL tenpo does not deliver to: not http(s), or a host that is not public."""


class _Unresolved(WebhookRefused):
    """The webhook's host does not resolve (now)."""


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` (an IP literal is itself), each once, in the resolver's order;
    ``OSError`` (``socket.gaierror``) when it does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (and so is what it embeds: an IPv4 in a
    mapped, 6to4 or NAT64 IPv6 address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not _public(embedded):
            return False
        if address.teredo is not None and not all(_public(a) for a in address.teredo):
            return False
    return address.is_global and not address.is_multicast


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of ``url``: what a message may show (a webhook URL's user
    info, path and query often carry a token)."""
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def check_webhook_url(
    url: str,
    *,
    allow_private: bool = False,
    resolve: Resolver = resolve_host,
    unresolved_ok: bool = False,
) -> list[IPAddress]:
    """The addresses ``url``'s host resolves to, every one checked; :class:`WebhookRefused`
    naming the problem for a scheme other than http/https, no host, or (unless
    ``allow_private``) an address that is not public. A host that does not resolve is
    refused too, or with ``unresolved_ok`` (a rule being stored: its delivery checks again)
    passes with no address."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise WebhookRefused(f"webhook_url is not a valid URL: {exc}") from exc
    if parsed.scheme not in _SCHEMES:
        raise WebhookRefused(
            f"webhook_url: scheme {parsed.scheme!r} is not allowed (only http, https)"
        )
    host = parsed.host
    if not host:
        raise WebhookRefused("webhook_url has no host")
    try:
        addresses = resolve(host, parsed.port or _SCHEMES[parsed.scheme])
    except (OSError, UnicodeError) as exc:
        if unresolved_ok:
            return []
        raise _Unresolved(f"webhook host {host!r} does not resolve: {exc}") from exc
    if not addresses:
        if unresolved_ok:
            return []
        raise _Unresolved(f"webhook host {host!r} resolves to no address")
    if not allow_private:
        private = [str(a) for a in addresses if not _public(a)]
        if private:
            raise WebhookRefused(
                f"webhook_url {_origin(parsed)} targets a non-public address "
                f"({', '.join(private)}: loopback, private, link-local, metadata or reserved); "
                "set alert_webhook_allow_private to deliver inside the network"
            )
    return addresses


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
    allow_private: bool = False,
    resolve: Resolver = resolve_host,
) -> Delivery:
    """POST ``alert`` to ``url`` until a 2xx, a final refusal or ``attempts`` are used up.

    Each attempt resolves the host, checks every address (:func:`check_webhook_url`; a
    refused one ends the delivery, nothing sent) and connects to the checked addresses in
    turn; redirects are not followed."""
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
        response: httpx.Response | None = None
        try:
            addresses = check_webhook_url(url, allow_private=allow_private, resolve=resolve)
            response = _post_pinned(client, url, addresses, body, headers)
        except _Unresolved as exc:  # (DNS may answer at the next attempt)
            status, error = None, str(exc)
        except WebhookRefused as exc:
            logger.warning("webhook %s not sent: %s", alert.alert_id, exc)
            return Delivery(alert.alert_id, False, attempt, None, f"refused: {exc}")
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        if response is not None:
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


def _post_pinned(
    client: httpx.Client,
    url: str,
    addresses: list[IPAddress],
    body: bytes,
    headers: dict[str, str],
) -> httpx.Response:
    """POST to ``url`` through a connection to one of ``addresses`` (tried in order while
    they refuse the connection), with the URL's own ``Host`` and TLS server name."""
    target = httpx.URL(url)
    pinned = {**headers, "Host": target.netloc.decode("ascii")}
    extensions = {"sni_hostname": target.raw_host.decode("ascii")}
    for i, address in enumerate(addresses):
        try:
            return client.post(
                target.copy_with(host=str(address)),
                content=body,
                headers=pinned,
                extensions=extensions,
                follow_redirects=False,
            )
        except httpx.ConnectError:
            if i + 1 == len(addresses):
                raise
    raise AssertionError("no address")  # (check_webhook_url returns at least one)


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", "0"))
    except ValueError:
        return 0.0
