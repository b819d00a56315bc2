"""Dagster materializations of the KPI assets into a tmp lake (and the SQLite datamart)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, materialize

from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.lake import Lake, open_lake
from tenpo.pipelines import PipelineFailed, TenpoResource, date_ranges, materialize_dates
from tenpo.pipelines.definitions import defs
from tenpo.pipelines.devices import DATAMART_DEVICE_HEALTH_KEY, MART_DEVICE_HEALTH_KEY
from tenpo.pipelines.initiatives import DATAMART_INITIATIVES_KEY, MART_INITIATIVE_EFFECTS_KEY
from tenpo.pipelines.kpis import DATAMART_KEYS, MART_KEYS, kpi_assets
from tenpo.pipelines.ml import DATAMART_ML_KEY, ML_ASSET_KEYS
from tenpo.pipelines.partitions import daily_partitions
from tenpo.pipelines.stores import DATAMART_STORES_KEY
from tenpo.warehouse import write_partition
from tenpo.warehouse.schemas import MART_STORE_DAILY, RAW_TABLES
from tests.jobs.factories import DAY, NEXT_DAY, fixture_counts, fixture_pos, on_day

MART = "tables/mart_store_daily/"


@pytest.fixture(scope="module")
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def lake(settings: Settings) -> Iterator[Lake]:
    """The settings' lake loaded with the KPI fixture (two dates, tenant t1)."""
    lake = open_lake(settings.lake_root)
    pos, counts = fixture_pos(), fixture_counts()
    for day in (DAY, NEXT_DAY):
        for table, rows in (("raw_pos_transactions", pos), ("raw_iot_counts", counts)):
            write_partition(lake, table, "t1", day, on_day(rows, day))
    yield lake
    from tenpo.datamart import dispose_engines

    dispose_engines()


def mart_parts(lake: Lake) -> dict[str, bytes]:
    return {k: lake.get(k) for k in lake.list(MART)}


def test_definitions_expose_raw_sources_and_kpi_assets() -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    keys -= {*ML_ASSET_KEYS, DATAMART_ML_KEY}  # tests/ml checks the ML assets
    keys -= {MART_DEVICE_HEALTH_KEY, DATAMART_DEVICE_HEALTH_KEY}  # checked in tests/iot
    keys -= {"mart_store_forecast", "datamart_forecast", "alerts"}  # tests/ml, tests/api
    keys -= {"mart_initiative_effects", "datamart_initiative_effects"}  # initiatives' own tests
    assert keys == {*RAW_TABLES, *MART_KEYS, *DATAMART_KEYS, DATAMART_STORES_KEY}
    mart = defs.resolve_assets_def("mart_store_daily")
    assert AssetKey("raw_pos_transactions") in mart.dependency_keys
    assert mart.partitions_def is not None
    assert mart.partitions_def.get_first_partition_key() == "2026-01-01"


