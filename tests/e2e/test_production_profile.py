"""The production profile end to end: the scale harness's flow (gateway → MQTT → streamer →
every Dagster asset → datamart → read API → ground truth) with every embedded store swapped
for its server — PostgreSQL for the control plane, the datamart, the streamer's ledger and
Dagster's run storage, NATS JetStream as the bus, Mosquitto for the devices — once with the
lake on a real S3 API server (moto) and DuckDB, once on Spark, whose marts are then
materialized again on DuckDB and must be the same (``TENPO_ENGINE=spark`` changes nothing but
the engine).

Spark and S3 are not combined here: Spark reads ``s3a://`` through Hadoop's S3 connector
(the ``hadoop-aws`` and AWS SDK jars), which pyspark's wheel does not ship and which cannot be
downloaded on this machine. The Spark run keeps the lake in a local folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tenpo.core.settings import Settings
from tenpo.flow.scale import START, drop_run_databases, run_scale
from tenpo.lake import open_lake
from tenpo.lake.keys import table_prefix
from tenpo.pipelines import materialize_dates
from tenpo.warehouse import Warehouse, open_warehouse
from tenpo.warehouse.schemas import MART_TABLES
from tests import _services

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PG_SERVER_ENV = "TENPO_TEST_PG_URL"


def _servers(settings: Settings, nats_url: str, **extra: Any) -> Settings:
    host, port, protocol = _services.mqtt_broker()
    return settings.model_copy(
        update={
            "mqtt_host": host,
            "mqtt_port": port,
            "mqtt_protocol": protocol,
            "nats_url": nats_url,
            **extra,
        }
    )


def _rows(url: str, query: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)))
    finally:
        engine.dispose()


def _databases(server_url: str) -> set[str]:
    return {name for (name,) in _rows(server_url, "SELECT datname FROM pg_database")}


@pytest.fixture
def kept(pg_server_url: str) -> Iterator[list[Any]]:
    """Reports of runs that kept their databases (to look at what they hold) until the test
    ends; then they are dropped, and found gone."""
    reports: list[Any] = []
    yield reports
    for report in reports:
        drop_run_databases(report, pg_server_url)
    left = _databases(pg_server_url)
    for report in reports:
        assert report.databases and not set(report.databases) & left


def _check_servers_held_the_data(report: Any, pg_server_url: str, stores: int) -> None:
    """Every store the profile names was written: not a SQLite file left behind."""
    assert report.mismatches == [] and report.complete
    out = report.as_dict()
    assert out["profile"] == "production" and out["datamart"] == "postgresql"
    assert out["device_path"] == "mqtt"
    # The run's own databases: its run id in every name, so concurrent runs never collide.
    name = f"tenpo_scale_{report.stores}x{report.days}_{report.run_id}"
    roles = ("control", "datamart", "ledger", "dagster")
    assert sorted(out["databases"]) == sorted(f"{name}_{r}" for r in roles)
    assert out["databases_kept"] is True
    url = sa.make_url(pg_server_url)

    def db(role: str) -> str:
        return url.set(database=f"{name}_{role}").render_as_string(hide_password=False)

    (n_stores,) = _rows(db("control"), "SELECT count(*) FROM stores")[0]
    assert n_stores == stores
    (n_daily,) = _rows(db("datamart"), "SELECT count(*) FROM mart_store_daily")[0]
    assert n_daily == report.store_days_checked > 0
    (n_loaded,) = _rows(db("ledger"), "SELECT count(*) FROM streamer_objects")[0]
    assert n_loaded >= out["stages"]["send_http"]["objects"]
    (n_runs,) = _rows(db("dagster"), "SELECT count(*) FROM runs WHERE status = 'SUCCESS'")[0]
    assert n_runs > 0
    (n_failed,) = _rows(db("dagster"), "SELECT count(*) FROM runs WHERE status = 'FAILURE'")[0]
    assert n_failed == 0


def test_production_profile_on_s3(
    settings: Settings, pg_server_url: str, nats_url: str, s3_lake_url: str, kept: list[Any]
) -> None:
    import s3fs

    cfg = _servers(settings, nats_url)
    report = run_scale(
        cfg,
        settings.data_dir / "scale",
        stores=4,
        days=2,
        mqtt=True,
        profile="production",
        datamart_server=pg_server_url,
        lake_url=s3_lake_url,
        keep_databases=True,
    )
    kept.append(report)
    _check_servers_held_the_data(report, pg_server_url, stores=4)
    out = report.as_dict()
    assert out["lake"] == "s3" and out["lake_bytes"]["landing"] > 0
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    bucket = s3_lake_url.removeprefix("s3://")
    assert fs.find(f"{bucket}/tables/mart_store_daily"), "no mart part on S3"
    assert fs.find(f"{bucket}/landing"), "nothing landed on S3"
    # Nothing fell back to the local folder: no lake, control plane or datamart file there.
    local = settings.data_dir / "scale"
    assert not (local / "lake").exists()
    assert not (local / "control.db").exists() and not (local / "datamart.db").exists()


@pytest.mark.skipif(
    os.environ.get("TENPO_TEST_SPARK") != "1", reason="Spark is opt-in: TENPO_TEST_SPARK=1"
)
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_production_profile_on_spark_equals_duckdb(
    settings: Settings, pg_server_url: str, nats_url: str, kept: list[Any]
) -> None:
    """The flow on Spark passes its truth check; every mart re-materialized on DuckDB over the
    same lake holds the same rows, indeed the same Parquet parts (named by content hash), and
    the datamart the same rows; the raw tables read the same through both engines."""
    pytest.importorskip("pyspark")
    from tenpo.warehouse.spark import SparkWarehouse

    cfg = _servers(settings, nats_url, engine="spark", spark_master="local[2]")
    queries: list[int] = []
    to_arrow = SparkWarehouse.to_arrow

    def counted(self: SparkWarehouse, expr: Any) -> Any:
        queries.append(1)
        return to_arrow(self, expr)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SparkWarehouse, "to_arrow", counted)
        report = run_scale(
            cfg,
            settings.data_dir / "scale",
            stores=2,
            days=2,
            mqtt=True,
            profile="production",
            datamart_server=pg_server_url,
            keep_databases=True,
        )
        kept.append(report)
        _check_servers_held_the_data(report, pg_server_url, stores=2)
        assert report.as_dict()["engine"] == "spark"
        assert queries, "no mart was computed on Spark"
        run = report.settings
        assert run is not None and run.engine == "spark"
        on_spark = _mart_state(run)
        assert len(on_spark["mart_store_daily"]) == 4  # 2 stores × 2 days
        assert on_spark["mart_store_visits"] and on_spark["mart_store_hourly"]
        assert on_spark["mart_device_health"]

        n = len(queries)
        days = [START + timedelta(days=i) for i in range(2)]
        materialize_dates(run.model_copy(update={"engine": "duckdb"}), days)
        assert len(queries) == n, "the DuckDB run went through Spark"
    on_duckdb = _mart_state(run)
    assert on_duckdb.keys() == on_spark.keys()
    for name in on_spark:
        assert on_duckdb[name] == on_spark[name], name

    # Raw tables too (deduplicated, POS versions), read by each engine from the same lake.
    with open_warehouse(run, engine="duckdb") as duck, open_warehouse(run) as spark:
        assert isinstance(spark, SparkWarehouse)
        for name in ("raw_pos_transactions", "raw_pos_lines", "raw_visitor_events"):
            want = duck.to_arrow(duck.table(name, dates=days[1:]))
            got = spark.to_arrow(spark.table(name, dates=days[1:]))
            assert got.schema == want.schema, name
            assert want.num_rows > 0, name
            assert sorted(map(repr, got.to_pylist())) == sorted(map(repr, want.to_pylist())), name
        assert spark.sql("SELECT count(*) AS n FROM mart_store_daily")["n"].to_pylist() == [4]


def _mart_state(run: Settings) -> dict[str, Any]:
    """Every mart's rows (read by DuckDB) and part keys, and every datamart table's rows."""
    lake = open_lake(run.lake_root)
    state: dict[str, Any] = {}
    with Warehouse(lake) as wh:
        for name in MART_TABLES:
            state[name] = sorted(map(repr, wh.to_arrow(wh.table(name)).to_pylist()))
            state[f"{name} parts"] = [
                k for k in lake.list(table_prefix(name)) if k.endswith(".parquet")
            ]
    engine = sa.create_engine(run.datamart_db_url)
    try:
        with engine.connect() as conn:
            for name in sa.inspect(conn).get_table_names():
                rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).fetchall()
                state[f"datamart {name}"] = sorted(map(repr, rows))
    finally:
        engine.dispose()
    return state
