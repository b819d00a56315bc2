"""Alerts end to end: rules over the API, evaluation on lake marts and datamart forecasts,
webhook delivery to a real local HTTP server, listing and acknowledging (SQLite, PostgreSQL)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.api.deps import get_settings
from tenpo.datamart import alerts as dm_alerts_module
from tenpo.datamart import dispose_engines, get_engine
from tenpo.datamart import forecast as dm_forecast_module
from tenpo.datamart.forecast import export_forecasts
from tenpo.lake import open_lake
from tenpo.lake.keys import table_key
from tenpo.ml.forecast import MART_STORE_FORECAST
from tenpo.pipelines.alerts import evaluate_alerts
from tenpo.pipelines.resources import TenpoResource
from tests.alerts.test_alerts import SECRET, _Receiver
from tests.api.world import World, build
from tests.datamart.factory import BACKENDS, daily_row, mart_table, temporary_database

DAY = date(2026, 11, 10)


def _export_forecast(w: World) -> None:
    forecast = [
        {"tenant_id": "t1", "store_id": s, "kpi": "visitors", "grain": "day",
         "business_date": DAY, "hour": -1, "utc_offset_s": 0, "as_of": DAY - timedelta(days=1),
         "mean": 500.0, "lo_80": 450.0, "hi_80": 550.0, "lo_95": 400.0, "hi_95": 600.0}
        for s in ("s1", "s2")
    ]  # fmt: skip
    export_forecasts(w.settings, pa.Table.from_pylist(forecast, MART_STORE_FORECAST))


@pytest.fixture(scope="module", autouse=True)
def _local_webhooks() -> Iterator[None]:
    """The receiver below listens on 127.0.0.1: private webhooks allowed explicitly, also
    for the pipeline resource (which reads the environment)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TENPO_ALERT_WEBHOOK_ALLOW_PRIVATE", "true")
        yield


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("alerts")
    with (
        temporary_database(request.param, folder, pg) as url,
        temporary_database(request.param, folder / "control", pg) as control_url,
    ):
        (folder / "control").mkdir(exist_ok=True)
        control = None if request.param == "sqlite" else control_url  # PG: a second database
        w = build(folder, url, control)
        # The webhook receiver below listens on 127.0.0.1: allowed explicitly.
        w.settings = w.settings.model_copy(update={"alert_webhook_allow_private": True})
        lake = open_lake(w.settings.lake_root)
        for back in range(8):
            d = DAY - timedelta(days=back)
            rows = [
                daily_row("t1", "s1", d, visitors=120 if back == 0 else 500),
                daily_row("t1", "s2", d, visitors=None if back == 0 else 50, has_counter=back > 0),
            ]
            buf = io.BytesIO()
            pq.write_table(mart_table(rows), buf)
            lake.put(table_key("mart_store_daily", "t1", d, "part-0"), buf.getvalue())
        _export_forecast(w)
        yield w
        w.control.dispose()
        dispose_engines()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    engine = get_engine(world.settings.datamart_db_url)
    with TestClient(create_app(world.settings, engine=engine, control=world.control)) as c:
        yield c


