"""``/v1/admin/*`` over HTTP: admin scope, idempotent creates, 409s, updates, tenant isolation,
the operator's keys, bulk import — on a SQLite and a PostgreSQL control plane."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings


@dataclass
class Admin:
    client: TestClient
    control: ControlPlane
    a: dict[str, str]  # admin key of tenant a
    b: dict[str, str]  # admin key of tenant b
    a_read: dict[str, str]  # read-only key of tenant a
    op: dict[str, str]  # operator's admin key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(db_url: str, tmp_path: Path) -> Iterator[Admin]:
    settings = Settings(
        data_dir=tmp_path / "data",
        control_url=db_url,
        datamart_url=f"sqlite:///{tmp_path / 'dm.db'}",
        operator_tenant="ops",
        api_rate_per_s=0,
    )
    control = ControlPlane.open(db_url)
    tokens = {}
    for tenant in ("ops", "a", "b"):
        control.create_tenant(tenant, f"Tenant {tenant}")
        tokens[tenant] = control.create_api_key(tenant, "admin", ["admin"])[1]
    read = control.create_api_key("a", "reader", ["read"])[1]
    with TestClient(create_app(settings, control=control)) as client:
        yield Admin(
            client,
            control,
            bearer(tokens["a"]),
            bearer(tokens["b"]),
            bearer(read),
            bearer(tokens["ops"]),
        )
    control.dispose()


def problem(resp: Any, status: int, part: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and part in body["detail"], body
    return body


STORE = {"code": "S001", "name": "本町店", "industry": "apparel", "floor_area_m2": "120.5"}


def test_admin_routes_need_an_admin_key(admin: Admin) -> None:
    c = admin.client
    body = problem(c.get("/v1/admin/stores"), 401, "missing API key")
    assert body["type"] == "urn:tenpo:problem:auth-error"
    problem(c.get("/v1/admin/stores", headers=bearer("tnp_nope")), 401, "malformed")
    problem(c.get("/v1/admin/stores", headers=admin.a_read), 403, "'admin' scope")
    problem(c.post("/v1/admin/stores", json=STORE, headers=admin.a_read), 403, "'admin' scope")


def test_store_create_is_idempotent_and_conflicts_are_409(admin: Admin) -> None:
    c = admin.client
    first = c.post("/v1/admin/stores", json=STORE, headers=admin.a)
    assert first.status_code == 201, first.text
    store = first.json()
    assert (
        store["tenant_id"] == "a" and store["code"] == "S001" and store["timezone"] == "Asia/Tokyo"
    )
    assert store["floor_area_m2"] == "120.50"
    again = c.post("/v1/admin/stores", json=STORE, headers=admin.a)
    assert again.status_code == 200 and again.json() == store
    body = problem(
        c.post("/v1/admin/stores", json={**STORE, "name": "other"}, headers=admin.a),
        409,
        "different name",
    )
    assert body["type"] == "urn:tenpo:problem:conflict"
    # Validation errors are the control plane's, as problems.
    problem(c.post("/v1/admin/stores", json={**STORE, "code": "S2", "timezone": "Mars/Base"},
                   headers=admin.a), 422, "unknown timezone")  # fmt: skip
    problem(c.post("/v1/admin/stores", json={**STORE, "colour": "red"}, headers=admin.a), 422, "")
    assert [s["code"] for s in c.get("/v1/admin/stores", headers=admin.a).json()["items"]] == [
        "S001"
    ]


def test_concurrent_identical_creates_make_one_store(admin: Admin) -> None:
    body = {**STORE, "code": "S777"}

    def post(_: int) -> int:
        return admin.client.post("/v1/admin/stores", json=body, headers=admin.a).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(post, range(8)))
    # One 201; the others 200 (saw it) or 409 (lost the insert race on the unique code).
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, statuses
    codes = [s.code for s in admin.control.list_stores("a")]
    assert codes == ["S777"]


def test_store_patch_devices_registers_keys_users(admin: Admin) -> None:
    c = admin.client
    store = c.post("/v1/admin/stores", json=STORE, headers=admin.a).json()
    sid = store["store_id"]
    patched = c.patch(f"/v1/admin/stores/{sid}", json={"name": "新本町店", "region": "kanto"},
                      headers=admin.a)  # fmt: skip
    assert patched.status_code == 200 and patched.json()["name"] == "新本町店"
    assert patched.json()["region"] == "kanto" and patched.json()["industry"] == "apparel"
    problem(c.patch(f"/v1/admin/stores/{sid}", json={}, headers=admin.a), 422, "nothing to change")

    device = {"device_id": "pc-1", "store_code": "S001", "kind": "people_counter",
              "lines": ["entrance", "passby"]}  # fmt: skip
    made = c.post("/v1/admin/devices", json=device, headers=admin.a)
    assert made.status_code == 201 and made.json()["store_id"] == sid
    assert c.post("/v1/admin/devices", json=device, headers=admin.a).status_code == 200
    problem(c.post("/v1/admin/devices", json={**device, "lines": ["entrance"]}, headers=admin.a),
            409, "different lines")  # fmt: skip
    problem(c.post("/v1/admin/devices", json={**device, "device_id": "x", "store_code": "S9"},
                   headers=admin.a), 404, "S9")  # fmt: skip
    off = c.patch("/v1/admin/devices/pc-1", json={"active": False}, headers=admin.a)
    assert off.status_code == 200 and off.json()["active"] is False
    assert admin.control.list_devices("a")[0].active is False

    reg = {"vendor": "vendor_a", "register_code": "0001", "store_code": "S001",
           "valid_from": "2026-10-01"}  # fmt: skip
    r1 = c.post("/v1/admin/registers", json=reg, headers=admin.a)
    assert r1.status_code == 201 and r1.json()["valid_to"] is None
    assert c.post("/v1/admin/registers", json=reg, headers=admin.a).json() == r1.json()
    problem(c.post("/v1/admin/registers", json={**reg, "valid_from": "2026-11-01"},
                   headers=admin.a), 409, "overlapping")  # fmt: skip
    ended = c.patch(f"/v1/admin/registers/{r1.json()['id']}", json={"valid_to": "2026-10-31"},
                    headers=admin.a)  # fmt: skip
    assert ended.status_code == 200 and ended.json()["valid_to"] == "2026-10-31"
    assert c.post("/v1/admin/registers", json={**reg, "valid_from": "2026-11-01"},
                  headers=admin.a).status_code == 201  # fmt: skip

    key = c.post("/v1/admin/keys", json={"name": "pos", "scopes": ["pos:write"]}, headers=admin.a)
    assert key.status_code == 201 and key.json()["token"].startswith("tnp_")
    token = key.json()["token"]
    same = c.post("/v1/admin/keys", json={"name": "pos", "scopes": ["pos:write"]}, headers=admin.a)
    assert same.status_code == 200 and same.json()["token"] is None
    assert same.json()["key_id"] == key.json()["key_id"]
    problem(c.post("/v1/admin/keys", json={"name": "pos", "scopes": ["read"]}, headers=admin.a),
            409, "different scopes")  # fmt: skip
    problem(c.post("/v1/admin/keys", json={"name": "x", "scopes": ["root"]}, headers=admin.a),
            422, "unknown scope")  # fmt: skip
    assert admin.control.authenticate(token).tenant_id == "a"
    revoked = c.patch(f"/v1/admin/keys/{key.json()['key_id']}", json={"revoked": True},
                      headers=admin.a)  # fmt: skip
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None

    user = {"email": "Mgr@A.example", "password": "long enough pw", "role": "store_manager",
            "store_ids": [sid]}  # fmt: skip
    u1 = c.post("/v1/admin/users", json=user, headers=admin.a)
    assert u1.status_code == 201 and u1.json()["email"] == "mgr@a.example"
    assert u1.json()["store_ids"] == [sid]
    assert c.post("/v1/admin/users", json=user, headers=admin.a).status_code == 200
    problem(c.post("/v1/admin/users", json={**user, "password": "another password"},
                   headers=admin.a), 409, "different password")  # fmt: skip
    uid = u1.json()["user_id"]
    dis = c.patch(f"/v1/admin/users/{uid}", json={"disabled": True}, headers=admin.a)
    assert dis.status_code == 200 and dis.json()["disabled_at"] is not None
    gone = c.post("/v1/auth/login", json={"email": "mgr@a.example", "password": "long enough pw"})
    assert gone.status_code == 401


def test_tenant_isolation(admin: Admin) -> None:
    c = admin.client
    store_b = c.post("/v1/admin/stores", json=STORE, headers=admin.b).json()
    c.post("/v1/admin/devices", json={"device_id": "pc-b", "store_id": store_b["store_id"],
                                      "kind": "people_counter"}, headers=admin.b)  # fmt: skip
    key_b = c.post("/v1/admin/keys", json={"name": "k", "scopes": ["read"]}, headers=admin.b).json()
    new_user = {"email": "u@b.example", "password": "long enough pw", "role": "tenant_admin"}
    user_b = c.post("/v1/admin/users", json=new_user, headers=admin.b).json()
    sid = store_b["store_id"]
    # Tenant a's admin sees none of b's objects, and changes none: 404 like unknown ids.
    assert c.get("/v1/admin/stores", headers=admin.a).json()["items"] == []
    assert c.get("/v1/admin/devices", headers=admin.a).json()["items"] == []
    assert [k["name"] for k in c.get("/v1/admin/keys", headers=admin.a).json()["items"]] == [
        "admin",
        "reader",
    ]
    assert c.get("/v1/admin/users", headers=admin.a).json()["items"] == []
    for path in (f"/v1/admin/stores/{sid}", "/v1/admin/devices/pc-b",
                 f"/v1/admin/keys/{key_b['key_id']}", f"/v1/admin/users/{user_b['user_id']}",
                 "/v1/admin/tenants/b"):  # fmt: skip
        problem(c.get(path, headers=admin.a), 404, "")
    problem(c.patch(f"/v1/admin/stores/{sid}", json={"name": "hacked"}, headers=admin.a), 404, "")
    problem(c.patch("/v1/admin/devices/pc-b", json={"active": False}, headers=admin.a), 404, "")
    problem(c.patch(f"/v1/admin/keys/{key_b['key_id']}", json={"revoked": True}, headers=admin.a),
            404, "")  # fmt: skip
    problem(c.patch(f"/v1/admin/users/{user_b['user_id']}", json={"disabled": True},
                    headers=admin.a), 404, "")  # fmt: skip
    problem(c.patch("/v1/admin/tenants/b", json={"name": "x"}, headers=admin.a), 404, "")
    # A device of a's cannot be put in b's store, nor a register.
    problem(c.post("/v1/admin/devices", json={"device_id": "pc-a", "store_id": sid,
                                              "kind": "people_counter"}, headers=admin.a),
            404, "")  # fmt: skip
    # Naming another tenant is refused outright, whether it exists or not.
    problem(c.get("/v1/admin/stores?tenant=b", headers=admin.a), 403, "its own tenant")
    problem(c.get("/v1/admin/stores?tenant=zz", headers=admin.a), 403, "its own tenant")
    problem(c.post("/v1/admin/import?tenant=b", json={"stores": [STORE]}, headers=admin.a),
            403, "its own tenant")  # fmt: skip
    # Nothing of b's changed.
    assert admin.control.get_store("b", sid).name == STORE["name"]
    assert admin.control.list_devices("b")[0].active is True
    assert admin.control.get_api_key("b", key_b["key_id"]).revoked_at is None
    assert [
        t["tenant_id"] for t in c.get("/v1/admin/tenants", headers=admin.a).json()["items"]
    ] == ["a"]
    problem(c.post("/v1/admin/tenants", json={"tenant_id": "c", "name": "C"}, headers=admin.a),
            403, "operator")  # fmt: skip


def test_operator_creates_tenants_and_acts_on_any(admin: Admin) -> None:
    c = admin.client
    made = c.post("/v1/admin/tenants", json={"tenant_id": "acme", "name": "Acme"}, headers=admin.op)
    assert made.status_code == 201 and made.json()["tenant_id"] == "acme"
    again = c.post(
        "/v1/admin/tenants", json={"tenant_id": "acme", "name": "Acme"}, headers=admin.op
    )
    assert again.status_code == 200 and again.json() == made.json()
    problem(c.post("/v1/admin/tenants", json={"tenant_id": "acme", "name": "Other"},
                   headers=admin.op), 409, "different name")  # fmt: skip
    problem(c.post("/v1/admin/tenants", json={"tenant_id": "Bad Id", "name": "x"},
                   headers=admin.op), 422, "invalid tenant id")  # fmt: skip
    ids = [t["tenant_id"] for t in c.get("/v1/admin/tenants", headers=admin.op).json()["items"]]
    assert ids == ["a", "acme", "b", "ops"]
    store = c.post("/v1/admin/stores?tenant=acme", json=STORE, headers=admin.op)
    assert store.status_code == 201 and store.json()["tenant_id"] == "acme"
    key = c.post("/v1/admin/keys?tenant=acme", json={"name": "admin", "scopes": ["admin"]},
                 headers=admin.op).json()  # fmt: skip
    acme = bearer(key["token"])
    assert [s["code"] for s in c.get("/v1/admin/stores", headers=acme).json()["items"]] == ["S001"]
    problem(c.get("/v1/admin/stores?tenant=ops", headers=acme), 403, "its own tenant")
    problem(c.post("/v1/admin/stores?tenant=nope", json=STORE, headers=admin.op), 404, "nope")


def test_bulk_import_validates_every_row_and_applies_all_or_nothing(admin: Admin) -> None:
    c = admin.client
    stores = [{"code": f"S{i:03d}", "name": f"Store {i}", "industry": "cafe"} for i in range(5)]
    devices = [{"device_id": f"pc-{i}", "store_code": f"S{i:03d}", "kind": "people_counter",
                "lines": "entrance;passby"} for i in range(5)]  # fmt: skip
    bad = {
        "stores": [*stores, {"code": "S001", "name": "dup"}, {"code": "S9", "name": "x",
                                                               "timezone": "Nowhere"}],
        "devices": [*devices, {"device_id": "pc-x", "store_code": "S404", "kind": "people_counter"},
                    {"device_id": "pc-y", "store_code": "S000", "kind": "toaster"}],
    }  # fmt: skip
    body = problem(c.post("/v1/admin/import", json=bad, headers=admin.a), 422, "4 invalid row(s)")
    assert [(e["kind"], e["row"], e["pointer"]) for e in body["errors"]] == [
        ("stores", 6, "/stores/5"),
        ("stores", 7, "/stores/6"),
        ("devices", 6, "/devices/5"),
        ("devices", 7, "/devices/6"),
    ]
    assert "repeats row 2" in body["errors"][0]["message"]
    assert "unknown device kind" in body["errors"][3]["message"]
    assert admin.control.list_stores("a") == []  # nothing applied
    ok = c.post("/v1/admin/import", json={"stores": stores, "devices": devices}, headers=admin.a)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "tenant_id": "a",
        "created": {"stores": 5, "devices": 5, "registers": 0},
        "unchanged": {},
    }
    devs = admin.control.list_devices("a")
    assert [d.lines for d in devs] == [("entrance", "passby")] * 5
    by_code = {s.code: s.store_id for s in admin.control.list_stores("a")}
    assert [d.store_id for d in devs] == [by_code[f"S{i:03d}"] for i in range(5)]
    # Re-running the same import changes nothing; a contradicting row is refused.
    rerun = c.post("/v1/admin/import", json={"stores": stores, "devices": devices}, headers=admin.a)
    assert rerun.json()["created"] == {"stores": 0, "devices": 0, "registers": 0}
    assert rerun.json()["unchanged"] == {"stores": 5, "devices": 5}
    changed = [{**stores[0], "name": "renamed"}]
    body = problem(c.post("/v1/admin/import", json={"stores": changed}, headers=admin.a), 422,
                   "different name")  # fmt: skip
    assert body["errors"][0]["row"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/admin/stores", '{"code": "Z\\ud800", "name": "x"}'),
        ("POST", "/v1/admin/stores", '{"code": "Z1", "name": "\\udfff"}'),
        ("POST", "/v1/admin/keys", '{"name": "k\\ud83d", "scopes": ["read"]}'),
        ("POST", "/v1/admin/import", '{"stores": [{"code": "Z2", "name": "x\\ud800"}]}'),
    ],
)
def test_text_with_a_lone_surrogate_is_422_not_500(
    admin: Admin, method: str, path: str, body: str
) -> None:
    """JSON may escape a lone surrogate (``json.loads`` reads it); no database can store it,
    and writing it raised UnicodeEncodeError: a 500 naming nothing."""
    resp = admin.client.request(
        method, path, content=body.encode(), headers=admin.a | {"Content-Type": "application/json"}
    )

    found = problem(resp, 422, "lone surrogate")
    assert found["type"] == "urn:tenpo:problem:bad-input"
    assert admin.control.list_stores("a") == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/admin/stores", '{"code": "Z\\u0000", "name": "x"}'),
        ("GET", "/v1/admin/stores/%00", None),
        ("GET", "/v1/admin/devices/a%00b", None),
    ],
)
def test_text_with_a_nul_is_4xx_not_500(
    admin: Admin, method: str, path: str, body: str | None
) -> None:
    """PostgreSQL text cannot hold NUL: the control plane's driver refused it with a
    DataError, a 500 (SQLite stores it, so there the store is created or not found)."""
    resp = admin.client.request(
        method,
        path,
        content=body.encode() if body else None,
        headers=admin.a | {"Content-Type": "application/json"},
    )

    assert resp.status_code in (201, 404, 422), resp.text
    assert resp.headers["content-type"].startswith("application/problem+json") or (
        resp.status_code == 201
    )
    if resp.status_code == 422:
        assert "NUL" in resp.json()["detail"]
