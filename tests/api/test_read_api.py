"""The read API through FastAPI's test client, on a SQLite and a PostgreSQL datamart.

API keys are real: a control plane (SQLite) holds two tenants and their keys.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.api.deps import api_state
from tenpo.control import ControlPlane, Principal
from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines, export_partition, get_engine, sync_stores
from tests.datamart.factory import BACKENDS, daily_row, mart_table, temporary_database

MON = date(2026, 10, 5)  # a Monday
TUE, WED, FRI = MON + timedelta(days=1), MON + timedelta(days=2), MON + timedelta(days=4)
NEXT_MON = MON + timedelta(days=7)
RANGE = {"from": "2026-10-05", "to": "2026-10-18"}


@dataclass
class Keys:
    control: ControlPlane
    t1_read: str
    t1_write_only: str
    t2_read: str
    t1_revoked: str


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    db = tmp_path_factory.mktemp("control") / "control.db"
    control = ControlPlane.open(f"sqlite:///{db}")
    for tenant in ("t1", "t2"):
        control.create_tenant(tenant, f"Tenant {tenant}")
    old, revoked = control.create_api_key("t1", "old", ["read"])
    control.revoke_api_key("t1", old.key_id)
    yield Keys(
        control=control,
        t1_read=control.create_api_key("t1", "dash", ["read"])[1],
        t1_write_only=control.create_api_key("t1", "pos", ["pos:write"])[1],
        t2_read=control.create_api_key("t2", "dash", ["read"])[1],
        t1_revoked=revoked,
    )
    control.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def dm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A seeded datamart per backend, shared by the module's tests (they only read it)."""
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("datamart")
    with temporary_database(request.param, folder, pg) as url:
        s = Settings(data_dir=folder / "data", datamart_url=url)
        seed(s)
        yield s
    dispose_engines()


def _store(tenant: str, store_id: str, code: str, industry: str, region: str) -> dict[str, object]:
    return {
        "tenant_id": tenant,
        "store_id": store_id,
        "code": code,
        "name": f"Store {code}",
        "industry": industry,
        "region": region,
        "timezone": "Asia/Tokyo",
        "floor_area_m2": 100,
    }


def seed(s: Settings) -> None:
    """t1: s1 (with KPIs), s2, s3; t2: x1 (with KPIs that t1 must never see)."""
    sync_stores(
        s,
        [
            _store("t1", "s1", "001", "apparel", "kanto"),
            _store("t1", "s2", "002", "food", "kansai"),
            _store("t1", "s3", "003", "apparel", "kansai"),
            _store("t2", "x1", "001", "apparel", "kanto"),
        ],
    )
    days = {
        MON: [
            daily_row("t1", "s1", MON, net_sales="10000.00", transactions=10, units=20,
                      visitors=50, passersby=500),
            daily_row("t2", "x1", MON, net_sales="777.00"),
        ],
        TUE: [daily_row("t1", "s1", TUE, net_sales="30000.50", transactions=20, units=30,
                        visitors=100, passersby=400)],
        # No people counter that day: its sales must not dilute the conversion rate.
        WED: [daily_row("t1", "s1", WED, net_sales="5000.00", transactions=5, units=5,
                        visitors=None, passersby=None, has_counter=False)],
        FRI: [daily_row("t1", "s3", FRI, net_sales="500.00")],  # mutated by the ETag test
        NEXT_MON: [daily_row("t1", "s1", NEXT_MON, net_sales="0.00", transactions=0, units=0,
                             visitors=10, passersby=100)],
    }  # fmt: skip
    for day, rows in days.items():
        export_partition(s, "mart_store_daily", day, mart_table(rows))


