"""``/v1/initiatives``: register (admin keys, idempotent, 409/422 problems), list and read the
measured effect, tenant and store isolation — on SQLite and on PostgreSQL (control plane and
datamart both)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines, get_engine
from tenpo.datamart.initiatives import export_initiative_effects
from tenpo.ml.initiatives import InitiativeSpec, effect_record, estimate_effect, kpi_frame
from tests.datamart.factory import BACKENDS, temporary_database

START = date(2026, 10, 5)
DAYS = [START + timedelta(days=i) for i in range(42)]
LAUNCH = DAYS[28]


@dataclass
class World:
    client: TestClient
    control: ControlPlane
    settings: Settings
    a_admin: dict[str, str]
    a_read: dict[str, str]
    b_admin: dict[str, str]
    stores: dict[str, str]  # code → store id (tenant a)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    # One database holds both (their table names differ): half the PostgreSQL set-up time.
    with temporary_database(request.param, tmp_path, pg) as control_url:
        datamart_url = control_url
        settings = Settings(
            data_dir=tmp_path / "data",
            control_url=control_url,
            datamart_url=datamart_url,
            api_rate_per_s=0,
        )
        control = ControlPlane.open(control_url)
        control.create_tenant("a", "Tenant A")
        control.create_tenant("b", "Tenant B")
        stores = {
            code: control.create_store("a", code, f"店 {code}", industry="drugstore").store_id
            for code in ("S1", "S2", "S3", "S4")
        }
        control.create_store("b", "S1", "B 店", industry="drugstore")
        a_admin = control.create_api_key("a", "admin", ["admin"])[1]
        a_read = control.create_api_key("a", "reader", ["read"])[1]
        b_admin = control.create_api_key("b", "admin", ["admin"])[1]
        with TestClient(create_app(settings, control=control)) as client:
            yield World(
                client,
                control,
                settings,
                _bearer(a_admin),
                _bearer(a_read),
                _bearer(b_admin),
                stores,
            )
        control.dispose()
        dispose_engines()


def _body(world: World, **overrides: Any) -> dict[str, Any]:
    body = {
        "initiative_id": "spring-promo",
        "name": "店頭プロモーション",
        "kind": "promotion",
        "kpi": "net_sales",
        "stores": [world.stores["S1"]],
        "start": LAUNCH.isoformat(),
        "end": DAYS[-1].isoformat(),
        "description": "POP at the entrance",
    }
    return body | overrides


def _problem(resp: Any, status: int, part: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert part in resp.json()["detail"], resp.json()


def test_register_is_idempotent_and_bad_bodies_are_problems(world: World) -> None:
    c = world.client
    first = c.post("/v1/initiatives", json=_body(world), headers=world.a_admin)
    assert first.status_code == 201, first.text
    assert first.json()["stores"] == [world.stores["S1"]]
    again = c.post("/v1/initiatives", json=_body(world), headers=world.a_admin)
    assert again.status_code == 200 and again.json() == first.json()
    _problem(
        c.post("/v1/initiatives", json=_body(world, kpi="atv"), headers=world.a_admin),
        409,
        "different kpi",
    )
    _problem(
        c.post(
            "/v1/initiatives",
            json=_body(world, initiative_id="x", kpi="upt"),
            headers=world.a_admin,
        ),
        422,
        "unknown KPI",
    )
    _problem(
        c.post(
            "/v1/initiatives",
            json=_body(world, initiative_id="x", start="2026-11-10", end="2026-11-01"),
            headers=world.a_admin,
        ),
        422,
        "before start",
    )
    _problem(
        c.post(
            "/v1/initiatives",
            json=_body(world, initiative_id="x", stores=["nope"]),
            headers=world.a_admin,
        ),
        422,
        "unknown store",
    )
    _problem(
        c.post("/v1/initiatives", json=_body(world, initiative_id="../x"), headers=world.a_admin),
        422,
        "invalid initiative id",
    )
    bad = c.post("/v1/initiatives", json={"name": "x"}, headers=world.a_admin)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json"
    )
    # A read key may list but not register; no key at all is 401.
    _problem(c.post("/v1/initiatives", json=_body(world), headers=world.a_read), 403, "admin")
    assert c.post("/v1/initiatives", json=_body(world)).status_code == 401
    listed = c.get("/v1/initiatives", headers=world.a_read)
    assert listed.status_code == 200
    assert [i["initiative_id"] for i in listed.json()["items"]] == ["spring-promo"]
    assert c.get("/v1/initiatives").status_code == 401


def test_tenants_never_see_each_others_initiatives(world: World) -> None:
    c = world.client
    assert c.post("/v1/initiatives", json=_body(world), headers=world.a_admin).status_code == 201
    # Tenant b cannot name a's store (unknown to it), list a's initiatives or read the effect.
    _problem(c.post("/v1/initiatives", json=_body(world), headers=world.b_admin), 422, "unknown")
    assert c.get("/v1/initiatives", headers=world.b_admin).json()["items"] == []
    _problem(
        c.get("/v1/initiatives/spring-promo/effect", headers=world.b_admin), 404, "spring-promo"
    )
    # b's own initiative of the same id is b's: a's stays as it was.
    b_store = world.control.store_by_code("b", "S1").store_id
    mine = _body(world, stores=[b_store], kpi="atv")
    assert c.post("/v1/initiatives", json=mine, headers=world.b_admin).status_code == 201
    got = c.get("/v1/initiatives", headers=world.a_read).json()["items"]
    assert [(i["kpi"], i["stores"]) for i in got] == [("net_sales", [world.stores["S1"]])]


def _measure(world: World) -> list[dict[str, object]]:
    """Effects of 'spring-promo' from a tiny chain: S1 +8 % net sales from LAUNCH, S2-S4 track
    S1's demand; tenant b's S1 (other tenant) and an initiative's store are never controls."""
    rng = np.random.default_rng(1)
    demand = np.exp(rng.normal(0, 0.1, len(DAYS)))
    noise = {k: np.exp(rng.normal(0, 0.02, len(DAYS))) for k in ("S1", "S2", "S3", "S4")}
    rows = []
    for code, scale in (("S1", 1000.0), ("S2", 800.0), ("S3", 900.0), ("S4", 700.0)):
        for i, day in enumerate(DAYS):
            lift = 1.08 if code == "S1" and day >= LAUNCH else 1.0
            rows.append(
                {
                    "tenant_id": "a",
                    "store_id": world.stores[code],
                    "business_date": day,
                    "net_sales": scale * demand[i] * noise[code][i] * lift,
                    "transactions": 100,
                    "visitors": 250,
                }
            )
    kpis = kpi_frame(pd.DataFrame(rows))
    spec = InitiativeSpec("a", "spring-promo", (world.stores["S1"],), LAUNCH, DAYS[-1])
    busy = {world.stores["S4"]: [(DAYS[30], DAYS[33])]}
    effects = estimate_effect(kpis, spec, busy=busy)
    return [effect_record(e, DAYS[-1]) for e in effects]


