"""Who is calling the read API: an API key (scope ``read``) or a dashboard session cookie.

Sessions are signed tokens: ``base64url(payload).base64url(HMAC-SHA256)`` with the
settings' ``session_secret``; the payload names the user, the user's session version and an
expiry. The user is read back from the control plane on each request (cached a few seconds,
and dropped from this process's cache at logout), so a disabled user, a changed store
assignment or a bumped session version (logout, password change, user removal) ends the
session without waiting for the cookie to expire.

Every authenticated caller also passes a per-caller token bucket (:class:`RateLimiter`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from tenpo.api._state import api_state
from tenpo.control import Principal, UserInfo
from tenpo.control.auth import ADMIN_SCOPE, authenticate_off_loop
from tenpo.core.errors import AuthError, Forbidden, NotFound, TenpoError

logger = logging.getLogger(__name__)

READ_SCOPE = "read"
SESSION_COOKIE = "tenpo_session"
_USER_CACHE_S = 5.0


class UserDirectory(Protocol):
    """Users for dashboard sessions (``tenpo.control.ControlPlane`` is one)."""

    def authenticate_user(self, email: str, password: str) -> UserInfo:
        """The user with these credentials; AuthError otherwise."""
        ...

    def get_user(self, user_id: str) -> UserInfo:
        """The user with this id; NotFound otherwise."""
        ...

    def end_sessions(self, user_id: str) -> int:
        """Invalidate every session token of ``user_id``; its new session version."""
        ...


class RateLimited(TenpoError):
    """The caller sent more requests than its token bucket allows."""

    http_status = 429
    title = "Too many requests"


# -- session tokens ----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and verifies signed, expiring session tokens."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._key = hashlib.sha256(b"tenpo-session:" + secret.encode()).digest()
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: UserInfo, now: float | None = None) -> str:
        """A token naming ``user`` that expires ``ttl_s`` seconds from ``now``."""
        issued = int(time.time() if now is None else now)
        body = {
            "u": user.user_id,
            "t": user.tenant_id,
            "v": user.session_version,
            "exp": issued + self.ttl_s,
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: float | None = None) -> tuple[str, str, int]:
        """``(user_id, tenant_id, session_version)`` of a valid token; :class:`AuthError` when
        forged or expired (the version is checked against the user by :func:`session_user`)."""
        payload, _, signature = token.partition(".")
        if not payload or not signature or not hmac.compare_digest(signature, self._sign(payload)):
            raise AuthError("invalid session: log in again")
        try:
            body = json.loads(_unb64(payload))
            user_id, tenant_id, expires = str(body["u"]), str(body["t"]), int(body["exp"])
            version = int(body["v"])
        except (ValueError, KeyError, TypeError):
            raise AuthError("invalid session: log in again") from None
        if expires <= (time.time() if now is None else now):
            raise AuthError("session expired: log in again")
        return user_id, tenant_id, version


# -- rate limiting -----------------------------------------------------------------------


class RateLimiter:
    """In-process token buckets: ``rate`` requests per second per key, bursts up to ``burst``.

    ``rate == 0`` disables limiting. Buckets that have refilled are forgotten now and then so
    the table does not grow with every key ever seen.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``: 0.0 when allowed, else seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, seen = self._buckets.get(key, (float(self.burst), t))
            tokens = min(float(self.burst), tokens + (t - seen) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, t)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, t)
                wait = (1.0 - tokens) / self.rate
            if t - self._last_sweep > 60.0:
                self._sweep(t)
        return wait

    def wait(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` has a token (0.0: now), without taking it."""
        if self.rate <= 0:
            return 0.0
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, seen = self._buckets.get(key, (float(self.burst), t))
        tokens = min(float(self.burst), tokens + (t - seen) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _sweep(self, now: float) -> None:
        full = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
        self._last_sweep = now

    def check(self, key: str, *, spend: bool = True) -> None:
        """Raise :class:`RateLimited` (with ``retry_after`` seconds) when ``key`` is over;
        ``spend=False`` only looks (the token is taken later, e.g. on a failed login)."""
        wait = self.acquire(key) if spend else self.wait(key)
        if wait > 0:
            retry = max(1, int(wait + 0.999))
            raise RateLimited(
                f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded; "
                f"retry in {retry} s",
                retry_after=retry,
            )


# -- the client's address ----------------------------------------------------------------


def trusted_networks(entries: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    """The ``trusted_proxies`` setting as networks (a bare address is a /32 or /128)."""
    return tuple(ip_network(e, strict=False) for e in entries)


def _is_trusted(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request) -> str:
    """The client's address: the peer's, or, when the peer is a configured proxy, the nearest
    ``X-Forwarded-For`` entry that is not one (entries further left are the client's to
    forge). Without configured proxies the header is ignored: anybody can send it."""
    peer = request.client.host if request.client else "unknown"
    networks = api_state(request.app).trusted_proxies
    if not networks or not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop, networks):
            return hop
    return peer


# -- the caller ----------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API key with the `read` scope.")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Dashboard session (POST /v1/auth/login)."
)


class UserCache:
    """Users read back for sessions, kept a few seconds (one control-plane read per burst)."""

    def __init__(self, ttl_s: float = _USER_CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[float, UserInfo]] = {}
        self._lock = threading.Lock()

    def get(self, users: UserDirectory, user_id: str) -> UserInfo:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(user_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        user = users.get_user(user_id)
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[user_id] = (now, user)
        return user

    def forget(self, user_id: str) -> None:
        """Drop ``user_id`` so the next request reads it back (after logout)."""
        with self._lock:
            self._items.pop(user_id, None)


def principal_of(user: UserInfo) -> Principal:
    """The read-only principal of a dashboard user (store managers see their stores only)."""
    stores = None if user.role == "tenant_admin" else frozenset(user.store_ids)
    return Principal(
        tenant_id=user.tenant_id,
        key_id=f"user:{user.user_id}",
        scopes=frozenset({READ_SCOPE}),
        store_ids=stores,
    )


def session_user(request: Request, token: str) -> UserInfo:
    """The active user behind a session token; :class:`AuthError` otherwise."""
    state = api_state(request.app)
    user_id, tenant_id, version = state.sessions.verify(token)
    try:
        user = state.user_cache.get(state.users, user_id)
    except NotFound:
        raise AuthError("invalid session: the user no longer exists") from None
    if user.tenant_id != tenant_id or user.disabled_at is not None:
        raise AuthError("invalid session: log in again")
    if user.session_version != version:
        raise AuthError("session ended (logged out or password changed): log in again")
    return user


async def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """The caller: ``Authorization: Bearer <key>`` holding ``read``, else a session cookie.

    Raises AuthError (401), Forbidden (403) or RateLimited (429, per key or user).
    ``async`` on purpose: verified keys and users are cached (``auth_cache_seconds`` and
    5 s), so the usual check is pure CPU on the loop; a key's cache miss reads the control
    plane on a worker thread (:func:`~tenpo.control.auth.authenticate_off_loop`).
    """
    state = api_state(request.app)
    if credentials is not None:
        principal = await authenticate_off_loop(state.control, credentials.credentials)
        principal.require(READ_SCOPE)
    elif session:
        principal = principal_of(session_user(request, session))
    else:
        raise AuthError(
            "missing API key: send 'Authorization: Bearer <api key>' or log in "
            "(POST /v1/auth/login) for a session cookie"
        )
    state.known_credentials.remember(
        credentials.credentials if credentials is not None else session, principal
    )
    state.rate_limiter.check(principal.key_id)
    return principal


@dataclass(frozen=True)
class AdminCaller:
    """An authenticated admin key; ``operator`` keys may act on every tenant."""

    principal: Principal
    operator: bool

    def tenant(self, requested: str | None) -> str:
        """The tenant a request acts on: the key's own, or (operator only) ``requested``."""
        own = self.principal.tenant_id
        if requested is None or requested == own:
            return own
        if self.operator:
            return requested
        raise Forbidden(
            f"API key {self.principal.key_id} may only manage its own tenant {own!r}",
            scope=ADMIN_SCOPE,
        )


_admin_bearer = HTTPBearer(auto_error=False, description="An API key with the `admin` scope.")


async def admin_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> AdminCaller:
    """The caller of an admin route: ``Authorization: Bearer <key with admin scope>``.

    Raises AuthError (401), Forbidden (403, no ``admin`` scope) or RateLimited (429).
    """
    if credentials is None:
        raise AuthError("missing API key: send 'Authorization: Bearer <key with the admin scope>'")
    state = api_state(request.app)
    principal = await authenticate_off_loop(state.control, credentials.credentials)
    if ADMIN_SCOPE not in principal.scopes:
        raise Forbidden(
            f"API key {principal.key_id} lacks the {ADMIN_SCOPE!r} scope", scope=ADMIN_SCOPE
        )
    state.rate_limiter.check(principal.key_id)
    return AdminCaller(principal, principal.tenant_id == state.settings.operator_tenant)


class KnownCredentials:
    """Credentials that authenticated, and the bucket (key id) each spends from."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def remember(self, credential: str | None, principal: Principal) -> None:
        """Map ``credential`` to its principal's bucket (after a successful check)."""
        if credential is None or self._known.get(credential) == principal.key_id:
            return
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[credential] = principal.key_id

    def forget(self, credential: str) -> None:
        """Stop recognising ``credential`` (logout)."""
        with self._lock:
            self._known.pop(credential, None)

    def bucket(self, credential: str) -> str | None:
        """The key id ``credential`` authenticated as, if it did."""
        return self._known.get(credential)


class FastRefusal:
    """ASGI middleware answering 429 before routing, auth and handlers when the caller's
    bucket is empty (issue 11: a refusal must cost less than the answer).

    Only credentials that authenticated before are recognised (``ApiState.known_credentials``;
    a forged token naming someone's key id cannot drain that key's bucket). The request
    that empties a bucket takes the normal path, which spends the token and refuses.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "app" in scope:
            state = api_state(scope["app"])
            key_id = state.known_credentials.bucket(_credential(scope))
            limiter = state.rate_limiter
            if key_id is not None and (wait := limiter.wait(key_id)) > 0:
                await _send_429(send, scope, limiter, wait)
                return
        await self.app(scope, receive, send)


def _credential(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, token = part.strip().partition("=")
                if key == SESSION_COOKIE:
                    return token
    return ""


async def _send_429(send: Send, scope: Scope, limiter: RateLimiter, wait: float) -> None:
    retry = max(1, int(wait + 0.999))
    body = json.dumps(
        {
            "type": "urn:tenpo:problem:rate-limited",
            "title": RateLimited.title,
            "status": 429,
            "detail": f"rate limit of {limiter.rate:g} requests/s (burst {limiter.burst}) "
            f"exceeded; retry in {retry} s",
            "instance": scope.get("path", ""),
        },
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