@pytest.fixture(scope="module")
def client(dm: Settings, keys: Keys) -> Iterator[TestClient]:
    app = create_app(dm, engine=get_engine(dm.datamart_db_url), control=keys.control)
    with TestClient(app) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(resp: Any, status: int, detail_part: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status
    assert body["type"] and body["title"]
    assert detail_part in body["detail"], body["detail"]
    return dict(body)


# -- health and discovery ---------------------------------------------------------------


def test_healthz_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert {"/v1/stores", "/v1/stores/{store_id}", "/v1/stores/{store_id}/kpis"} <= set(
        spec["paths"]
    )
    row = spec["components"]["schemas"]["KpiRow"]["properties"]
    money = next(s for s in row["net_sales"]["anyOf"] if s.get("type") == "string")
    assert money["pattern"] == r"^-?\d+\.\d{2}$"
    params = {
        p["name"]: p for p in spec["paths"]["/v1/stores/{store_id}/kpis"]["get"]["parameters"]
    }
    assert params["grain"]["schema"]["enum"] == ["hour", "day", "week", "month", "total"]
    assert params["from"]["required"] is True


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/v1/nope"), 404, "no such endpoint")
    assert body["type"] == "about:blank"


# -- stores -------------------------------------------------------------------------------


def test_lists_only_the_callers_stores(client: TestClient, keys: Keys) -> None:
    page = client.get("/v1/stores", headers=auth(keys.t1_read)).json()
    assert page["total"] == 3
    assert [s["store_id"] for s in page["items"]] == ["s1", "s2", "s3"]
    assert page["items"][0] == {
        "store_id": "s1",
        "code": "001",
        "name": "Store 001",
        "industry": "apparel",
        "region": "kanto",
        "timezone": "Asia/Tokyo",
        "floor_area_m2": 100.0,
    }
    other = client.get("/v1/stores", headers=auth(keys.t2_read)).json()
    assert [s["store_id"] for s in other["items"]] == ["x1"]


def test_store_filters_and_pagination(client: TestClient, keys: Keys) -> None:
    h = auth(keys.t1_read)
    apparel = client.get("/v1/stores", headers=h, params={"industry": "apparel"}).json()
    assert [s["store_id"] for s in apparel["items"]] == ["s1", "s3"]
    both = client.get("/v1/stores", headers=h, params={"industry": "apparel", "region": "kansai"})
    assert [s["store_id"] for s in both.json()["items"]] == ["s3"]
    page = client.get("/v1/stores", headers=h, params={"limit": 2, "offset": 2}).json()
    assert page == {"items": [page["items"][0]], "total": 3, "limit": 2, "offset": 2}
    assert page["items"][0]["store_id"] == "s3"
    body = assert_problem(client.get("/v1/stores", headers=h, params={"limit": 0}), 422, "limit")
    assert body["errors"][0]["loc"] == ["query", "limit"]


def test_get_store_and_other_tenants_store(client: TestClient, keys: Keys) -> None:
    h = auth(keys.t1_read)
    assert client.get("/v1/stores/s2", headers=h).json()["code"] == "002"
    theirs = assert_problem(client.get("/v1/stores/x1", headers=h), 404, "store 'x1' not found")
    unknown = assert_problem(client.get("/v1/stores/zz", headers=h), 404, "not found")
    assert theirs["type"] == unknown["type"] == "urn:tenpo:problem:not-found"


# -- auth -----------------------------------------------------------------------------------


def test_missing_malformed_and_revoked_keys_are_401(client: TestClient, keys: Keys) -> None:
    resp = client.get("/v1/stores")
    assert_problem(resp, 401, "missing API key")
    assert resp.headers["www-authenticate"] == 'Bearer realm="tenpo"'
    resp = client.get("/v1/stores", headers=auth("not-a-key"))
    assert_problem(resp, 401, "malformed API key")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert_problem(client.get("/v1/stores", headers=auth(keys.t1_revoked)), 401, "revoked")
    basic = client.get("/v1/stores", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_problem(basic, 401, "missing API key")


def test_key_without_read_scope_is_403(client: TestClient, keys: Keys) -> None:
    resp = client.get("/v1/stores/s1/kpis", headers=auth(keys.t1_write_only), params=RANGE)
    body = assert_problem(resp, 403, "lacks the 'read' scope")
    assert body["title"] == "Forbidden"


# -- KPIs ----------------------------------------------------------------------------------


def test_daily_kpis(client: TestClient, keys: Keys) -> None:
    resp = client.get("/v1/stores/s1/kpis", headers=auth(keys.t1_read), params=RANGE)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["store_id"], body["grain"], body["from"], body["to"]) == (
        "s1",
        "day",
        "2026-10-05",
        "2026-10-18",
    )
    rows = body["items"]
    assert [r["business_date"] for r in rows] == [
        "2026-10-05",
        "2026-10-06",
        "2026-10-07",
        "2026-10-12",
    ]
    mon = rows[0]
    assert mon["net_sales"] == "10000.00"
    assert mon["net_sales_incl_tax"] == "11000.00"
    assert (mon["transactions"], mon["units"], mon["visitors"], mon["passersby"]) == (
        10,
        20,
        50,
        500,
    )
    assert mon["atv"] == 1000.0
    assert mon["conversion_rate"] == 0.2
    assert mon["capture_rate"] == 0.1
    assert (mon["period_end"], mon["days"], mon["has_pos"], mon["has_counter"]) == (
        "2026-10-05",
        1,
        True,
        True,
    )
    assert rows[1]["net_sales"] == "30000.50"
    assert rows[2]["visitors"] is None and rows[2]["conversion_rate"] is None
    assert rows[2]["has_counter"] is False
    # Zero transactions: ATV and UPT are null, never 0 or infinity.
    assert rows[3]["atv"] is None and rows[3]["upt"] is None
    assert rows[3]["conversion_rate"] == 0.0


def test_kpi_json_is_exactly_the_models_and_postgres_takes_the_async_path(
    client: TestClient, keys: Keys, dm: Settings
) -> None:
    """The hot path builds the JSON without the response models: it must be byte for byte
    what KpiSeries would serialise, at every grain; on PostgreSQL it reads through the
    async pool (no thread hop), on SQLite through the sync read side."""
    from tenpo.api.models import KpiSeries

    reader = api_state(client.app).kpi_reader
    assert (reader is not None) == dm.datamart_db_url.startswith("postgresql")
    for grain in ("day", "week", "month", "total"):
        resp = client.get(
            "/v1/stores/s1/kpis", headers=auth(keys.t1_read), params={**RANGE, "grain": grain}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        body["from_"] = body.pop("from")  # the model reads its field name, writes "from"
        model = KpiSeries.model_validate(body)
        assert model.model_dump_json(by_alias=True).encode() == resp.content
        assert model.items, grain
    if reader is not None:
        assert reader.served > 0  # the answers above came through the pool


def test_kpi_fast_path_answers_byte_for_byte_as_the_route(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the plain KPI read is answered below the routing (tenpo.api._kpi_fast)
    with the very status, headers and bytes the route gives; what it declines (a bad
    date, an uncached or revoked key, CSV, the hour grain) the route answers."""
    from tenpo.api._kpi_fast import KpiFastPath

    if api_state(client.app).kpi_reader is None:
        pytest.skip("the fast path serves PostgreSQL datamarts")
    client.get("/v1/stores", headers=auth(keys.t1_read))  # the key is now in the auth cache
    client.get("/v1/stores", headers=auth(keys.t2_read))
    cases: list[tuple[str, dict[str, str], dict[str, str], bool]] = [
        ("s1", RANGE, auth(keys.t1_read), True),
        ("s1", RANGE | {"grain": "week", "format": "json"}, auth(keys.t1_read), True),
        ("s1", RANGE | {"grain": "month"}, auth(keys.t1_read) | {"Accept": "*/*"}, True),
        ("s1", RANGE | {"grain": "total"}, auth(keys.t1_read), True),
        ("s2", RANGE, auth(keys.t1_read), True),  # no rows
        ("x1", RANGE, auth(keys.t1_read), True),  # another tenant's store: 404
        ("s1", RANGE, auth(keys.t2_read), True),
        ("nope", RANGE, auth(keys.t1_read), True),
        ("s1", {"from": "2026-10-18", "to": "2026-10-05"}, auth(keys.t1_read), False),
        ("s1", RANGE | {"grain": "hour"}, auth(keys.t1_read), False),
        ("s1", RANGE, auth(keys.t1_read) | {"Accept": "text/csv"}, False),
        ("s1", RANGE | {"extra": "1"}, auth(keys.t1_read), False),
        ("s1", RANGE, auth(keys.t1_revoked), False),
        ("s1", RANGE, auth(keys.t1_write_only), False),
        ("s1", RANGE, {"Authorization": "Basic abc"}, False),
        ("s1", RANGE, {}, False),
    ]
    served: list[bool] = []
    answer = KpiFastPath._answer

    async def spy(self: KpiFastPath, scope: Any, store_id: str) -> Any:
        response = await answer(self, scope, store_id)
        served.append(response is not None)
        return response

    def get(store: str, params: dict[str, str], headers: dict[str, str]) -> Any:
        return client.get(f"/v1/stores/{store}/kpis", params=params, headers=headers)

    monkeypatch.setattr(KpiFastPath, "_answer", spy)
    fast = [get(store, params, headers) for store, params, headers, _ in cases]
    etag = fast[0].headers["etag"]
    not_modified = get("s1", RANGE, auth(keys.t1_read) | {"If-None-Match": etag})
    assert served == [c[-1] for c in cases] + [True]

    async def declined(self: KpiFastPath, scope: Any, store_id: str) -> None:
        return None

    monkeypatch.setattr(KpiFastPath, "_answer", declined)
    route = [get(store, params, headers) for store, params, headers, _ in cases]
    assert [r.status_code for r in fast][:8] == [200, 200, 200, 200, 200, 404, 404, 404]
    for (store, params, _, _), f, r in zip(cases, fast, route, strict=True):
        assert (f.status_code, f.headers.multi_items(), f.content) == (
            r.status_code,
            r.headers.multi_items(),
            r.content,
        ), (store, params)
    again = get("s1", RANGE, auth(keys.t1_read) | {"If-None-Match": etag})
    assert not_modified.status_code == again.status_code == 304
    assert not_modified.headers.multi_items() == again.headers.multi_items()


class _MissingCache:
    """The control plane with an auth cache that never holds a key, noting whether each
    ``authenticate`` (the control-plane read) ran on an event loop."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        self.on_loop: list[bool] = []

    def cached_principal(self, token: str) -> Principal | None:
        return None

    def authenticate(self, token: str) -> Principal:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return self.control.authenticate(token)


def test_a_key_missing_from_the_auth_cache_is_checked_off_the_event_loop(
    dm: Settings, keys: Keys
) -> None:
    """The control-plane read of an uncached key (and its last-used write) runs on a worker
    thread, for the KPI fast path and the routes alike: it never stalls the serving loop."""
    control = _MissingCache(keys.control)
    app = create_app(dm, engine=get_engine(dm.datamart_db_url), control=control)
    with TestClient(app) as c:
        kpis = c.get("/v1/stores/s1/kpis", headers=auth(keys.t1_read), params=RANGE)
        stores = c.get("/v1/stores", headers=auth(keys.t1_read))
        revoked = c.get("/v1/stores/s1/kpis", headers=auth(keys.t1_revoked), params=RANGE)
    assert (kpis.status_code, stores.status_code) == (200, 200)
    assert kpis.json()["items"][0]["business_date"] == "2026-10-05"
    assert_problem(revoked, 401, "revoked")
    assert control.on_loop and not any(control.on_loop), control.on_loop


def test_weekly_kpis_recompute_ratios_from_sums(client: TestClient, keys: Keys) -> None:
    params = RANGE | {"grain": "week"}
    rows = client.get("/v1/stores/s1/kpis", headers=auth(keys.t1_read), params=params).json()
    assert [(r["business_date"], r["period_end"], r["days"]) for r in rows["items"]] == [
        ("2026-10-05", "2026-10-11", 3),
        ("2026-10-12", "2026-10-18", 1),
    ]
    week = rows["items"][0]
    assert week["net_sales"] == "45000.50"  # 10000.00 + 30000.50 + 5000.00
    assert week["net_sales_incl_tax"] == "49500.55"  # 11000.00 + 33000.55 + 5500.00
    assert (week["transactions"], week["units"]) == (35, 55)
    assert (week["visitors"], week["passersby"]) == (150, 900)
    assert week["atv"] == pytest.approx(45000.50 / 35)  # 1285.73, not the mean of daily ATVs
    assert week["upt"] == pytest.approx(55 / 35)
    assert week["capture_rate"] == pytest.approx(150 / 900)
    # Wednesday had no counter: conversion over Mon+Tue only, (10 + 20) / (50 + 100).
    assert week["conversion_rate"] == pytest.approx(0.2)
    assert week["sales_per_visitor"] == pytest.approx(40000.50 / 150)
    assert (week["has_pos"], week["has_counter"]) == (True, False)
    nxt = rows["items"][1]
    assert (nxt["net_sales"], nxt["transactions"], nxt["atv"]) == ("0.00", 0, None)
    assert nxt["capture_rate"] == pytest.approx(0.1)


def test_monthly_kpis(client: TestClient, keys: Keys) -> None:
    params = {"from": "2026-10-01", "to": "2026-10-31", "grain": "month"}
    body = client.get("/v1/stores/s1/kpis", headers=auth(keys.t1_read), params=params).json()
    (month,) = body["items"]
    assert (month["business_date"], month["period_end"], month["days"]) == (
        "2026-10-01",
        "2026-10-31",
        4,
    )
    assert (month["net_sales"], month["transactions"], month["visitors"]) == ("45000.50", 35, 160)
    assert month["conversion_rate"] == pytest.approx(30 / 160)
    assert month["atv"] == pytest.approx(45000.50 / 35)


def test_kpis_of_another_tenants_store_are_404(client: TestClient, keys: Keys) -> None:
    resp = client.get("/v1/stores/x1/kpis", headers=auth(keys.t1_read), params=RANGE)
    assert_problem(resp, 404, "store 'x1' not found")
    assert "777" not in resp.text
    own = client.get("/v1/stores/x1/kpis", headers=auth(keys.t2_read), params=RANGE).json()
    assert [r["net_sales"] for r in own["items"]] == ["777.00"]


def test_store_without_data_has_no_rows(client: TestClient, keys: Keys) -> None:
    body = client.get("/v1/stores/s2/kpis", headers=auth(keys.t1_read), params=RANGE).json()
    assert body["items"] == []


@pytest.mark.parametrize(
    ("params", "param", "detail"),
    [
        ({"from": "2026-13-01", "to": "2026-10-18"}, "from", "'from' must be a date as YYYY-MM-DD"),
        ({"from": "2026-10-05", "to": "20261018"}, "to", "'to' must be a date as YYYY-MM-DD"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from", "got '2026-02-30'"),
        ({"from": "2026-10-18", "to": "2026-10-05"}, "from", "'from' (2026-10-18) is after 'to'"),
        ({"from": "2025-10-01", "to": "2026-10-02"}, "to", "spans 367 days; at most 366"),
        (RANGE | {"grain": "year"}, "grain", "query parameter 'grain': Input should be 'hour'"),
        ({"from": "2026-10-05"}, "to", "query parameter 'to': Field required"),
    ],
)
def test_bad_kpi_parameters_are_422(
    client: TestClient, keys: Keys, params: dict[str, str], param: str, detail: str
) -> None:
    resp = client.get("/v1/stores/s1/kpis", headers=auth(keys.t1_read), params=params)
    body = assert_problem(resp, 422, detail)
    assert ["query", param] in [e["loc"] for e in body["errors"]]


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/v1/stores", {"offset": str(10**22)}, "offset"),
        ("/v1/kpis", RANGE | {"offset": str(10**22)}, "offset"),
        ("/v1/kpis", RANGE | {"offset": "1000001"}, "offset"),
        ("/v1/stores/s1/sales-tree", {"from": "0001-01-01", "to": "0001-01-05"}, "from"),
        ("/v1/stores/s1/kpis", {"from": "0001-01-01", "to": "0001-01-05"}, "from"),
        ("/v1/kpis", {"from": "9999-12-30", "to": "9999-12-31"}, "from"),
        ("/v1/stores/s1/sales-tree", {"from": "2026-10-05", "to": "3000-01-01"}, "to"),
    ],
)
def test_out_of_range_numbers_and_dates_are_problems_not_500s(
    client: TestClient, keys: Keys, path: str, params: dict[str, str], param: str
) -> None:
    # Once 500s: an offset past 64-bit integers, the sales tree's previous period before 0001.
    resp = client.get(path, headers=auth(keys.t1_read), params=params)
    body = assert_problem(resp, 422, param)
    assert ["query", param] in [e["loc"] for e in body["errors"]]


def test_range_limit_is_configurable(dm: Settings, keys: Keys) -> None:
    app = create_app(
        dm.model_copy(update={"api_max_kpi_days": 7}),
        engine=get_engine(dm.datamart_db_url),
        control=keys.control,
    )
    with TestClient(app) as c:
        h = auth(keys.t1_read)
        ok = c.get(
            "/v1/stores/s1/kpis", headers=h, params={"from": "2026-10-05", "to": "2026-10-11"}
        )
        assert ok.status_code == 200
        assert_problem(c.get("/v1/stores/s1/kpis", headers=h, params=RANGE), 422, "at most 7")


def test_serving_keeps_startup_objects_out_of_the_cyclic_collector(
    dm: Settings, keys: Keys
) -> None:
    # A full collection over start-up's objects paused the loop for hundreds of ms (issue 14).
    app = create_app(dm, engine=get_engine(dm.datamart_db_url), control=keys.control)
    gc.unfreeze()  # whatever another app froze
    with TestClient(app) as c:
        assert gc.get_freeze_count() > 10_000  # modules, routes, models
        assert c.get("/v1/stores/s1/kpis", headers=auth(keys.t1_read), params=RANGE).is_success
    assert gc.get_freeze_count() == 0  # collectable again once the app has shut down


def test_etag_and_not_modified(client: TestClient, keys: Keys, dm: Settings) -> None:
    h = auth(keys.t1_read)
    first = client.get("/v1/stores/s3/kpis", headers=h, params=RANGE)
    etag = first.headers["etag"]
    assert etag.startswith('"') and len(etag) == 34
    assert first.headers["cache-control"] == "private, max-age=60"
    again = client.get("/v1/stores/s3/kpis", headers=h | {"If-None-Match": etag}, params=RANGE)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    weak = client.get(
        "/v1/stores/s3/kpis", headers=h | {"If-None-Match": f'"x", W/{etag}'}, params=RANGE
    )
    assert weak.status_code == 304
    # Another grain is another body, another ETag.
    week = client.get("/v1/stores/s3/kpis", headers=h, params=RANGE | {"grain": "week"})
    assert week.headers["etag"] != etag

    # A re-export that changes a figure changes the ETag: the stale one gets the new body.
    fixed = daily_row("t1", "s3", FRI, net_sales="501.00")
    export_partition(dm, "mart_store_daily", FRI, mart_table([fixed]))
    changed = client.get("/v1/stores/s3/kpis", headers=h | {"If-None-Match": etag}, params=RANGE)
    assert changed.status_code == 200
    assert changed.json()["items"][0]["net_sales"] == "501.00"
    assert changed.headers["etag"] != etag


# -- unexpected failures -------------------------------------------------------------------


class BrokenControl:
    def authenticate(self, token: str) -> Principal:
        raise RuntimeError("control database exploded at /secret/path")


def test_unexpected_error_is_a_500_problem_without_internals(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(settings, control=BrokenControl())
    with TestClient(app, raise_server_exceptions=False) as c:
        resp = c.get("/v1/stores", headers=auth("anything"))
    body = assert_problem(resp, 500, "unexpected server error (error id err-")
    assert "secret" not in resp.text
    assert body["type"] == "urn:tenpo:problem:internal-error"


def test_default_app_opens_the_control_plane_of_the_settings(settings: Settings) -> None:
    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t9", "Tenant 9")
    _, token = control.create_api_key("t9", "k", ["read"])
    control.dispose()
    with TestClient(create_app(settings)) as c:
        page = c.get("/v1/stores", headers=auth(token)).json()
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/stores/%00/kpis", RANGE),
        ("/v1/stores/s1%00/kpis", {**RANGE, "grain": "hour"}),
        ("/v1/stores/%00", {}),
        ("/v1/stores", {"industry": "\x00"}),
        ("/v1/kpis", {**RANGE, "store_id": "\x00"}),
    ],
)
def test_a_nul_in_an_id_or_filter_is_4xx_not_500(
    client: TestClient, keys: Keys, path: str, params: dict[str, str]
) -> None:
    """PostgreSQL text cannot hold NUL: its drivers (asyncpg on the KPI path, psycopg
    elsewhere) refused such a parameter, a 500 that also dropped the connection."""
    resp = client.get(path, headers=auth(keys.t1_read), params=params)

    assert resp.status_code in (200, 404, 422), resp.text
    if resp.status_code != 200:
        assert resp.headers["content-type"] == "application/problem+json"
    if resp.status_code == 422:
        assert "NUL" in resp.json()["detail"]
