"""One bad record never stops a run: the overlapping-tracks case of issue 13 end to end, and
rows that break a datamart key quarantined with their reason while the rest is exported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
import sqlalchemy as sa
from dagster import AssetCheckSeverity, DagsterInstance

from tenpo.core.settings import Settings
from tenpo.lake import Lake, open_lake
from tenpo.pipelines import materialize_dates
from tenpo.warehouse import write_partition
from tenpo.warehouse.schemas import RAW_VISITOR_EVENTS
from tenpo.warehouse.screen import quarantine_rows, screen_rows

DAY = date(2026, 10, 24)
ENTERED = datetime(2026, 10, 24, 4, 12, 29, tzinfo=UTC)


@pytest.fixture
def lake(settings: Settings) -> Iterator[Lake]:
    yield open_lake(settings.lake_root)
    from tenpo.datamart import dispose_engines

    dispose_engines()


def event(person: str, kind: str, ts: datetime, track: str, camera: str = "cam-1") -> dict:
    return {
        "tenant_id": "t2",
        "store_id": "S1",
        "camera_id": camera,
        "person_id": person,
        "event": kind,
        "business_date": DAY,
        "ts": ts,
        "quality": 0.9,
        "track_id": track,
        "source_object_id": "obj-v",
    }


def issue_events() -> pa.Table:
    """t2-p0035261 on two overlapping tracks entering at the same second, plus two others."""
    rows = [
        event("t2-p0035261", "entry", ENTERED, "20261024-00218"),
        event("t2-p0035261", "entry", ENTERED, "20261024-00219", camera="cam-2"),
        event("t2-p0035261", "exit", ENTERED + timedelta(minutes=12), "20261024-00218"),
        event("t2-p0035261", "exit", ENTERED + timedelta(minutes=14), "20261024-00219"),
        event("t2-p1", "entry", ENTERED, "20261024-00001"),
        event("t2-p1", "exit", ENTERED + timedelta(minutes=5), "20261024-00001"),
        event("t2-p2", "entry", ENTERED + timedelta(hours=1), "20261024-00002"),
    ]
    return pa.Table.from_pylist(rows, schema=RAW_VISITOR_EVENTS)


def datamart_visits(settings: Settings) -> list[tuple]:
    from tenpo.datamart import get_engine
    from tenpo.datamart.schema import mart_store_visits as t

    with get_engine(settings.datamart_db_url).connect() as conn:
        query = sa.select(t.c.person_id, t.c.dwell_s).order_by(t.c.person_id, t.c.entry_ts)
        return [tuple(r) for r in conn.execute(query)]


def checks_of(results: list, name: str) -> dict[str, tuple[bool, AssetCheckSeverity]]:
    return {
        e.asset_key.to_user_string(): (e.passed, e.severity)
        for r in results
        for e in r.get_asset_check_evaluations()
        if e.check_name == name
    }


def test_the_issue_13_case_runs_through_every_mart_and_export(
    settings: Settings, lake: Lake
) -> None:
    write_partition(lake, "raw_visitor_events", "t2", DAY, issue_events())
    with DagsterInstance.ephemeral() as instance:
        results = materialize_dates(settings, [DAY], instance=instance)
    assert datamart_visits(settings) == [("t2-p0035261", 840), ("t2-p1", 300), ("t2-p2", None)]
    checks = checks_of(results, "rows_quarantined")
    assert checks["mart_store_visits"] == (True, AssetCheckSeverity.WARN)
    assert checks["datamart_store_visits"] == (True, AssetCheckSeverity.WARN)
    assert lake.list("quarantine/") == []


def test_rows_breaking_the_datamart_key_are_quarantined_and_the_rest_exported(
    settings: Settings, lake: Lake
) -> None:
    # A visits partition written by an older rule: two visits of one person, one key.
    key = {"tenant_id": "t2", "store_id": "S1", "business_date": DAY, "entry_ts": ENTERED}
    rows = [
        {**key, "person_id": "t2-p0035261", "camera_id": "cam-1", "dwell_s": 720},
        {**key, "person_id": "t2-p0035261", "camera_id": "cam-2", "dwell_s": 840},
        {**key, "person_id": "t2-p1", "camera_id": "cam-1", "dwell_s": 300},
    ]
    for r in rows:
        r.update(exit_ts=r["entry_ts"] + timedelta(seconds=r["dwell_s"]), entry_hour=13)
    write_partition(lake, "mart_store_visits", "t2", DAY, pa.Table.from_pylist(rows))
    with DagsterInstance.ephemeral() as instance:
        results = materialize_dates(
            settings, [DAY], assets=["datamart_store_visits"], instance=instance
        )
    assert datamart_visits(settings) == [("t2-p1", 300)]
    passed, severity = checks_of(results, "rows_quarantined")["datamart_store_visits"]
    assert (passed, severity) == (False, AssetCheckSeverity.WARN)
    (qkey,) = lake.list("quarantine/")
    assert qkey == f"quarantine/datamart_store_visits/tenant=t2/date={DAY}/rows.jsonl"
    lines = [json.loads(x) for x in lake.get(qkey).decode().splitlines()]
    assert [line["record"]["dwell_s"] for line in lines] == [720, 840]
    assert all("2 rows share the key" in line["reason"] for line in lines)
    assert "'person_id': 't2-p0035261'" in lines[0]["reason"]
    # Fixed upstream (the mart rebuilt by the merge rule): the rerun empties the quarantine.
    write_partition(lake, "raw_visitor_events", "t2", DAY, issue_events())
    with DagsterInstance.ephemeral() as instance:
        materialize_dates(settings, [DAY], instance=instance)
    assert datamart_visits(settings)[0] == ("t2-p0035261", 840)
    assert lake.list("quarantine/") == []


def test_screen_rows_names_each_reason_and_keeps_order() -> None:
    t = pa.table(
        {
            "tenant_id": ["a", "a", "a", None, "b", "b"],
            "k": [1, 1, 2, 3, 4, 5],
            "business_date": [DAY] * 4 + [DAY + timedelta(days=1), DAY],
            "x": [1.0, 2.0, float("inf"), 1.0, 1.0, None],
        }
    )
    s = screen_rows(t, ["tenant_id", "k"], days=[DAY])
    assert s.kept.to_pylist() == [{"tenant_id": "b", "k": 5, "business_date": DAY, "x": None}]
    assert s.reasons == [
        "2 rows share the key {'tenant_id': 'a', 'k': 1}",
        "2 rows share the key {'tenant_id': 'a', 'k': 1}",
        "non-finite x (inf)",
        "null key column tenant_id",
        "business_date outside the dates written",
    ]
    assert s.rejected["k"].to_pylist() == [1, 1, 2, 3, 4]
    clean = screen_rows(t.slice(5), ["tenant_id", "k"], days=[DAY])
    assert clean.rejected.num_rows == 0 and clean.kept.equals(t.slice(5))
    assert screen_rows(t.slice(0, 0), ["k"]).kept.num_rows == 0


def test_quarantine_files_follow_the_partition(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lake = open_lake(str(tmp_path))
    t = pa.table({"tenant_id": ["a", "a", None], "k": [1, 1, 2], "business_date": [DAY] * 3})
    keys = quarantine_rows(lake, "mart_x", [DAY], screen_rows(t, ["tenant_id", "k"]))
    assert keys == [
        f"quarantine/mart_x/tenant=_none/date={DAY}/rows.jsonl",
        f"quarantine/mart_x/tenant=a/date={DAY}/rows.jsonl",
    ]
    # Another date's rejects are not touched by this date's clean rewrite.
    other = DAY + timedelta(days=1)
    late = pa.table({"tenant_id": [None], "k": [1], "business_date": [other]})
    quarantine_rows(lake, "mart_x", [other], screen_rows(late, ["tenant_id", "k"]))
    assert quarantine_rows(lake, "mart_x", [DAY], screen_rows(t.slice(2, 0), ["k"])) == []
    assert lake.list("quarantine/") == [f"quarantine/mart_x/tenant=_none/date={other}/rows.jsonl"]