def test_effect_is_served_from_the_datamart(world: World) -> None:
    c = world.client
    assert c.post("/v1/initiatives", json=_body(world), headers=world.a_admin).status_code == 201
    empty = c.get("/v1/initiatives/spring-promo/effect", headers=world.a_read)
    assert empty.status_code == 200 and empty.json()["items"] == []  # not measured yet
    rows = _measure(world)
    engine = get_engine(world.settings.datamart_db_url)
    assert export_initiative_effects(engine, ["a", "b"], rows) == 4
    assert export_initiative_effects(engine, ["a", "b"], rows) == 4  # replaced, not added
    resp = c.get("/v1/initiatives/spring-promo/effect", headers=world.a_read)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["as_of"] == DAYS[-1].isoformat()
    assert body["initiative"]["kpi"] == "net_sales"
    items = {e["kpi"]: e for e in body["items"]}
    assert list(items) == ["net_sales", "visitors", "conversion_rate", "atv"]
    sales = items["net_sales"]
    want = next(r for r in rows if r["kpi"] == "net_sales")
    assert sales["effect"] == pytest.approx(want["effect"])
    assert sales["ci_low"] < 0.08 < sales["ci_high"] and sales["significant"]
    assert sorted(sales["controls"]) == sorted([world.stores["S2"], world.stores["S3"]])
    assert sales["controls_hidden"] == 0 and sales["candidates"] == 2
    assert sales["pre_days"] == 28 and sales["post_days"] == 14
    assert len(sales["series"]) == 42 and sales["series"][28]["period"] == "post"
    assert items["visitors"]["effect"] == pytest.approx(0.0, abs=1e-12)
    # A store manager of S2 (a control, not treated) does not see the initiative at all;
    # one of S1 sees it, but not the controls' ids.
    for code, email in (("S2", "m2@a.jp"), ("S1", "m1@a.jp")):
        world.control.create_user(
            "a", email, "a long password", "store_manager", [world.stores[code]]
        )
    m2 = TestClient(c.app, base_url="http://127.0.0.1")
    m2.post("/v1/auth/login", json={"email": "m2@a.jp", "password": "a long password"})
    assert m2.get("/v1/initiatives").json()["items"] == []
    assert m2.get("/v1/initiatives/spring-promo/effect").status_code == 404
    m1 = TestClient(c.app, base_url="http://127.0.0.1")
    m1.post("/v1/auth/login", json={"email": "m1@a.jp", "password": "a long password"})
    seen = m1.get("/v1/initiatives/spring-promo/effect").json()
    assert seen["items"][0]["controls"] == [] and seen["items"][0]["controls_hidden"] == 2
    assert world.stores["S2"] not in m1.get("/v1/initiatives/spring-promo/effect").text