def test_mart_partition_materializes_expected_parquet_and_rerun_is_identical(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    by_key = {a.key.to_user_string(): a for a in kpi_assets(daily_partitions(date(2026, 11, 1)))}
    assets = [by_key["mart_store_daily"]]
    resources = {"tenpo": TenpoResource.from_settings(settings)}
    result = materialize(
        assets, partition_key=DAY.isoformat(), instance=instance, resources=resources
    )
    assert result.success
    parts = mart_parts(lake)
    assert [k.rsplit("/", 1)[0] for k in parts] == [f"{MART}tenant=t1/date={DAY.isoformat()}"]
    table = pq.read_table(lake.path(next(iter(parts))), schema=MART_STORE_DAILY)
    rows = {r["store_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["S1", "S2", "S3"]  # NEXT_DAY's rows are not in this partition
    assert rows["S1"]["net_sales"] == Decimal("1300.50")
    assert (rows["S1"]["transactions"], rows["S1"]["visitors"]) == (1, 16)
    assert rows["S2"]["has_counter"] is False and rows["S3"]["has_pos"] is False
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows"].value == 3

    again = materialize(
        assets, partition_key=DAY.isoformat(), instance=instance, resources=resources
    )
    assert again.success
    assert mart_parts(lake) == parts  # same keys, same bytes


def test_materialize_dates_runs_a_range_in_one_run_and_exports_to_the_datamart(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    results = materialize_dates(settings, [NEXT_DAY, DAY], instance=instance)
    assert len(results) == 1
    partitions = {
        (e.asset_key.to_user_string(), e.partition)
        for e in results[0].get_asset_materialization_events()
    }
    # Every mart and export by default: the partitioned ones per date, the store list and the
    # ML and initiative marts once (no partition).
    partitioned = (*MART_KEYS, *DATAMART_KEYS, MART_DEVICE_HEALTH_KEY, DATAMART_DEVICE_HEALTH_KEY)
    once = (
        DATAMART_STORES_KEY,
        *ML_ASSET_KEYS,
        DATAMART_ML_KEY,
        MART_INITIATIVE_EFFECTS_KEY,
        DATAMART_INITIATIVES_KEY,
    )
    assert partitions == {
        (asset, d.isoformat()) for asset in partitioned for d in (DAY, NEXT_DAY)
    } | {(asset, None) for asset in once}
    from tenpo.datamart import get_engine, mart_store_daily

    engine = get_engine(settings.datamart_db_url)
    query = sa.select(
        mart_store_daily.c.business_date, mart_store_daily.c.store_id, mart_store_daily.c.net_sales
    ).order_by(mart_store_daily.c.business_date, mart_store_daily.c.store_id)
    with engine.connect() as conn:
        first = [tuple(r) for r in conn.execute(query)]
    assert first == [
        (DAY, "S1", Decimal("1300.50")),
        (DAY, "S2", Decimal("750.00")),
        (DAY, "S3", None),
        (NEXT_DAY, "S1", Decimal("80.00")),
    ]
    # Safe re-run: same rows in the datamart, same parts in the lake.
    parts = mart_parts(lake)
    materialize_dates(settings, [DAY, NEXT_DAY], instance=instance)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(query)] == first
    assert mart_parts(lake) == parts


def test_rerun_after_raw_data_vanished_removes_the_mart_partition(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    materialize_dates(settings, [NEXT_DAY], ["mart_store_daily"], instance=instance)
    assert lake.list(f"{MART}tenant=t1/date={NEXT_DAY.isoformat()}/")
    for key in lake.list(f"tables/raw_pos_transactions/tenant=t1/date={NEXT_DAY.isoformat()}/"):
        lake.delete(key)
    results = materialize_dates(settings, [NEXT_DAY], ["mart_store_daily"], instance=instance)
    assert lake.list(f"{MART}tenant=t1/date={NEXT_DAY.isoformat()}/") == []
    meta = results[0].get_asset_materialization_events()[0].materialization.metadata
    assert meta["partitions_removed"].value == 1


def test_failing_run_raises_naming_the_step(
    settings: Settings, lake: Lake, instance: DagsterInstance
) -> None:
    lake.put(f"tables/raw_iot_counts/tenant=t1/date={DAY.isoformat()}/broken.parquet", b"nope")
    with pytest.raises(PipelineFailed, match="step mart_store_daily failed"):
        materialize_dates(settings, [DAY], ["mart_store_daily"], instance=instance)


def test_bad_requests_are_named(settings: Settings, instance: DagsterInstance) -> None:
    with pytest.raises(BadInput, match="no business dates"):
        materialize_dates(settings, [], instance=instance)
    with pytest.raises(BadInput, match="unknown asset.*mart_nope.*choose from"):
        materialize_dates(settings, [DAY], ["mart_nope"], instance=instance)


def test_date_ranges_groups_consecutive_days() -> None:
    days = [
        date(2026, 1, 5),
        date(2026, 1, 3),
        date(2026, 1, 4),
        date(2026, 1, 9),
        date(2026, 1, 4),
    ]
    assert date_ranges(days) == [
        (date(2026, 1, 3), date(2026, 1, 5)),
        (date(2026, 1, 9), date(2026, 1, 9)),
    ]
    # At most two days per range (memory per run bounded for a big chain).
    assert date_ranges(days, 2) == [
        (date(2026, 1, 3), date(2026, 1, 4)),
        (date(2026, 1, 5), date(2026, 1, 5)),
        (date(2026, 1, 9), date(2026, 1, 9)),
    ]
    assert date_ranges(days, 1) == [(d, d) for d in sorted(set(days))]


def test_resource_reproduces_settings_locations(settings: Settings) -> None:
    resource = TenpoResource.from_settings(settings)
    rebuilt = resource.get_settings()
    assert rebuilt.lake_root == settings.lake_root
    assert rebuilt.datamart_db_url == settings.datamart_db_url
