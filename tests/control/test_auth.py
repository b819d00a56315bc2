"""API keys: token format, verification, revocation, scopes."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import sqlalchemy as sa

from tenpo.control import SCOPES, ControlPlane, Principal
from tenpo.control.auth import authenticate_off_loop
from tenpo.control.models import ApiKey
from tenpo.core.errors import AuthError, BadInput, Forbidden, NotFound
from tenpo.core.settings import Settings


@pytest.fixture
def acme(plane: ControlPlane) -> ControlPlane:
    plane.create_tenant("acme", "Acme")
    plane.create_tenant("beta", "Beta")
    return plane


def test_good_token(acme: ControlPlane) -> None:
    key, token = acme.create_api_key("acme", "pos gateway", ["pos:write"])
    assert re.fullmatch(r"key_[0-9a-f]{16}", key.key_id)
    assert re.fullmatch(r"tnp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    assert token.startswith(f"tnp_{key.key_id.removeprefix('key_')}_")

    principal = acme.authenticate(token)
    assert principal == Principal("acme", key.key_id, frozenset({"pos:write"}))
    assert acme.authenticate(f"  {token}\n") == principal  # header whitespace is tolerated

    listed = acme.list_api_keys("acme")
    assert [k.key_id for k in listed] == [key.key_id]
    assert listed[0].last_used_at is not None


def test_secret_is_stored_only_as_hash(acme: ControlPlane) -> None:
    key, token = acme.create_api_key("acme", "k", ["read"])
    secret = token.split("_", 2)[2]
    with acme.engine.connect() as conn:
        stored = conn.execute(sa.select(ApiKey.token_hash).where(ApiKey.id == key.key_id)).one()
        dump = conn.execute(sa.select(ApiKey.__table__)).all()
    assert len(stored.token_hash) == 64 and secret not in stored.token_hash
    assert secret not in repr(dump)


def test_wrong_secret(acme: ControlPlane) -> None:
    _, token = acme.create_api_key("acme", "k", ["read"])
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AuthError, match="invalid API key"):
        acme.authenticate(forged)
    # A verified token in the cache does not vouch for a different secret.
    acme.authenticate(token)
    with pytest.raises(AuthError, match="invalid API key"):
        acme.authenticate(forged)


@pytest.mark.parametrize(
    "token",
    ["", "Bearer abc", "tnp_", "tnp_zz_secret", "tnp_0123456789abcdef_short", "key_0123_x" * 5],
)
def test_malformed(sqlite_plane: ControlPlane, token: str) -> None:
    with pytest.raises(AuthError, match="malformed API key"):
        sqlite_plane.authenticate(token)


def test_unknown_key(acme: ControlPlane) -> None:
    with pytest.raises(AuthError, match="invalid API key"):
        acme.authenticate("tnp_0123456789abcdef_" + "A" * 43)


def test_revoked(acme: ControlPlane) -> None:
    key, token = acme.create_api_key("acme", "k", ["iot:write"])
    acme.authenticate(token)  # now cached
    revoked = acme.revoke_api_key("acme", key.key_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthError, match="revoked"):
        acme.authenticate(token)
    assert acme.revoke_api_key("acme", key.key_id).revoked_at == revoked.revoked_at  # idempotent


def test_revoked_elsewhere_is_seen_after_cache_ttl(acme: ControlPlane) -> None:
    key, token = acme.create_api_key("acme", "k", ["iot:write"])
    other_process = ControlPlane(acme.engine, auth_cache_ttl=0)
    other_process.authenticate(token)
    acme.revoke_api_key("acme", key.key_id)
    with pytest.raises(AuthError, match="revoked"):
        other_process.authenticate(token)


def test_revocation_elsewhere_is_honoured_within_the_cache_bound(acme: ControlPlane) -> None:
    key, token = acme.create_api_key("acme", "k", ["iot:write"])
    server = ControlPlane(acme.engine, auth_cache_ttl=0.5)  # a gateway process
    server.authenticate(token)
    acme.revoke_api_key("acme", key.key_id)  # e.g. `tenpo admin`, another process
    assert server.authenticate(token).key_id == key.key_id  # cached: no database read
    time.sleep(0.6)
    with pytest.raises(AuthError, match="revoked"):
        server.authenticate(token)


def test_the_auth_cache_bound_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENPO_AUTH_CACHE_SECONDS", "2.5")
    assert Settings().auth_cache_seconds == 2.5
    monkeypatch.delenv("TENPO_AUTH_CACHE_SECONDS")
    assert Settings().auth_cache_seconds == 5.0


def test_revoke_other_tenants_key(acme: ControlPlane) -> None:
    key, token = acme.create_api_key("acme", "k", ["read"])
    with pytest.raises(NotFound):
        acme.revoke_api_key("beta", key.key_id)
    assert acme.authenticate(token).tenant_id == "acme"


def test_missing_scope(acme: ControlPlane) -> None:
    _, token = acme.create_api_key("acme", "iot", ["iot:write", "read"])
    principal = acme.authenticate(token)
    principal.require("iot:write")
    assert principal.allows("read")
    assert not principal.allows("pos:write")
    with pytest.raises(Forbidden, match="lacks the 'pos:write' scope") as err:
        principal.require("pos:write")
    assert err.value.http_status == 403
    with pytest.raises(ValueError, match="unknown scope"):
        principal.allows("pos:wrte")


def test_admin_implies_all(acme: ControlPlane) -> None:
    _, token = acme.create_api_key("acme", "ops", ["admin"])
    principal = acme.authenticate(token)
    for scope in SCOPES:
        assert principal.allows(scope)
        principal.require(scope)


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["pos:write", "superuser"], "unknown scope 'superuser'"),
        ([], "at least one scope"),
    ],
)
def test_bad_scopes(acme: ControlPlane, scopes: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        acme.create_api_key("acme", "k", scopes)
    assert acme.list_api_keys("acme") == []


def test_key_for_unknown_tenant(acme: ControlPlane) -> None:
    with pytest.raises(NotFound, match="tenant 'nope'"):
        acme.create_api_key("nope", "k", ["read"])


def test_a_key_in_use_is_checked_again_before_it_expires(acme: ControlPlane) -> None:
    """A look-up in the second half of the TTL has the key re-read in the background, so a
    key in use never drops out of the cache; a revocation seen by that re-read drops it."""
    key, token = acme.create_api_key("acme", "k", ["read"])
    server = ControlPlane(acme.engine, auth_cache_ttl=0.8)  # an API process
    try:
        started = time.monotonic()
        principal = server.authenticate(token)
        assert server.cached_principal(token) == principal  # first half: no re-read
        time.sleep(0.45)
        assert server.cached_principal(token) == principal  # second half: re-read queued
        time.sleep(max(0.0, started + 0.9 - time.monotonic()))  # past the first entry's end
        assert server.cached_principal(token) == principal
        acme.revoke_api_key("acme", key.key_id)  # elsewhere: this process is not told
        deadline = time.monotonic() + 1.5
        while server.cached_principal(token) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # each look-up in the second half of the TTL asks for a re-read
        assert server.cached_principal(token) is None
        with pytest.raises(AuthError, match="revoked"):
            server.authenticate(token)
    finally:
        server.dispose()
    assert server.cached_principal(token) is None  # disposed: no re-read is started


class _SlowCheck:
    """An authenticator without a cache whose check takes a while, counting its checks."""

    def __init__(self, principal: Principal | None) -> None:
        self.principal = principal
        self.checks = 0

    def authenticate(self, token: str) -> Principal:
        self.checks += 1
        time.sleep(0.05)
        if self.principal is None:
            raise AuthError("invalid API key")
        return self.principal


def test_concurrent_misses_of_one_token_share_one_check() -> None:
    """A burst of a cold key's requests is one control-plane check on a worker thread, not
    one each; a waiter that is cancelled leaves the others their answer."""
    principal = Principal("acme", "key_1", frozenset({"read"}))
    good, bad = _SlowCheck(principal), _SlowCheck(None)

    async def main() -> tuple[list[object], list[object]]:
        waiters = [asyncio.ensure_future(authenticate_off_loop(good, "tok")) for _ in range(20)]
        other = authenticate_off_loop(good, "tok2")
        refused = [authenticate_off_loop(bad, "tok") for _ in range(5)]
        await asyncio.sleep(0.01)
        waiters[0].cancel()
        answers = await asyncio.gather(*waiters, other, return_exceptions=True)
        return answers, await asyncio.gather(*refused, return_exceptions=True)

    answers, refusals = asyncio.run(main())
    assert isinstance(answers[0], asyncio.CancelledError)
    assert answers[1:] == [principal] * 20
    assert good.checks == 2  # "tok" once for 20 requests, "tok2" once
    assert bad.checks == 1 and all(isinstance(r, AuthError) for r in refusals)