# -- budgets ------------------------------------------------------------------------------------


def test_budgets_upload_csv_or_json_and_read_beside_actuals(world: World) -> None:
    from tenpo.datamart import export_partition, sync_stores
    from tests.datamart.factory import daily_row, mart_table

    c, s1 = world.client, world.stores["S1"]
    csv_body = "store_code,date,net_sales\nS1,2026-11-01,300000\nS1,2026-11-02,320000.50\n"
    csv_headers = world.a_admin | {"Content-Type": "text/csv"}
    first = c.post("/v1/budgets", content=csv_body.encode(), headers=csv_headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"tenant_id": "a", "created": 2, "updated": 0, "unchanged": 0}
    again = c.post("/v1/budgets", content=csv_body.encode(), headers=csv_headers).json()
    assert (again["created"], again["unchanged"]) == (0, 2)
    fix = {"items": [{"store_id": s1, "date": "2026-11-02", "net_sales": "310000"}]}
    assert c.post("/v1/budgets", json=fix, headers=world.a_admin).json()["updated"] == 1
    # Every bad row is named; nothing of the upload is written.
    bad = (
        "store_code,date,net_sales\nS1,2026-11-03,1\nS9,2026-11-04,1\nS1,11/05,1\n"
        "S1,2026-11-06,-5\n"
    )
    resp = c.post("/v1/budgets", content=bad.encode(), headers=csv_headers)
    _problem(resp, 422, "3 invalid row(s)")
    assert [e["row"] for e in resp.json()["errors"]] == [2, 3, 4]
    _problem(
        c.post("/v1/budgets", content=b"x", headers=world.a_admin | {"Content-Type": "text/plain"}),
        415,
        "text/csv",
    )
    _problem(c.post("/v1/budgets", content=b"a,b\n1,2\n", headers=csv_headers), 422, "header")
    _problem(c.post("/v1/budgets", json=fix, headers=world.a_read), 403, "admin")
    huge = b"store_code,date,net_sales\n" + b"S1,2026-11-01,1\n" * 1_200_000  # > 16 MiB
    _problem(c.post("/v1/budgets", content=huge, headers=csv_headers), 413, "exceeds the limit")
    # Tenant b's "S1" is b's own store: a's budget stays.
    b_csv = b"store_code,date,net_sales\nS1,2026-11-01,1\n"
    assert (
        c.post(
            "/v1/budgets", content=b_csv, headers=world.b_admin | {"Content-Type": "text/csv"}
        ).json()["created"]
        == 1
    )
    _problem(c.post("/v1/budgets", json=fix, headers=world.b_admin), 422, "unknown store id")

    sync_stores(world.settings, world.control.list_stores("a"), tenants=["a"])
    day1, day2 = date(2026, 11, 1), date(2026, 11, 2)
    for day, sales in ((day1, "330000.00"), (day2, "279000.00")):
        export_partition(
            world.settings,
            "mart_store_daily",
            day,
            mart_table([daily_row("a", s1, day, net_sales=sales)]),
            tenant_id="a",
        )
    got = c.get(
        f"/v1/stores/{s1}/budget",
        params={"from": "2026-11-01", "to": "2026-11-03"},
        headers=world.a_read,
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert [(d["date"], d["budget"], d["actual"]) for d in body["days"]] == [
        ("2026-11-01", "300000.00", "330000.00"),
        ("2026-11-02", "310000.00", "279000.00"),
    ]
    assert body["budget_total"] == "610000.00" and body["actual_total"] == "609000.00"
    assert body["achievement"] == pytest.approx(609000 / 610000)
    assert c.get(
        f"/v1/stores/{s1}/budget",
        params={"from": "2026-11-01", "to": "2026-11-03"},
        headers=world.b_admin,
    ).status_code in (403, 404)
    _problem(
        c.get(
            f"/v1/stores/{s1}/budget",
            params={"from": "2026-11-03", "to": "2026-11-01"},
            headers=world.a_read,
        ),
        422,
        "'to'",
    )
