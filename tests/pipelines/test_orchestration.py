"""Orchestration: the partitions.changed sensor, late data, the schedule, downstream re-runs,
asset checks, identical backfill re-runs and the instance's run limits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import sqlalchemy as sa
from dagster import (
    DagsterInstance,
    DagsterRun,
    EventLogEntry,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.tags import RUN_KEY_TAG, SCHEDULE_NAME_TAG
from dagster._core.utils import make_new_run_id

from tenpo.bus import PARTITIONS_CHANGED, open_bus
from tenpo.core.settings import Settings
from tenpo.lake import Lake, open_lake
from tenpo.pipelines import DEFAULT_ASSETS, TenpoResource, ensure_dagster_home, materialize_dates
from tenpo.pipelines.kpis import DATAMART_KEYS, MART_KEYS
from tenpo.pipelines.partitions import daily_partitions
from tenpo.pipelines.run import with_downstream
from tenpo.pipelines.schedules import DAILY_SCHEDULE, daily_kpis_schedule
from tenpo.pipelines.sensors import (
    CONSUMER,
    affected_partitions,
    partitions_changed_sensor,
    plan_runs,
)
from tenpo.pipelines.sqlite_storage import SqliteEventLogStorageKeepingEngines
from tenpo.warehouse import open_warehouse, write_partition
from tests.jobs.factories import DAY, NEXT_DAY, count_row, counts_table, on_day
from tests.jobs.factories import fixture_counts as base_counts
from tests.jobs.factories import fixture_pos as base_pos
from tests.jobs.test_visits_hourly import fixture_events

pytestmark = pytest.mark.slow

ALL = {*MART_KEYS, *DATAMART_KEYS}
KPIS_ONLY = {
    "mart_store_daily",
    "datamart_store_daily",
    "mart_store_hourly",
    "datamart_store_hourly",
}


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def lake(settings: Settings) -> Iterator[Lake]:
    """POS and counts on DAY and NEXT_DAY, visitor events on DAY and the day before."""
    lake = open_lake(settings.lake_root)
    pos, counts, events = base_pos(), base_counts(), fixture_events()
    for day in (DAY, NEXT_DAY):
        write_partition(lake, "raw_pos_transactions", "t1", day, on_day(pos, day))
        write_partition(lake, "raw_iot_counts", "t1", day, on_day(counts, day))
    for day in (DAY - timedelta(days=1), DAY):
        write_partition(lake, "raw_visitor_events", "t1", day, on_day(events, day))
    yield lake
    from tenpo.datamart import dispose_engines

    dispose_engines()


def mart_parts(lake: Lake, day: date | None = None) -> dict[str, bytes]:
    keys = [
        k
        for table in MART_KEYS
        for k in lake.list(f"tables/{table}/")
        if day is None or f"/date={day.isoformat()}/" in k
    ]
    return {k: lake.get(k) for k in keys}


def daily_row(settings: Settings, store: str, day: date) -> dict[str, object]:
    with open_warehouse(settings) as wh:
        rows = wh.to_arrow(wh.table("mart_store_daily", dates=[day])).to_pylist()
    return next(r for r in rows if r["store_id"] == store)


def evaluate(settings: Settings, instance: DagsterInstance) -> object:
    context = build_sensor_context(
        instance=instance, resources={"tenpo": TenpoResource.from_settings(settings)}
    )
    return partitions_changed_sensor().evaluate_tick(context)


def test_all_marts_with_checks_and_an_identical_rerun(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    days = [DAY - timedelta(days=1), DAY, NEXT_DAY]
    results = materialize_dates(settings, days, instance=instance)
    assert len(results) == 1
    done = {e.asset_key.to_user_string() for e in results[0].get_asset_materialization_events()}
    assert done == set(DEFAULT_ASSETS)
    checks = results[0].get_asset_check_evaluations()
    assert {c.check_name for c in checks} >= {
        "no_null_keys",
        "row_count",
        "visitors_non_negative",
        "pos_totals_match_raw",
        "hourly_sums_equal_daily",
        "dwell_non_negative",
    }
    assert all(c.passed for c in checks), [(c.asset_key, c.check_name) for c in checks]
    a = daily_row(settings, "A", DAY)
    assert (a["unique_visitors"], a["repeat_visitors"], a["visitors_source"]) == (4, 1, "video")
    # Backfill again: the same parts (same content-hash keys and bytes) and datamart rows.
    parts = mart_parts(lake)
    from tenpo.datamart import get_engine, mart_store_visits

    engine = get_engine(settings.datamart_db_url)
    query = sa.select(mart_store_visits).order_by(*mart_store_visits.primary_key.columns)
    with engine.connect() as conn:
        visits = [tuple(r) for r in conn.execute(query)]
    assert len(visits) == 7  # 6 visits on DAY + p2 at B the day before
    materialize_dates(settings, days, instance=instance)
    assert mart_parts(lake) == parts
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(query)] == visits


def test_late_counts_recompute_only_their_partition(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    materialize_dates(settings, [DAY, NEXT_DAY], instance=instance)
    assert evaluate(settings, instance).skip_message  # nothing published yet
    untouched = mart_parts(lake, NEXT_DAY)
    before = daily_row(settings, "S1", DAY)
    assert before["visitors"] == 16
    # Late data: 7 more entries for DAY arrive in a new part, and the streamer says so.
    late = counts_table([count_row("S1", "entrance", 7, minute=5, source="obj-late")])
    lake.put(
        f"tables/raw_iot_counts/tenant=t1/date={DAY.isoformat()}/late.parquet",
        _parquet(late),
    )
    bus = open_bus(settings)
    payload = {"table": "raw_iot_counts", "tenant_id": "t1", "business_date": DAY.isoformat()}
    bus.publish(PARTITIONS_CHANGED, payload, event_id="late-1")
    bus.publish(PARTITIONS_CHANGED, payload, event_id="late-1")  # redelivered: same event
    tick = evaluate(settings, instance)
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    # The KPIs and device health of that date, and the store list every run refreshes.
    assert {k.to_user_string() for k in request.asset_selection} == KPIS_ONLY | {
        "mart_device_health",
        "datamart_device_health",
        "datamart_stores",
    }
    assert request.tags["dagster/asset_partition_range_start"] == DAY.isoformat()
    assert request.tags["dagster/asset_partition_range_end"] == DAY.isoformat()
    materialize_dates(
        settings, [DAY], [k.to_user_string() for k in request.asset_selection], instance=instance
    )
    after = daily_row(settings, "S1", DAY)
    assert after["visitors"] == 23 and after["conversion_rate"] == pytest.approx(1 / 23)
    assert after["counter_complete"] is False  # minutes 2-4 never reported
    assert mart_parts(lake, NEXT_DAY) == untouched
    from tenpo.datamart import get_engine, mart_store_daily

    engine = get_engine(settings.datamart_db_url)
    with engine.connect() as conn:
        visitors = conn.execute(
            sa.select(mart_store_daily.c.visitors).where(
                mart_store_daily.c.store_id == "S1", mart_store_daily.c.business_date == DAY
            )
        ).scalar_one()
    assert visitors == 23
    # The next tick acknowledges the events: nothing left, nothing requested twice.
    assert evaluate(settings, instance).skip_message
    assert bus.pending(PARTITIONS_CHANGED, CONSUMER) == 0
    bus.close()


def _parquet(table: pa.Table) -> bytes:
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_affected_partitions_follow_the_repeat_window() -> None:
    d = date(2026, 3, 1)
    existing = [d - timedelta(days=1), d + timedelta(days=1), d + timedelta(days=200)]
    wanted = affected_partitions(
        [
            {"table": "raw_visitor_events", "tenant_id": "t1", "business_date": d.isoformat()},
            {"table": "raw_iot_tracks", "tenant_id": "t1", "business_date": d.isoformat()},
            {"table": "raw_pos_lines", "tenant_id": "t1", "business_date": "not a date"},
        ],
        repeat_window_days=180,
        daily_dates=existing,
    )
    assert wanted == {
        d: ALL,
        d + timedelta(days=1): {"mart_store_daily", "datamart_store_daily"},
    }
    runs = plan_runs(wanted, ["e1", "e2"])
    assert [(r.first, r.last, set(r.assets)) for r in runs] == [
        (d, d, ALL),
        (
            d + timedelta(days=1),
            d + timedelta(days=1),
            {"mart_store_daily", "datamart_store_daily"},
        ),
    ]
    assert runs == plan_runs(wanted, ["e2", "e1"])  # run keys do not depend on event order
    pos = {
        date(2026, 3, i): {"mart_store_daily"} for i in (1, 2, 3, 5)
    }  # consecutive dates share one run
    assert [(r.first.day, r.last.day) for r in plan_runs(pos, ["x"])] == [(1, 3), (5, 5)]


def test_rerun_one_asset_with_its_downstream(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    assert set(with_downstream(["mart_store_visits"])) >= ALL
    daily = set(with_downstream(["mart_store_daily"]))
    assert daily >= KPIS_ONLY and "mart_store_visits" not in daily
    results = materialize_dates(
        settings, [DAY], ["mart_store_hourly"], downstream=True, instance=instance
    )
    done = {e.asset_key.to_user_string() for e in results[0].get_asset_materialization_events()}
    assert done == {"mart_store_hourly", "datamart_store_hourly"}


def test_daily_schedule_asks_for_yesterday() -> None:
    schedule = daily_kpis_schedule(daily_partitions(date(2026, 1, 1)))
    tick = datetime(2026, 11, 3, 4, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    with instance_for_test() as instance:
        request = schedule(build_schedule_context(instance=instance, scheduled_execution_time=tick))
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-11-02"
    assert schedule.cron_schedule == "0 4 * * *"


def test_daily_schedule_launches_one_run_per_date_across_ticks() -> None:
    """Dagster de-duplicates a schedule's run key only within a tick: a later tick for a date
    that already has a run (a minute cron while the first run is still going) must skip."""
    schedule = daily_kpis_schedule(daily_partitions(date(2026, 1, 1)), cron="* * * * *")
    tick = datetime(2026, 11, 3, 4, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    with instance_for_test() as instance:
        first = schedule(build_schedule_context(instance=instance, scheduled_execution_time=tick))
        assert isinstance(first, RunRequest) and first.run_key == "daily-2026-11-02"
        instance.add_run(
            DagsterRun(
                job_name="daily_kpis",
                run_id=make_new_run_id(),
                tags={SCHEDULE_NAME_TAG: DAILY_SCHEDULE, RUN_KEY_TAG: first.run_key},
            )
        )
        later = tick + timedelta(minutes=1)
        again = schedule(build_schedule_context(instance=instance, scheduled_execution_time=later))
        assert isinstance(again, SkipReason) and "2026-11-02" in (again.skip_message or "")
        # The next business date is still launched.
        next_day = schedule(
            build_schedule_context(
                instance=instance, scheduled_execution_time=tick + timedelta(days=1)
            )
        )
        assert isinstance(next_day, RunRequest) and next_day.partition_key == "2026-11-03"


def test_instance_limits_mart_writers_to_one_run(settings: Settings) -> None:
    home = ensure_dagster_home(settings)
    config = (home / "dagster.yaml").read_text(encoding="utf-8")
    assert 'key: "tenpo/writer"' in config and "limit: 1" in config
    # An older tenpo-written file is brought up to date; someone else's is left alone.
    (home / "dagster.yaml").write_text("# Written by tenpo: old\nstorage: {}\n", encoding="utf-8")
    ensure_dagster_home(settings)
    assert "tag_concurrency_limits" in (home / "dagster.yaml").read_text(encoding="utf-8")
    (home / "dagster.yaml").write_text("# mine\n", encoding="utf-8")
    ensure_dagster_home(settings)
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == "# mine\n"
    (home / "dagster.yaml").unlink()
    ensure_dagster_home(settings)
    with DagsterInstance.from_config(str(home)) as inst:
        assert inst.get_concurrency_config().run_queue_config.tag_concurrency_limits == [
            {"key": "tenpo/writer", "limit": 1}
        ]
        # The event log is tenpo's SQLite storage: one engine per file for all its writes.
        events = inst.event_log_storage
        assert isinstance(events, SqliteEventLogStorageKeepingEngines)
        events.store_event(_log_entry("run-a", "a0"))
        engine = events._engines["run-a"]
        events.store_event(_log_entry("run-a", "a1"))
        assert events._engines["run-a"] is engine
        # Wiped (its run files deleted), it creates the shard again on the next write.
        events.wipe()
        events.store_event(_log_entry("run-a", "after wipe"))
    # The files are Dagster's own: its stock storage reads the same events from them.
    stock = SqliteEventLogStorage(str(home / "history" / "runs"))
    assert [e.user_message for e in stock.get_logs_for_run("run-a")] == ["after wipe"]


def _log_entry(run_id: str, text: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level=logging.INFO, user_message=text, run_id=run_id, timestamp=0.0
    )


def test_staff_file_is_read_and_checked(settings: Settings, tmp_path: object) -> None:
    from pathlib import Path

    from tenpo.core.errors import ConfigError
    from tenpo.pipelines.kpis import read_staff

    assert read_staff(settings) is None
    path = Path(str(tmp_path)) / "staff.csv"
    path.write_text("tenant_id,store_code,person_id\nt1,S001,t1-s0001\n", encoding="utf-8")
    staff = read_staff(settings.model_copy(update={"staff_file": path}))
    assert staff is not None and staff.to_pylist() == [{"tenant_id": "t1", "person_id": "t1-s0001"}]
    path.write_text("tenant_id,who\nt1,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lacks column"):
        read_staff(settings.model_copy(update={"staff_file": path}))
