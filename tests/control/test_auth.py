"""API keys: token format, verification, revocation, scopes."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from tenpo.control import SCOPES, ControlPlane, Principal
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
