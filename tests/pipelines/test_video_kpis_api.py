"""The PersonID (video) KPIs through the operator's path: raw visitor events in the lake,
``tenpo jobs materialize``, then the read API, on a SQLite and on a PostgreSQL datamart.

Hand computation (tenant t1, one JST store, DAY a Monday, NEXT_DAY the Tuesday):

* DAY: p1 10:00→10:20 (1200 s). One unique visitor, no repeat (rate 0.0), dwell median and
  mean 1200 s, no open visit; visitors 1 from video (no people counter).
* NEXT_DAY: p1 10:00→10:10 (600 s), p2 10:05→10:35 (1800 s) and again 14:00→14:05 (300 s),
  p3 enters at 11:00 and never leaves; s9 stays 09:00→14:30 (5.5 h: staff, excluded).
  Unique visitors 3 (p1, p2, p3); repeat 1 (p1 came on DAY; p2's visit on DAY was at the
  other tenant's store, which does not count), rate 1/3; dwell over 600, 1800, 300: median
  600, mean 900; one open visit, so video is incomplete; visitors 4 (visits).
* The week and the month (both days): unique/repeat visitors, rate and dwell null (not a sum
  of days), open visits 1, visitors 5, video present on every day, not complete.
* Tenant t2's store (p2 on DAY, 10:00→10:30) is its own: t1 gets 404 for it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tenpo.api import create_app
from tenpo.api._state import api_state
from tenpo.cli import app as cli
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings, get_settings
from tenpo.datamart import dispose_engines
from tenpo.lake import open_lake
from tenpo.warehouse import write_partition
from tenpo.warehouse.schemas import DAILY_QUALITY, RAW_POS_TRANSACTIONS, VIDEO_KPIS
from tests.datamart.factory import BACKENDS
from tests.jobs.factories import DAY, NEXT_DAY, pos_row
from tests.jobs.test_visits_hourly import events_table, visit

pytestmark = pytest.mark.slow

VIDEO_COLUMNS = [name for name, _ in (*VIDEO_KPIS, *DAILY_QUALITY)]


@pytest.fixture
def dm_settings(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The test's settings, with a fresh PostgreSQL datamart for the postgresql case (also in
    the environment, so the CLI's own settings name it)."""
    if request.param == "postgresql":
        monkeypatch.setenv("TENPO_DATAMART_URL", request.getfixturevalue("pg_url"))
        get_settings.cache_clear()
        settings = get_settings()
    yield settings
    dispose_engines()


def _events(store: str, rows: list[dict[str, Any]], tenant: str = "t1") -> pa.Table:
    table = events_table(rows)
    return table.set_column(0, "tenant_id", pa.array([tenant] * len(table))).set_column(
        1, "store_id", pa.array([store] * len(table))
    )


