"""API-key tokens and the authenticated :class:`Principal`.

A token reads ``tnp_<key id hex>_<secret>``: the key id locates the stored key, the secret
(32 random bytes, URL-safe base64) is checked against its SHA-256 in constant time. Only
the hash is stored; the plaintext token is shown once, when the key is created.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import weakref
from dataclasses import dataclass
from typing import Protocol

from tenpo.core.errors import AuthError, BadInput, Forbidden

SCOPES: frozenset[str] = frozenset({"pos:write", "iot:write", "video:write", "read", "admin"})
"""Every scope a key can hold; ``admin`` implies all the others."""

ADMIN_SCOPE = "admin"
_KEY_HEX_LEN = 16
_TOKEN = re.compile(rf"^tnp_(?P<hex>[0-9a-f]{{{_KEY_HEX_LEN}}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and key (or user) behind a verified credential, its scopes."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]
    # None: every store of the tenant; otherwise only these (a store manager's stores).
    store_ids: frozenset[str] | None = None

    def sees_store(self, store_id: str) -> bool:
        """Whether this caller may see ``store_id`` (its tenant is checked by the caller)."""
        return self.store_ids is None or store_id in self.store_ids

    def allows(self, scope: str) -> bool:
        """Whether this caller holds ``scope`` (``admin`` holds every scope)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        return scope in self.scopes or ADMIN_SCOPE in self.scopes

    def require(self, scope: str) -> None:
        """Raise :class:`Forbidden` naming ``scope`` unless this caller holds it."""
        if not self.allows(scope):
            raise Forbidden(
                f"API key {self.key_id} lacks the {scope!r} scope", scope=scope, key_id=self.key_id
            )


class Authenticator(Protocol):
    """Turns an API token into a principal (``tenpo.control.ControlPlane`` is one)."""

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``; raises AuthError when it is not valid."""
        ...


async def authenticate_off_loop(control: Authenticator, token: str) -> Principal:
    """The principal behind ``token``, for code on an event loop: from ``control``'s auth
    cache when it holds the key (``cached_principal``: no database, no thread hop), its
    refusal when the token was refused lately (``cached_refusal``: the same), else
    ``control.authenticate`` on a worker thread, so a cache miss's control-plane read (and
    its last-used write) never stalls the loop. Concurrent misses of one token on one loop
    share that check (a burst of a cold key's requests is one read, not one each, queued on
    the loop's few worker threads). :class:`AuthError` as ``authenticate``."""
    cached = getattr(control, "cached_principal", None)
    if cached is not None and (principal := cached(token)) is not None:
        return principal
    refused = getattr(control, "cached_refusal", None)
    if refused is not None and (reason := refused(token)) is not None:
        raise AuthError(reason)  # refused lately: no read, no thread hop
    loop = asyncio.get_running_loop()
    checks = _CHECKS.get(loop)
    if checks is None:
        checks = _CHECKS[loop] = {}
    key = (id(control), token)
    check = checks.get(key)
    if check is None:
        check = checks[key] = loop.run_in_executor(None, control.authenticate, token)
        check.add_done_callback(lambda done: _checked(checks, key, done))
    # Shielded: a waiter that is cancelled (its client left) does not cancel the others'.
    return await asyncio.shield(check)


_CHECKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, str], asyncio.Future[Principal]]
] = weakref.WeakKeyDictionary()
"""The checks in flight per loop, by (control, token)."""


def _checked(
    checks: dict[tuple[int, str], asyncio.Future[Principal]],
    key: tuple[int, str],
    done: asyncio.Future[Principal],
) -> None:
    checks.pop(key, None)
    if not done.cancelled():
        done.exception()  # retrieved: no "never retrieved" warning when every waiter left


def normalize_scopes(scopes: object) -> tuple[str, ...]:
    """The scopes as a sorted tuple; :class:`BadInput` for an empty list or an unknown scope."""
    if isinstance(scopes, str):
        scopes = [scopes]
    if not isinstance(scopes, list | tuple | set | frozenset):
        raise BadInput("scopes must be a list of scope names")
    names = {str(s).strip() for s in scopes}
    if not names:
        raise BadInput(f"an API key needs at least one scope (one of {', '.join(sorted(SCOPES))})")
    unknown = sorted(names - SCOPES)
    if unknown:
        raise BadInput(
            f"unknown scope {unknown[0]!r}; expected one of {', '.join(sorted(SCOPES))}",
            scope=unknown[0],
        )
    return tuple(sorted(names))


def new_key() -> tuple[str, str, str]:
    """A fresh ``(key_id, token, token_hash)``; the token is the only copy of the secret."""
    key_hex = secrets.token_hex(_KEY_HEX_LEN // 2)
    secret = secrets.token_urlsafe(32)
    return f"key_{key_hex}", f"tnp_{key_hex}_{secret}", hash_secret(secret)


def parse_token(token: str) -> tuple[str, str]:
    """``(key_id, secret)`` of a well-formed token; :class:`AuthError` otherwise."""
    match = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    if match is None:
        raise AuthError("malformed API key (expected tnp_<key id>_<secret>)")
    return f"key_{match['hex']}", match["secret"]


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a token secret (secrets are random, so no salt or stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, token_hash: str) -> bool:
    """Constant-time comparison of ``secret`` with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), token_hash)