@pytest.fixture(scope="module")
def receiver(world: World) -> Iterator[str]:  # one per datamart backend
    _Receiver.failures_left, _Receiver.received, _Receiver.requests = 1, {}, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_rules_evaluated_delivered_listed_and_acknowledged(
    client: TestClient, world: World, receiver: str
) -> None:
    admin = _auth(world.control.create_api_key("t1", "alerts-admin", ["admin"])[1])
    rules: list[dict[str, Any]] = [
        {"rule_id": "visitors-off", "kind": "kpi_outside_forecast",
         "params": {"kpi": "visitors", "level": 95}, "webhook_url": receiver,
         "webhook_secret": SECRET},
        {"rule_id": "counter-missing", "kind": "source_missing", "params": {"source": "counter"},
         "webhook_url": receiver, "webhook_secret": SECRET},
    ]  # fmt: skip
    for rule in rules:
        assert client.put("/v1/alerts/rules", json=rule, headers=admin).status_code == 200
    bad = {"rule_id": "x", "kind": "kpi_outside_forecast", "params": {"kpi": "atv"}}
    r = client.put("/v1/alerts/rules", json=bad, headers=admin)
    assert r.status_code == 422 and "kpi" in r.json()["detail"]
    assert (
        client.put("/v1/alerts/rules", json=rules[0], headers=_auth(world.t1_key)).status_code
        == 403
    )
    listed = client.get("/v1/alerts/rules", headers=admin).json()["items"]
    assert [x["rule_id"] for x in listed] == ["counter-missing", "visitors-off"]
    assert "webhook_secret" not in listed[0]

    resource = TenpoResource.from_settings(world.settings)
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    with httpx.Client(timeout=5) as http:
        first = evaluate_alerts(resource, now=now, client=http)
        again = evaluate_alerts(resource, now=now, client=http)
    # s1: 120 visitors below 400-600; s2: no counter on DAY (it had one the week before).
    # The receiver answers the first POST with 503: retried after 0.5 s, then delivered.
    assert first == {"business_date": "2026-11-10", "rules": 2, "raised": 2, "delivered": 2,
                     "failed": 0}  # fmt: skip
    assert again == {**first, "raised": 0, "delivered": 0}  # nothing new, nothing re-sent
    assert _Receiver.requests == 3 and len(_Receiver.received) == 2
    body = client.get("/v1/alerts", headers=_auth(world.t1_key)).json()["items"]
    assert {(a["rule_id"], a["store_id"]) for a in body} == {
        ("visitors-off", "s1"),
        ("counter-missing", "s2"),
    }
    assert all(a["delivered"] for a in body)
    drop = next(a for a in body if a["rule_id"] == "visitors-off")
    assert drop["value"] == 120 and drop["expected_low"] == 400 and "drop" in drop["message"]
    assert client.get("/v1/alerts", headers=_auth(world.t2_key)).json()["items"] == []
    assert (
        client.post(f"/v1/alerts/{drop['alert_id']}/ack", headers=_auth(world.t2_key)).status_code
        == 404
    )
    acked = client.post(f"/v1/alerts/{drop['alert_id']}/ack", headers=_auth(world.t1_key)).json()
    assert acked["acknowledged_at"] and acked["acknowledged_by"].startswith("key_")
    twice = client.post(f"/v1/alerts/{drop['alert_id']}/ack", headers=_auth(world.t1_key)).json()
    assert twice["acknowledged_at"] == acked["acknowledged_at"]
    open_ = client.get("/v1/alerts", params={"acknowledged": "false"}, headers=_auth(world.t1_key))
    assert [a["rule_id"] for a in open_.json()["items"]] == ["counter-missing"]


def _datamart_cells(url: str) -> list[str]:
    engine = get_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return [
            str(v) for t in meta.sorted_tables for row in conn.execute(sa.select(t)) for v in row
        ]