def _materialized(settings: Settings) -> tuple[str, str, str, str]:
    """t1's and t2's stores with their raw data materialized by the CLI; their read keys."""
    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "T1")
    control.create_tenant("t2", "T2")
    s1 = control.create_store("t1", "S1", "Store 1").store_id
    s2 = control.create_store("t2", "S1", "Other tenant's store").store_id
    _, t1_key = control.create_api_key("t1", "read", ["read"])
    _, t2_key = control.create_api_key("t2", "read", ["read"])
    control.dispose()
    lake = open_lake(settings.lake_root)
    day = [*visit("A", "p1", "10:00", "10:20")]
    next_day = [
        *visit("A", "p1", "10:00", "10:10", day=NEXT_DAY),
        *visit("A", "p2", "10:05", "10:35", day=NEXT_DAY),
        *visit("A", "p3", "11:00", None, day=NEXT_DAY),
        *visit("A", "p2", "14:00", "14:05", day=NEXT_DAY),
        *visit("A", "s9", "09:00", "14:30", day=NEXT_DAY),
    ]
    write_partition(lake, "raw_visitor_events", "t1", DAY, _events(s1, day))
    write_partition(lake, "raw_visitor_events", "t1", NEXT_DAY, _events(s1, next_day))
    other = _events(s2, [*visit("A", "p2", "10:00", "10:30")], tenant="t2")
    write_partition(lake, "raw_visitor_events", "t2", DAY, other)
    sale = pa.Table.from_pylist(
        [pos_row(s1, "T1", "sale", "1000", "1100", 2, day=NEXT_DAY)], schema=RAW_POS_TRANSACTIONS
    )
    write_partition(lake, "raw_pos_transactions", "t1", NEXT_DAY, sale)
    args = ["jobs", "materialize", "--from", str(DAY), "--to", str(NEXT_DAY), "--only", "kpis"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return s1, s2, t1_key, t2_key


@pytest.mark.parametrize("dm_settings", BACKENDS, indirect=True)
def test_video_kpis_reach_the_read_api(dm_settings: Settings) -> None:
    settings = dm_settings
    s1, s2, t1_key, t2_key = _materialized(settings)
    t1 = {"Authorization": f"Bearer {t1_key}"}
    span = {"from": str(DAY), "to": str(NEXT_DAY)}
    with TestClient(create_app(settings)) as client:  # the lifespan: PostgreSQL's fast path

        def kpis(store: str, headers: dict[str, str], **params: str) -> Any:
            answer = client.get(f"/v1/stores/{store}/kpis", headers=headers, params=params)
            assert answer.status_code == 200, answer.text
            return answer

        days = kpis(s1, t1, **span, grain="day").json()["items"]
        assert [d["business_date"] for d in days] == [str(DAY), str(NEXT_DAY)]
        first, second = days
        assert {k: first[k] for k in VIDEO_COLUMNS} == {
            "unique_visitors": 1,
            "repeat_visitors": 0,
            "repeat_rate": 0.0,
            "dwell_time_median_s": 1200.0,
            "dwell_time_mean_s": 1200.0,
            "open_visits": 0,
            "visitors_source": "video",
            "has_video": True,
            "counter_complete": None,
            "video_complete": True,
        }
        assert {k: second[k] for k in VIDEO_COLUMNS} == {
            "unique_visitors": 3,
            "repeat_visitors": 1,
            "repeat_rate": pytest.approx(1 / 3),
            "dwell_time_median_s": 600.0,
            "dwell_time_mean_s": 900.0,
            "open_visits": 1,
            "visitors_source": "video",
            "has_video": True,
            "counter_complete": None,
            "video_complete": False,
        }
        assert (first["visitors"], second["visitors"], second["net_sales"]) == (1, 4, "1000.00")

        # Roll-ups: no sum of days gives unique visitors or a dwell median; open visits add up.
        for grain in ("week", "month"):
            (period,) = kpis(s1, t1, **span, grain=grain).json()["items"]
            assert {k: period[k] for k in VIDEO_COLUMNS} == {
                "unique_visitors": None,
                "repeat_visitors": None,
                "repeat_rate": None,
                "dwell_time_median_s": None,
                "dwell_time_mean_s": None,
                "open_visits": 1,
                "visitors_source": "video",
                "has_video": True,
                "counter_complete": None,
                "video_complete": False,
            }, grain
            assert (period["days"], period["visitors"]) == (2, 5)
        # A one-day range's total is that day, exactly.
        one = {"from": str(NEXT_DAY), "to": str(NEXT_DAY)}
        (total,) = kpis(s1, t1, **one, grain="total").json()["items"]
        assert (total["unique_visitors"], total["dwell_time_median_s"]) == (3, 600.0)

        # Hours: the hourly mart holds no PersonID KPIs, so they are null (not zero).
        hours = kpis(s1, t1, **one, grain="hour").json()["items"]
        assert sum(h["visitors"] or 0 for h in hours) == 4
        assert all(h[k] is None for h in hours for k, _ in VIDEO_KPIS)
        assert {h["visitors_source"] for h in hours if h["visitors"]} == {"video"}

        # CSV and the side-by-side answer carry the same day figures.
        text = kpis(s1, t1, **span, grain="day", format="csv").text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["unique_visitors"] for r in rows] == ["1", "3"]
        assert [r["dwell_time_mean_s"] for r in rows] == ["1200.0", "900.0"]
        assert [r["video_complete"] for r in rows] == ["true", "false"]
        side = client.get("/v1/kpis", headers=t1, params={**span, "grain": "day"}).json()
        (store,) = side["stores"]
        assert [i["repeat_visitors"] for i in store["items"]] == [0, 1]

        # Tenants never see each other: t1 gets 404 for t2's store, t2 its own figures.
        refused = client.get(f"/v1/stores/{s2}/kpis", headers=t1, params=span)
        assert refused.status_code == 404
        t2 = {"Authorization": f"Bearer {t2_key}"}
        (own,) = kpis(s2, t2, **span, grain="day").json()["items"]
        assert (own["unique_visitors"], own["dwell_time_median_s"]) == (1, 1800.0)
        reader = api_state(client.app).kpi_reader  # PostgreSQL: day reads took the async path
        assert (reader is not None and reader.served > 0) == (settings.datamart_url is not None)
