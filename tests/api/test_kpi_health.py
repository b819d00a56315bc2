"""KPI rows carry their date's device health; hourly rows say which hours are incomplete; the
hour repeated on a fall-back night comes back twice, told apart by ``utc_offset_s``.

On a SQLite and a PostgreSQL datamart (the world of ``world.py``, plus device health rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.datamart import dispose_engines, get_engine, mart_store_hourly
from tenpo.datamart.devices import device_health, export_device_health, mart_device_health
from tenpo.warehouse.schemas import DAILY_QUALITY, MART_DEVICE_HEALTH, VIDEO_KPIS
from tests.api.world import World, build
from tests.datamart.factory import BACKENDS, temporary_database

D1, D2 = date(2026, 10, 5), date(2026, 10, 6)


def health(tenant: str, store: str, device: str, day: date, flags: str, hours: str) -> dict:
    return {
        "tenant_id": tenant, "store_id": store, "device_id": device, "business_date": day,
        "last_seen": None, "interval_s": 900, "intervals_expected": 44,
        "intervals_received": 40, "intervals_missing": 4, "incomplete_hours": hours,
        "heartbeats": 0, "clock_skew_s": None, "battery_min": None, "last_status": None,
        "flags": flags,
    }  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("world")
    with temporary_database(request.param, folder, pg) as url:
        w = build(folder, url)
        engine = get_engine(w.settings.datamart_db_url)
        rows = [
            health("t1", "s1", "pc-1", D1, "missing_intervals,no_heartbeat", "11:00+09:00"),
            health("t1", "s1", "tof-1", D1, "low_battery", ""),
            # Another tenant's device: its flags must never reach t1's rows.
            health("t2", "s1", "pc-x", D2, "no_data", "10:00+09:00"),
        ]
        for day in (D1, D2):
            day_rows = [r for r in rows if r["business_date"] == day]
            export_device_health(engine, day, pa.Table.from_pylist(day_rows, MART_DEVICE_HEALTH))
        yield w
        w.control.dispose()
    dispose_engines()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    engine = get_engine(world.settings.datamart_db_url)
    with TestClient(create_app(world.settings, engine=engine, control=world.control)) as c:
        yield c


def get(client: TestClient, world: World, path: str, **params: Any) -> Any:
    resp = client.get(path, headers={"Authorization": f"Bearer {world.t1_key}"}, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_daily_rows_carry_the_device_flags_of_their_date(client: TestClient, world: World) -> None:
    body = get(client, world, "/v1/stores/s1/kpis", **{"from": "2026-10-05", "to": "2026-10-06"})
    d1, d2 = body["items"]
    assert d1["device_flags"] == ["low_battery", "missing_intervals", "no_heartbeat"]
    assert "counter_incomplete" in d1["flags"]
    assert d2["device_flags"] == [] and "counter_incomplete" not in d2["flags"]
    week = get(
        client, world, "/v1/stores/s1/kpis", **{"from": "2026-10-05", "to": "2026-10-11"},
        grain="week",
    )  # fmt: skip
    assert "counter_incomplete" in week["items"][0]["flags"]


def test_hourly_rows_say_which_hours_are_incomplete(client: TestClient, world: World) -> None:
    body = get(
        client, world, "/v1/stores/s1/kpis", **{"from": "2026-10-05", "to": "2026-10-06"},
        grain="hour",
    )  # fmt: skip
    incomplete = {
        (r["business_date"], r["hour"]) for r in body["items"] if "counter_incomplete" in r["flags"]
    }
    assert incomplete == {("2026-10-05", 11)}  # not 10:00 on D2: that is t2's device
    assert all(r["utc_offset_s"] == 9 * 3600 for r in body["items"])
    csv = client.get(
        "/v1/stores/s1/kpis", headers={"Authorization": f"Bearer {world.t1_key}"},
        params={"from": "2026-10-05", "to": "2026-10-05", "grain": "hour", "format": "csv"},
    ).text.splitlines()  # fmt: skip
    header, row = csv[0].split(","), csv[2].split(",")
    # The columns of older exports keep their places; the daily mart's own ones come after.
    assert header[18:21] == ["flags", "utc_offset_s", "device_flags"]
    assert header[21:] == [name for name, _ in (*VIDEO_KPIS, *DAILY_QUALITY)]
    assert row[18:21] == [
        "counter_incomplete",
        "32400",
        "low_battery;missing_intervals;no_heartbeat",
    ]
    # An hour has no PersonID KPIs (not in the hourly mart): empty cells, not zeros.
    hour_only = dict(zip(header, row, strict=True))
    assert all(hour_only[name] == "" for name, _ in VIDEO_KPIS)


def test_the_repeated_hour_comes_back_twice(client: TestClient, world: World) -> None:
    engine = get_engine(world.settings.datamart_db_url)
    table = mart_store_hourly  # the datamart's own table: its money type binds Decimals
    base = {
        "tenant_id": "t1", "store_id": "s3", "business_date": date(2026, 10, 25),
        "net_sales": Decimal("100.00"), "transactions": 1, "visitors": 4,
        "has_pos": True, "has_counter": True,
    }  # fmt: skip
    rows = [base | {"hour": 1, "utc_offset_s": 0}, base | {"hour": 1, "utc_offset_s": 3600}]
    rows.append(base | {"hour": 0, "utc_offset_s": 3600})
    with engine.begin() as conn:
        conn.execute(table.insert(), [{k: v for k, v in r.items() if k in table.c} for r in rows])
    body = get(
        client, world, "/v1/stores/s3/kpis", **{"from": "2026-10-25", "to": "2026-10-25"},
        grain="hour",
    )  # fmt: skip
    assert [(r["hour"], r["utc_offset_s"]) for r in body["items"]] == [
        (0, 3600),
        (1, 3600),  # 01:00 BST first
        (1, 0),  # then 01:00 GMT, an hour later
    ]


def test_an_older_datamart_table_gains_the_new_column(tmp_path: Path) -> None:
    """A mart_device_health created before ``incomplete_hours`` (and its per-store index)
    existed is upgraded in place."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old = sa.MetaData()
    sa.Table(
        mart_device_health.name,
        old,
        *(c.copy() for c in mart_device_health.columns if c.name != "incomplete_hours"),
    )
    old.create_all(engine)
    row = health("t1", "s1", "pc-1", D1, "missing_intervals", "11:00+09:00")
    assert export_device_health(engine, D1, pa.Table.from_pylist([row], MART_DEVICE_HEALTH)) == 1
    (record,) = device_health(engine, "t1", D1)
    assert record.incomplete_hours == ("11:00+09:00",)
    # ... and gains the per-store index the KPI read's device health needs.
    indexes = sa.inspect(engine).get_indexes(mart_device_health.name)
    assert ["tenant_id", "store_id", "business_date"] in [i["column_names"] for i in indexes]
    engine.dispose()