def test_rules_and_secrets_stay_out_of_the_datamart_and_survive_its_drop(
    client: TestClient, world: World, receiver: str
) -> None:
    """Runs after the test above (same module fixtures): its rules and alerts are stored."""
    url = world.settings.datamart_db_url
    admin = _auth(world.control.create_api_key("t1", "alerts-admin-2", ["admin"])[1])
    cells = _datamart_cells(url)
    assert any("visitors-off" in c for c in cells)  # the alerts are there...
    assert not any(SECRET in c for c in cells)  # ...the secret nowhere
    assert not sa.inspect(get_engine(url)).has_table("dm_alert_rules")
    for path in ("/v1/alerts/rules", "/v1/alerts"):
        r = client.get(path, headers=admin if "rules" in path else _auth(world.t1_key))
        assert r.status_code == 200 and SECRET not in r.text and "webhook_secret" not in r.text

    # Drop the whole datamart: the rules are in the control plane and come back unchanged.
    engine = get_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    dm_alerts_module._schema.forget(engine)  # (as if their 30 s re-check had come)
    dm_forecast_module._schema.forget(engine)
    listed = client.get("/v1/alerts/rules", headers=admin).json()["items"]
    assert [(x["rule_id"], x["webhook_url"]) for x in listed] == [
        ("counter-missing", receiver),
        ("visitors-off", receiver),
    ]
    assert client.get("/v1/alerts", headers=_auth(world.t1_key)).json()["items"] == []
    # Rebuilt (forecasts exported again), the derived alerts are raised again under the same
    # ids, but the control plane knows their webhook received them: none is sent again.
    delivered = world.control.delivered_alerts(("t1", a) for a in _Receiver.received)
    assert set(delivered) == {("t1", a) for a in _Receiver.received}
    _export_forecast(world)
    resource = TenpoResource.from_settings(world.settings)
    requests = _Receiver.requests
    with httpx.Client(timeout=5) as http:
        after = evaluate_alerts(resource, now=datetime(2026, 11, 10, 13, tzinfo=UTC), client=http)
        again = evaluate_alerts(resource, now=datetime(2026, 11, 10, 14, tzinfo=UTC), client=http)
    assert after == {"business_date": "2026-11-10", "rules": 2, "raised": 2, "delivered": 0,
                     "failed": 0}  # fmt: skip
    assert again == {**after, "raised": 0}
    assert _Receiver.requests == requests and len(_Receiver.received) == 2  # nothing re-sent
    listed_alerts = client.get("/v1/alerts", headers=_auth(world.t1_key)).json()["items"]
    assert {a["alert_id"] for a in listed_alerts} == set(_Receiver.received)
    assert all(a["delivered"] for a in listed_alerts)  # with the first delivery's time
    # The acknowledgement (made in the test above) is kept too: who, and when.
    acked = {a["rule_id"]: (a["acknowledged_at"], a["acknowledged_by"]) for a in listed_alerts}
    assert acked["counter-missing"] == (None, None)
    assert acked["visitors-off"][0] and acked["visitors-off"][1].startswith("key_")
    assert world.control.alert_acks("t1") and world.control.alert_acks("t2") == {}
    assert not any(SECRET in c for c in _datamart_cells(url))
    assert world.control.delivered_alerts([("t2", a) for a in _Receiver.received]) == {}


def test_rules_are_per_tenant(client: TestClient, world: World, receiver: str) -> None:
    t1 = _auth(world.control.create_api_key("t1", "alerts-admin-3", ["admin"])[1])
    t2 = _auth(world.control.create_api_key("t2", "alerts-admin", ["admin"])[1])
    assert client.get("/v1/alerts/rules", headers=t2).json()["items"] == []
    # t2 may use the same rule id: its own rule, neither replacing nor showing t1's.
    mine = {"rule_id": "visitors-off", "kind": "device_silent", "params": {"minutes": 30}}
    assert client.put("/v1/alerts/rules", json=mine, headers=t2).status_code == 200
    assert client.get("/v1/alerts/rules", headers=t2).json()["items"] == [
        {"rule_id": "visitors-off", "kind": "device_silent", "params": {"minutes": 30},
         "stores": None, "webhook_url": None}
    ]  # fmt: skip
    theirs = client.get("/v1/alerts/rules", headers=t1).json()["items"]
    off = next(x for x in theirs if x["rule_id"] == "visitors-off")
    assert off["kind"] == "kpi_outside_forecast" and off["webhook_url"] == receiver
    assert world.control.webhook_targets()[("t1", "visitors-off")] == (receiver, SECRET)
    assert ("t2", "visitors-off") not in world.control.webhook_targets()
    assert client.get("/v1/alerts/rules", headers=_auth(world.t2_key)).status_code == 403
    # A rule may only name the tenant's own stores (s1 is t1's).
    foreign = {"rule_id": "x", "kind": "device_silent", "stores": ["s1"]}
    r = client.put("/v1/alerts/rules", json=foreign, headers=t2)
    assert r.status_code == 422 and "s1" in r.json()["detail"]
    assert [x["rule_id"] for x in client.get("/v1/alerts/rules", headers=t2).json()["items"]] == [
        "visitors-off"
    ]


