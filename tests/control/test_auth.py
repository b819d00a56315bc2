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


class _KeyReads:
    """Counts the statements that read the api_keys table on ``engine``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            self.count += 1


def _unknown_token(n: int) -> str:
    return f"tnp_{n:016x}_" + "A" * 43


def test_a_refused_key_is_remembered_briefly(acme: ControlPlane) -> None:
    """An invalid key (unknown, wrong secret or revoked) is refused from memory for a moment
    after its first refusal, so a client retrying it (or the API's fast path and route both
    checking it) costs the control plane one read, not one per check."""
    key, token = acme.create_api_key("acme", "k", ["read"])
    server = ControlPlane(acme.engine, auth_cache_ttl=5.0, auth_refusal_ttl=0.3)
    reads = _KeyReads(acme.engine)
    wrong_secret = token[:-1] + ("B" if token[-1] != "B" else "C")
    try:
        for bad, reason in ((_unknown_token(7), "invalid API key"), (wrong_secret, "invalid")):
            for _ in range(3):
                with pytest.raises(AuthError, match=reason):
                    server.authenticate(bad)
        assert reads.count == 2  # one read per bad token
        # Through the loop's helper too, and the good token of the same key still works.
        with pytest.raises(AuthError, match="invalid API key"):
            asyncio.run(authenticate_off_loop(server, _unknown_token(7)))
        assert reads.count == 2
        assert server.authenticate(token).key_id == key.key_id
        assert reads.count == 3
        time.sleep(0.35)  # past the refusal's TTL: read again
        with pytest.raises(AuthError, match="invalid API key"):
            server.authenticate(_unknown_token(7))
        assert reads.count == 4
    finally:
        server.dispose()


def test_a_key_created_after_its_refusal_is_valid_within_the_refusal_ttl(
    acme: ControlPlane,
) -> None:
    key, token = acme.create_api_key("acme", "k", ["read"])
    server = ControlPlane(acme.engine, auth_refusal_ttl=0.3)  # a gateway process
    with acme.engine.begin() as conn:  # the key is gone for a moment (another process)
        row = conn.execute(sa.select(ApiKey.__table__).where(ApiKey.id == key.key_id)).one()
        conn.execute(sa.delete(ApiKey).where(ApiKey.id == key.key_id))
    try:
        with pytest.raises(AuthError, match="invalid API key"):
            server.authenticate(token)
        with acme.engine.begin() as conn:  # ... and created (again) elsewhere
            conn.execute(sa.insert(ApiKey.__table__).values(**row._mapping))
        deadline = time.monotonic() + 0.3 + 0.25
        while time.monotonic() < deadline:
            try:
                assert server.authenticate(token).key_id == key.key_id
                break
            except AuthError:
                time.sleep(0.02)
        else:
            pytest.fail("the key created after its refusal was still refused after the TTL")
    finally:
        server.dispose()


def test_many_random_keys_keep_the_refusal_memory_bounded(
    sqlite_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client cycling through random well-formed keys costs a read each (as before), and the
    refusals kept never exceed the bound: the oldest go first."""
    from tenpo.control import plane as plane_module

    monkeypatch.setattr(plane_module, "AUTH_REFUSALS_KEPT", 50)
    server = ControlPlane(sqlite_plane.engine, auth_refusal_ttl=60.0)
    reads = _KeyReads(sqlite_plane.engine)
    try:
        for n in range(400):
            with pytest.raises(AuthError):
                server.authenticate(_unknown_token(n))
        assert reads.count == 400
        assert server.auth_refusals_kept() == 50
        assert server.cached_refusal(_unknown_token(399)) is not None  # the newest are kept
        assert server.cached_refusal(_unknown_token(0)) is None  # the oldest went first
    finally:
        server.dispose()


def test_recent_refusals_are_bounded_and_expire_in_order() -> None:
    from tenpo.control._cache import RecentRefusals

    now = [0.0]
    cache: RecentRefusals[int] = RecentRefusals(ttl=1.0, maxsize=1000, clock=lambda: now[0])
    for i in range(100_000):
        cache.add(i, "invalid API key")
    assert len(cache) == 1000 and cache.get(99_999) == "invalid API key" and cache.get(0) is None
    now[0] = 0.5
    cache.add(-1, "revoked")
    now[0] = 1.01  # the first 1000 have expired, the last one not
    assert cache.get(99_999) is None and cache.get(-1) == "revoked"
    cache.add(-2, "x")
    assert len(cache) == 2
    cache.discard(lambda k: k < 0)
    assert len(cache) == 0
    assert RecentRefusals(ttl=0.0).add(1, "x") is None and len(RecentRefusals(ttl=0.0)) == 0


def test_a_revocation_during_a_check_is_never_undone_by_it(acme: ControlPlane) -> None:
    """A check that read the key before a revocation in this process and stores it after the
    revocation's discard must not leave the revoked key cached for a TTL."""
    key, token = acme.create_api_key("acme", "k", ["read"])
    cache = acme._auth_cache
    real_put = cache.put
    revoked: list[bool] = []

    def put_after_a_revocation(*args: object, **kwargs: object) -> None:
        if not revoked:  # the revocation lands between the check's test and its put
            revoked.append(True)
            acme.revoke_api_key("acme", key.key_id)
        real_put(*args, **kwargs)  # type: ignore[arg-type]

    cache.put = put_after_a_revocation  # type: ignore[method-assign]
    assert acme.authenticate(token).key_id == key.key_id  # read before the revocation
    assert revoked
    assert acme.cached_principal(token) is None
    with pytest.raises(AuthError, match="revoked"):
        acme.authenticate(token)
