"""Forecasts end to end: lake marts → Dagster forecast assets → datamart → read API.

Twelve weeks of ``mart_store_daily`` (and ``mart_store_hourly`` for s1) in the lake, with a
fixed weekly shape (Mon-Thu 100 visitors, Fri 120, Sat 180, Sun 200) and Japanese public
holidays trading like a Sunday, on SQLite and PostgreSQL datamarts.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import jpholiday
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tenpo.api import create_app
from tenpo.cli import app
from tenpo.datamart import dispose_engines, get_engine
from tenpo.datamart.forecast import export_forecasts, read_weather
from tenpo.lake import open_lake
from tenpo.lake.keys import table_key
from tenpo.ml.forecast import MART_STORE_FORECAST, forecast_rows
from tenpo.warehouse.schemas import MART_STORE_HOURLY
from tests.api.world import SECRET_STORE, World, build
from tests.datamart.factory import BACKENDS, daily_row, mart_table, temporary_database

AS_OF = date(2026, 10, 11)  # a Sunday; Monday 2026-10-12 is Sports Day
DAYS = [AS_OF - timedelta(days=83 - i) for i in range(84)]
WEEK = (100, 100, 100, 100, 120, 180, 200)
HOURS = range(10, 20)  # s1 is open 10:00-20:00; the 12:00 hour takes twice the others


def _visitors(day: date) -> int:
    base = WEEK[6 if jpholiday.is_holiday(day) else day.weekday()]
    return round(base * (1 + 0.03 * ((day.toordinal() * 7) % 5 - 2) / 2))


def _marts() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    daily: list[dict[str, Any]] = []
    hourly: list[dict[str, Any]] = []
    for day in DAYS:
        v = _visitors(day)
        rows = [
            daily_row("t1", "s1", day, visitors=v, transactions=v // 4,
                      net_sales=f"{v // 4 * 1500}.00"),
            daily_row("t2", SECRET_STORE, day, visitors=2 * v, transactions=v // 2),
        ]  # fmt: skip
        daily += rows
        hourly += [
            {
                "tenant_id": "t1",
                "store_id": "s1",
                "business_date": day,
                "hour": h,
                "utc_offset_s": 9 * 3600,
                "visitors": v * (2 if h == 12 else 1) / 11,
                "transactions": v // 4 * (2 if h == 12 else 1) / 11,
                "has_pos": True,
                "has_counter": True,
            }
            for h in HOURS
        ]
    return daily, hourly


def _seed_lake(world: World, days: Any = DAYS) -> None:
    lake = open_lake(world.settings.lake_root)
    daily, hourly = _marts()
    for day in days:
        for tenant in ("t1", "t2"):
            part = [r for r in daily if r["tenant_id"] == tenant and r["business_date"] == day]
            _put(lake, "mart_store_daily", tenant, day, mart_table(part))
        hours = [r for r in hourly if r["business_date"] == day]
        _put(lake, "mart_store_hourly", "t1", day, pa.Table.from_pylist(hours, MART_STORE_HOURLY))


def _put(lake: Any, table: str, tenant: str, day: date, rows: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    lake.put(table_key(table, tenant, day, "part-0"), buf.getvalue())


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("forecast")
    with temporary_database(request.param, folder, pg) as url:
        w = build(folder, url)
        if request.param == "sqlite":  # the operator's path: lake marts → `tenpo jobs forecast`
            env = {
                "TENPO_DATA_DIR": str(w.settings.data_dir),
                "TENPO_DATAMART_URL": url,
                "TENPO_CONTROL_URL": str(w.settings.control_url),
            }
            empty = CliRunner().invoke(app, ["jobs", "forecast"], env=env)
            assert empty.exit_code == 2 and "mart_store_daily is empty" in empty.output
            _seed_lake(w, DAYS[-5:])  # too little history: said so, nothing claimed written
            short = CliRunner().invoke(app, ["jobs", "forecast"], env=env)
            assert short.exit_code == 0, short.output
            assert "no store has enough history" in short.output
            assert "written to the datamart" not in short.output
            _seed_lake(w)
            done = CliRunner().invoke(app, ["jobs", "forecast"], env=env)
            assert done.exit_code == 0, done.output
            assert "forecasts of 2 store(s) written to the datamart" in done.output
        else:  # the same rows, exported straight into PostgreSQL
            daily, hourly = _marts()
            stores = [{"tenant_id": "t1", "store_id": "s1"}]
            rows = forecast_rows(pd.DataFrame(daily), pd.DataFrame(hourly), stores, as_of=AS_OF)
            export_forecasts(w.settings, rows)
        yield w
        dispose_engines()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    engine = get_engine(world.settings.datamart_db_url)
    with TestClient(create_app(world.settings, engine=engine, control=world.control)) as c:
        yield c


def _get(client: TestClient, key: str, store: str, **params: str) -> Any:
    return client.get(
        f"/v1/stores/{store}/forecast", params=params, headers={"Authorization": f"Bearer {key}"}
    )


def test_daily_forecast_follows_weekday_and_holidays(client: TestClient, world: World) -> None:
    r = _get(client, world.t1_key, "s1", kpi="visitors", grain="day")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == AS_OF.isoformat() and body["levels"] == [80, 95]
    points = {p["date"]: p for p in body["points"]}
    assert len(points) == 90 and min(points) == "2026-10-12" and max(points) == "2027-01-09"
    assert 190 <= points["2026-10-12"]["mean"] <= 210  # Sports Day trades like a Sunday (200)
    assert 95 <= points["2026-10-13"]["mean"] <= 105  # Tuesday (100)
    assert 171 <= points["2026-10-17"]["mean"] <= 189  # Saturday (180)
    for p in points.values():
        assert p["hour"] is None and p["utc_offset"] is None
        assert p["lo_95"] <= p["lo_80"] < p["mean"] < p["hi_80"] <= p["hi_95"]
    sales = _get(client, world.t1_key, "s1", kpi="net_sales").json()["points"]
    assert 25 * 1500 * 0.95 <= sales[1]["mean"] <= 25 * 1500 * 1.05  # Tuesday: 25 receipts


def test_hourly_forecast_splits_the_day_by_its_hours(client: TestClient, world: World) -> None:
    body = _get(client, world.t1_key, "s1", kpi="visitors", grain="hour").json()
    points = body["points"]
    assert len(points) == 14 * len(HOURS)
    assert {p["hour"] for p in points} == set(HOURS)
    assert {p["utc_offset"] for p in points} == {"+09:00"}
    tuesday = {p["hour"]: p["mean"] for p in points if p["date"] == "2026-10-13"}
    assert 2 * 100 / 11 * 0.9 <= tuesday[12] <= 2 * 100 / 11 * 1.1  # 18.2
    assert 100 / 11 * 0.9 <= tuesday[15] <= 100 / 11 * 1.1  # 9.1


def test_bad_kpi_and_grain_are_problems(client: TestClient, world: World) -> None:
    for params, name in (({"kpi": "atv"}, "kpi"), ({"grain": "week"}, "grain")):
        r = _get(client, world.t1_key, "s1", **params)
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        assert name in r.json()["detail"]


def test_forecasts_stay_inside_their_tenant(client: TestClient, world: World) -> None:
    assert _get(client, world.t1_key, SECRET_STORE).status_code == 404
    assert _get(client, world.t2_key, "s1").status_code == 404
    other = _get(client, world.t2_key, SECRET_STORE).json()
    assert 190 <= other["points"][1]["mean"] <= 210  # its own Tuesday: 2 × 100
    empty = _get(client, world.t1_key, "s2").json()  # a store without history
    assert empty["points"] == [] and empty["as_of"] is None
    assert client.get("/v1/stores/s1/forecast").status_code == 401


def test_staffing_uses_the_store_hours_and_its_forecast(client: TestClient, world: World) -> None:
    # The world's s1 has 10 visitors and 2 receipts at 10:00-12:00 on every day but 10-08.
    items = [
        {"date": d.isoformat(), "hour": h, "staff": 2}
        for d in (date(2026, 10, 5) + timedelta(days=i) for i in range(7))
        for h in (10, 11, 12)
    ]
    auth = {"Authorization": f"Bearer {world.t1_key}"}
    r = client.post("/v1/staffing", json={"store_id": "s1", "items": items}, headers=auth)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["staffed_hours"] == 18 and plan["visitors_per_staff_hour"] == 5.0
    assert [(b["hours"], b["conversion"]) for b in plan["curve"]] == [(18, 0.2)]
    assert plan["strained_hours"] == [] and plan["expected_extra_transactions_per_week"] == 0
    recommended = plan["recommendation"]
    assert len(recommended) == 14 * len(HOURS) and recommended[0]["utc_offset"] == "+09:00"
    first = recommended[0]
    assert first["staff"] == max(1, -(-first["visitors"] // 5))
    secret = {"store_id": SECRET_STORE, "items": items}
    assert client.post("/v1/staffing", json=secret, headers=auth).status_code == 404
    bad = {"store_id": "s1", "items": [{"date": "2026-10-05", "hour": 24, "staff": 1}]}
    assert client.post("/v1/staffing", json=bad, headers=auth).status_code == 422

    # The same rota as CSV gives the same plan.
    lines = ["store_id,date,hour,staff"] + [f"s1,{i['date']},{i['hour']},2" for i in items]
    csv_auth = auth | {"Content-Type": "text/csv"}
    r = client.post("/v1/staffing", content="\n".join(lines).encode(), headers=csv_auth)
    assert r.status_code == 200, r.text
    assert r.json() == plan
    hidden = "store_id,date,hour,staff\n" + f"{SECRET_STORE},2026-10-05,10,2\n"
    assert client.post("/v1/staffing", content=hidden, headers=csv_auth).status_code == 404
    # Every row checked first; each bad one listed.
    bad_csv = "\n".join([
        "store_id,date,hour,staff",
        "s1,2026-10-05,10,2",
        "s1,2026-13-01,10,2",
        "s1,2026-10-05,24,2",
        "s1,2026-10-05,11,-1",
        "s2,2026-10-05,12,2",
        "s1,2026-10-05,10,3",
        "s1,2026-10-05,13,nan",
    ])  # fmt: skip
    r = client.post("/v1/staffing", content=bad_csv, headers=csv_auth)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [(e["row"], e["message"].split(" ")[0]) for e in r.json()["errors"]] == [
        (2, "bad"), (3, "bad"), (4, "staff"), (5, "store_id"), (6, "2026-10-05"), (7, "staff"),
    ]  # fmt: skip
    no_header = client.post("/v1/staffing", content="s1,2026-10-05,10,2\n", headers=csv_auth)
    assert no_header.status_code == 422 and "header" in no_header.json()["detail"]
    empty = client.post("/v1/staffing", content="store_id,date,hour,staff\n", headers=csv_auth)
    assert empty.status_code == 422 and empty.json()["errors"][0]["message"] == "no rows"
    plain = auth | {"Content-Type": "text/plain"}
    assert client.post("/v1/staffing", content="x", headers=plain).status_code == 415
    big = auth | {"Content-Type": "text/csv", "Content-Length": str(3 * 1024 * 1024)}
    assert client.post("/v1/staffing", content=b"x", headers=big).status_code == 413


def test_reexport_replaces_the_store_rows(world: World) -> None:
    engine = get_engine(world.settings.datamart_db_url)
    count = "SELECT count(*) FROM mart_store_forecast"
    with engine.connect() as conn:
        before = conn.exec_driver_sql(count).scalar()
        s1_before = conn.exec_driver_sql(f"{count} WHERE store_id = 's1'").scalar()
    rows = pa.Table.from_pylist(
        [
            {"tenant_id": "t1", "store_id": "s1", "kpi": "visitors", "grain": "day",
             "business_date": AS_OF + timedelta(days=1), "hour": -1, "utc_offset_s": 0,
             "as_of": AS_OF, "mean": 1.0, "lo_80": 0.5, "hi_80": 1.5, "lo_95": 0.1, "hi_95": 2.0}
        ],
        MART_STORE_FORECAST,
    )  # fmt: skip
    export_forecasts(world.settings, rows)
    with engine.connect() as conn:
        after = conn.exec_driver_sql(count).scalar()
        s1 = conn.exec_driver_sql(f"{count} WHERE store_id = 's1'").scalar()
    assert s1_before == 3 * 90 + 2 * 14 * len(HOURS)  # no hourly net sales in the lake: 0s
    assert s1 == 1 and after == before - s1_before + 1
    # The next day's run keeps that date (its forecast the day before) but serves from as-of on.
    later = rows.to_pylist()[0] | {
        "business_date": AS_OF + timedelta(days=2),
        "as_of": AS_OF + timedelta(days=1),
    }
    export_forecasts(world.settings, pa.Table.from_pylist([later], MART_STORE_FORECAST))
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"{count} WHERE store_id = 's1'").scalar() == 2
    client = TestClient(create_app(world.settings, engine=engine, control=world.control))
    body = _get(client, world.t1_key, "s1").json()
    assert body["as_of"] == (AS_OF + timedelta(days=1)).isoformat()
    assert [p["date"] for p in body["points"]] == [(AS_OF + timedelta(days=2)).isoformat()]


def test_weather_feed_needs_admin_and_replaces_resent_days(
    client: TestClient, world: World
) -> None:
    body = {
        "items": [
            {"region": "kanto", "date": "2026-10-12", "precipitation_mm": 12.5,
             "temperature_c": 18},
            {"region": "kanto", "date": "2026-10-13", "precipitation_mm": 0, "temperature_c": 21},
        ]
    }  # fmt: skip
    read = {"Authorization": f"Bearer {world.t1_key}"}
    assert client.post("/v1/weather", json=body, headers=read).status_code == 403
    admin = {"Authorization": f"Bearer {world.control.create_api_key('t1', 'wx', ['admin'])[1]}"}
    assert client.post("/v1/weather", json=body, headers=admin).json() == {
        "tenant_id": "t1",
        "written": 2,
    }
    body["items"][0]["precipitation_mm"] = 30.0
    assert client.post("/v1/weather", json=body, headers=admin).status_code == 200
    weather = read_weather(get_engine(world.settings.datamart_db_url))
    assert len(weather) == 2
    assert weather.set_index("business_date").loc[date(2026, 10, 12), "precipitation_mm"] == 30.0
    bad = {
        "items": [
            {"region": "kanto", "date": "2026-10-12", "precipitation_mm": -1, "temperature_c": 5}
        ]
    }
    r = client.post("/v1/weather", json=bad, headers=admin)
    assert r.status_code == 422
