"""Users, sessions, tenant isolation of every endpoint, and the KPI features the dashboard uses.

Runs on a SQLite and a PostgreSQL datamart (control plane: SQLite). See ``world.py``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.api._auth import RateLimiter, SessionSigner, UserCache
from tenpo.api.deps import api_state
from tenpo.control import ControlPlane, UserInfo
from tenpo.core.errors import AuthError, BadInput, ConfigError, Conflict, NotFound
from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines, get_engine, sync_stores
from tests.api.world import (
    DAYS,
    GAP,
    NO_COUNTER,
    PASSWORD,
    SECRET_SALES,
    SECRET_STORE,
    USERS,
    World,
    build,
    s1_row,
)
from tests.datamart.factory import BACKENDS, temporary_database

RANGE = {"from": "2026-10-05", "to": "2026-10-11"}
DT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("world")
    with temporary_database(request.param, folder, pg) as url:
        w = build(folder, url)
        yield w
        w.control.dispose()
    dispose_engines()


def _client(world: World, **overrides: Any) -> TestClient:
    settings = world.settings.model_copy(update=overrides) if overrides else world.settings
    app = create_app(
        settings, engine=get_engine(world.settings.datamart_db_url), control=world.control
    )
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with _client(world) as c:
        yield c


def login(client: TestClient, who: str) -> TestClient:
    """A fresh client sharing the app, logged in as ``who``."""
    c = TestClient(client.app, base_url="http://127.0.0.1")
    resp = c.post("/v1/auth/login", json={"email": USERS[who], "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return c


def key(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(resp: Any, status: int, part: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert part in body["detail"], body["detail"]
    return body


# -- control plane users ----------------------------------------------------------------


def test_users_in_the_control_plane(tmp_path: Path) -> None:
    control = ControlPlane.open(f"sqlite:///{tmp_path / 'c.db'}")
    control.create_tenant("a", "A")
    control.create_tenant("b", "B")
    s = control.create_store("a", "001", "One")
    b_store = control.create_store("b", "001", "Theirs")
    user = control.create_user("a", " Boss@Example.COM ", "a long password", "tenant_admin")
    assert (user.email, user.role, user.store_ids) == ("boss@example.com", "tenant_admin", ())
    with pytest.raises(Conflict, match="already exists"):
        control.create_user("b", "boss@example.com", "another password", "tenant_admin")
    with pytest.raises(BadInput, match="unknown role 'owner'"):
        control.create_user("a", "x@example.com", "a long password", "owner")
    with pytest.raises(BadInput, match="at least 10 characters"):
        control.create_user("a", "x@example.com", "short", "store_manager")
    with pytest.raises(BadInput, match="invalid email"):
        control.create_user("a", "not-an-email", "a long password", "store_manager")
    with pytest.raises(NotFound):  # another tenant's store cannot be assigned
        control.create_user(
            "a", "m@example.com", "a long password", "store_manager", [b_store.store_id]
        )
    manager = control.create_user("a", "m@example.com", "a long password", "store_manager")
    assert control.assign_stores("a", manager.user_id, [s.store_id, s.store_id]).store_ids == (
        s.store_id,
    )
    with pytest.raises(NotFound):
        control.assign_stores("b", manager.user_id, [b_store.store_id])
    with pytest.raises(BadInput, match="only store managers"):
        control.assign_stores("a", user.user_id, [s.store_id])
    # Passwords are Argon2 hashes, never the text.
    with control.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalars().all()
    assert all(h.startswith("$argon2id$") for h in stored)
    assert control.authenticate_user("BOSS@example.com", "a long password").user_id == user.user_id
    for email, password in [("boss@example.com", "wrong password"), ("nobody@x.jp", "whatever1")]:
        with pytest.raises(AuthError, match="invalid email or password"):
            control.authenticate_user(email, password)
    assert [u.email for u in control.list_users("a")] == ["boss@example.com", "m@example.com"]
    control.dispose()


def test_session_tokens_are_signed_and_expire() -> None:
    signer = SessionSigner("s" * 40, ttl_s=60)
    user = UserInfo(
        user_id="usr_1", tenant_id="t1", email="a@b.jp", role="tenant_admin", created_at=DT
    )
    token = signer.issue(user, now=1000)
    assert signer.verify(token, now=1059) == ("usr_1", "t1", 0)
    with pytest.raises(AuthError, match="expired"):
        signer.verify(token, now=1060)
    payload, sig = token.split(".")
    with pytest.raises(AuthError, match="invalid session"):
        signer.verify(payload + "x." + sig, now=1000)
    with pytest.raises(AuthError, match="invalid session"):
        SessionSigner("o" * 40, ttl_s=60).verify(token, now=1000)


def test_placeholder_secret_refused_in_production(world: World) -> None:
    with pytest.raises(ConfigError, match="TENPO_SESSION_SECRET"):
        create_app(
            world.settings.model_copy(update={"environment": "production"}), control=world.control
        )
    ok = world.settings.model_copy(
        update={"environment": "production", "session_secret": "q" * 20 + "Z" * 20}
    )
    create_app(ok, engine=get_engine(world.settings.datamart_db_url), control=world.control)


# -- login and sessions ---------------------------------------------------------------------


def test_login_sets_a_secure_cookie_and_logout_clears_it(client: TestClient) -> None:
    c = TestClient(client.app, base_url="http://127.0.0.1")
    resp = c.post("/v1/auth/login", json={"email": USERS["admin"], "password": PASSWORD})
    assert resp.json()["role"] == "tenant_admin"
    cookie = resp.headers["set-cookie"]
    assert "tenpo_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # loopback: plain HTTP
    assert c.get("/v1/auth/me").json()["email"] == USERS["admin"]
    assert c.post("/v1/auth/logout").status_code == 204
    problem(c.get("/v1/stores"), 401, "missing API key")

    remote = TestClient(client.app, base_url="https://dash.example.com")
    resp = remote.post("/v1/auth/login", json={"email": USERS["admin"], "password": PASSWORD})
    assert "Secure" in resp.headers["set-cookie"]


def _session_of(c: TestClient) -> str:
    token = c.cookies.get("tenpo_session")
    assert token
    return token


def _with_cookie(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app, base_url="http://127.0.0.1")
    other.cookies.set("tenpo_session", token)
    return other


def test_logout_ends_the_session_server_side(client: TestClient, world: World) -> None:
    world.control.create_user("t1", "leaver@t1.jp", PASSWORD, "tenant_admin")
    phone, laptop = (_login_as(client, "leaver@t1.jp") for _ in range(2))
    stolen = _with_cookie(client, _session_of(phone))  # a copy of the cookie, kept elsewhere
    assert stolen.get("/v1/stores").status_code == 200
    assert phone.post("/v1/auth/logout").status_code == 204
    # The copied cookie is signed and unexpired, yet refused: the server ended the session.
    problem(stolen.get("/v1/stores"), 401, "session ended")
    problem(laptop.get("/v1/auth/me"), 401, "session ended")  # logout ends all of them
    assert phone.post("/v1/auth/logout").status_code == 204  # idempotent
    again = _login_as(client, "leaver@t1.jp")  # a new login works
    assert again.get("/v1/stores").status_code == 200


def _login_as(client: TestClient, email: str) -> TestClient:
    c = TestClient(client.app, base_url="http://127.0.0.1")
    resp = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return c


@pytest.mark.parametrize("change", ["password", "removal"])
def test_password_change_and_removal_end_sessions(world: World, change: str) -> None:
    email = f"changer-{change}@t1.jp"
    user = world.control.create_user("t1", email, PASSWORD, "store_manager", ["s2"])
    with _client(world) as c:
        api_state(c.app).user_cache = UserCache(ttl_s=0.0)
        session = _login_as(c, email)
        assert session.get("/v1/stores").json()["total"] == 1
        if change == "password":  # as `tenpo admin user passwd` does, from another process
            world.control.set_password("t1", user.user_id, "a brand new password")
        else:
            world.control.remove_user("t1", user.user_id)
        problem(session.get("/v1/stores"), 401, "log in again")
        old = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        problem(old, 401, "invalid email or password")
        new = c.post("/v1/auth/login", json={"email": email, "password": "a brand new password"})
        assert new.status_code == (200 if change == "password" else 401)
    with pytest.raises(NotFound):
        world.control.set_password("t2", user.user_id, "a brand new password")  # other tenant


def test_bad_logins(client: TestClient) -> None:
    c = TestClient(client.app, base_url="http://127.0.0.1")
    body = problem(
        c.post("/v1/auth/login", json={"email": USERS["admin"], "password": "wrong!!!!!"}),
        401,
        "invalid email or password",
    )
    assert "set-cookie" not in body
    problem(c.post("/v1/auth/login", json={"email": "x@y.jp"}), 422, "password")
    c.cookies.set("tenpo_session", "forged.token")
    problem(c.get("/v1/stores"), 401, "invalid session")


def test_login_attempts_are_rate_limited(world: World) -> None:
    with _client(world) as c:
        api_state(c.app).login_limiter = RateLimiter(0.01, 2)
        for _ in range(2):
            c.post("/v1/auth/login", json={"email": USERS["admin"], "password": "bad password"})
        resp = c.post("/v1/auth/login", json={"email": USERS["admin"], "password": PASSWORD})
        problem(resp, 429, "rate limit")
        assert int(resp.headers["retry-after"]) >= 1


@pytest.mark.parametrize("trusted", [(), ("127.0.0.1",)])
def test_login_limit_and_forwarded_for_over_real_http(world: World, trusted: tuple[str]) -> None:
    # A real uvicorn server: its default would rewrite the client from a loopback peer's
    # X-Forwarded-For, so a guesser on the host could reset its limit with every request.
    import httpx

    from tenpo.gateway import serve_in_thread

    settings = world.settings.model_copy(update={"trusted_proxies": trusted})
    app = create_app(
        settings, engine=get_engine(world.settings.datamart_db_url), control=world.control
    )
    api_state(app).login_limiter = RateLimiter(0.01, 3)
    server, thread = serve_in_thread(app, "127.0.0.1", 0)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            codes = [
                http.post(
                    "/v1/auth/login",
                    json={"email": f"nobody{i}@x.jp", "password": "bad password"},
                    headers={"X-Forwarded-For": f"1.1.1.1, 203.0.113.{i}"},
                ).status_code
                for i in range(5)
            ]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    if trusted:  # behind a configured proxy: one bucket per forwarded client
        assert codes == [401] * 5
    else:  # the header is ignored: one bucket for the peer
        assert codes == [401, 401, 401, 429, 429]


def test_client_address_walks_forwarded_for_from_the_right() -> None:
    from starlette.requests import Request

    from tenpo.api._auth import client_address, trusted_networks

    class _App:
        class state:  # noqa: N801 - mimics app.state
            class api:  # noqa: N801 - mimics its ApiState
                trusted_proxies = trusted_networks(("10.0.0.0/8", "::1"))

    def request(peer: str, *forwarded: str) -> Request:
        headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
        return Request({"type": "http", "client": (peer, 1), "headers": headers, "app": _App()})

    assert client_address(request("10.0.0.5", "198.51.100.7")) == "198.51.100.7"
    # The client can put anything at the left; the proxy appends what it saw.
    assert client_address(request("10.0.0.5", "1.2.3.4, 198.51.100.7, 10.0.0.9")) == (
        "198.51.100.7"
    )
    assert client_address(request("10.0.0.5", "1.2.3.4", "198.51.100.7")) == "198.51.100.7"
    # An untrusted peer's header is ignored, loopback included (it is not configured here
    # for IPv4), and a proxy chain of only trusted hops names the peer.
    assert client_address(request("127.0.0.1", "198.51.100.7")) == "127.0.0.1"
    assert client_address(request("203.0.113.1", "198.51.100.7")) == "203.0.113.1"
    assert client_address(request("10.0.0.5", "10.0.0.6")) == "10.0.0.5"
    assert client_address(request("::1", "2001:db8::1")) == "2001:db8::1"


def test_login_is_limited_per_account_across_addresses(world: World) -> None:
    world.control.create_user("t1", "target@t1.jp", PASSWORD, "tenant_admin")
    with _client(world) as c:
        api_state(c.app).account_limiter = RateLimiter(0.01, 3)
        ok = c.post(
            "/v1/auth/login", json={"email": "target@t1.jp", "password": PASSWORD}
        )  # successes spend nothing
        assert ok.status_code == 200
        codes = []
        for i in range(5):  # a botnet: every attempt from another address
            # (a fresh per-address bucket each time)
            api_state(c.app).login_limiter = RateLimiter(0.01, 3)
            codes.append(
                c.post(
                    "/v1/auth/login",
                    json={"email": " Target@T1.jp ", "password": f"guess {i:04d}!"},
                ).status_code
            )
        assert codes == [401, 401, 401, 429, 429]
        # Even the right password waits now: the account is being guessed.
        problem(
            c.post("/v1/auth/login", json={"email": "target@t1.jp", "password": PASSWORD}),
            429,
            "rate limit",
        )


def test_store_manager_sees_only_assigned_stores(client: TestClient) -> None:
    m = login(client, "manager")
    assert [s["store_id"] for s in m.get("/v1/stores").json()["items"]] == ["s2"]
    assert m.get("/v1/auth/me").json()["store_ids"] == ["s2"]
    assert m.get("/v1/stores/s2/kpis", params=RANGE).status_code == 200
    for path in ("/v1/stores/s1", "/v1/stores/s1/kpis", "/v1/stores/s1/sales-tree"):
        problem(m.get(path, params=RANGE), 404, "store 's1' not found")
    problem(m.get("/v1/kpis", params=RANGE | {"store_id": ["s2", "s1"]}), 404, "'s1' not found")
    side = m.get("/v1/kpis", params=RANGE).json()
    assert [s["store_id"] for s in side["stores"]] == ["s2"] and side["total"] == 1
    assert m.get("/v1/coverage").json() == {"first": "2026-10-05", "last": "2026-10-11"}


# -- tenant isolation: every endpoint ---------------------------------------------------------


def _store_paths(client: TestClient) -> list[str]:
    spec = client.get("/openapi.json").json()
    # /v1/admin/* takes admin keys only; tests/control/test_admin_api.py checks its isolation.
    return [
        p
        for p, ops in spec["paths"].items()
        if "{store_id}" in p and "get" in ops and not p.startswith("/v1/admin/")
    ]


def _list_paths(client: TestClient) -> list[str]:
    spec = client.get("/openapi.json").json()
    return [
        p
        for p, ops in spec["paths"].items()
        if "{" not in p and "get" in ops and p.startswith("/v1/") and not p.startswith("/v1/admin/")
    ]


@pytest.mark.parametrize("who", ["admin", "key"])
def test_every_store_endpoint_hides_other_tenants_stores(
    client: TestClient, world: World, who: str
) -> None:
    c = login(client, "admin") if who == "admin" else client
    headers = key(world.t1_key) if who == "key" else {}
    paths = _store_paths(client)
    assert {"/v1/stores/{store_id}", "/v1/stores/{store_id}/kpis"} <= set(paths)
    assert "/v1/stores/{store_id}/sales-tree" in paths
    for path in paths:
        for grain in ("day", "hour", "total"):
            resp = c.get(
                path.replace("{store_id}", SECRET_STORE),
                headers=headers,
                params=RANGE | {"grain": grain},
            )
            problem(resp, 404, "not found")
            assert SECRET_SALES not in resp.text and "987654" not in resp.text
        # The owner does see it, so the 404 above is isolation, not a missing store.
        own = client.get(
            path.replace("{store_id}", SECRET_STORE), headers=key(world.t2_key), params=RANGE
        )
        assert own.status_code == 200, (path, own.text)
    for fmt in ("csv", "parquet"):
        resp = c.get(
            f"/v1/stores/{SECRET_STORE}/kpis", headers=headers, params=RANGE | {"format": fmt}
        )
        problem(resp, 404, "not found")


def _admin_key_paths(client: TestClient) -> set[str]:
    """GET paths only an ``admin``-scoped API key may call (sessions and read keys are refused)."""
    spec = client.get("/openapi.json").json()
    return {
        p
        for p, ops in spec["paths"].items()
        if "get" in ops
        and "admin" in ops["get"].get("responses", {}).get("403", {}).get("description", "")
    }


def test_every_list_endpoint_leaves_other_tenants_out(client: TestClient, world: World) -> None:
    paths = _list_paths(client)
    admin_only = _admin_key_paths(client)
    assert {"/v1/stores", "/v1/kpis", "/v1/coverage"} <= set(paths)
    for c, headers in ((login(client, "admin"), {}), (client, key(world.t1_key))):
        for path in paths:
            resp = c.get(path, headers=headers, params=RANGE)
            allowed = (401, 403) if path in admin_only else (200, 422)
            assert resp.status_code in allowed, (path, resp.text)
            assert SECRET_STORE not in resp.text and "987654" not in resp.text, path
        for fmt in ("csv", "parquet", "json"):
            resp = c.get("/v1/kpis", headers=headers, params=RANGE | {"format": fmt})
            assert SECRET_STORE.encode() not in resp.content
    problem(
        client.get(
            "/v1/kpis", headers=key(world.t1_key), params=RANGE | {"store_id": SECRET_STORE}
        ),
        404,
        "not found",
    )


def test_other_tenants_user_cannot_read_t1(client: TestClient) -> None:
    other = login(client, "other")
    assert [s["store_id"] for s in other.get("/v1/stores").json()["items"]] == [SECRET_STORE]
    problem(other.get("/v1/stores/s1/kpis", params=RANGE), 404, "store 's1' not found")


# -- KPI features -----------------------------------------------------------------------------


def test_side_by_side_kpis(client: TestClient, world: World) -> None:
    resp = client.get(
        "/v1/kpis",
        headers=key(world.t1_key),
        params=RANGE | {"store_id": ["s2", "s1"], "grain": "total"},
    )
    body = resp.json()
    assert [s["store_id"] for s in body["stores"]] == ["s1", "s2"]  # by code
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)
    s1 = body["stores"][0]["items"][0]
    expected = sum(Decimal(s1_row(d)["net_sales"]) for d in DAYS if d != GAP)
    assert s1["net_sales"] == f"{expected:.2f}"
    assert s1["transactions"] == sum(s1_row(d)["transactions"] for d in DAYS if d != GAP)
    assert (s1["business_date"], s1["period_end"], s1["days"]) == ("2026-10-05", "2026-10-11", 6)
    assert s1["flags"] == ["partial_period"]
    s2 = body["stores"][1]["items"][0]
    # The day without a counter is left out of the conversion rate: 30 / 240.
    assert s2["conversion_rate"] == pytest.approx(30 / 240)
    assert "counter_missing" in s2["flags"]
    page = client.get(
        "/v1/kpis", headers=key(world.t1_key), params=RANGE | {"limit": 1, "offset": 1}
    ).json()
    assert [s["store_id"] for s in page["stores"]] == ["s2"] and page["total"] == 3
    problem(
        client.get("/v1/kpis", headers=key(world.t1_key), params=RANGE | {"limit": 0}), 422, "limit"
    )


def test_daily_flags_and_missing_dates(client: TestClient, world: World) -> None:
    s1 = client.get("/v1/stores/s1/kpis", headers=key(world.t1_key), params=RANGE).json()
    assert s1["missing_dates"] == [GAP.isoformat()]
    assert all(r["flags"] == [] for r in s1["items"])
    s2 = client.get("/v1/stores/s2/kpis", headers=key(world.t1_key), params=RANGE).json()
    flagged = {r["business_date"]: r["flags"] for r in s2["items"] if r["flags"]}
    assert flagged == {NO_COUNTER.isoformat(): ["counter_missing"]}
    s3 = client.get("/v1/stores/s3/kpis", headers=key(world.t1_key), params=RANGE).json()
    assert len(s3["missing_dates"]) == 7


def test_sales_tree_against_the_previous_period(client: TestClient, world: World) -> None:
    params = {"from": "2026-10-09", "to": "2026-10-11"}
    tree = client.get("/v1/stores/s1/sales-tree", headers=key(world.t1_key), params=params).json()
    cur, prev = tree["current"], tree["previous"]
    assert (prev["from"], prev["to"]) == ("2026-10-06", "2026-10-08")
    cur_days = [date(2026, 10, d) for d in (9, 10, 11)]
    prev_days = [date(2026, 10, 6), date(2026, 10, 7)]  # the 8th is the gap
    assert (cur["days"], prev["days"]) == (3, 2)
    for node, days in ((cur, cur_days), (prev, prev_days)):
        rows = [s1_row(d) for d in days]
        sales = sum(Decimal(r["net_sales"]) for r in rows)
        p, v, t = (sum(r[k] for r in rows) for k in ("passersby", "visitors", "transactions"))
        assert node["net_sales"] == f"{sales:.2f}"
        assert node["passersby"] == p
        assert node["capture_rate"] == pytest.approx(v / p)
        assert node["conversion_rate"] == pytest.approx(t / v)
        assert node["atv"] == pytest.approx(float(sales) / t)
        product = node["passersby"] * node["capture_rate"] * node["conversion_rate"] * node["atv"]
        assert product == pytest.approx(float(sales))
    change = tree["change"]
    assert change["net_sales"]["relative"] == pytest.approx(
        float(Decimal(cur["net_sales"]) / Decimal(prev["net_sales"])) - 1
    )
    shares = [
        change[f]["contribution"] for f in ("passersby", "capture_rate", "conversion_rate", "atv")
    ]
    assert sum(shares) == pytest.approx(1.0)


def test_hour_grain(client: TestClient, world: World) -> None:
    params = {"from": "2026-10-05", "to": "2026-10-06", "grain": "hour"}
    body = client.get("/v1/stores/s1/kpis", headers=key(world.t1_key), params=params).json()
    assert [(r["business_date"], r["hour"]) for r in body["items"]] == [
        ("2026-10-05", 10),
        ("2026-10-05", 11),
        ("2026-10-05", 12),
        ("2026-10-06", 10),
        ("2026-10-06", 11),
        ("2026-10-06", 12),
    ]
    assert [r["net_sales"] for r in body["items"][:3]] == ["1000.00", "2000.00", "3000.00"]
    assert body["items"][0]["visitors"] == 10


def test_hour_grain_without_the_hourly_mart_is_a_422(tmp_path: Path, world: World) -> None:
    settings = Settings(data_dir=tmp_path, datamart_url=f"sqlite:///{tmp_path / 'dm.db'}")
    engine = get_engine(settings.datamart_db_url)
    with TestClient(create_app(settings, engine=engine, control=world.control)) as c:
        sync_stores(settings, [{"tenant_id": "t1", "store_id": "s1", "code": "001", "name": "S"}])
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS mart_store_hourly"))
        params = RANGE | {"grain": "hour"}
        for path in ("/v1/stores/s1/kpis", "/v1/kpis"):
            body = problem(
                c.get(path, headers=key(world.t1_key), params=params),
                422,
                "grain 'hour' needs the datamart table mart_store_hourly",
            )
            assert body["errors"][0]["loc"] == ["query", "grain"]
        assert (
            c.get("/v1/stores/s1/kpis", headers=key(world.t1_key), params=RANGE).status_code == 200
        )
    dispose_engines()


def test_export_csv_and_parquet(client: TestClient, world: World) -> None:
    h = key(world.t1_key)
    csv_resp = client.get("/v1/stores/s1/kpis", headers=h, params=RANGE | {"format": "csv"})
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert (
        'filename="kpis_s1_2026-10-05_2026-10-11_day.csv"'
        in csv_resp.headers["content-disposition"]
    )
    lines = csv_resp.text.splitlines()
    assert lines[0].startswith("store_id,business_date,period_end,hour,days,net_sales,")
    assert lines[1].startswith("s1,2026-10-05,2026-10-05,,1,10000.00,11000.00,10,20,1000.0,")
    assert len(lines) == 1 + 6
    # Accept header instead of format=
    by_accept = client.get("/v1/stores/s1/kpis", headers=h | {"Accept": "text/csv"}, params=RANGE)
    assert by_accept.content == csv_resp.content
    pq_resp = client.get(
        "/v1/kpis",
        headers=h | {"Accept": "application/vnd.apache.parquet"},
        params=RANGE | {"grain": "week"},
    )
    assert pq_resp.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(pq_resp.content))
    rows = table.to_pylist()
    s1 = next(r for r in rows if r["store_id"] == "s1")
    assert s1["net_sales"] == sum(Decimal(s1_row(d)["net_sales"]) for d in DAYS if d != GAP)
    assert str(table.schema.field("net_sales").type) == "decimal128(18, 2)"
    assert {r["store_id"] for r in rows} == {"s1", "s2"}
    etag = pq_resp.headers["etag"]
    again = client.get(
        "/v1/kpis",
        headers=h | {"Accept": "application/vnd.apache.parquet", "If-None-Match": etag},
        params=RANGE | {"grain": "week"},
    )
    assert again.status_code == 304
    problem(
        client.get("/v1/stores/s1/kpis", headers=h, params=RANGE | {"format": "xlsx"}),
        422,
        "format",
    )


def test_rate_limit_per_key(world: World) -> None:
    with _client(world, api_rate_per_s=0.5, api_rate_burst=3) as c:
        for _ in range(3):
            assert c.get("/v1/stores", headers=key(world.t1_key)).status_code == 200
        resp = c.get("/v1/stores", headers=key(world.t1_key))
        body = problem(resp, 429, "rate limit of 0.5 requests/s (burst 3) exceeded")
        assert body["title"] == "Too many requests"
        assert resp.headers["retry-after"] == "2"
        # Another key has its own bucket.
        assert c.get("/v1/stores", headers=key(world.t2_key)).status_code == 200
    with _client(world, api_rate_per_s=0) as c:  # 0 switches the limit off
        assert all(
            c.get("/v1/coverage", headers=key(world.t1_key)).status_code == 200 for _ in range(150)
        )


def test_token_bucket_refills() -> None:
    limiter = RateLimiter(2.0, 2)
    assert [limiter.acquire("k", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("k", now=0.0) == pytest.approx(0.5)
    assert limiter.acquire("k", now=0.5) == 0.0
    assert limiter.acquire("other", now=0.5) == 0.0


def test_dashboard_is_served(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/app/"
    page = client.get("/app/")
    assert page.status_code == 200 and "app.js" in page.text
    assert "cdn" not in page.text.lower()
    vendor = client.get("/app/vendor/chart.umd.min.js")
    assert vendor.status_code == 200 and b"Chart" in vendor.content[:2000]