def test_legacy_datamart_rules_move_to_the_control_plane(
    client: TestClient, world: World, receiver: str
) -> None:
    engine = get_engine(world.settings.datamart_db_url)
    legacy = sa.Table(
        "dm_alert_rules",
        sa.MetaData(),
        *(sa.Column(c, sa.Text) for c in ("tenant_id", "rule_id", "kind", "params", "stores")),
        sa.Column("webhook_url", sa.Text),
        sa.Column("webhook_secret", sa.Text),
    )
    legacy.create(engine)
    with engine.begin() as conn:
        conn.execute(
            legacy.insert(),
            {"tenant_id": "t2", "rule_id": "old-silent", "kind": "device_silent",
             "params": '{"minutes": 20}', "stores": '["s9"]', "webhook_url": receiver,
             "webhook_secret": "legacy-secret-0123456789"},
        )  # fmt: skip
    resource = TenpoResource.from_settings(world.settings)
    with httpx.Client(timeout=5) as http:
        evaluate_alerts(resource, now=datetime(2026, 11, 10, 14, tzinfo=UTC), client=http)
    assert not sa.inspect(engine).has_table("dm_alert_rules")
    t2 = _auth(world.control.create_api_key("t2", "alerts-admin-2", ["admin"])[1])
    r = client.get("/v1/alerts/rules", headers=t2)
    assert {"rule_id": "old-silent", "kind": "device_silent", "params": {"minutes": 20},
            "stores": ["s9"], "webhook_url": receiver} in r.json()["items"]  # fmt: skip
    assert "legacy-secret" not in r.text
    targets = world.control.webhook_targets()
    assert targets[("t2", "old-silent")] == (receiver, "legacy-secret-0123456789")


def test_a_rule_whose_webhook_targets_an_internal_address_is_a_422(
    client: TestClient, world: World
) -> None:
    """By default (alert_webhook_allow_private off) a tenant cannot point a rule's webhook
    into tenpo's network: the metadata service, loopback (also by name), RFC 1918, unique
    local IPv6, or another scheme. A 422 problem names the address; nothing is stored. The
    old code stored each one and POSTed alerts there."""
    settings = world.settings.model_copy(update={"alert_webhook_allow_private": False})
    admin = _auth(world.control.create_api_key("t2", "alerts-ssrf", ["admin"])[1])
    client.app.dependency_overrides[get_settings] = lambda: settings  # type: ignore[attr-defined]
    strict = client
    try:
        for url, named in (
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
            ("http://localhost:8000/v1/admin/keys", "127.0.0.1"),
            ("https://10.0.0.5/hook", "10.0.0.5"),
            ("http://[fd00::1]/hook", "fd00::1"),
        ):
            rule = {"rule_id": "ssrf", "kind": "device_silent", "params": {"minutes": 30},
                    "webhook_url": url, "webhook_secret": SECRET}  # fmt: skip
            r = strict.put("/v1/alerts/rules", json=rule, headers=admin)
            assert r.status_code == 422, (url, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert named in r.json()["detail"] and "non-public" in r.json()["detail"], r.text
        rule["webhook_url"] = "ftp://93.184.216.34/hook"
        r = strict.put("/v1/alerts/rules", json=rule, headers=admin)
        assert r.status_code == 422
        rule["webhook_url"] = "https://93.184.216.34/hook"  # public: stored
        assert strict.put("/v1/alerts/rules", json=rule, headers=admin).status_code == 200
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert world.control.webhook_targets()[("t2", "ssrf")] == (rule["webhook_url"], SECRET)
